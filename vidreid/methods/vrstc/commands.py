"""``vidreid vrstc train-stc|complete|run``: VRSTC's STCnet from a config, and the whole
pipeline in one run folder (``run``, :mod:`vidreid.methods.vrstc.pipeline`).

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


def cmd_run(args: argparse.Namespace) -> int:
    from vidreid.methods.vrstc.pipeline import (
        Pipeline,
        load_pipeline_config,
        new_pipeline_run,
        resume_pipeline_run,
    )

    items = [*args.items, *args.more_items]
    if args.resume is not None:
        if items:
            raise ValueError(f"--resume continues a run with its saved config; got {items}")
        cfg, run_dir = resume_pipeline_run(args.resume)
    else:
        config = [x for x in items if "=" not in x]
        if len(config) != 1:
            raise ValueError("vidreid vrstc run needs one CONFIG (or --resume RUN), "
                             f"got {config or 'none'}")
        cfg = load_pipeline_config(config[0], [x for x in items if "=" in x])
        run_dir = new_pipeline_run(cfg)
    print(f"VRSTC pipeline run folder: {run_dir}")
    records = Pipeline(cfg, run_dir).run(until=args.until)
    final = records.get("reid_completed")
    if final is not None:
        raw = (records.get("reid") or {}).get("summary", {}).get("eval", {})
        done = final["summary"].get("eval", {})
        print(f"re-ID raw: {raw}")
        print(f"re-ID completed: {done}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``vrstc train-stc``, ``vrstc complete`` and ``vrstc run``."""
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
    r = sub.add_parser(
        "run", help="the whole pipeline in one run folder (resumable)",
        description="vidreid vrstc run CONFIG [key=value ...] [--until STAGE] | vidreid vrstc "
                    "run --resume RUN [--until STAGE]: re-ID, (guider), locate, STCnet, "
                    "complete, re-ID on the completed data; each finished stage is skipped "
                    "on --resume, a stopped training stage continues")
    r.add_argument("items", nargs="*", metavar="CONFIG|KEY=VALUE",
                   help="a pipeline config (configs/vrstc/pipeline/) and overrides")
    r.add_argument("--resume", metavar="RUN", action=ValueThenOverrides,
                   help="continue the pipeline run folder RUN")
    r.add_argument("--until", metavar="STAGE", action=ValueThenOverrides,
                   help="stop after this stage (reid, guider, locate, stc, complete, "
                        "reid_completed)")
    r.set_defaults(func=cmd_run, more_items=[])
