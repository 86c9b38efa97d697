"""``vidreid viz attention|masks`` (vidreid/viz/commands.py) end to end on a tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from vidreid.cli import main
from vidreid.models import MODELS, build_backbone
from vidreid.models.base import VideoReIDModel
from vidreid.viz import commands as viz_commands

REPO = Path(__file__).parents[2]
GLTR_CONFIG = str(REPO / "vidreid" / "configs" / "gltr" / "synth.yaml")
SMALL = ["data.height=32", "data.width=16"]
NUM_CLASSES = 5
MASK_MODEL = "_test_viz_spatial_masks"


@MODELS.register(MASK_MODEL)
class SpatialMaskModel(VideoReIDModel):
    """A stand-in returning ``extras["spatial_masks"]`` like COSAM does."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.backbone = build_backbone("tiny")
        self.classifier = nn.Linear(self.backbone.out_channels, num_classes)
        self.feature_dim = self.backbone.out_channels

    def forward(self, clips: torch.Tensor, return_extras: bool = False) -> dict:
        b, t = clips.shape[:2]
        maps = self.backbone(clips.flatten(0, 1))  # [B*T, C, h, w]
        out: dict = {"features": maps.mean(dim=(1, 2, 3)).view(b, t).mean(1, keepdim=True)}
        if return_extras:
            mask = torch.sigmoid(maps.mean(dim=1)).view(b, t, *maps.shape[2:])
            out["extras"] = {"spatial_masks": {"layer4": mask}}
        return out


def write_tracklet(folder: Path, numbers=(1, 2, 10, 3)) -> list[str]:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for n in numbers:
        img = (rng.random((40, 20, 3)) * 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"f{n}.png")
    return [str(folder / f"f{n}.png") for n in sorted(numbers)]


def save_weights(path: Path, model: nn.Module) -> str:
    torch.save({"model": model.state_dict(), "num_classes": NUM_CLASSES}, path)
    return str(path)


def test_frames_are_sorted_numerically(tmp_path) -> None:
    expected = write_tracklet(tmp_path / "t")
    (tmp_path / "t" / "notes.txt").write_text("not a frame")
    assert viz_commands.tracklet_frame_paths(str(tmp_path / "t")) == expected
    subset = viz_commands.tracklet_frame_paths(str(tmp_path / "t"), max_frames=2)
    assert subset == [expected[0], expected[-1]]
    one = viz_commands.tracklet_frame_paths(str(tmp_path / "t"), pattern="f1*")
    assert one == [expected[0], expected[-1]]  # f1.png, f10.png


def test_viz_attention_plots_gltr_weights(tmp_path, monkeypatch) -> None:
    from vidreid import build as B
    from vidreid.engine.config import load_config
    from vidreid.viz import attention

    torch.manual_seed(0)
    model = B.build_model(load_config(GLTR_CONFIG, SMALL), NUM_CLASSES)
    weights = save_weights(tmp_path / "w.pt", model)
    frames = write_tracklet(tmp_path / "t")
    calls = []
    real = attention.draw_temporal_weights
    monkeypatch.setattr(
        attention,
        "draw_temporal_weights",
        lambda f, w, out, labels=None: (calls.append((f, w, labels)), real(f, w, out, labels)),
    )
    out = tmp_path / "att.png"
    code = main(
        [
            "viz",
            "attention",
            GLTR_CONFIG,
            *SMALL,
            "--weights",
            weights,
            "--tracklet",
            str(tmp_path / "t"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert Image.open(out).format == "PNG"
    drawn, w, labels = calls[0]
    assert len(drawn) == len(frames) and drawn[0].shape == (40, 20, 3)
    assert w.shape == (len(frames),) and np.isclose(w.sum(), 1.0, atol=1e-3)
    assert labels is None


def test_viz_masks_draws_spatial_masks(tmp_path, monkeypatch) -> None:
    config = tmp_path / "masks.yaml"
    config.write_text(f"model:\n  name: {MASK_MODEL}\ndata:\n  height: 32\n  width: 16\n")
    weights = save_weights(tmp_path / "w.pt", SpatialMaskModel(NUM_CLASSES))
    write_tracklet(tmp_path / "t", numbers=(1, 2, 3))
    calls = []
    import vidreid.viz.masks as masks_module

    monkeypatch.setattr(masks_module, "draw_masks", lambda f, m, out: calls.append((f, m, out)))
    code = main(
        [
            "viz",
            "masks",
            str(config),
            "--weights",
            weights,
            "--tracklet",
            str(tmp_path / "t"),
            "--out",
            str(tmp_path / "m.png"),
        ]
    )
    assert code == 0
    frames, masks, out = calls[0]
    assert len(frames) == 3 and set(masks) == {"layer4"}
    assert masks["layer4"].shape == (3, 2, 1)  # [T, h, w] of the first (only) clip
    assert out == str(tmp_path / "m.png")


def test_viz_masks_on_a_model_without_masks_is_a_clear_error(tmp_path, capsys) -> None:
    from vidreid import build as B
    from vidreid.engine.config import load_config

    model = B.build_model(load_config(GLTR_CONFIG, SMALL), NUM_CLASSES)
    weights = save_weights(tmp_path / "w.pt", model)
    write_tracklet(tmp_path / "t", numbers=(1, 2))
    code = main(
        [
            "viz",
            "masks",
            GLTR_CONFIG,
            *SMALL,
            "--weights",
            weights,
            "--tracklet",
            str(tmp_path / "t"),
            "--out",
            str(tmp_path / "m.png"),
        ]
    )
    assert code == 2
    assert "spatial_masks" in capsys.readouterr().err
    assert not (tmp_path / "m.png").exists()


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_bad_tracklet_folder_is_named(tmp_path, capsys, make) -> None:
    folder = tmp_path / "t"
    if make == "empty":
        folder.mkdir()
    code = main(
        [
            "viz",
            "attention",
            GLTR_CONFIG,
            "--weights",
            str(tmp_path / "w.pt"),
            "--tracklet",
            str(folder),
        ]
    )
    assert code == 2
    assert str(folder) in capsys.readouterr().err
