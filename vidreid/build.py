"""Config -> objects: the one place that turns an experiment config into the plain objects
the library takes (dataset, transforms, loaders, model, criterion, optimiser, scheduler,
evaluator), and a run folder or checkpoint back into a trained model (:func:`load_trained`).

Every command, :class:`~vidreid.retrieval.extractor.FeatureExtractor` and the benchmarks
call these; the library modules below them never read a config.
"""

from __future__ import annotations

import inspect
import math
import os
import random
import re
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader

from vidreid.engine import distributed as D
from vidreid.engine.config import load_config, sampler_options, to_container

CONFIG_FILE = "config.yaml"
CHECKPOINT_NAMES = ("last.pt", "best.pt")


# ----------------------------------------------------------------------------- process
def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (model initialisation, dropout)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def compute_threads(num_threads: int | None, num_workers: int) -> int:
    """Torch threads for the main process: ``num_threads``, or by default the CPUs left
    over by the loader workers. Oversubscribed OpenMP threads spin against the workers (and
    anything else running): on 2 busy cores a 2-thread step measured 6.5x slower than a
    1-thread one."""
    if num_threads:
        return num_threads
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cpus or 1) - num_workers)


def build_device(cfg: DictConfig) -> torch.device:
    """Join the process group when under torchrun; the config's device for this rank."""
    info = D.init_distributed(cfg.train.device)
    return D.resolve_device(cfg.train.device, info.local_rank)


# ----------------------------------------------------------------------------- checks
def validate(cfg: DictConfig) -> None:
    """Check the settings that are otherwise read only late (the final evaluation, the first
    batch), so a bad value fails before training instead of after it; ``ValueError`` naming
    the key, the value and the choices."""
    from vidreid.data.sampling import SAMPLING, TEST_CLIPS
    from vidreid.data.video_dataset import IMAGE_FRAMES
    from vidreid.engine.inference import summary_names
    from vidreid.engine.precision import AMP_MODES
    from vidreid.metrics.distance import METRICS
    from vidreid.metrics.protocols import PROTOCOLS
    from vidreid.metrics.rank import AP_KINDS

    def choose(key: str, value: Any, choices: Sequence[Any]) -> None:
        if value not in choices:
            raise ValueError(f"{key}={value!r} is not one of: {', '.join(map(str, choices))}")

    def at_least(key: str, value: Any, low: int) -> None:
        if value is None or value < low:
            raise ValueError(f"{key}={value!r} must be an integer >= {low}")

    d, t, e = cfg.data, cfg.train, cfg.eval
    protocols = list(e.protocols)
    if not protocols:
        raise ValueError(f"eval.protocols is empty; give some of {', '.join(PROTOCOLS)}")
    for i, proto in enumerate(protocols):
        choose(f"eval.protocols[{i}]", proto, PROTOCOLS)
    choose("eval.metric", e.metric, METRICS)
    choose("eval.ap", e.ap, ("auto", *AP_KINDS))
    at_least("eval.batch_size", e.batch_size, 1)
    at_least("eval.max_rank", e.max_rank, 1)
    choose("train.amp", t.amp, AMP_MODES)
    choose("train.best_metric", t.best_metric, summary_names(protocols))
    at_least("train.epochs", t.epochs, 1)
    for key in ("checkpoint_every", "eval_every", "log_every"):
        at_least(f"train.{key}", t[key], 0)
    choose("data.train_sampling", d.train_sampling, SAMPLING.names())
    choose("data.test_sampling", d.test_sampling, TEST_CLIPS.names())
    choose("data.image_frame", d.image_frame, IMAGE_FRAMES)
    for key in ("batch_size", "num_instances", "seq_len", "height", "width"):
        at_least(f"data.{key}", d[key], 1)
    at_least("data.num_workers", d.num_workers, 0)


# ----------------------------------------------------------------------------- data
def build_dataset(cfg: DictConfig, **option_overrides: Any) -> Any:
    """The registered dataset ``data.name`` at ``data.root`` with ``data.options``; an option
    set to null is left out (how a derived config drops an option of its base, e.g. MARS's
    ``protocol``)."""
    from vidreid.data import build_dataset as make_dataset

    options = {**to_container(cfg.data.options), **option_overrides}
    options = {k: v for k, v in options.items() if v is not None}
    return make_dataset(cfg.data.name, cfg.data.root, **options)


def build_transform(cfg: DictConfig, *, train: bool) -> Any:
    """The clip transform of ``data.transforms`` (train) or the test transform."""
    from vidreid.data.transforms import build_transforms

    t = cfg.data.transforms
    return build_transforms(
        cfg.data.height, cfg.data.width, train=train, random_crop=t.random_crop, pad=t.pad,
        translate=t.translate, flip=t.flip, erasing_prob=t.erasing_prob,
        resize_crop=tuple(t.resize_crop) if t.resize_crop is not None else None,
        per_frame=t.per_frame,
    )


def ignore_stop_signals(worker_id: int) -> None:
    """Loader workers leave SIGINT/SIGTERM to the trainer, which saves and then stops.

    (Ctrl-C reaches the whole process group; a worker dying of it would break the batch
    the trainer is waiting for. Workers still exit when the main process does.)
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def build_train_loader(
    cfg: DictConfig, tracklets: list[Any], targets: dict[str, Any] | None = None
) -> DataLoader:
    """Training batches (``data.epoch`` says how), this rank's share under DDP; ``targets``
    (``Criterion.batch_targets()``) ride along with each clip."""
    from vidreid.data.samplers import build_train_sampler
    from vidreid.data.video_dataset import TrainClipDataset
    from vidreid.engine.trainer import SkippableSampler

    d = cfg.data
    dataset = TrainClipDataset(
        tracklets, seq_len=d.seq_len, strategy=d.train_sampling,
        transform=build_transform(cfg, train=True), seed=cfg.train.seed, targets=targets,
        **to_container(d.train_sampling_opts),
    )
    sampler = build_train_sampler(
        [t.pid for t in tracklets], **sampler_options(cfg), seed=cfg.train.seed,
        rank=D.get_rank(), world_size=D.get_world_size(),
    )
    # The loader's own generator draws the workers' base seed, so iter() does not consume
    # the main process's torch RNG (which checkpoints store): with persistent workers only
    # the first iter() draws, and a resumed run would otherwise draw once more.
    return DataLoader(
        dataset, batch_size=d.batch_size, sampler=SkippableSampler(sampler),
        num_workers=d.num_workers, persistent_workers=d.num_workers > 0,
        pin_memory=torch.cuda.is_available(), drop_last=sampler.drop_last,
        worker_init_fn=ignore_stop_signals,
        generator=torch.Generator().manual_seed(cfg.train.seed),
    )


# ----------------------------------------------------------------------------- model, loss
def build_model(cfg: DictConfig | dict[str, Any], num_classes: int) -> nn.Module:
    """The registered ``model.name`` with the other ``model.*`` keys as keyword arguments.

    ``cfg`` is an experiment config or just its ``model`` mapping.
    """
    from vidreid.models import MODELS, check_kwargs

    model_cfg = cfg.model if isinstance(cfg, DictConfig) and "model" in cfg else cfg
    kwargs = dict(to_container(model_cfg) if isinstance(model_cfg, DictConfig) else model_cfg)
    name = kwargs.pop("name")
    factory = MODELS.get(name)
    check_kwargs(factory, kwargs, f"model {name!r} (config key model.*)",
                 supplied=("num_classes",))
    return factory(num_classes=num_classes, **kwargs)


def build_criterion(
    cfg: DictConfig, num_classes: int, feat_dim: int | None, dataset: Any = None,
) -> Any:
    """``build_criterion(loss)``; terms taking ``num_classes`` / ``feat_dim`` / ``dataset`` (the
    training :class:`VideoDataset`, e.g. for labels kept beside it) get them filled.

    A term with ``weight: 0`` is left out: that is how a config drops a term it inherits from
    the schema's default ``loss`` (e.g. softmax-only methods drop ``triplet``).
    """
    from vidreid.losses import LOSSES
    from vidreid.losses import build_criterion as make_criterion

    terms = {k: v for k, v in to_container(cfg.loss).items() if (v or {}).get("weight", 1.0) != 0}
    for term, kwargs in terms.items():
        kwargs = kwargs or {}
        terms[term] = kwargs
        if term not in LOSSES:
            continue  # make_criterion names it
        params = inspect.signature(LOSSES.get(term)).parameters
        if "num_classes" in params and "num_classes" not in kwargs:
            kwargs["num_classes"] = num_classes
        if "feat_dim" in params and "feat_dim" not in kwargs and feat_dim is not None:
            kwargs["feat_dim"] = feat_dim
        if "dataset" in params and "dataset" not in kwargs and dataset is not None:
            kwargs["dataset"] = dataset
    return make_criterion(terms)


def build_optimizer(cfg: DictConfig, params: Sequence[torch.Tensor]) -> torch.optim.Optimizer:
    """The optimiser of ``optim.*`` over ``params``."""
    from vidreid.engine.optim import build_optimizer as make_optimizer

    o = cfg.optim
    return make_optimizer(list(params), o.name, lr=o.lr, weight_decay=o.weight_decay,
                          momentum=o.momentum, nesterov=o.nesterov, betas=o.betas)


def build_scheduler(cfg: DictConfig, optimizer: torch.optim.Optimizer) -> Any:
    """The epoch-wise learning-rate schedule of ``sched.*``."""
    from vidreid.engine.optim import build_scheduler as make_scheduler

    s = cfg.sched
    return make_scheduler(
        optimizer, s.name, epochs=cfg.train.epochs, step_size=s.step_size,
        milestones=s.milestones, gamma=s.gamma, warmup_epochs=s.warmup_epochs,
        warmup_factor=s.warmup_factor, min_lr=s.min_lr,
    )


# ----------------------------------------------------------------------------- evaluation
def eval_ap(cfg: DictConfig) -> str:
    """``eval.ap=auto``: the official MARS and TKP protocols use trapezoidal AP, others standard."""
    if cfg.eval.ap != "auto":
        return str(cfg.eval.ap)
    return "trapezoid" if cfg.data.options.get("protocol") in ("official", "tkp") else "standard"


def evaluate(
    cfg: DictConfig, model: nn.Module, dataset: Any, device: torch.device | str,
    protocols: Sequence[str] | None = None, progress: bool = False,
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
        compile=cfg.eval.compile,
        rerank=to_container(cfg.eval.rerank_opts) if cfg.eval.rerank else None,
    )


def build_evaluator(
    cfg: DictConfig, dataset: Any, device: torch.device | str
) -> Callable[[nn.Module], dict[str, float]]:
    """``model -> {"v2v/mAP": ..., ...}`` on ``dataset``'s query and gallery (the trainer's
    periodic evaluation)."""
    from vidreid.engine.inference import summarize_results

    def evaluator(model: nn.Module) -> dict[str, float]:
        return summarize_results(evaluate(cfg, model, dataset, device))

    return evaluator


# ----------------------------------------------------------------------------- runs
def new_run_dir(cfg: DictConfig) -> Path:
    """``output_dir/run_name`` (default ``<name>-<timestamp>``), decided by rank 0."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = cfg.run_name or f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', cfg.name)}-{stamp}"
    path = Path(cfg.output_dir) / name
    if D.is_main_process():
        if path.exists() and (path / "last.pt").exists():
            raise ValueError(
                f"run folder {path} already holds a run; resume it with --resume {path}"
                " or choose another run_name"
            )
        path.mkdir(parents=True, exist_ok=True)
    return Path(D.broadcast_object(str(path)))


def load_weights(
    model: nn.Module, state: dict[str, torch.Tensor], source: str, *,
    classifier: str = "match",
) -> None:
    """Load ``state`` into ``model``: every tensor must match by name and shape.

    ``classifier`` says what may differ in tensors whose name holds ``classifier`` (the
    identity classifier, whose width is the number of training identities):
    ``match`` (they load when present; absent ones stay initialised: a bare encoder's
    state dict has none), ``skip-mismatched`` (pre-training on other identities: tensors of
    another shape stay initialised) or ``strict`` (all must be present and match).
    """
    own = model.state_dict()
    skipped = []
    if classifier == "skip-mismatched":
        skipped = [k for k, v in state.items()
                   if "classifier" in k and k in own and own[k].shape != v.shape]
        state = {k: v for k, v in state.items() if k not in skipped}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatch
        first = str(exc).splitlines()
        raise ValueError(f"{source}: does not fit model {type(model).__name__}: "
                         f"{' '.join(x.strip() for x in first[:3])}") from None
    allowed = (lambda k: False) if classifier == "strict" else (lambda k: "classifier" in k)
    missing = [k for k in missing if not allowed(k)]
    if missing or unexpected:
        raise ValueError(
            f"{source}: does not match model {type(model).__name__}: missing {missing[:5]},"
            f" unexpected {unexpected[:5]}; pass the config it was trained with"
        )


def init_from_checkpoint(
    model: nn.Module, path: str, modules: Sequence[str] | None = None
) -> None:
    """Start from the weights in ``path`` (``train.init_from``: pre-train, then fine-tune).

    Classifier tensors of another shape (another number of identities) stay initialised;
    anything else that does not match is an error. ``modules`` (``train.init_modules``, e.g.
    ``[backbone]``): take only the tensors under these submodules and require all of the
    model's there; the rest stays initialised (GLTR's stage 2 starts its backbone from a
    stage-1 frame classifier). A checkpoint of another toolkit (torchreid, FastReID) or a
    backbone file seeds the frame encoder (:func:`vidreid.models.foreign.load_frame_encoder`).
    """
    from vidreid.engine.checkpoint import load_model_weights
    from vidreid.models.foreign import is_own_layout, load_frame_encoder

    source = f"train.init_from={path}"
    state = load_model_weights(path)
    if not modules and not is_own_layout(model, state):  # torchreid / FastReID / backbone
        try:
            load_frame_encoder(model, path)
        except ValueError as exc:
            raise ValueError(f"train.init_from: {exc}") from None
        return
    if not modules:
        load_weights(model, state, source, classifier="skip-mismatched")
        return
    prefixes = tuple(f"{m}." for m in modules)
    own = [k for k in model.state_dict() if k.startswith(prefixes)]
    if not own:
        raise ValueError(f"train.init_modules={list(modules)}: no such submodule in the model")
    state = {k: v for k, v in state.items() if k.startswith(prefixes)}
    absent = [k for k in own if k not in state]
    if absent:
        raise ValueError(f"{source}: lacks {absent[:5]} of train.init_modules={list(modules)}")
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise ValueError(f"{source}: {exc}") from None


@dataclass
class TrainedModel:
    """A trained model with the config it was built from."""

    model: nn.Module
    config: DictConfig
    weights: Path
    num_classes: int


def resolve_run(source: str | os.PathLike[str]) -> tuple[Path, Path | None]:
    """A run folder or checkpoint path -> (checkpoint file, the run's ``config.yaml`` or None)."""
    path = Path(source)
    if path.is_dir():
        ckpts = [path / n for n in CHECKPOINT_NAMES if (path / n).is_file()]
        if not ckpts:
            raise FileNotFoundError(
                f"{path}: no {' or '.join(CHECKPOINT_NAMES)} in this folder: pass a run folder"
                " written by `vidreid train`, or a checkpoint file")
        ckpt = ckpts[0]
    elif path.is_file():
        ckpt = path
    else:
        raise FileNotFoundError(f"run folder or checkpoint not found: {path}")
    config = ckpt.parent / CONFIG_FILE
    return ckpt, (config if config.is_file() else None)


def load_trained(
    source: str | os.PathLike[str],
    config: str | os.PathLike[str] | dict[str, Any] | DictConfig | None = None,
    overrides: Sequence[str] = (),
    *,
    classifier: str = "match",
) -> TrainedModel:
    """The one way to get a trained model: ``source`` is a run folder (its ``last.pt``, else
    ``best.pt``) or a checkpoint / state-dict file.

    The config is ``config`` when given, else the run's saved ``config.yaml``, else the one
    stored in the checkpoint; ``overrides`` apply on top. The classifier width is the
    checkpoint's ``num_classes`` (else the classifier weight's rows), so the weights load
    exactly; see :func:`load_weights` for ``classifier``. Returns the model in eval mode.
    """
    ckpt_path, run_config = resolve_run(source)
    raw = _load_raw(ckpt_path)
    if config is None:
        if run_config is not None:
            config = run_config
        elif isinstance(raw, dict) and isinstance(raw.get("config"), str):
            import yaml

            config = yaml.safe_load(raw["config"])
        else:
            raise ValueError(
                f"{ckpt_path}: no config.yaml beside it and none stored in it: pass the config"
                " it was trained with (e.g. --config CONFIG)")
    cfg = load_config(config, list(overrides))
    model, num_classes = load_model(cfg, ckpt_path, classifier=classifier, raw=raw)
    return TrainedModel(model, cfg, ckpt_path, num_classes)


def load_model(
    cfg: DictConfig | dict[str, Any], weights: str | os.PathLike[str], *,
    classifier: str = "match", raw: Any = None,
) -> tuple[nn.Module, int]:
    """Build ``cfg``'s model (an experiment config or its ``model`` mapping) sized for the
    checkpoint ``weights`` and load them (:func:`load_weights`); returns it in eval mode and
    the number of training identities."""
    from vidreid.engine.checkpoint import load_model_weights

    if not Path(weights).is_file():
        raise FileNotFoundError(f"weights file not found: {weights}")
    from vidreid.models.foreign import is_own_layout, load_frame_encoder

    state = load_model_weights(weights)
    num_classes = _num_classes(raw if raw is not None else _load_raw(Path(weights)), state)
    model = build_model(cfg, num_classes)
    if is_own_layout(model, state):
        load_weights(model, state, str(weights), classifier=classifier)
    else:  # a torchreid / FastReID checkpoint or a backbone file: the frame encoder
        load_frame_encoder(model, weights)
    return model.eval(), num_classes


def _load_raw(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # load_model_weights gives the clear error
        return None


def _num_classes(raw: Any, state: dict[str, torch.Tensor]) -> int:
    """Training identities: the checkpoint's record, else the widest classifier weight."""
    if isinstance(raw, dict) and "num_classes" in raw:
        return int(raw["num_classes"])
    widths = [v.shape[0] for k, v in state.items() if "classifier" in k and v.dim() == 2]
    return max(widths, default=1)


def run_config_yaml(cfg: DictConfig) -> str:
    """The resolved config as stored in checkpoints (``extra_state['config']``)."""
    return OmegaConf.to_yaml(cfg, resolve=True)


# ----------------------------------------------------------------------------- dry run
def lr_changes(cfg: DictConfig) -> list[tuple[int, float]]:
    """``(epoch, lr)`` at the start of every epoch where the schedule changes the rate
    (epoch 0 included), found by stepping the config's scheduler on a dummy optimiser."""
    param = nn.Parameter(torch.zeros(1))
    optimizer = build_optimizer(cfg, [param])
    scheduler = build_scheduler(cfg, optimizer)
    changes, last = [], None
    for epoch in range(cfg.train.epochs):
        lr = optimizer.param_groups[0]["lr"]
        if last is None or not math.isclose(lr, last, rel_tol=1e-9):
            changes.append((epoch, lr))
        last = lr
        optimizer.step()
        scheduler.step()
    return changes


def describe_recipe(cfg: DictConfig) -> list[str]:
    """The resolved training recipe as text lines (``vidreid train --dry-run``): builds the
    dataset, the train loader, the model and the criterion, and trains nothing."""
    dataset = build_dataset(cfg)
    loader = build_train_loader(cfg, dataset.train)
    iterations = len(loader)
    if cfg.train.max_steps_per_epoch is not None:
        iterations = min(iterations, cfg.train.max_steps_per_epoch)
    model = build_model(cfg, dataset.num_train_pids)
    criterion = build_criterion(cfg, dataset.num_train_pids, getattr(model, "feature_dim", None),
                                dataset=dataset)
    d, t = cfg.data, cfg.train
    world = D.get_world_size()
    sampler = getattr(loader.sampler, "sampler", loader.sampler)
    lines = [
        f"dataset: {d.name} at {d.root} ({to_container(d.options) or 'default options'}):"
        f" train {len(dataset.train)} tracklets / {dataset.num_train_pids} identities,"
        f" query {len(dataset.query)}, gallery {len(dataset.gallery)}",
        f"batch: {d.batch_size} clips per process x {world} process(es) of {d.seq_len} frames"
        f" at {d.height}x{d.width} ({d.train_sampling} sampling), "
        + (f"{type(sampler).__name__}: shuffled tracklets, no identity structure"
         if d.epoch == "shuffle" else
         f"{type(sampler).__name__} with {d.num_instances} clips per identity"),
        f"iterations per epoch: {iterations}",
        f"epochs: {t.epochs}, total iterations: {iterations * t.epochs}",
        "learning rate: " + ", ".join(
            f"{lr:.3g} from iteration {epoch * iterations} (epoch {epoch})"
            for epoch, lr in lr_changes(cfg)),
        f"optimiser: {cfg.optim.name}, weight decay {cfg.optim.weight_decay}",
        "losses: " + ", ".join(
            f"{name} x {float((kw or {}).get('weight', 1.0)):g}"
            for name, kw in to_container(cfg.loss).items()
            if (kw or {}).get("weight", 1.0) != 0 and name in criterion.terms),
        f"model: {cfg.model.name} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M"
        f" parameters), feature dim {getattr(model, 'feature_dim', '?')}",
        f"evaluation: protocols {', '.join(cfg.eval.protocols)}, metric {cfg.eval.metric},"
        f" AP {eval_ap(cfg)}, test sampling {d.test_sampling}"
        f" (dataset protocol: {dataset.extra.get('protocol', 'the dataset default')})",
    ]
    return lines
