"""``vidreid train``, ``vidreid eval`` and ``vidreid demo``.

Commands parse arguments and call :mod:`vidreid.build` (config -> objects, run -> trained
model) and :mod:`vidreid.engine.run`; they hold no building logic of their own.

Distributed: run ``torchrun --nproc_per_node N -m vidreid.cli train CONFIG ...``; the
process group is joined from torchrun's environment, rank 0 alone writes files.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from vidreid import build as B
from vidreid.atomic import write_text
from vidreid.cliargs import ValueThenOverrides, split_args
from vidreid.engine import distributed as D
from vidreid.engine.checkpoint import load_checkpoint
from vidreid.engine.config import load_config, to_container
from vidreid.engine.run import run_dir_of, run_training
from vidreid.engine.trainer import NonFiniteLossError

logger = logging.getLogger(__name__)
SPLIT_PLACEHOLDER = "{split}"
NUM_SPLITS = 10


def next_command(run_dir: Path, interrupted: bool) -> str:
    """What to type after ``vidreid train``: resume an interrupted run, else evaluate it."""
    run = shlex.quote(str(run_dir))
    return f"next: vidreid train --resume {run}" if interrupted else f"next: vidreid eval {run}"


def cmd_train(args: argparse.Namespace) -> int:
    path, overrides = split_args(args.items + args.more_items)
    resume = args.resume
    if resume is not None:
        if not Path(resume).exists():
            raise FileNotFoundError(
                f"--resume {resume}: no such run folder or checkpoint (pass the run folder"
                " `vidreid train` printed, e.g. runs/NAME-TIMESTAMP)")
        saved = run_dir_of(resume) / B.CONFIG_FILE
        if not saved.is_file():
            raise FileNotFoundError(f"{saved} not found: --resume takes a run folder")
        cfg = load_config(path or saved, overrides)
        load_checkpoint(resume)  # fail early with a clear message
    elif path is None:
        raise ValueError("vidreid train needs a CONFIG (or --resume RUN)")
    else:
        cfg = load_config(path, overrides)
    if args.dry_run:
        B.validate(cfg)  # what training would refuse, the dry run refuses too
        print("\n".join(B.describe_recipe(cfg)))
        return 0
    try:
        result, run_dir, _, _ = run_training(cfg, resume=resume)
    except NonFiniteLossError as exc:
        logger.error("%s", exc)
        return 1
    finally:
        D.cleanup_distributed()
    if D.is_main_process():
        if result.last_eval:
            print("  ".join(f"{k} {v:.2f}" for k, v in result.last_eval.items()))
        print(f"run folder: {run_dir}")
        print(next_command(run_dir, result.interrupted))
    if result.interrupted:
        return 130 if result.signal_name == "SIGINT" else 143
    return 0


# ----------------------------------------------------------------------------- eval
def write_results(results: dict[str, Any], out_dir: Path, extra: dict[str, Any]) -> None:
    """``results.json`` and ``cmc.png`` in ``out_dir``, both atomic."""
    from vidreid.metrics.report import plot_cmc, results_to_json

    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {**extra, "results": results_to_json(results)}
    write_text(out_dir / "results.json", json.dumps(payload, indent=2))
    plot_cmc(results, str(out_dir / "cmc.png"))


def cmd_eval(args: argparse.Namespace) -> int:
    from vidreid.metrics.report import format_table

    source, overrides = split_args(args.items + args.more_items)
    if args.compile:
        overrides = [*overrides, "eval.compile=true"]
    if source is None:
        raise ValueError("vidreid eval needs a RUN folder (or a CONFIG with --weights W)")
    # new form: eval RUN [k=v]; old form: eval CONFIG --weights W [k=v]
    config, weights = (source, args.weights) if args.weights else (None, source)
    splits = list(range(NUM_SPLITS)) if args.all_splits else [None]
    if args.all_splits and SPLIT_PLACEHOLDER not in weights:
        logger.warning("%s has no %s placeholder: the same weights are evaluated on every"
                       " split (their test ids may have been trained on)", weights,
                       SPLIT_PLACEHOLDER)
    per_split, cfg, trained = [], None, None
    try:
        for split in splits:
            where = weights if split is None else weights.replace(SPLIT_PLACEHOLDER, str(split))
            trained = B.load_trained(where, config, overrides)
            cfg = trained.config
            device = B.build_device(cfg)
            dataset = (B.build_dataset(cfg) if split is None
                       else B.build_dataset(cfg, split_id=split))
            protocols = args.protocols.split(",") if args.protocols else list(cfg.eval.protocols)
            res = B.evaluate(cfg, trained.model, dataset, device, protocols,
                             progress=split is None)
            per_split.append(res)
            if split is not None and D.is_main_process():
                logger.info("split %d: %s", split, "  ".join(
                    f"{p} R1 {100 * r.cmc[0]:.1f}" for p, r in res.items()))
        if not D.is_main_process():
            return 0
        if args.out:
            out = Path(args.out)
        elif args.all_splits:  # beside the per-split runs, "{split}" read as "all"
            template = Path(weights.replace(SPLIT_PLACEHOLDER, "all"))
            out = (template.parent if template.suffix == ".pt" else template) / "eval"
        else:
            out = trained.weights.parent / "eval"
        extra: dict[str, Any] = {"config": to_container(cfg), "weights": weights}
        if args.all_splits:
            from vidreid.metrics.protocols import aggregate_splits

            results = aggregate_splits(per_split)
            print(format_table(results))
            for proto, res in results.items():
                std = res.extra["std"]
                print(f"{proto} std over {NUM_SPLITS} splits: R1 {100 * std['cmc'][0]:.1f},"
                      f" mAP {100 * std['mAP']:.1f}, mINP {100 * std['mINP']:.1f}")
            extra["splits"] = NUM_SPLITS
        else:
            results = per_split[0]
            print(format_table(results))
        write_results(results, out, extra)
        print(f"results: {out}")
    finally:
        D.cleanup_distributed()
    return 0


# ----------------------------------------------------------------------------- configs
def cmd_configs(args: argparse.Namespace) -> int:
    """Print the packaged config names (optionally those containing ``args.match``)."""
    from vidreid.engine.config import packaged_configs

    names = [n for n in packaged_configs() if not args.match or args.match in n]
    if not names:
        raise ValueError(f"no packaged config name contains {args.match!r}")
    sys.stdout.write("".join(f"{n}\n" for n in names))
    return 0


# ----------------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    from vidreid.engine.demo import run_demo

    return run_demo(out=args.out, quick=args.quick)


def register(subparsers: Any) -> None:
    """Add ``train``, ``eval`` and ``demo`` to the ``vidreid`` command."""
    p = subparsers.add_parser(
        "train", help="train a model from a config (a packaged name or a YAML file)",
        description="vidreid train CONFIG [key=value ...] | vidreid train --resume RUN [key=value]."
                    " CONFIG is a packaged name such as baselines/tp_synth (vidreid configs"
                    " lists them) or a YAML file.",
    )
    p.add_argument("items", nargs="*", metavar="CONFIG|KEY=VALUE",
                   help="config name or file, then dotted overrides, e.g. optim.lr=1e-4")
    p.add_argument("--resume", metavar="RUN", action=ValueThenOverrides,
                   help="continue the run in folder RUN (last.pt)")
    p.add_argument("--dry-run", action="store_true",
                   help="build everything, train nothing: print the resolved recipe"
                        " (iterations per epoch, learning-rate steps in iterations, losses,"
                        " evaluation protocol)")
    p.set_defaults(func=cmd_train, more_items=[])

    p = subparsers.add_parser(
        "eval", help="evaluate a trained run on its dataset's query and gallery",
        description="vidreid eval RUN [key=value ...] | vidreid eval CONFIG --weights W [key=value]")
    p.add_argument("items", nargs="+", metavar="RUN|CONFIG|KEY=VALUE",
                   help="a run folder (or checkpoint) of vidreid train, then dotted overrides")
    p.add_argument("--weights", action=ValueThenOverrides,
                   help="with a CONFIG: checkpoint or state dict; with --all-splits it may"
                        " contain {split}")
    p.add_argument("--protocols", action=ValueThenOverrides,
                   help="comma-separated subset of v2v,i2v,v2i,i2i")
    p.add_argument("--out", action=ValueThenOverrides,
                   help="folder for results.json and cmc.png (default: WEIGHTS_FOLDER/eval)")
    p.add_argument("--all-splits", action="store_true",
                   help="iLIDS-VID / PRID: evaluate the 10 splits and print mean / std")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the frame encoder (same as eval.compile=true)")
    p.set_defaults(func=cmd_eval, more_items=[])

    p = subparsers.add_parser(
        "configs", help="list the packaged configs (names for vidreid train NAME)",
        description="Lists the configs shipped with vidreid. Pass a name to vidreid train,"
                    " e.g. vidreid train cosam/mars data.root=DATA.")
    p.add_argument("match", nargs="?", help="only names containing this text, e.g. mars")
    p.set_defaults(func=cmd_configs)

    p = subparsers.add_parser("demo", help="synthetic MARS-layout set: train TP, evaluate")
    p.add_argument("--out", default="runs/demo", help="folder for the data and the run")
    p.add_argument("--quick", action="store_true", help="a smaller, faster demo (~1 minute)")
    p.set_defaults(func=cmd_demo)

