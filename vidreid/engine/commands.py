"""``vidreid train``, ``vidreid eval`` and ``vidreid demo``: the only engine code that reads
configs. It turns a config into plain objects (dataset, model, criterion, loaders,
optimiser) and calls the library (:func:`vidreid.engine.trainer.train`,
:func:`vidreid.engine.inference.evaluate_model`).

Distributed: run ``torchrun --nproc_per_node N -m vidreid.cli train CONFIG ...``; the
process group is joined from torchrun's environment, rank 0 alone writes files.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from vidreid.atomic import write_text
from vidreid.engine import distributed as D
from vidreid.engine.checkpoint import load_checkpoint, load_model_weights
from vidreid.engine.config import (
    check_model_kwargs,
    load_config,
    sampler_options,
    save_config,
    to_container,
)
from vidreid.engine.trainer import NonFiniteLossError, SkippableSampler, TrainResult, train

SPLIT_PLACEHOLDER = "{split}"
NUM_SPLITS = 10


# ----------------------------------------------------------------------------- builders
def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (model initialisation, dropout)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def compute_threads(num_threads: int | None, num_workers: int) -> int:
    """Torch threads for the training process: ``num_threads``, or by default the CPUs left
    over by the loader workers. Oversubscribed OpenMP threads spin against the workers (and
    anything else running): on 2 busy cores a 2-thread step measured 6.5x slower than a
    1-thread one."""
    if num_threads:
        return num_threads
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cpus or 1) - num_workers)


def load_dataset(cfg: DictConfig, **option_overrides: Any) -> Any:
    """``build_dataset(data.name, data.root, **data.options)``; an option set to null is left
    out (how a derived config drops an option of its base, e.g. MARS's ``protocol``)."""
    from vidreid.data import build_dataset

    options = {**to_container(cfg.data.options), **option_overrides}
    options = {k: v for k, v in options.items() if v is not None}
    return build_dataset(cfg.data.name, cfg.data.root, **options)


def build_transform(cfg: DictConfig, *, train: bool) -> Any:
    from vidreid.data.transforms import build_transforms

    t = cfg.data.transforms
    return build_transforms(
        cfg.data.height, cfg.data.width, train=train, random_crop=t.random_crop, pad=t.pad,
        translate=t.translate, flip=t.flip, erasing_prob=t.erasing_prob,
        resize_crop=tuple(t.resize_crop) if t.resize_crop is not None else None,
        per_frame=t.per_frame,
    )


def build_model_from_config(cfg: DictConfig, num_classes: int) -> torch.nn.Module:
    """The registered ``model.name`` with the other ``model.*`` keys as keyword arguments."""
    from vidreid.models import MODELS, build_model

    kwargs = to_container(cfg.model)
    name = kwargs.pop("name")
    check_model_kwargs(MODELS.get(name), {"num_classes": num_classes, **kwargs}, name)
    return build_model(name, num_classes, **kwargs)


def build_criterion_from_config(
    cfg: DictConfig, num_classes: int, feat_dim: int | None, dataset: Any = None,
) -> Any:
    """``build_criterion(loss)``; terms taking ``num_classes`` / ``feat_dim`` / ``dataset`` (the
    training :class:`VideoDataset`, e.g. for labels kept beside it) get them filled.

    A term with ``weight: 0`` is left out: that is how a config drops a term it inherits from
    the schema's default ``loss`` (e.g. softmax-only methods drop ``triplet``).
    """
    from vidreid.losses import LOSSES, build_criterion

    terms = {k: v for k, v in to_container(cfg.loss).items() if (v or {}).get("weight", 1.0) != 0}
    for term, kwargs in terms.items():
        kwargs = kwargs or {}
        terms[term] = kwargs
        if term not in LOSSES:
            continue  # build_criterion names it
        params = inspect.signature(LOSSES.get(term)).parameters
        if "num_classes" in params and "num_classes" not in kwargs:
            kwargs["num_classes"] = num_classes
        if "feat_dim" in params and "feat_dim" not in kwargs and feat_dim is not None:
            kwargs["feat_dim"] = feat_dim
        if "dataset" in params and "dataset" not in kwargs and dataset is not None:
            kwargs["dataset"] = dataset
    return build_criterion(terms)


def build_train_loader(cfg: DictConfig, tracklets: list[Any]) -> DataLoader:
    """Training batches (``data.epoch`` says how), this rank's share under DDP."""
    from vidreid.data.samplers import build_train_sampler
    from vidreid.data.video_dataset import TrainClipDataset

    d = cfg.data
    dataset = TrainClipDataset(
        tracklets, seq_len=d.seq_len, strategy=d.train_sampling,
        transform=build_transform(cfg, train=True), seed=cfg.train.seed,
        **to_container(d.train_sampling_opts),
    )
    sampler = build_train_sampler(
        [t.pid for t in tracklets], **sampler_options(cfg), seed=cfg.train.seed,
        rank=D.get_rank(), world_size=D.get_world_size(),
    )
    return DataLoader(
        dataset, batch_size=d.batch_size, sampler=SkippableSampler(sampler),
        num_workers=d.num_workers, persistent_workers=d.num_workers > 0,
        pin_memory=torch.cuda.is_available(), drop_last=sampler.drop_last,
        worker_init_fn=ignore_stop_signals,
    )


def ignore_stop_signals(worker_id: int) -> None:
    """Loader workers leave SIGINT/SIGTERM to the trainer, which saves and then stops.

    (Ctrl-C reaches the whole process group; a worker dying of it would break the batch
    the trainer is waiting for. Workers still exit when the main process does.)
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def eval_ap(cfg: DictConfig) -> str:
    """``eval.ap=auto``: the official MARS and TKP protocols use trapezoidal AP, others standard."""
    if cfg.eval.ap != "auto":
        return str(cfg.eval.ap)
    return "trapezoid" if cfg.data.options.get("protocol") in ("official", "tkp") else "standard"


def evaluate_config(
    cfg: DictConfig, model: torch.nn.Module, dataset: Any, device: torch.device,
    protocols: list[str] | None = None, progress: bool = False,
) -> dict[str, Any]:
    """Rank ``dataset``'s query against its gallery with the config's test settings."""
    from vidreid.engine.inference import evaluate_model

    d = cfg.data
    return evaluate_model(
        model, dataset.query, dataset.gallery, transform=build_transform(cfg, train=False),
        seq_len=d.test_seq_len or d.seq_len, strategy=d.test_sampling,
        strategy_opts=to_container(d.test_sampling_opts), max_clip_len=d.max_clip_len,
        image_frame=d.image_frame, protocols=list(protocols or cfg.eval.protocols),
        metric=cfg.eval.metric, normalize=cfg.eval.normalize, ap=eval_ap(cfg),
        junk_pids=dataset.junk_pids, max_rank=cfg.eval.max_rank,
        batch_size=cfg.eval.batch_size, num_workers=d.num_workers, device=device,
        amp=cfg.train.amp, channels_last=cfg.train.channels_last, progress=progress,
    )


def _timestamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def new_run_dir(cfg: DictConfig) -> Path:
    """``output_dir/run_name`` (default ``<name>-<timestamp>``), decided by rank 0."""
    name = cfg.run_name or f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', cfg.name)}-{_timestamp()}"
    path = Path(cfg.output_dir) / name
    if D.is_main_process():
        if path.exists() and (path / "last.pt").exists():
            raise ValueError(
                f"run folder {path} already holds a run; resume it with --resume {path}"
                " or choose another run_name"
            )
        path.mkdir(parents=True, exist_ok=True)
    return Path(D.broadcast_object(str(path)))


# ----------------------------------------------------------------------------- train
def init_from_checkpoint(
    model: torch.nn.Module, path: str, modules: list[str] | None = None
) -> None:
    """Start from the weights in ``path`` (``train.init_from``: pre-train, then fine-tune).

    Every tensor must match by name and shape, except the classifier's: a model pre-trained on
    another dataset has another number of identities, so classifier tensors whose shape
    differs are left freshly initialised. Anything else that does not match is an error.
    ``modules`` (``train.init_modules``, e.g. ``[backbone]``): take only the tensors under
    these submodules, and require all of the model's; the rest stays freshly initialised
    (GLTR's stage 2 starts its backbone from a stage-1 frame classifier).
    """
    state = load_model_weights(path)
    own = model.state_dict()
    if modules:
        prefixes = tuple(f"{m}." for m in modules)
        state = {k: v for k, v in state.items() if k.startswith(prefixes)}
        own = {k: v for k, v in own.items() if k.startswith(prefixes)}
        if not own:
            raise ValueError(f"train.init_modules={modules}: no such submodule in the model")
    skipped = [k for k, v in state.items()
               if "classifier" in k and k in own and own[k].shape != v.shape]
    for k in skipped:
        del state[k]
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatch outside the classifier
        raise ValueError(f"train.init_from={path}: {exc}") from None
    mismatched = [k for k in missing if k not in skipped and k in own]
    if unexpected or mismatched:
        raise ValueError(
            f"train.init_from={path}: does not match model {type(model).__name__}:"
            f" missing {mismatched[:5]}, unexpected {unexpected[:5]}"
        )


def run_training(
    cfg: DictConfig, resume: str | None = None, progress: bool | None = None,
    evaluate: bool = True,
) -> tuple[TrainResult, Path, torch.nn.Module, Any]:
    """Train as the config says; returns the result, run folder, model and dataset.

    ``evaluate=False`` skips the periodic / final evaluation (the caller evaluates).
    """
    from vidreid.engine.inference import summarize_results
    from vidreid.engine.optim import build_optimizer, build_scheduler

    info = D.init_distributed(cfg.train.device)
    device = D.resolve_device(cfg.train.device, info.local_rank)
    torch.set_num_threads(compute_threads(cfg.train.num_threads, cfg.data.num_workers))
    seed_everything(cfg.train.seed)
    dataset = load_dataset(cfg)
    num_classes = dataset.num_train_pids
    model = build_model_from_config(cfg, num_classes).to(device)
    if cfg.train.init_from and resume is None:
        init_from_checkpoint(model, cfg.train.init_from, cfg.train.init_modules)
    criterion = build_criterion_from_config(
        cfg, num_classes, getattr(model, "feature_dim", None), dataset=dataset)
    criterion.to(device)
    o, s = cfg.optim, cfg.sched
    optimizer = build_optimizer(
        list(model.parameters()) + list(criterion.parameters()), o.name, lr=o.lr,
        weight_decay=o.weight_decay, momentum=o.momentum, nesterov=o.nesterov, betas=o.betas,
    )
    scheduler = build_scheduler(
        optimizer, s.name, epochs=cfg.train.epochs, step_size=s.step_size,
        milestones=s.milestones, gamma=s.gamma, warmup_epochs=s.warmup_epochs,
        warmup_factor=s.warmup_factor, min_lr=s.min_lr,
    )
    loader = build_train_loader(cfg, dataset.train)
    if resume is not None:
        run_dir = Path(resume if os.path.isdir(resume) else os.path.dirname(resume))
    else:
        run_dir = new_run_dir(cfg)
    if D.is_main_process():
        save_config(cfg, run_dir / "config.yaml")

    def eval_fn(net: torch.nn.Module) -> dict[str, float]:
        return summarize_results(evaluate_config(cfg, net, dataset, device))

    show = cfg.train.progress if progress is None else progress
    result = train(
        model, criterion, loader, optimizer, scheduler,
        epochs=cfg.train.epochs, run_dir=run_dir, device=device, amp=cfg.train.amp,
        channels_last=cfg.train.channels_last, grad_clip=o.grad_clip,
        checkpoint_every=cfg.train.checkpoint_every,
        eval_fn=eval_fn if (evaluate and dataset.query and dataset.gallery) else None,
        eval_every=cfg.train.eval_every, best_metric=cfg.train.best_metric, resume=resume,
        log_every=cfg.train.log_every, max_steps_per_epoch=cfg.train.max_steps_per_epoch,
        tensorboard=cfg.train.tensorboard, progress=show,
        find_unused_parameters=cfg.train.find_unused_parameters,
        extra_state={"config": OmegaConf.to_yaml(cfg, resolve=True), "num_classes": num_classes},
    )
    return result, run_dir, model, dataset


def _split_args(items: list[str]) -> tuple[str | None, list[str]]:
    """Positional items: the config path (no ``=``) and the ``key=value`` overrides."""
    paths = [x for x in items if "=" not in x]
    overrides = [x for x in items if "=" in x]
    if len(paths) > 1:
        raise ValueError(f"expected one CONFIG and KEY=VALUE overrides, got {paths}")
    return (paths[0] if paths else None), overrides


def cmd_train(args: argparse.Namespace) -> int:
    path, overrides = _split_args(args.items + args.more_items)
    resume = args.resume
    if resume is not None:
        resume_dir = Path(resume if os.path.isdir(resume) else os.path.dirname(resume))
        saved = resume_dir / "config.yaml"
        if not saved.is_file():
            raise FileNotFoundError(f"{saved} not found: --resume takes a run folder")
        cfg = load_config(path or saved, overrides)
        load_checkpoint(resume)  # fail early with a clear message
    elif path is None:
        raise ValueError("vidreid train needs a CONFIG (or --resume RUN)")
    else:
        cfg = load_config(path, overrides)
    try:
        result, run_dir, _, _ = run_training(cfg, resume=resume)
    except NonFiniteLossError as exc:
        print(f"vidreid: error: {exc}", file=sys.stderr)
        return 1
    finally:
        D.cleanup_distributed()
    if D.is_main_process():
        if result.last_eval:
            print("  ".join(f"{k} {v:.2f}" for k, v in result.last_eval.items()))
        print(f"run folder: {run_dir}")
    if result.interrupted:
        return 130 if result.signal_name == "SIGINT" else 143
    return 0


# ----------------------------------------------------------------------------- eval
def load_for_eval(cfg: DictConfig, weights: str, num_classes: int) -> torch.nn.Module:
    """Build the config's model and load ``weights`` (trainer checkpoint or state dict)."""
    try:
        ckpt = torch.load(weights, map_location="cpu", weights_only=True)
        if isinstance(ckpt, dict) and "num_classes" in ckpt:
            num_classes = int(ckpt["num_classes"])
    except Exception:  # load_model_weights gives the clear error below
        pass
    model = build_model_from_config(cfg, num_classes)
    state = load_model_weights(weights)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if "classifier" not in k]:
        raise ValueError(
            f"{weights}: does not match model {cfg.model.name!r}:"
            f" missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return model


def write_results(results: dict[str, Any], out_dir: Path, extra: dict[str, Any]) -> None:
    """``results.json`` and ``cmc.png`` in ``out_dir``, both atomic."""
    from vidreid.metrics.report import plot_cmc, results_to_json

    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {**extra, "results": results_to_json(results)}
    write_text(out_dir / "results.json", json.dumps(payload, indent=2))
    plot_cmc(results, str(out_dir / "cmc.png"))


def cmd_eval(args: argparse.Namespace) -> int:
    from vidreid.metrics.report import format_table

    path, overrides = _split_args(args.items + args.more_items)
    if path is None:
        raise ValueError("vidreid eval needs a CONFIG")
    cfg = load_config(path, overrides)
    protocols = args.protocols.split(",") if args.protocols else list(cfg.eval.protocols)
    info = D.init_distributed(cfg.train.device)
    device = D.resolve_device(cfg.train.device, info.local_rank)
    default_out = Path(args.weights.replace(SPLIT_PLACEHOLDER, "all")).parent / "eval"
    out = Path(args.out) if args.out else default_out
    try:
        if args.all_splits:
            from vidreid.metrics.protocols import aggregate_splits

            if SPLIT_PLACEHOLDER not in args.weights and D.is_main_process():
                print(f"warning: --weights has no {SPLIT_PLACEHOLDER} placeholder: the same"
                      " weights are evaluated on every split (their test ids may have been"
                      " trained on)", file=sys.stderr)
            per_split = []
            for split in range(NUM_SPLITS):
                dataset = load_dataset(cfg, split_id=split)
                weights = args.weights.replace(SPLIT_PLACEHOLDER, str(split))
                model = load_for_eval(cfg, weights, dataset.num_train_pids)
                res = evaluate_config(cfg, model, dataset, device, protocols)
                per_split.append(res)
                if D.is_main_process():
                    print(f"split {split}: " + "  ".join(
                        f"{p} R1 {100 * r.cmc[0]:.1f}" for p, r in res.items()))
            summary = aggregate_splits(per_split)
            if D.is_main_process():
                print(format_table(summary))
                for proto, res in summary.items():
                    std = res.extra["std"]
                    print(f"{proto} std over {NUM_SPLITS} splits: R1 {100 * std['cmc'][0]:.1f},"
                          f" mAP {100 * std['mAP']:.1f}, mINP {100 * std['mINP']:.1f}")
                write_results(summary, out, {"config": to_container(cfg),
                                             "weights": args.weights, "splits": NUM_SPLITS})
                print(f"results: {out}")
            return 0
        dataset = load_dataset(cfg)
        model = load_for_eval(cfg, args.weights, dataset.num_train_pids)
        results = evaluate_config(cfg, model, dataset, device, protocols, progress=True)
        if D.is_main_process():
            print(format_table(results))
            write_results(results, out, {"config": to_container(cfg), "weights": args.weights})
            print(f"results: {out}")
    finally:
        D.cleanup_distributed()
    return 0


# ----------------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    from vidreid.engine.demo import run_demo

    return run_demo(out=args.out, quick=args.quick)


class _ValueThenOverrides(argparse.Action):
    """``--opt VALUE [KEY=VALUE ...]``: overrides written after an option still count.

    argparse cannot resume a positional list after an option (``CONFIG --weights W k=v``);
    this action keeps the first value and collects the ``KEY=VALUE`` items in ``more_items``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, nargs="+", **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        value, *rest = values
        bad = [x for x in rest if "=" not in x]
        if bad:
            parser.error(f"{option_string} takes one value; unexpected {bad[0]!r}")
        setattr(namespace, self.dest, value)
        namespace.more_items = [*(getattr(namespace, "more_items", None) or []), *rest]


def register(subparsers: Any) -> None:
    """Add ``train``, ``eval`` and ``demo`` to the ``vidreid`` command."""
    p = subparsers.add_parser(
        "train", help="train a model from a YAML config",
        description="vidreid train CONFIG [key=value ...] | vidreid train --resume RUN [key=value]",
    )
    p.add_argument("items", nargs="*", metavar="CONFIG|KEY=VALUE",
                   help="config file then dotted overrides, e.g. optim.lr=1e-4")
    p.add_argument("--resume", metavar="RUN", action=_ValueThenOverrides,
                   help="continue the run in folder RUN (last.pt)")
    p.set_defaults(func=cmd_train, more_items=[])

    p = subparsers.add_parser("eval", help="evaluate weights on a config's query/gallery")
    p.add_argument("items", nargs="+", metavar="CONFIG|KEY=VALUE")
    p.add_argument("--weights", required=True, action=_ValueThenOverrides,
                   help="checkpoint or state dict; with --all-splits may contain {split}")
    p.add_argument("--protocols", action=_ValueThenOverrides,
                   help="comma-separated subset of v2v,i2v,v2i,i2i")
    p.add_argument("--out", action=_ValueThenOverrides,
                   help="folder for results.json and cmc.png (default: WEIGHTS_FOLDER/eval)")
    p.add_argument("--all-splits", action="store_true",
                   help="iLIDS-VID / PRID: evaluate the 10 splits and print mean / std")
    p.set_defaults(func=cmd_eval, more_items=[])

    p = subparsers.add_parser("demo", help="synthetic MARS-layout set: train TP, evaluate")
    p.add_argument("--out", default="runs/demo", help="folder for the data and the run")
    p.add_argument("--quick", action="store_true", help="a smaller, faster demo (~1 minute)")
    p.set_defaults(func=cmd_demo)

