"""Every shipped YAML config loads against its schema and builds what it names.

Re-ID configs: model (backbone swapped for ``tiny`` to stay fast), criterion, optimiser and
scheduler, then one training forward and loss on a PK-shaped batch. STCnet configs
(``configs/vrstc/stc/``): the re-ID network they name and the generator. VRSTC pipeline configs
(``configs/vrstc/pipeline/``): the stage configs they name.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vidreid import build as B
from vidreid.engine.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "vidreid" / "configs"
ALL = sorted(CONFIGS.rglob("*.yaml"))
NUM_CLASSES = 4
H, W = 64, 32


def small_overrides(cfg) -> list[str]:
    """Swap a heavy backbone for ``tiny``; block positions then index its one-block stages."""
    model = cfg if "name" in cfg else cfg.model
    out = []
    if "backbone" in model:
        out.append("backbone=tiny")
    if model.get("weights") is not None:
        out.append("weights=null")
    out += [f"{k}=[0]" for k in model if k.endswith("_blocks")]
    return out


def is_stc(path: Path) -> bool:
    return "stc" in path.relative_to(CONFIGS).parts[:-1]


def test_configs_found() -> None:
    methods = {p.relative_to(CONFIGS).parts[0] for p in ALL}
    assert {"baselines", "cosam", "gltr", "tkp", "attribute", "vrstc"} <= methods


def is_pipeline(path: Path) -> bool:
    return "pipeline" in path.relative_to(CONFIGS).parts[:-1]


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_config_loads_and_builds(path: Path) -> None:
    if is_pipeline(path):  # a VRSTC pipeline: each stage config it names loads
        from vidreid.methods.vrstc.pipeline import Pipeline, load_pipeline_config

        pipeline = Pipeline(load_pipeline_config(path), Path("unused"))
        pipeline.reid_config()
        pipeline.reid_config(completed=True)
        if pipeline.cfg.guider.config:
            pipeline.guider_config()
        pipeline.stc_config()
        return
    if is_stc(path):
        from vidreid.methods.vrstc.config import load_stc_config
        from vidreid.models.vrstc import STCGenerator

        cfg = load_stc_config(path)
        cfg = load_stc_config(path, [f"reid.model.{o}" for o in small_overrides(cfg.reid.model)])
        reid = B.build_model(dict(cfg.reid.model), NUM_CLASSES).eval()
        assert reid(torch.randn(1, 2, 3, H, W))["features"].ndim == 2
        STCGenerator(cfg.generator.base_channels)
        return
    cfg = load_config(path)
    B.validate(cfg)  # what run_training checks before training
    # the attribute term reads its labels from the dataset's file: it is built from one in
    # tests/losses/test_attribute_loss.py, here the model's attribute logits are checked
    attribute = "attribute" in cfg.loss and cfg.loss.attribute.get("weight", 1.0) != 0
    cfg = load_config(path, [f"model.{o}" for o in small_overrides(cfg)]
                      + (["loss.attribute.weight=0"] if attribute else []))
    model = B.build_model(cfg, NUM_CLASSES).train()
    criterion = B.build_criterion(cfg, NUM_CLASSES, getattr(model, "feature_dim", None))
    optimizer = B.build_optimizer(cfg, [*model.parameters(), *criterion.parameters()])
    B.build_scheduler(cfg, optimizer)
    B.build_transform(cfg, train=True)
    pids = torch.arange(NUM_CLASSES).repeat_interleave(2)
    out = model(torch.randn(len(pids), 2, 3, H, W))
    if attribute:
        assert out["attr_logits"].shape[0] == len(pids)
    loss, parts = criterion(out, pids)
    assert torch.isfinite(loss), parts
