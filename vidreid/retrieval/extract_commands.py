"""``vidreid extract`` (tracklet features to a features folder) and ``vidreid export`` (ONNX).

The command forms are in :data:`EXTRACT_HELP` (shown by ``vidreid extract --help``); see
:mod:`vidreid.retrieval.features_file` for the features format. Under ``torchrun`` (``torchrun --nproc-per-node N -m vidreid.cli
extract ...``, nodes included) the shards are dealt to the processes, which write one
features folder (on a filesystem every node sees). ``--compile`` runs the frame encoder
through ``torch.compile``.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

import torch

from vidreid.data.tracklet import Tracklet

logger = logging.getLogger(__name__)
EXTRACT_HELP = """\
vidreid extract RUN --data ROOT --dataset NAME [--split gallery] --out FEATS extracts a
split of a dataset with the model of a training run (RUN: the folder vidreid train printed;
the run's data options apply when NAME is the dataset it was trained on). Tracklet ids are
SPLIT/POSITION.

Without --dataset, --data DIR is a folder of tracklets: every folder below DIR that holds
images is one tracklet (id: its path relative to DIR; person and camera unknown, -1).

In place of RUN: "imagenet" uses the installed ImageNet MobileNetV2 with frame features
averaged over the tracklet (a starting point before any re-ID training, not a re-ID model);
or the older form CONFIG --weights W. Re-running the same command resumes an interrupted
extraction."""


SPLITS = ("gallery", "query", "train", "test")  # test = query then gallery
UNKNOWN = -1


def folder_tracklets(folder: str) -> tuple[list[Tracklet], list[str]]:
    """Every folder below ``folder`` holding images is a tracklet (frames in natural order).

    Returns the tracklets (pid and camid -1) and their ids (paths relative to ``folder``,
    ``.`` when ``folder`` itself holds the images). Raises a clear error if there are none.
    """
    from vidreid.data.datasets.common import IMAGE_EXTENSIONS, natural_key

    if not os.path.isdir(folder):
        raise FileNotFoundError(f"--data folder {folder} does not exist (or is not a folder)")
    tracklets, ids = [], []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort(key=natural_key)
        images = sorted((f for f in filenames if f.lower().endswith(IMAGE_EXTENSIONS)),
                        key=natural_key)
        if images:
            frames = tuple(os.path.join(dirpath, f) for f in images)
            tracklets.append(Tracklet(frames, UNKNOWN, UNKNOWN))
            ids.append(os.path.relpath(dirpath, folder))
    if not tracklets:
        raise ValueError(
            f"no images ({', '.join(IMAGE_EXTENSIONS)}) below {folder}; give a folder of "
            "tracklet folders, or a dataset root with --dataset NAME"
        )
    return tracklets, ids


def dataset_tracklets(
    name: str, root: str, split: str, options: dict[str, Any]
) -> tuple[list[Tracklet], list[str]]:
    """The tracklets of ``split`` of ``build_dataset(name, root, **options)`` and their ids."""
    from vidreid.data import build_dataset

    if split not in SPLITS:
        raise ValueError(f"--split must be one of {SPLITS}, got {split!r}")
    dataset = build_dataset(name, root, **options)
    parts = ("query", "gallery") if split == "test" else (split,)
    tracklets, ids = [], []
    for part in parts:
        items = list(getattr(dataset, part))
        tracklets += items
        ids += [f"{part}/{i:06d}" for i in range(len(items))]
    if not tracklets:
        raise ValueError(f"the {split} split of {name} at {root} has no tracklets")
    return tracklets, ids


def _cmd_extract(args: argparse.Namespace) -> int:
    import torch

    from vidreid.engine import distributed as D
    from vidreid.engine.config import to_container
    from vidreid.retrieval.extractor import extract_dataset, open_extractor

    info = D.init_distributed(args.device)  # a no-op outside torchrun
    try:
        device = args.device
        if info.world_size > 1:
            if device in ("auto", "cuda"):
                device = str(D.resolve_device("auto", info.local_rank))
            local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
        elif device == "auto":
            device = str(D.resolve_device(device))
        extractor = open_extractor(
            args.model, args.weights, args.overrides, device, batch_frames=args.batch_frames,
            amp=args.amp, num_workers=args.workers, compile=args.compile,
        )
        cfg = extractor.cfg
        if cfg.eval.compile and not extractor.compile:  # the config asks for it
            extractor.compile = True
            extractor._frame_encoder = extractor._make_frame_encoder()
        if args.dataset:
            options = to_container(cfg.data.options) if args.dataset == cfg.data.name else {}
            tracklets, ids = dataset_tracklets(args.dataset, args.data, args.split, options)
        else:
            tracklets, ids = folder_tracklets(args.data)
        manifest = extract_dataset(
            extractor, tracklets, args.out, ids=ids, shard_size=args.shard_size,
            progress=not args.quiet,
        )
        if info.is_main:
            print(f"{len(tracklets)} tracklets, {extractor.feature_dim}-d features -> "
                  f"{manifest.parent}")
    finally:
        D.cleanup_distributed()
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from vidreid.retrieval.export import check_onnx_parity, export_onnx
    from vidreid.retrieval.extractor import open_extractor

    extractor = open_extractor(args.model, args.weights, args.overrides)
    cfg, model = extractor.cfg, extractor.model.float().to(memory_format=torch.contiguous_format)
    size = (int(cfg.data.height), int(cfg.data.width))
    num_frames = int(cfg.data.test_seq_len or cfg.data.seq_len)
    out = Path(args.out)
    if args.part:
        parts = [args.part]
    elif model.can_encode_frames():
        parts = ["frames", "head"]
    else:
        parts = ["clip"]
    failures = 0
    for part in parts:
        path = out if part == parts[0] else out.with_name(f"{out.stem}.{part}{out.suffix}")
        try:
            export_onnx(model, path, size, part=part, num_frames=num_frames)
            shape = "dynamic batch" if part != "clip" else f"batch 2 x {num_frames} frames"
        except ValueError as first:
            try:  # some ops (adaptive pooling) export only with static shapes
                export_onnx(model, path, size, part=part, num_frames=num_frames, dynamic=False)
                shape = f"static shape (dynamic failed: {str(first)[:120]})"
            except ValueError as exc:
                logger.error("%s: not exportable: %s", part, str(exc)[:300])
                failures += 1
                continue
        report = check_onnx_parity(model, path, size, part=part, num_frames=num_frames,
                                   atol=args.atol, rtol=args.rtol)
        print(f"{part} -> {path} ({shape}); onnxruntime vs PyTorch max |diff| "
              f"{report['max_abs_diff']:.2e} (outputs up to {report['max_abs_ref']:.2e})")
    return 1 if failures == len(parts) else 0


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="RUN|imagenet|CONFIG",
                   help="a run folder of vidreid train (or its checkpoint); imagenet for the"
                        " zero-shot ImageNet network; or a config given with --weights")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--weights", help="with a CONFIG: the checkpoint or state dict (.pt) it"
                                     " was trained with")


def register(subparsers: Any) -> None:
    """Add ``extract`` and ``export`` to the ``vidreid`` parser."""
    p = subparsers.add_parser(
        "extract", help="tracklet features of a dataset split or a folder, to a features folder",
        description=EXTRACT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config_args(p)
    p.add_argument("--data", required=True, metavar="ROOT|DIR",
                   help="dataset root (with --dataset) or a folder of tracklet folders")
    p.add_argument("--dataset", help="dataset name (mars, ilidsvid, prid2011, dukev, lsvid, "
                   "folder); omit for a plain folder of tracklets")
    p.add_argument("--split", choices=SPLITS, default="gallery",
                   help="with --dataset: which tracklets (test = query + gallery)")
    p.add_argument("--out", required=True, help="features folder to write (or resume)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-frames", type=int, default=32, help="frames per encoder batch")
    p.add_argument("--workers", type=int, default=1, help="frame-decoding processes")
    p.add_argument("--amp", default="auto", choices=("auto", "off", "bf16", "fp16"))
    p.add_argument("--shard-size", type=int, default=None,
                   help="tracklets per shard (resume granularity; default 4096)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the frame encoder (cached on disk; eager fallback); "
                   "same as eval.compile=true")
    p.set_defaults(func=_cmd_extract)

    p = subparsers.add_parser(
        "export", help="export the model to ONNX and check it against PyTorch (onnxruntime)",
    )
    _add_config_args(p)
    p.add_argument("--out", required=True, help="ONNX file (a second part goes next to it, "
                   "e.g. model.head.onnx)")
    p.add_argument("--part", choices=("frames", "head", "clip"),
                   help="default: frames + head when the model splits, else clip")
    p.add_argument("--atol", type=float, default=1e-4)
    p.add_argument("--rtol", type=float, default=1e-3)
    p.set_defaults(func=_cmd_export)
