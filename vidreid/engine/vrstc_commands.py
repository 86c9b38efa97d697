"""``vidreid vrstc train-stc`` and ``vidreid vrstc complete``: VRSTC's STCnet from a config.

An STCnet config (``configs/vrstc/stc/*.yaml``) has its own closed schema
(:class:`STCExperimentConfig`): the dataset, the trained re-ID network (model arguments as in
the re-ID config, plus its weights), the locator, the generator, the loss weights, the
training budget and the completion settings. ``base:`` inheritance and ``key=value``
overrides work as for the re-ID configs.

Pipeline: ``vidreid train configs/vrstc/<ds>.yaml`` (re-ID on the raw data) ->
``vidreid vrstc train-stc configs/vrstc/stc/<ds>.yaml reid.weights=RUN/last.pt`` ->
``vidreid vrstc complete configs/vrstc/stc/<ds>.yaml --weights STC_RUN/stc.pt --data ROOT
--out NEWROOT`` -> ``vidreid train configs/vrstc/<ds>.yaml data.root=NEWROOT``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from vidreid.engine.commands import _ValueThenOverrides  # CONFIG --opt V key=value
from vidreid.engine.config import (
    _read_yaml,  # the shared base-chain reader
    parse_overrides,
    save_config,
    to_container,
)


@dataclass
class STCDataConfig:
    name: str = "mars"
    root: str = "data"
    options: dict[str, Any] = field(default_factory=dict)
    height: int = 256  # the generator's working size (and the locator's unless locator.height)
    width: int = 128
    num_workers: int = 2


@dataclass
class ReIDConfig:
    model: dict[str, Any] = field(default_factory=lambda: {"name": "vrstc_reid"})
    weights: str | None = None  # the trained re-ID network (trainer checkpoint / state dict)


@dataclass
class LocatorConfig:
    num_regions: int = 3
    tau: float = 0.89
    height: int | None = None  # the re-ID network's input size; None: data.height / width
    width: int | None = None


@dataclass
class GeneratorConfig:
    base_channels: int = 32
    num_neighbours: int = 4


@dataclass
class STCLossConfig:
    reconstruction: float = 1.0
    adversarial_local: float = 0.01
    adversarial_global: float = 0.01
    identity: float = 0.01


@dataclass
class STCTrainConfig:
    steps: int = 20000
    batch_size: int = 16
    lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    seed: int = 1
    device: str = "auto"
    num_threads: int | None = None
    log_every: int = 50
    progress: bool = True


@dataclass
class CompleteConfig:
    jpeg_quality: int = 95


@dataclass
class STCExperimentConfig:
    name: str = "vrstc-stc"
    data: STCDataConfig = field(default_factory=STCDataConfig)
    reid: ReIDConfig = field(default_factory=ReIDConfig)
    locator: LocatorConfig = field(default_factory=LocatorConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    loss: STCLossConfig = field(default_factory=STCLossConfig)
    train: STCTrainConfig = field(default_factory=STCTrainConfig)
    complete: CompleteConfig = field(default_factory=CompleteConfig)
    output_dir: str = "runs"
    run_name: str | None = None


def load_stc_config(path: str | Path, overrides: list[str] = ()) -> DictConfig:
    """Load an STCnet config (``base:`` chain, overrides) against its closed schema."""
    from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

    cfgs = _read_yaml(Path(path).resolve())
    if overrides:
        cfgs.append(parse_overrides(list(overrides)))
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(STCExperimentConfig), *cfgs)
    except ConfigKeyError as exc:
        raise ValueError(f"{path}: unknown STCnet config key {exc.full_key!r} (is this a "
                         "re-ID config? STCnet configs are configs/vrstc/stc/*.yaml)") from None
    except ValidationError as exc:
        raise ValueError(f"{path}: bad value for {exc.full_key!r}: "
                         f"{str(exc).splitlines()[0]}") from None
    except OmegaConfBaseException as exc:
        raise ValueError(f"{path}: {exc}") from None
    if "name" not in cfg.reid.model:
        raise ValueError(f"{path}: reid.model.name is required (e.g. vrstc_reid)")
    return cfg


def build_reid(model: dict[str, Any], num_classes: int) -> torch.nn.Module:
    """The re-ID network of ``reid.model`` (registered name + keyword arguments)."""
    from vidreid.models import build_model

    kwargs = dict(model)
    return build_model(kwargs.pop("name"), num_classes, **kwargs)


def load_reid(model: dict[str, Any], weights: str | None, num_classes: int) -> torch.nn.Module:
    """Build ``reid.model`` and load ``weights`` strictly (the ID guider needs its classifier).

    The number of identities is the checkpoint's ``num_classes`` when it records one.
    """
    from vidreid.engine.checkpoint import load_model_weights

    if weights is None:
        raise ValueError("reid.weights is not set: pass the trained re-ID network, e.g. "
                         "reid.weights=runs/vrstc-mars-.../last.pt")
    if not Path(weights).is_file():
        raise FileNotFoundError(f"re-ID weights not found: {weights} (reid.weights)")
    state = load_model_weights(weights)  # clear errors for foreign / damaged files
    ckpt = torch.load(weights, map_location="cpu", weights_only=True)
    if isinstance(ckpt, dict) and "num_classes" in ckpt:
        num_classes = int(ckpt["num_classes"])
    net = build_reid(model, num_classes)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{weights} does not match reid.model {dict(model)}: "
                         f"{str(exc).splitlines()[0]}") from None
    return net.eval()


def _device(cfg: DictConfig) -> torch.device:
    from vidreid.engine.distributed import resolve_device

    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    return resolve_device(cfg.train.device)


def _run_dir(cfg: DictConfig) -> Path:
    name = cfg.run_name or f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', cfg.name)}-" \
                           f"{time.strftime('%Y%m%d-%H%M%S')}"
    path = Path(cfg.output_dir) / name
    if (path / "stc.pt").exists():
        raise ValueError(f"{path} already holds a trained STCnet; choose another run_name")
    path.mkdir(parents=True, exist_ok=True)
    return path


def reid_input_size(cfg: DictConfig, meta: dict[str, Any] | None = None) -> tuple[int, int]:
    """The locator's / ID guider's frame size: ``locator.height/width`` if set, else the
    size recorded in STCnet's ``meta``, else the generator's working size ``data.*``."""
    if (cfg.locator.height is None) != (cfg.locator.width is None):
        raise ValueError("set both locator.height and locator.width, or neither")
    if cfg.locator.height is not None:
        return int(cfg.locator.height), int(cfg.locator.width)
    if meta is not None and "reid_size" in meta:
        return int(meta["reid_size"][0]), int(meta["reid_size"][1])
    if meta is not None:
        return int(meta["height"]), int(meta["width"])
    return int(cfg.data.height), int(cfg.data.width)


def run_train_stc(cfg: DictConfig) -> dict[str, Any]:
    """Train STCnet as ``cfg`` says; writes ``stc.pt``, ``config.yaml``, ``log.json``."""
    from vidreid.data import build_dataset
    from vidreid.engine.vrstc import STCLossWeights, train_stc

    device = _device(cfg)
    dataset = build_dataset(cfg.data.name, cfg.data.root, **to_container(cfg.data.options))
    reid = load_reid(to_container(cfg.reid.model), cfg.reid.weights, dataset.num_train_pids)
    run_dir = _run_dir(cfg)
    save_config(cfg, run_dir / "config.yaml")
    t = cfg.train
    result = train_stc(
        reid, dataset.train, run_dir / "stc.pt", height=cfg.data.height, width=cfg.data.width,
        num_regions=cfg.locator.num_regions, tau=cfg.locator.tau,
        num_neighbours=cfg.generator.num_neighbours, base_channels=cfg.generator.base_channels,
        steps=t.steps, batch_size=t.batch_size, lr=t.lr, betas=tuple(t.betas),
        weights=STCLossWeights(**to_container(cfg.loss)), seed=t.seed,
        num_workers=cfg.data.num_workers, device=device, log_every=t.log_every,
        progress=t.progress, reid_size=reid_input_size(cfg),
    )
    (run_dir / "log.json").write_text(json.dumps(result["history"], indent=1))
    result["run_dir"] = str(run_dir)
    return result


def run_complete(cfg: DictConfig, weights: str, data: str, out: str) -> dict[str, Any]:
    """Complete dataset ``data`` (layout ``cfg.data.name``) into ``out`` with STCnet ``weights``."""
    from vidreid.data import build_dataset
    from vidreid.engine.vrstc import complete_dataset, load_stc_generator

    generator, meta = load_stc_generator(weights)
    options = to_container(cfg.data.options)
    num_classes = build_dataset(cfg.data.name, data, **options).num_train_pids
    reid = load_reid(to_container(cfg.reid.model), cfg.reid.weights, num_classes)
    return complete_dataset(
        cfg.data.name, data, out, reid, generator, height=int(meta["height"]),
        width=int(meta["width"]), options=options, num_regions=cfg.locator.num_regions,
        tau=cfg.locator.tau, num_neighbours=cfg.generator.num_neighbours,
        jpeg_quality=cfg.complete.jpeg_quality, device=_device(cfg),
        progress=cfg.train.progress, reid_size=reid_input_size(cfg, meta),
    )


def cmd_train_stc(args: argparse.Namespace) -> int:
    cfg = load_stc_config(args.config, args.overrides)
    result = run_train_stc(cfg)
    last = result["last"]
    print("  ".join(f"{k} {v:.4g}" for k, v in last.items()))
    print(f"STCnet weights: {result['path']}")
    return 0


def cmd_complete(args: argparse.Namespace) -> int:
    cfg = load_stc_config(args.config, args.overrides + args.more_items)
    summary = run_complete(cfg, args.weights, args.data, args.out)
    print(f"completed {summary['frames_completed']} of {summary['frames']} frames "
          f"({summary['regions_completed']} stripes) in {summary['tracklets']} tracklets")
    print(f"completed dataset: {summary['output']}")
    return 0


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
    c.add_argument("--weights", required=True, action=_ValueThenOverrides,
                   help="STCnet weights (stc.pt of train-stc)")
    c.add_argument("--data", required=True, action=_ValueThenOverrides,
                   help="dataset root to complete (read only)")
    c.add_argument("--out", required=True, action=_ValueThenOverrides,
                   help="new dataset root (must not exist yet)")
    c.set_defaults(func=cmd_complete, more_items=[])
