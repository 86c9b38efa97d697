"""Attribute-driven model (vidreid/models/attribute.py): shapes, weights, confidence, configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vidreid.models import build_model
from vidreid.models.attribute import (
    AttributeDrivenReID,
    ConfidenceTemporalAggregation,
    attribute_confidence,
)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "vidreid" / "configs" / "attribute"
NUM_CLASSES = 10
GROUP_DIM = 16
TINY_CHANNELS = 256


def tiny_model(**kw) -> AttributeDrivenReID:
    torch.manual_seed(0)
    return build_model("attribute", NUM_CLASSES, backbone="tiny", group_dim=GROUP_DIM, **kw)


@pytest.mark.parametrize("t", [1, 3])
@pytest.mark.parametrize("training", [True, False])
def test_group_shapes_and_weights_sum_to_one_over_time(t: int, training: bool) -> None:
    model = tiny_model().train(training)
    b = 2
    with torch.no_grad():
        out = model(torch.randn(b, t, 3, 64, 32), return_extras=True)
    k, a = len(model.group_names), sum(model.attribute_sizes)
    assert model.group_names == ["body", "head", "upper", "lower", "accessories"]
    assert out["features"].shape == (b, TINY_CHANNELS + k * GROUP_DIM) == (b, model.feature_dim)
    assert ("logits" in out) == training
    assert out["attr_logits"].shape == (b, t, a)
    ex = out["extras"]
    assert ex["temporal_weight_labels"] == model.group_names
    w = ex["temporal_weights"]
    assert w.shape == ex["group_confidence"].shape == (b, k, t)
    assert ((w >= 0) & (w <= 1)).all()
    torch.testing.assert_close(w.sum(dim=-1), torch.ones(b, k))
    probs = ex["attr_probs"]
    assert probs.shape == (b, a)
    sums = torch.stack([p.sum(-1) for p in probs.split(model.attribute_sizes, -1)], -1)
    torch.testing.assert_close(sums, torch.ones_like(sums))  # a distribution per attribute


def test_confidence_is_one_for_certain_and_zero_for_uniform_predictions() -> None:
    conf = attribute_confidence(torch.tensor([[50.0, -50.0, -50.0], [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(conf, torch.tensor([1.0, 0.0]), atol=1e-4, rtol=0)


def test_confidently_recognised_frame_gets_more_weight() -> None:
    # frame 0: both attributes certain; frame 1: one certain, one unsure; frame 2: both uniform
    logits = torch.tensor([[[9.0, -9.0, 9.0, -9.0, -9.0],
                            [9.0, -9.0, 0.0, 0.0, 0.0],
                            [0.0, 0.0, 0.0, 0.0, 0.0]]])  # [B=1, T=3, 2 + 3]
    sub = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])  # [1, 3, d=2]
    feat, w, conf = ConfidenceTemporalAggregation()(sub, logits, [2, 3])
    assert w[0, 0] > w[0, 1] > w[0, 2]
    assert conf[0, 2] < 1e-4
    torch.testing.assert_close(feat, (sub * w.unsqueeze(-1)).sum(dim=1))


def test_weights_of_a_group_follow_only_its_own_classifiers() -> None:
    model = tiny_model().eval()
    head = model.classifiers["head"].fc
    with torch.no_grad():  # the head group predicts uniformly on every frame: equal weights
        head.weight.zero_()
        head.bias.zero_()
        out = model(torch.randn(2, 4, 3, 64, 32), return_extras=True)
    w = out["extras"]["temporal_weights"]
    g = model.group_names.index("head")
    torch.testing.assert_close(w[:, g], torch.full((2, 4), 0.25))
    assert not torch.allclose(w[:, model.group_names.index("upper")], torch.full((2, 4), 0.25))


@pytest.mark.parametrize("detach", [True, False])
def test_detach_confidence_stops_identity_gradient_into_classifiers(detach: bool) -> None:
    model = tiny_model(detach_confidence=detach).train()
    out = model(torch.randn(4, 3, 3, 64, 32))
    out["features"].sum().backward()
    grad = model.classifiers["upper"].fc.weight.grad
    assert (grad is None or not grad.any()) == detach


def test_encode_image_and_bad_arguments() -> None:
    model = tiny_model().eval()
    with torch.no_grad():
        assert model.encode_image(torch.randn(3, 3, 64, 32)).shape == (3, model.feature_dim)
    with pytest.raises(ValueError, match="group_dim"):
        build_model("attribute", NUM_CLASSES, backbone="tiny", group_dim=0)
    with pytest.raises(ValueError, match="'wings' of group 'x'"):
        build_model("attribute", NUM_CLASSES, backbone="tiny", groups={"x": ["wings"]})


def test_custom_groups_and_values_set_the_classifier_sizes() -> None:
    model = tiny_model(groups={"a": ["g"], "b": ["c1", "c2"]},
                       attribute_values={"g": ["m", "f"], "c1": list("xyz"), "c2": list("pq")})
    assert model.attribute_sizes == [2, 3, 2]
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 2, 3, 64, 32), return_extras=True)
    assert out["attr_logits"].shape == (1, 2, 7)
    assert out["extras"]["temporal_weights"].shape == (1, 2, 2)


def test_extras_plot_with_viz_attention(tmp_path: Path) -> None:
    import numpy as np

    from vidreid.viz.attention import draw_temporal_weights

    model = tiny_model().eval()
    with torch.no_grad():
        ex = model(torch.randn(1, 3, 3, 64, 32), return_extras=True)["extras"]
    frames = [np.zeros((64, 32, 3), np.uint8)] * 3
    out = tmp_path / "w.png"
    draw_temporal_weights(frames, ex["temporal_weights"][0].numpy(), str(out),
                          labels=ex["temporal_weight_labels"])
    assert out.stat().st_size > 0


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_every_config_gives_the_loss_the_models_groups(path: Path) -> None:
    """(Loading and building every config: tests/test_configs.py.)"""
    from vidreid.engine.config import load_config

    cfg = load_config(path)
    assert cfg.loss.attribute.groups == cfg.model.groups  # the loss follows the model's groups


def test_paper_configuration_on_resnet50_at_small_resolution() -> None:
    from vidreid import build as B
    from vidreid.engine.config import load_config

    cfg = load_config(CONFIG_DIR / "mars.yaml")
    assert (cfg.data.seq_len, cfg.optim.name, cfg.optim.lr, cfg.sched.step_size,
            cfg.train.epochs, cfg.data.batch_size) == (8, "sgd", 0.05, 40, 100, 32)
    assert list(cfg.data.transforms.resize_crop) == [288, 144]
    model = B.build_model(cfg, NUM_CLASSES).train()
    out = model(torch.randn(2, 2, 3, 64, 32), return_extras=True)
    assert out["features"].shape == (2, 2048 + 5 * 256)
    assert out["logits"].shape == (2, NUM_CLASSES)
    assert out["extras"]["temporal_weights"].shape == (2, 5, 2)
