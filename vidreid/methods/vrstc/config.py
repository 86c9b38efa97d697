"""The STCnet config schema (``configs/vrstc/stc/*.yaml``) and the config -> objects steps
of the VRSTC pipeline (:func:`run_train_stc`, :func:`run_complete`).

An STCnet config has its own closed schema (:class:`STCExperimentConfig`): the dataset, the
trained re-ID network (model arguments as in the re-ID config, plus its weights), the
locator, the generator, the loss weights, the training budget and the completion settings.
``base:`` inheritance and ``key=value`` overrides work as for the re-ID configs.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
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

log = logging.getLogger(__name__)


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
    # (ours) neighbour stripes scored under source_tau are never a source of content for the
    # temporal branch (likely occluded though not flagged at tau); source_tau >= tau
    source_tau: float = 0.95
    height: int | None = None  # the re-ID network's input size; None: data.height / width
    width: int | None = None
    # (ours, a departure from the paper's fixed tau) calibrate: tau and source_tau from the
    # training stripes' scores, median - k * sigma (robust; stc.calibrate_tau), replacing the
    # two values above
    calibrate: bool = False
    calibrate_k: float = 3.0
    calibrate_source_k: float = 2.0


@dataclass
class GeneratorConfig:
    base_channels: int = 32
    num_neighbours: int = 4
    # (ours) also paste the neighbours' pixel blocks by the temporal attention
    # (models.vrstc.STCGenerator); off = the paper's generator
    paste: bool = False


@dataclass
class GuiderConfig:
    """STCnet's ID guider. The paper's: a frame-level ResNet-50 trained with cross-entropy
    (``configs/vrstc/guider_mars.yaml``): ``model`` as in its re-ID config, ``weights`` its
    run. ``model: null`` (ours, a departure): the frozen re-ID network itself on one-frame
    clips (no extra stage; not measured against the paper's guider)."""

    model: dict[str, Any] | None = None
    weights: str | None = None


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
    cache_tracklets: int = 0  # decoded tracklets kept per loader worker (LRU); 0: decode
    # only each sample's target and neighbours


@dataclass
class CompleteConfig:
    jpeg_quality: int = 100  # completed JPEG frames: q100 4:4:4 keeps the other rows' pixels
    batch_frames: int = 8  # occluded frames through the generator at once (bounds memory)


@dataclass
class STCExperimentConfig:
    name: str = "vrstc-stc"
    data: STCDataConfig = field(default_factory=STCDataConfig)
    reid: ReIDConfig = field(default_factory=ReIDConfig)
    locator: LocatorConfig = field(default_factory=LocatorConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    guider: GuiderConfig = field(default_factory=GuiderConfig)
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


def load_reid(model: dict[str, Any], weights: str | None, key: str = "reid") -> torch.nn.Module:
    """The trained re-ID network (or ID guider: ``key="guider"``), loaded strictly (the ID
    guider needs its classifier)."""
    from vidreid.build import load_model

    if weights is None:
        raise ValueError(f"{key}.weights is not set: pass the trained network, e.g. "
                         f"{key}.weights=runs/<its run>/last.pt")
    if not Path(weights).is_file():
        raise FileNotFoundError(f"{key} weights not found: {weights} ({key}.weights)")
    try:
        net, _ = load_model(dict(model), weights, classifier="strict")
    except ValueError as exc:
        raise ValueError(f"{exc} ({key}.model {dict(model)})") from None
    return net


def load_guider(cfg: DictConfig) -> torch.nn.Module | None:
    """The paper's frame-level ID guider when ``guider.model`` is set, else None (ours: the
    re-ID network serves)."""
    if cfg.guider.model is None:
        return None
    return load_reid(to_container(cfg.guider.model), cfg.guider.weights, key="guider")


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


def run_train_stc(cfg: DictConfig, run_dir: str | Path | None = None, resume: bool = False,
                  locator_scores: Sequence[Any] | None = None) -> dict[str, Any]:
    """Train STCnet as ``cfg`` says; writes ``stc.pt``, ``config.yaml``, ``log.json``.

    ``run_dir`` (default ``output_dir/run_name``, which must not hold an STCnet yet) and
    ``resume`` (continue the trainer's ``last.pt`` there) serve the pipeline
    (:mod:`vidreid.methods.vrstc.pipeline`); ``locator_scores`` skips the locating pass."""
    from vidreid.data import build_dataset
    from vidreid.methods.vrstc.stc import train_stc

    device = _device(cfg)
    dataset = build_dataset(cfg.data.name, cfg.data.root, **to_container(cfg.data.options))
    reid = load_reid(to_container(cfg.reid.model), cfg.reid.weights)
    guider = load_guider(cfg)
    if run_dir is None:
        run_dir = _run_dir(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    t = cfg.train
    result = train_stc(
        reid, dataset.train, run_dir / "stc.pt", height=cfg.data.height, width=cfg.data.width,
        num_regions=cfg.locator.num_regions, tau=cfg.locator.tau,
        num_neighbours=cfg.generator.num_neighbours, base_channels=cfg.generator.base_channels,
        paste=cfg.generator.paste,
        steps=t.steps, batch_size=t.batch_size, lr=t.lr, betas=tuple(t.betas),
        weights=STCLossWeights(**to_container(cfg.loss)), seed=t.seed,
        num_workers=cfg.data.num_workers, device=device, amp=t.amp, log_every=t.log_every,
        progress=t.progress, reid_size=reid_input_size(cfg), cache_tracklets=t.cache_tracklets,
        source_tau=cfg.locator.source_tau, guider=guider, resume=resume,
        locator_scores=locator_scores,
        calibrate=(cfg.locator.calibrate_k, cfg.locator.calibrate_source_k)
        if cfg.locator.calibrate else None,
    )
    write_text(run_dir / "log.json", json.dumps(result["history"], indent=1))
    result["run_dir"] = str(run_dir)
    return result


#: Completion settings read from the STCnet checkpoint's meta (what it was trained with).
COMPLETION_KEYS = {"tau": float, "source_tau": float, "num_regions": int, "num_neighbours": int}


def completion_settings(meta: dict[str, Any], overrides: Sequence[str] = (),
                        source: str = "STCnet checkpoint") -> tuple[dict[str, Any], list[str]]:
    """The locator / generator settings completion uses: those STCnet was trained with
    (``meta``), each replaced only by an explicit ``KEY=VALUE`` in ``overrides`` (keys
    :data:`COMPLETION_KEYS`). Returns the settings and one line per override."""
    settings = {k: cast(meta[k]) for k, cast in COMPLETION_KEYS.items() if k in meta}
    settings.setdefault("source_tau", settings.get("tau"))  # checkpoints before source_tau
    missing = [k for k in COMPLETION_KEYS if settings.get(k) is None]
    if missing:
        raise ValueError(f"{source}: meta lacks {missing}; pass them with --set KEY=VALUE")
    changed = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in COMPLETION_KEYS:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE with KEY one of "
                             f"{sorted(COMPLETION_KEYS)}")
        try:
            new = COMPLETION_KEYS[key](value)
        except ValueError:
            raise ValueError(f"--set {item!r}: {value!r} is not a {COMPLETION_KEYS[key].__name__}"
                             ) from None
        changed.append(f"override {key}: {settings[key]} ({source}) -> {new}")
        settings[key] = new
    return settings, changed


def run_complete(cfg: DictConfig, weights: str, data: str, out: str,
                 overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Complete dataset ``data`` (layout ``cfg.data.name``) into ``out`` with STCnet ``weights``.

    tau, source_tau, the stripe count and the neighbour count are those STCnet was trained
    with (its checkpoint's meta), not the config's; ``overrides`` (``KEY=VALUE``, the CLI's
    ``--set``) replace them explicitly, and the summary lists them (``settings``,
    ``overrides``)."""
    from vidreid.methods.vrstc.stc import complete_dataset, load_stc_generator

    generator, meta = load_stc_generator(weights)
    settings, changed = completion_settings(meta, overrides, f"STCnet checkpoint {weights}")
    for line in changed:
        log.warning(line)
    ignored = {"tau": cfg.locator.tau, "source_tau": cfg.locator.source_tau,
               "num_regions": cfg.locator.num_regions,
               "num_neighbours": cfg.generator.num_neighbours}
    for key, value in ignored.items():
        if value != settings[key] and not any(o.startswith(f"{key}=") for o in overrides):
            log.warning("the config's %s (%s) is not used: completion uses the STCnet "
                        "checkpoint's %s (pass --set %s=%s to override)", key, value,
                        settings[key], key, value)
    options = to_container(cfg.data.options)
    reid = load_reid(to_container(cfg.reid.model), cfg.reid.weights)
    summary = complete_dataset(
        cfg.data.name, data, out, reid, generator, height=int(meta["height"]),
        width=int(meta["width"]), options=options, num_regions=settings["num_regions"],
        tau=settings["tau"], num_neighbours=settings["num_neighbours"],
        jpeg_quality=cfg.complete.jpeg_quality, device=_device(cfg),
        progress=cfg.train.progress, reid_size=reid_input_size(cfg, meta),
        batch_frames=cfg.complete.batch_frames, source_tau=settings["source_tau"],
    )
    summary["settings"], summary["overrides"] = settings, changed
    return summary
