"""``vidreid vrstc run CONFIG``: the whole VRSTC pipeline in one run folder, resumable.

Stages, in order (each in its own sub-folder of the run folder ``RUN``):

1. ``reid``: the re-ID network on the raw data (a re-ID config, ``vidreid train``'s run);
2. ``guider`` (only when ``guider.config`` is set): the paper's frame-level ResNet-50 CE ID
   guider (``configs/vrstc/guider_mars.yaml``);
3. ``locate``: the occlusion locator's scores ``[T, R]`` of every training tracklet
   (``locate/scores.npz``), with the re-ID network of stage 1;
4. ``stc``: STCnet trained on them (``stc/stc.pt``);
5. ``complete``: the completed copy of the dataset (``completed/``, the dataset's layout);
6. ``reid_completed``: the re-ID network trained and tested on the completed data.

Resuming: every stage writes its outputs atomically and, last, a done-marker
``stages/<stage>.json`` (what it wrote and its summary). Running again with
``--resume RUN`` skips the stages with a marker; a trainable stage that was stopped
continues from its ``last.pt`` (the trainer's resume); completion restarts its output folder
(it is marked in progress until it finishes). ``--until STAGE`` stops after that stage.

The pipeline config has its own schema (:class:`PipelineConfig`); stage configs are paths
relative to the pipeline config's folder, each with its own ``overrides``. The STCnet
config's ``reid.model`` (and ``guider.model``) are taken from the stage configs, so that they
always match the networks trained here.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from vidreid.atomic import write_bytes, write_text
from vidreid.engine.config import _read_yaml, load_config, parse_overrides, to_container

log = logging.getLogger(__name__)

STAGES = ("reid", "guider", "locate", "stc", "complete", "reid_completed")
PIPELINE_FILE = "pipeline.yaml"
STAGE_DIR = "stages"
COMPLETED_DATA = "completed"
SCORES_FILE = "scores.npz"


@dataclass
class StageConfig:
    config: str | None = None  # a config file, relative to the pipeline config's folder
    overrides: list[str] = field(default_factory=list)


@dataclass
class PipelineConfig:
    name: str = "vrstc-pipeline"
    output_dir: str = "runs"
    run_name: str | None = None
    data_root: str = "data"  # the raw dataset root, given to every stage (data.root)
    reid: StageConfig = field(default_factory=StageConfig)
    guider: StageConfig = field(default_factory=StageConfig)  # config null: no guider stage
    stc: StageConfig = field(default_factory=StageConfig)
    complete_set: list[str] = field(default_factory=list)  # `vrstc complete --set` items
    reid_completed: StageConfig = field(default_factory=StageConfig)  # null: reid's
    base_dir: str | None = None  # (filled in) the folder stage config paths are relative to


def load_pipeline_config(path: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """A pipeline config (``base:`` chain, ``key=value`` overrides) against its schema."""
    from omegaconf.errors import OmegaConfBaseException

    path = Path(path).resolve()
    cfgs = _read_yaml(path)
    if overrides:
        cfgs.append(parse_overrides(list(overrides)))
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(PipelineConfig), *cfgs)
    except OmegaConfBaseException as exc:
        raise ValueError(f"{path}: {str(exc).splitlines()[0]} (a VRSTC pipeline config: "
                         "configs/vrstc/pipeline/*.yaml)") from None
    if cfg.base_dir is None:
        cfg.base_dir = str(path.parent)
    for key in ("reid", "stc"):
        if cfg[key].config is None:
            raise ValueError(f"{path}: {key}.config is required (a config file path)")
    return cfg


def _stage_path(cfg: DictConfig, rel: str) -> Path:
    p = Path(rel)
    return p if p.is_absolute() else Path(cfg.base_dir) / p


class Pipeline:
    """The stages of one pipeline run folder (see the module doc)."""

    def __init__(self, cfg: DictConfig, run_dir: Path,
                 report: Callable[[str], None] = print) -> None:
        self.cfg, self.run_dir, self.report = cfg, Path(run_dir), report

    # ------------------------------------------------------------------ markers
    def marker(self, stage: str) -> Path:
        return self.run_dir / STAGE_DIR / f"{stage}.json"

    def done(self, stage: str) -> dict[str, Any] | None:
        m = self.marker(stage)
        return json.loads(m.read_text()) if m.is_file() else None

    def _finish(self, stage: str, wrote: list[Path], summary: dict[str, Any]) -> None:
        record = {"stage": stage, "wrote": [str(p) for p in wrote], "summary": summary,
                  "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
        self.marker(stage).parent.mkdir(parents=True, exist_ok=True)
        write_text(self.marker(stage), json.dumps(record, indent=1, default=str))
        self.report(f"[{stage}] wrote: " + ", ".join(record["wrote"]))

    # ------------------------------------------------------------------ configs
    def reid_config(self, completed: bool = False) -> DictConfig:
        c = self.cfg
        stage = c.reid_completed if completed and c.reid_completed.config else c.reid
        root = self.run_dir / COMPLETED_DATA if completed else c.data_root
        name = "reid_completed" if completed else "reid"
        return load_config(_stage_path(c, stage.config), [
            *stage.overrides, f"data.root={root}", f"output_dir={self.run_dir}",
            f"run_name={name}"])

    def guider_config(self) -> DictConfig:
        c = self.cfg
        return load_config(_stage_path(c, c.guider.config), [
            *c.guider.overrides, f"data.root={c.data_root}", f"output_dir={self.run_dir}",
            "run_name=guider"])

    def stc_config(self) -> DictConfig:
        from vidreid.methods.vrstc.config import load_stc_config

        c = self.cfg
        cfg = load_stc_config(_stage_path(c, c.stc.config), [
            *c.stc.overrides, f"data.root={c.data_root}",
            f"reid.weights={self.run_dir / 'reid' / 'last.pt'}"])
        cfg.reid.model = _model_section(self.reid_config())
        if c.guider.config:
            cfg.guider.model = _model_section(self.guider_config())
            cfg.guider.weights = str(self.run_dir / "guider" / "last.pt")
        elif cfg.guider.model is not None:
            raise ValueError(f"{c.stc.config}: guider.model is set but the pipeline has no "
                             "guider stage: set guider.config (e.g. ../guider_mars.yaml) or "
                             "stc.overrides=[guider.model=null] (the re-ID network guides)")
        return cfg

    # ------------------------------------------------------------------ stages
    def _train(self, stage: str, cfg: DictConfig) -> None:
        from vidreid.engine.run import run_training

        folder = self.run_dir / stage
        resume = str(folder) if (folder / "last.pt").is_file() else None
        if resume:
            self.report(f"[{stage}] resuming {folder}")
        result, run_dir, _, _ = run_training(cfg, resume=resume)
        if result.interrupted:
            raise KeyboardInterrupt(f"stage {stage} stopped; resume with --resume {self.run_dir}")
        self._finish(stage, [run_dir / "last.pt", run_dir / "config.yaml"],
                     {"epochs": result.epochs_done, "steps": result.global_step,
                      "eval": result.last_eval})

    def stage_reid(self) -> None:
        self._train("reid", self.reid_config())

    def stage_guider(self) -> None:
        self._train("guider", self.guider_config())

    def stage_locate(self) -> None:
        from vidreid.data import build_dataset
        from vidreid.methods.vrstc.config import _device, load_reid, reid_input_size
        from vidreid.methods.vrstc.stc import locate_tracklets

        cfg = self.stc_config()
        dataset = build_dataset(cfg.data.name, cfg.data.root, **to_container(cfg.data.options))
        reid = load_reid(to_container(cfg.reid.model), cfg.reid.weights)
        h, w = reid_input_size(cfg)
        located = locate_tracklets(reid, dataset.train, height=h, width=w,
                                   num_regions=cfg.locator.num_regions, tau=cfg.locator.tau,
                                   device=_device(cfg), progress=cfg.train.progress)
        out = self.run_dir / "locate" / SCORES_FILE
        out.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(out, lambda fh: np.savez(fh, **{f"t{i}": r["scores"]
                                                    for i, r in enumerate(located)}))
        flagged = sum(int((r["scores"] < cfg.locator.tau).any(axis=1).sum()) for r in located)
        frames = sum(len(r["scores"]) for r in located)
        self._finish("locate", [out], {"tracklets": len(located), "frames": frames,
                                       "frames_flagged": flagged, "tau": cfg.locator.tau})

    def load_scores(self) -> list[np.ndarray]:
        with np.load(self.run_dir / "locate" / SCORES_FILE) as z:
            return [z[f"t{i}"] for i in range(len(z.files))]

    def stage_stc(self) -> None:
        from vidreid.methods.vrstc.config import run_train_stc

        folder = self.run_dir / "stc"
        resume = (folder / "last.pt").is_file()
        if resume:
            self.report(f"[stc] resuming {folder}")
        result = run_train_stc(self.stc_config(), run_dir=folder, resume=resume,
                               locator_scores=self.load_scores())
        self._finish("stc", [Path(result["path"]), folder / "log.json"],
                     {"last": result["last"], "train_frames": result["train_frames"]})

    def stage_complete(self) -> None:
        from vidreid.methods.vrstc.config import run_complete

        out = self.run_dir / COMPLETED_DATA
        summary = run_complete(self.stc_config(), str(self.run_dir / "stc" / "stc.pt"),
                               self.cfg.data_root, str(out), list(self.cfg.complete_set))
        for line in summary["overrides"]:
            self.report(f"[complete] {line}")
        self._finish("complete", [out], {k: summary[k] for k in (
            "frames", "frames_completed", "regions_completed", "settings")})

    def stage_reid_completed(self) -> None:
        self._train("reid_completed", self.reid_config(completed=True))

    # ------------------------------------------------------------------ run
    def stages(self) -> list[str]:
        return [s for s in STAGES if s != "guider" or self.cfg.guider.config]

    def run(self, until: str | None = None) -> dict[str, Any]:
        """Run the stages without a done-marker, in order (up to ``until``)."""
        stages = self.stages()
        if until is not None and until not in stages:
            raise ValueError(f"--until {until!r}: not a stage of this pipeline {stages}")
        for stage in stages:
            record = self.done(stage)
            if record is not None:
                self.report(f"[{stage}] done earlier: " + ", ".join(record["wrote"]))
            else:
                self.report(f"[{stage}] running")
                getattr(self, f"stage_{stage}")()
            if stage == until:
                break
        return {s: self.done(s) for s in stages}


def _model_section(cfg: DictConfig) -> dict[str, Any]:
    """A re-ID config's model section without its pre-training weights (the trained
    network's own weights are loaded after building it)."""
    model = to_container(cfg.model)
    model.pop("weights", None)
    return model


def new_pipeline_run(cfg: DictConfig) -> Path:
    """``output_dir/run_name`` (default ``<name>-<timestamp>``); refuses one that holds a run."""
    name = cfg.run_name or f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', cfg.name)}-" \
                           f"{time.strftime('%Y%m%d-%H%M%S')}"
    path = Path(cfg.output_dir) / name
    if (path / PIPELINE_FILE).exists():
        raise ValueError(f"{path} already holds a VRSTC pipeline run; continue it with "
                         f"--resume {path} or choose another run_name")
    path.mkdir(parents=True, exist_ok=True)
    write_text(path / PIPELINE_FILE, OmegaConf.to_yaml(cfg, resolve=True))
    return path


def resume_pipeline_run(run_dir: str | Path) -> tuple[DictConfig, Path]:
    """The saved config of a pipeline run folder."""
    run_dir = Path(run_dir)
    saved = run_dir / PIPELINE_FILE
    if not saved.is_file():
        raise FileNotFoundError(f"{saved} not found: --resume takes a `vrstc run` folder")
    cfg = OmegaConf.merge(OmegaConf.structured(PipelineConfig), OmegaConf.load(saved))
    return cfg, run_dir
