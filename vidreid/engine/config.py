"""Experiment configs: an OmegaConf structured schema, YAML files with ``base:`` inheritance,
and dotted command-line overrides.

Only the CLI reads configs; it turns them into the plain arguments the library takes. The
schema is closed, so a misspelt key (``train.lr`` instead of ``optim.lr``) is an error that
names it instead of being silently ignored. ``model`` and ``loss`` are open dicts because
their keys are the registered constructors' keyword arguments: they are validated when the
model / criterion is built (:func:`vidreid.models.check_kwargs`).

A YAML file may say ``base: relative/path.yaml``: the base is loaded first (recursively) and
the file merged over it, so one method recipe serves several dataset configs. Dicts merge
key by key (a derived file cannot delete a key of its base; set it to ``null`` instead).

The recipes ship inside the package (``vidreid/configs/``, package data of the wheel): a
config argument is a path, or a packaged name such as ``cosam/mars`` (see
:func:`resolve_config`, ``vidreid configs``).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from vidreid.atomic import write_text

BASE_KEY = "base"
MAX_BASE_DEPTH = 8
PACKAGED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CONFIG_SUFFIX = ".yaml"
OLD_CONFIGS_PREFIX = "configs/"  # paths of a source checkout before the configs moved
MAX_CLOSE_NAMES = 5


@dataclass
class TransformConfig:
    """Clip-consistent augmentation (``vidreid.data.transforms.build_transforms``)."""

    random_crop: bool = False
    pad: int = 10
    translate: bool = False
    flip: bool = True
    erasing_prob: float = 0.0
    resize_crop: list[int] | None = None  # [H, W] resized before cropping to height x width
    per_frame: bool = False  # draw the random augmentations per frame, not once per clip


@dataclass
class DataConfig:
    """Dataset, frame sampling and loader settings."""

    name: str = "mars"
    root: str = "data"
    options: dict[str, Any] = field(default_factory=dict)  # build_dataset options
    height: int = 256
    width: int = 128
    seq_len: int = 4
    train_sampling: str = "consecutive"
    train_sampling_opts: dict[str, Any] = field(default_factory=dict)
    test_sampling: str = "dense"
    test_seq_len: int | None = None  # default: seq_len
    test_sampling_opts: dict[str, Any] = field(default_factory=dict)
    max_clip_len: int | None = None  # bounds memory of the "all" test strategy
    image_frame: str = "middle"  # query frame of the image-side protocols
    batch_size: int = 32  # per process (rank)
    num_instances: int = 4  # K of the PK batches
    # What an epoch is (vidreid.data.samplers; which paper uses which: docs/recipes.md):
    # identities (each identity once) | tracklets (every tracklet in groups of K) |
    # shuffle (every tracklet, no PK structure) | iterations (data.iterations PK batches)
    epoch: str = "identities"
    iterations: int | None = None  # batches per epoch, only with epoch=iterations
    drop_last: bool = True  # no incomplete last batch ...
    fill_last_batch: bool = True  # ... identities: complete it with other identities (ours)
    num_workers: int = 2
    transforms: TransformConfig = field(default_factory=TransformConfig)


@dataclass
class OptimConfig:
    name: str = "adam"  # adam | sgd
    lr: float = 3e-4
    weight_decay: float = 5e-4
    momentum: float = 0.9  # sgd
    nesterov: bool = False  # sgd
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adam
    grad_clip: float | None = None  # max global gradient norm


@dataclass
class SchedConfig:
    name: str = "multistep"  # none | step | multistep | warmup_cosine
    step_size: int = 40  # step
    milestones: list[int] = field(default_factory=lambda: [40, 80])  # multistep
    gamma: float = 0.1
    warmup_epochs: int = 0  # warmup_cosine (also allowed with step / multistep)
    warmup_factor: float = 0.01
    min_lr: float = 0.0  # warmup_cosine


@dataclass
class TrainConfig:
    epochs: int = 120
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda | cuda:1
    amp: str = "auto"  # auto (bf16 on CPU, fp16 on CUDA) | off | bf16 | fp16
    channels_last: bool = True
    checkpoint_every: int = 10
    eval_every: int = 0  # 0 = only after the last epoch
    log_every: int = 20  # steps between JSONL / TensorBoard step records
    max_steps_per_epoch: int | None = None  # budget cap (benchmarks, tests)
    num_threads: int | None = None  # torch threads (None: CPUs minus data.num_workers, >= 1)
    find_unused_parameters: bool = False  # DDP, for models with branches unused in a step
    tensorboard: bool = True
    progress: bool = True
    best_metric: str = "v2v/mAP"
    init_from: str | None = None  # checkpoint / state dict to start from (pre-train, fine-tune)
    init_modules: list[str] | None = None  # take only these submodules from init_from
    compile: bool = False  # torch.compile the train-mode forward (vidreid.engine.compile)


@dataclass
class EvalConfig:
    protocols: list[str] = field(default_factory=lambda: ["v2v"])
    metric: str = "euclidean"
    normalize: bool = False
    ap: str = "auto"  # auto: trapezoid for the protocols that use it (build.eval_ap), else standard
    batch_size: int = 16  # clips per forward pass
    max_rank: int = 50
    # k-reciprocal re-ranking (Zhong et al. 2017; vidreid.metrics.rerank): the paper's
    # k1=20, k2=6, lambda=0.3. Holds [Q+G]-row neighbour lists: refused past its memory bound.
    rerank: bool = False
    rerank_opts: dict[str, Any] = field(
        default_factory=lambda: {"k1": 20, "k2": 6, "lambda_value": 0.3})
    # torch.compile the frame encoder (fixed batch, on-disk cache; eager fallback): see
    # vidreid.engine.compile. Features equal eager within bf16 tolerance.
    compile: bool = False


@dataclass
class ExperimentConfig:
    """The whole experiment; ``name`` labels runs and benchmark rows."""

    name: str = "experiment"
    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=lambda: {"name": "video_baseline"})
    loss: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "cross_entropy": {"weight": 1.0, "label_smoothing": 0.1},
            "triplet": {"weight": 1.0, "margin": 0.3},
        }
    )
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    output_dir: str = "runs"
    run_name: str | None = None  # default: <name>-<timestamp>


def sampler_options(cfg: DictConfig) -> dict[str, Any]:
    """The ``data.*`` keys of :func:`vidreid.data.samplers.build_train_sampler` (and of
    :func:`~vidreid.data.samplers.iterations_per_epoch`), as plain keyword arguments."""
    d = cfg.data
    return {
        "epoch": d.epoch, "batch_size": d.batch_size, "num_instances": d.num_instances,
        "drop_last": d.drop_last, "fill_last": d.fill_last_batch, "iterations": d.iterations,
    }


def schema() -> DictConfig:
    """The default config (every key the schema knows), struct mode on."""
    return OmegaConf.structured(ExperimentConfig)


def packaged_configs() -> list[str]:
    """Names of the packaged configs (``cosam/mars``, ``vrstc/stc/synth``, ...), sorted."""
    return sorted(p.relative_to(PACKAGED_CONFIGS).with_suffix("").as_posix()
                  for p in PACKAGED_CONFIGS.rglob(f"*{CONFIG_SUFFIX}"))


def resolve_config(name: str | os.PathLike[str]) -> Path:
    """A config file from a path or a packaged name.

    An existing file wins; else ``name`` (with or without ``.yaml``, with or without the
    ``configs/`` prefix of the old source-checkout paths) is looked up in the packaged
    configs. An unknown name raises ``FileNotFoundError`` listing the closest names.
    """
    path = Path(name)
    if path.is_file():
        return path
    text = path.as_posix()
    key = text[len(OLD_CONFIGS_PREFIX):] if text.startswith(OLD_CONFIGS_PREFIX) else text
    key = key.removesuffix(CONFIG_SUFFIX)
    packaged = PACKAGED_CONFIGS / f"{key}{CONFIG_SUFFIX}"
    if key and not Path(key).is_absolute() and packaged.is_file():
        return packaged
    close = difflib.get_close_matches(key, packaged_configs(), n=MAX_CLOSE_NAMES, cutoff=0.4)
    hint = (f"; closest packaged names: {', '.join(close)}" if close
            else "; `vidreid configs` lists the packaged names")
    raise FileNotFoundError(f"config file not found: {text} is neither a file nor a packaged"
                            f" config name{hint}")


def _read_yaml(path: Path, depth: int = 0) -> list[DictConfig]:
    """Configs to merge, base first, for ``path`` and its chain of ``base:`` files."""
    if depth > MAX_BASE_DEPTH:
        raise ValueError(f"{path}: more than {MAX_BASE_DEPTH} nested 'base:' files (a cycle?)")
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a config must be a YAML mapping, got {type(raw).__name__}")
    chain: list[DictConfig] = []
    base = raw.pop(BASE_KEY, None)
    if base is not None:
        chain += _read_yaml((path.parent / str(base)).resolve(), depth + 1)
    chain.append(OmegaConf.create(raw))
    return chain


def _merge(cfgs: list[Any], where: str) -> DictConfig:
    try:
        return OmegaConf.merge(schema(), *cfgs)
    except ConfigKeyError as exc:
        raise ValueError(f"{where}: unknown config key {exc.full_key!r}") from None
    except ValidationError as exc:
        first_line = str(exc).splitlines()[0]
        raise ValueError(f"{where}: bad value for {exc.full_key!r}: {first_line}") from None
    except OmegaConfBaseException as exc:
        raise ValueError(f"{where}: {exc}") from None


#: Words YAML 1.1 reads as booleans besides true/false. On the command line they stay strings
#: (``train.amp=off`` is the string mode "off"); a boolean key still accepts them, because
#: the schema converts "on"/"off"/"yes"/"no" to bool when merging.
YAML11_BOOL_WORDS = frozenset({"on", "off", "yes", "no"})


def parse_overrides(overrides: list[str]) -> DictConfig:
    """``["train.lr=1e-4", ...]`` -> a config; values are parsed as YAML, except that
    ``on``/``off``/``yes``/``no`` stay strings (see :data:`YAML11_BOOL_WORDS`)."""
    items = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"bad override {item!r}: expected KEY=VALUE, e.g. optim.lr=1e-4")
        if value.strip().lower() in YAML11_BOOL_WORDS:
            item = f"{key}='{value.strip()}'"
        items.append(item)
    try:
        return OmegaConf.from_dotlist(items)
    except OmegaConfBaseException as exc:
        raise ValueError(f"bad override: {exc}") from None


def load_config(
    path: str | os.PathLike[str] | dict[str, Any] | DictConfig | None,
    overrides: Sequence[str] = (),
) -> DictConfig:
    """Load ``path`` (and its ``base:`` chain) over the schema, then apply ``overrides``.

    ``path`` is a file or a packaged name (:func:`resolve_config`). It may also be a plain dict or a DictConfig (validated the same way); ``None``
    starts from the schema defaults. Unknown keys and values of the wrong type raise
    ``ValueError`` naming the key.
    """
    if isinstance(path, (dict, DictConfig)):
        cfgs, where = [OmegaConf.create(to_container(path) if isinstance(path, DictConfig)
                                        else path)], "config"
    elif path is not None:
        cfgs, where = _read_yaml(resolve_config(path).resolve()), str(path)
    else:
        cfgs, where = [], "config"
    cfg = _merge(cfgs, where)
    if overrides:
        cfg = _merge([cfg, parse_overrides(list(overrides))], "command-line override")
    if "name" not in cfg.model:
        raise ValueError(f"{where}: model.name is required (a registered model name)")
    return cfg


def to_container(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def save_config(cfg: DictConfig, path: str | os.PathLike[str]) -> None:
    """Write the resolved config as YAML, atomically."""
    write_text(path, OmegaConf.to_yaml(cfg, resolve=True))
