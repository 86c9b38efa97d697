"""The STCnet config schema (``configs/vrstc/stc/*.yaml``) and the config -> objects steps
of the VRSTC pipeline (:func:`run_train_stc`, :func:`run_complete`).

An STCnet config has its own closed schema (:class:`STCExperimentConfig`): the dataset, the
trained re-ID network (model arguments as in the re-ID config, plus its weights), the
locator, the generator, the loss weights, the training budget and the completion settings.
``base:`` inheritance and ``key=value`` overrides work as for the re-ID configs.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from vidreid.atomic import write_text
from vidreid.engine.config import (
    _read_yaml,
    parse_overrides,
    resolve_config,
    save_config,
    to_container,
)
from vidreid.methods.vrstc.stc import STCLossWeights


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
class STCTrainConfig:
    steps: int = 20000
    batch_size: int = 16
    lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    seed: int = 1
    device: str = "auto"
    amp: str = "off"  # ours: the GAN trains in full precision (see vidreid.engine.precision)
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
    loss: STCLossWeights = field(default_factory=STCLossWeights)
    train: STCTrainConfig = field(default_factory=STCTrainConfig)
    complete: CompleteConfig = field(default_factory=CompleteConfig)
    output_dir: str = "runs"
    run_name: str | None = None


def load_stc_config(path: str | Path, overrides: list[str] = ()) -> DictConfig:
    """Load an STCnet config (``base:`` chain, overrides) against its closed schema."""
    from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

    cfgs = _read_yaml(resolve_config(path).resolve())
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


def load_reid(model: dict[str, Any], weights: str | None) -> torch.nn.Module:
    """The trained re-ID network, loaded strictly (the ID guider needs its classifier)."""
    from vidreid.build import load_model

    if weights is None:
        raise ValueError("reid.weights is not set: pass the trained re-ID network, e.g. "
                         "reid.weights=runs/vrstc-mars-.../last.pt")
    if not Path(weights).is_file():
        raise FileNotFoundError(f"re-ID weights not found: {weights} (reid.weights)")
    try:
        net, _ = load_model(dict(model), weights, classifier="strict")
    except ValueError as exc:
        raise ValueError(f"{exc} (reid.model {dict(model)})") from None
    return net


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
    from vidreid.methods.vrstc.stc import train_stc

    device = _device(cfg)
    dataset = build_dataset(cfg.data.name, cfg.data.root, **to_container(cfg.data.options))
    reid = load_reid(to_container(cfg.reid.model), cfg.reid.weights)
    run_dir = _run_dir(cfg)
    save_config(cfg, run_dir / "config.yaml")
    t = cfg.train
    result = train_stc(
        reid, dataset.train, run_dir / "stc.pt", height=cfg.data.height, width=cfg.data.width,
        num_regions=cfg.locator.num_regions, tau=cfg.locator.tau,
        num_neighbours=cfg.generator.num_neighbours, base_channels=cfg.generator.base_channels,
        steps=t.steps, batch_size=t.batch_size, lr=t.lr, betas=tuple(t.betas),
        weights=STCLossWeights(**to_container(cfg.loss)), seed=t.seed,
        num_workers=cfg.data.num_workers, device=device, amp=t.amp, log_every=t.log_every,
        progress=t.progress, reid_size=reid_input_size(cfg),
    )
    write_text(run_dir / "log.json", json.dumps(result["history"], indent=1))
    result["run_dir"] = str(run_dir)
    return result


def run_complete(cfg: DictConfig, weights: str, data: str, out: str) -> dict[str, Any]:
    """Complete dataset ``data`` (layout ``cfg.data.name``) into ``out`` with STCnet ``weights``."""
    from vidreid.methods.vrstc.stc import complete_dataset, load_stc_generator

    generator, meta = load_stc_generator(weights)
    options = to_container(cfg.data.options)
    reid = load_reid(to_container(cfg.reid.model), cfg.reid.weights)
    return complete_dataset(
        cfg.data.name, data, out, reid, generator, height=int(meta["height"]),
        width=int(meta["width"]), options=options, num_regions=cfg.locator.num_regions,
        tau=cfg.locator.tau, num_neighbours=cfg.generator.num_neighbours,
        jpeg_quality=cfg.complete.jpeg_quality, device=_device(cfg),
        progress=cfg.train.progress, reid_size=reid_input_size(cfg, meta),
    )
