"""``vidreid extract`` (tracklet features to a features folder) and ``vidreid export`` (ONNX).

``vidreid extract CONFIG --weights W --data ROOT --dataset NAME [--split gallery] --out FEATS``
extracts a split of a dataset (``build_dataset(NAME, ROOT)``; the config's ``data.options``
apply when NAME is the config's ``data.name``); tracklet ids are ``<split>/<position>``.
Without ``--dataset``, ``--data DIR`` is a folder of tracklets: every folder below DIR
that holds images is one tracklet (id: its path relative to DIR; pid and camera unknown,
-1). Re-running the same command resumes an interrupted extraction (finished shards are
skipped); see :mod:`vidreid.retrieval.features_file` for the format. Under ``torchrun``
(``torchrun --nproc-per-node N -m vidreid.cli extract ...``, nodes included) the shards are
dealt to the processes, which write one features folder (it must be on a filesystem every
node sees). ``--compile`` runs the frame encoder through ``torch.compile``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from vidreid.data.tracklet import Tracklet

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
    from vidreid.engine.config import load_config, to_container
    from vidreid.retrieval.extractor import FeatureExtractor, extract_dataset

    cfg = load_config(args.config, args.overrides)
    info = D.init_distributed(args.device)  # a no-op outside torchrun
    try:
        if info.world_size > 1:
            device = args.device
            if device in ("auto", "cuda"):
                device = str(D.resolve_device("auto", info.local_rank))
            local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
        else:
            device = str(D.resolve_device(args.device)) if args.device == "auto" else args.device
        if args.dataset:
            options = to_container(cfg.data.options) if args.dataset == cfg.data.name else {}
            tracklets, ids = dataset_tracklets(args.dataset, args.data, args.split, options)
        else:
            tracklets, ids = folder_tracklets(args.data)
        extractor = FeatureExtractor(
            cfg, args.weights, device, batch_frames=args.batch_frames, amp=args.amp,
            num_workers=args.workers, compile=args.compile or bool(cfg.eval.compile),
        )
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
    from vidreid.engine.config import load_config
    from vidreid.retrieval.export import check_onnx_parity, export_onnx
    from vidreid.retrieval.extractor import load_model

    cfg = load_config(args.config, args.overrides)
    model = load_model(cfg, args.weights)
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
                print(f"{part}: not exportable: {str(exc)[:300]}")
                failures += 1
                continue
        report = check_onnx_parity(model, path, size, part=part, num_frames=num_frames,
                                   atol=args.atol, rtol=args.rtol)
        print(f"{part} -> {path} ({shape}); onnxruntime vs PyTorch max |diff| "
              f"{report['max_abs_diff']:.2e} (outputs up to {report['max_abs_ref']:.2e})")
    return 1 if failures == len(parts) else 0


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="experiment config (YAML) the weights were trained with")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--weights", required=True, help="trainer checkpoint or state dict (.pt)")


def register(subparsers: Any) -> None:
    """Add ``extract`` and ``export`` to the ``vidreid`` parser."""
    p = subparsers.add_parser(
        "extract", help="tracklet features of a dataset split or a folder, to a features folder",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
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
