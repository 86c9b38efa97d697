"""``vidreid ingest VIDEO --camera C --out DIR``: people in a video -> tracklets on disk.

Detects people (``--detector bgsub|hog|onnx``) on every ``--every``-th frame, tracks them
(``--tracker sort|deepsort``; appearance from ``--model RUN``, ``--model imagenet`` or ``--config``),
cuts tracks into tracklets (``--min-len``, ``--max-gap``, ``--max-len``) and writes the
crops in the ``folder`` layout with ``manifest.csv``; see :mod:`vidreid.retrieval.ingest`.
The output goes straight into ``vidreid extract RUN --data DIR --dataset
folder --split gallery --out FEATS`` and then ``vidreid index build|add``. Re-running the
same command resumes an interrupted ingest; a finished ``DIR`` is never overwritten.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def make_encoder(config: str | None, weights: str | None, device: str = "cpu",
                 overrides: list[str] | None = None, *, model: str | None = None
                 ) -> tuple[Any, str]:
    """An appearance encoder for the tracker from a trained model: ``(encoder, identity)``.

    ``model`` is a run folder or ``imagenet`` (:func:`~vidreid.retrieval.extractor.
    open_extractor`); else ``config`` with ``weights`` (None: random initialisation). Each
    crop is encoded as a one-frame tracklet by
    :class:`~vidreid.retrieval.extractor.FeatureExtractor`.
    """
    from vidreid.engine.config import load_config
    from vidreid.retrieval.extractor import FeatureExtractor, open_extractor

    if model is not None:
        extractor = open_extractor(model, None, overrides or [], device, num_workers=0)
    else:
        extractor = FeatureExtractor(load_config(config, overrides or []), weights, device,
                                     num_workers=0)

    def encode(crops: list[np.ndarray]) -> np.ndarray:
        return extractor.images(crops).numpy()

    return encode, extractor.identity


def _cmd_ingest(args: argparse.Namespace) -> int:
    from vidreid.retrieval.ingest import ingest_video

    options: dict[str, Any] = {}
    if args.detector == "onnx":
        if not args.onnx_weights:
            raise ValueError("--detector onnx needs --onnx-weights W (a YOLO-style .onnx file)")
        options = {"weights": args.onnx_weights, "score_threshold": args.score_threshold}
    elif args.onnx_weights:
        raise ValueError("--onnx-weights is only used with --detector onnx")
    if args.detector == "hog":
        options = {"upscale": args.hog_upscale}
    encoder, encoder_id = None, None
    if args.model and args.config:
        raise ValueError("give either --model RUN|imagenet or --config CONFIG, not both")
    if args.model or args.config:
        encoder, encoder_id = make_encoder(args.config, args.weights, args.device,
                                           model=args.model)
    elif args.tracker == "deepsort":
        raise ValueError("--tracker deepsort needs an appearance model: --model RUN (or "
                         "--model imagenet)")
    tracker_options: dict[str, Any] = {"max_age": args.max_gap}
    if encoder is not None and args.tracker == "sort":
        tracker_options["appearance_weight"] = args.appearance_weight
    summary = ingest_video(
        args.video, args.out, args.camera, detector=args.detector, detector_options=options,
        every=args.every, min_len=args.min_len, max_gap=args.max_gap, max_len=args.max_len,
        tracker=args.tracker, tracker_options=tracker_options, encoder=encoder,
        encoder_id=encoder_id, chunk_frames=args.chunk_frames, progress=not args.quiet,
    )
    lengths = summary.tracklet_lengths
    print(f"{summary.frames_decoded} frames ({summary.frames_detected} detected), "
          f"{summary.detections} detections, {summary.tracks} tracks -> {summary.tracklets} "
          f"tracklets ({summary.crops} crops; length median {int(np.median(lengths))}, "
          f"max {max(lengths)}) -> {summary.out}")
    if summary.truncated:
        logger.warning("the video announces %d frames but only %d could be decoded (truncated"
                       " or corrupt file?); the tracklets cover the decoded part",
                       summary.frames_announced, summary.frames_decoded)
    return 0


def register(subparsers: Any) -> None:
    """Add ``ingest`` to the ``vidreid`` parser."""
    p = subparsers.add_parser(
        "ingest", help="detect, track and cut the people of a video into tracklets",
        description="Detects people in a video (--detector bgsub, hog or onnx), tracks them"
                    " (--tracker sort or deepsort; --model RUN or --model imagenet adds"
                    " appearance), cuts the tracks into tracklets and writes their crops as a"
                    " folder of tracklets with manifest.csv. Then: vidreid extract RUN --data"
                    " OUT --dataset folder --out FEATS, and vidreid index build or add."
                    " Re-running the same command resumes an interrupted ingest.",
    )
    p.add_argument("video", help="video file (anything OpenCV decodes)")
    p.add_argument("--camera", type=int, required=True, help="0-based camera id")
    p.add_argument("--out", required=True, help="output folder (must not exist)")
    p.add_argument("--detector", choices=("bgsub", "hog", "onnx"), default="bgsub",
                   help="bgsub: static camera, fast (default); hog: OpenCV's people "
                   "detector; onnx: your YOLO-style model")
    p.add_argument("--onnx-weights", help="--detector onnx: the .onnx file")
    p.add_argument("--score-threshold", type=float, default=0.4, help="onnx: min person score")
    p.add_argument("--hog-upscale", type=float, default=1.0,
                   help="hog: resize factor (people under ~128 px need > 1)")
    p.add_argument("--every", type=int, default=1, help="detect on every N-th frame")
    p.add_argument("--min-len", type=int, default=8, help="min crops per tracklet")
    p.add_argument("--max-gap", type=int, default=10,
                   help="longest gap (processed frames) inside a tracklet; longer splits it")
    p.add_argument("--max-len", type=int, help="split tracklets longer than this")
    p.add_argument("--tracker", choices=("sort", "deepsort"), default="sort")
    p.add_argument("--model", metavar="RUN|imagenet",
                   help="appearance model for the tracker: a run folder, or imagenet")
    p.add_argument("--config", help="older form of --model: an experiment config")
    p.add_argument("--weights", help="appearance model weights")
    p.add_argument("--appearance-weight", type=float, default=0.5,
                   help="sort with --model: share of appearance in the matching cost")
    p.add_argument("--device", default="cpu")
    p.add_argument("--chunk-frames", type=int, default=200,
                   help="frames per detection chunk (resume granularity)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_ingest)
