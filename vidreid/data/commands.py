"""``vidreid synth`` and ``vidreid data info``."""

from __future__ import annotations

import argparse
import re
import sys


def _size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected HEIGHTxWIDTH, e.g. 256x128")
    return int(m.group(1)), int(m.group(2))


def _synth(args: argparse.Namespace) -> int:
    from vidreid.data.synth import generate

    root = generate(
        args.out,
        args.layout,
        args.ids,
        args.cameras,
        args.seed,
        size=args.size,
        max_len=args.max_len,
        occlusion_rate=args.occlusion_rate,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=sys.stderr.isatty(),
    )
    print(
        f"wrote a {args.layout}-layout dataset; load it with: vidreid data info {args.layout} {root}"
    )
    return 0


def _info(args: argparse.Namespace) -> int:
    from vidreid.data import build_dataset
    from vidreid.data.info import format_summary

    options = {
        k: v
        for k, v in (
            ("protocol", args.protocol),
            ("split_id", args.split_id),
            ("min_seq_len", args.min_seq_len),
        )
        if v is not None
    }
    print(format_summary(build_dataset(args.name, args.root, **options)))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``synth`` and ``data info`` to the ``vidreid`` command."""
    from vidreid.data.synth.generate import DEFAULT_MAX_LEN
    from vidreid.data.synth.layouts import LAYOUTS

    p = subparsers.add_parser(
        "synth",
        help="write a synthetic dataset in a benchmark layout",
        description="Write a synthetic video re-ID dataset (frames, index files, ground truth).",
    )
    p.add_argument("out", help="output root (the dataset folder is created inside it)")
    p.add_argument("--layout", required=True, choices=LAYOUTS)
    p.add_argument("--ids", type=int, required=True, help="labelled identities")
    p.add_argument("--cameras", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--size", type=_size, default=(256, 128), help="HEIGHTxWIDTH (default 256x128)")
    p.add_argument(
        "--max-len",
        type=int,
        default=None,
        help=f"cap on tracklet length (default {DEFAULT_MAX_LEN})",
    )
    p.add_argument("--occlusion-rate", type=float, default=0.0)
    p.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.set_defaults(func=_synth)

    data = subparsers.add_parser("data", help="dataset tools")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    info = sub.add_parser("info", help="print split statistics of a dataset")
    info.add_argument("name", help="dataset: mars, ilidsvid, prid2011, dukev, lsvid, folder")
    info.add_argument("root", help="folder holding the dataset's own folder")
    info.add_argument("--protocol", default=None, help="MARS: torchreid (default), official or tkp")
    info.add_argument("--split-id", type=int, default=None, help="iLIDS-VID / PRID split 0-9")
    info.add_argument("--min-seq-len", type=int, default=None, help="drop shorter tracklets")
    info.set_defaults(func=_info)
