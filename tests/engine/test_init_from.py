"""``train.init_from``: start a run from another run's weights (pre-train, then fine-tune)."""

import pytest
import torch

from vidreid import build as B
from vidreid.engine.config import load_config
from vidreid.models import build_model

TINY = dict(backbone="tiny", layer2_blocks=[0], layer3_blocks=[0])


def test_loads_everything_but_a_classifier_of_another_width(tmp_path) -> None:
    torch.manual_seed(0)
    pretrained = build_model("tkp", 7, **TINY)
    path = tmp_path / "last.pt"
    torch.save({"model": pretrained.state_dict(), "epoch": 3}, path)
    torch.manual_seed(1)
    model = build_model("tkp", 4, **TINY)
    fresh_classifier = model.classifier.weight.detach().clone()
    B.init_from_checkpoint(model, str(path))
    src = pretrained.state_dict()
    for key, value in model.state_dict().items():
        if key.startswith("classifier."):
            continue
        assert torch.equal(value, src[key]), key
    assert torch.equal(model.classifier.weight, fresh_classifier)  # new identities: fresh


def test_same_width_classifier_is_loaded_too(tmp_path) -> None:
    pretrained = build_model("tkp", 4, **TINY)
    torch.save(pretrained.state_dict(), tmp_path / "w.pt")
    model = build_model("tkp", 4, **TINY)
    B.init_from_checkpoint(model, str(tmp_path / "w.pt"))
    assert torch.equal(model.classifier.weight, pretrained.classifier.weight)


def test_other_model_is_an_error(tmp_path) -> None:
    torch.save(build_model("video_baseline", 4, backbone="tiny").state_dict(), tmp_path / "w.pt")
    with pytest.raises(ValueError, match="init_from"):
        B.init_from_checkpoint(build_model("tkp", 4, **TINY), str(tmp_path / "w.pt"))


def test_missing_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        B.init_from_checkpoint(build_model("tkp", 4, **TINY), str(tmp_path / "nope.pt"))


def test_config_key_exists_and_defaults_to_none() -> None:
    assert load_config(None, ["model.name=tkp"]).train.init_from is None
    cfg = load_config(None, ["model.name=tkp", "train.init_from=runs/x/best.pt"])
    assert cfg.train.init_from == "runs/x/best.pt"


def test_gltr_stage2_starts_its_backbone_from_a_stage1_frame_classifier(tmp_path) -> None:
    """GLTR paper recipe: stage 1 = 2D CNN (video_baseline, 1 frame), stage 2 = GLTR with
    train.init_from + train.init_modules=[backbone]."""
    torch.manual_seed(0)
    stage1 = build_model("video_baseline", 7, backbone="tiny", bnneck=False)
    torch.save({"model": stage1.state_dict()}, tmp_path / "stage1.pt")
    torch.manual_seed(1)
    gltr = build_model("gltr", 7, backbone="tiny")
    head_before = {k: v.clone() for k, v in gltr.state_dict().items()
                   if not k.startswith("backbone.")}
    with pytest.raises(ValueError, match="does not match"):  # whole model: not the same net
        B.init_from_checkpoint(gltr, str(tmp_path / "stage1.pt"))
    B.init_from_checkpoint(gltr, str(tmp_path / "stage1.pt"), ["backbone"])
    src = stage1.state_dict()
    own = gltr.state_dict()
    backbone = [k for k in own if k.startswith("backbone.")]
    assert backbone and all(torch.equal(own[k], src[k]) for k in backbone)
    assert all(torch.equal(own[k], v) for k, v in head_before.items())
    with pytest.raises(ValueError, match="no such submodule"):
        B.init_from_checkpoint(gltr, str(tmp_path / "stage1.pt"), ["trunk"])
