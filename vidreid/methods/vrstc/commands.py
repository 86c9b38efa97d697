"""``vidreid vrstc train-stc`` and ``vidreid vrstc complete``: VRSTC's STCnet from a config.

Pipeline: ``vidreid train configs/vrstc/<ds>.yaml`` (re-ID on the raw data) ->
``vidreid vrstc train-stc configs/vrstc/stc/<ds>.yaml reid.weights=RUN/last.pt`` ->
``vidreid vrstc complete configs/vrstc/stc/<ds>.yaml --weights STC_RUN/stc.pt --data ROOT
--out NEWROOT [--set tau=...]`` -> ``vidreid train configs/vrstc/<ds>.yaml data.root=NEWROOT``.
complete uses tau, source_tau, the stripe and neighbour counts STCnet was trained with (its
checkpoint), unless ``--set KEY=VALUE`` overrides one (printed).
"""

from __future__ import annotations

import argparse
from typing import Any

from vidreid.cliargs import ValueThenOverrides
from vidreid.methods.vrstc.config import load_stc_config, run_complete, run_train_stc


def cmd_train_stc(args: argparse.Namespace) -> int:
    cfg = load_stc_config(args.config, args.overrides)
    result = run_train_stc(cfg)
    last = result["last"]
    print("  ".join(f"{k} {v:.4g}" for k, v in last.items()))
    print(f"STCnet weights: {result['path']}")
    return 0


def cmd_complete(args: argparse.Namespace) -> int:
    cfg = load_stc_config(args.config, args.overrides + args.more_items)
    summary = run_complete(cfg, args.weights, args.data, args.out, args.set)
    print("settings (from the STCnet checkpoint): "
          + ", ".join(f"{k} {v}" for k, v in summary["settings"].items()))
    for line in summary["overrides"]:
        print(line)
    print(f"completed {summary['frames_completed']} of {summary['frames']} frames "
          f"({summary['regions_completed']} stripes) in {summary['tracklets']} tracklets")
    print(f"completed dataset: {summary['output']}")
    return 0


class _AppendThenOverrides(ValueThenOverrides):
    """``--set KEY=VALUE [key=value ...]``: appends its one value; config overrides written
    after it still count (see :class:`~vidreid.cliargs.ValueThenOverrides`)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        previous = list(getattr(namespace, self.dest, None) or [])
        super().__call__(parser, namespace, values, option_string)
        setattr(namespace, self.dest, [*previous, getattr(namespace, self.dest)])


def register(subparsers: Any) -> None:
    """Add ``vrstc train-stc`` and ``vrstc complete``."""
    p = subparsers.add_parser("vrstc", help="VRSTC: train STCnet, complete occluded datasets")
    sub = p.add_subparsers(dest="vrstc_command", required=True, metavar="SUBCOMMAND")
    t = sub.add_parser("train-stc", help="train STCnet (needs a trained re-ID network)",
                       description="vidreid vrstc train-stc CONFIG [key=value ...]")
    t.add_argument("config", metavar="CONFIG", help="an STCnet config (configs/vrstc/stc/)")
    t.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="dotted overrides, e.g. reid.weights=RUN/last.pt train.steps=500")
    t.set_defaults(func=cmd_train_stc)
    c = sub.add_parser(
        "complete", help="write an occlusion-completed copy of a dataset",
        description="vidreid vrstc complete CONFIG --weights W --data ROOT --out NEWROOT "
                    "[key=value ...]: NEWROOT gets the input's layout; the input is untouched")
    c.add_argument("config", metavar="CONFIG")
    c.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    c.add_argument("--weights", required=True, action=ValueThenOverrides,
                   help="STCnet weights (stc.pt of train-stc)")
    c.add_argument("--data", required=True, action=ValueThenOverrides,
                   help="dataset root to complete (read only)")
    c.add_argument("--out", required=True, action=ValueThenOverrides,
                   help="new dataset root (must not exist yet)")
    c.add_argument("--set", action=_AppendThenOverrides, default=[], metavar="KEY=VALUE",
                   help="override a setting STCnet was trained with (tau, source_tau, "
                        "num_regions, num_neighbours; default: the checkpoint's); printed")
    c.set_defaults(func=cmd_complete, more_items=[])
