"""GLTR (vidreid/models/gltr.py): shapes, DTP neighbours, TSA attention, zero-init, chunking."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vidreid import build as builder
from vidreid.engine.config import load_config
from vidreid.models import build_model
from vidreid.models.gltr import (
    GLTR,
    DilatedTemporalPyramid,
    GLTRHead,
    GLTRTemporalHead,
    TemporalSelfAttention,
)

H, W = 32, 16  # tiny frames keep the tests fast
NUM_CLASSES = 10
PAPER_DATASETS = ("mars", "dukev", "ilidsvid", "prid2011", "lsvid")
CONFIGS = sorted((Path(__file__).parents[2] / "vidreid" / "configs" / "gltr").glob("*.yaml"))


def tiny_gltr(**kw) -> GLTR:
    torch.manual_seed(0)
    return build_model("gltr", NUM_CLASSES, backbone="tiny", **kw)


@pytest.mark.parametrize("t", [1, 2, 16])
def test_train_shapes_and_extras(t: int) -> None:
    model = tiny_gltr().train()
    out = model(torch.randn(2, t, 3, H, W), return_extras=True)
    assert out["features"].shape == (2, 512)
    assert out["logits"].shape == (2, NUM_CLASSES)
    assert out["extras"]["temporal_attention"].shape == (2, t, t)
    weights = out["extras"]["temporal_weights"]
    assert weights.shape == (2, t)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2))


def test_eval_returns_features_only_without_extras() -> None:
    model = tiny_gltr().eval()
    with torch.no_grad():
        out = model(torch.randn(3, 4, 3, H, W))
    assert set(out) == {"features"}
    assert out["features"].shape == (3, model.feature_dim)


def test_eval_features_are_the_gltr_of_the_backbone_frames() -> None:
    """Eval ``features`` = temporal mean of DTP + TSA over the backbone's GAP frame features."""
    model = tiny_gltr().eval()
    clips = torch.randn(2, 5, 3, H, W)
    with torch.no_grad():
        frames = model.backbone(clips.flatten(0, 1)).mean(dim=(2, 3)).view(2, 5, -1)
        expected, _ = model.head(frames)
        out = model(clips)["features"]
    assert out.shape == (2, 512)
    torch.testing.assert_close(out, expected)


def test_900_frames_in_one_chunked_pass() -> None:
    """A MARS-length tracklet in one pass; the backbone never sees more than frame_chunk frames."""
    chunk = 128
    model = tiny_gltr(frame_chunk=chunk).eval()
    seen: list[int] = []
    model.backbone.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[0]))
    with torch.no_grad():
        out = model(torch.randn(1, 900, 3, 16, 8), return_extras=True)  # tiny frames
    assert out["features"].shape == (1, 512)
    assert out["extras"]["temporal_weights"].shape == (1, 900)
    assert max(seen) == chunk and sum(seen) == 900


def test_chunking_does_not_change_the_features() -> None:
    model = tiny_gltr(frame_chunk=7).train()
    seen: list[int] = []
    model.backbone.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[0]))
    model(torch.randn(2, 5, 3, H, W))
    assert seen == [10]  # training: one pass, BatchNorm statistics over the whole batch
    model.eval()
    clip = torch.randn(2, 20, 3, H, W)
    with torch.no_grad():
        chunked = model(clip)["features"]
        model.frame_chunk = None
        whole = model(clip)["features"]
    torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-5)


def test_dtp_sees_the_right_neighbours() -> None:
    """A unit impulse at frame t0 reaches exactly frames t0 - r, t0, t0 + r of branch r."""
    t, t0 = 12, 5
    dtp = DilatedTemporalPyramid(1, dilations=(1, 2, 3))
    taps = torch.tensor([1.0, 10.0, 100.0])  # out_t = 1 x_{t-r} + 10 x_t + 100 x_{t+r}
    for branch in dtp.branches:
        branch.weight.data.copy_(taps.view(1, 1, 3))
    x = torch.zeros(1, 1, t)
    x[0, 0, t0] = 1.0
    out = dtp(x)
    assert out.shape == (1, 4, t)  # input + 3 branches, same length
    torch.testing.assert_close(out[0, 0], x[0, 0])  # the input is passed through
    for k, r in enumerate((1, 2, 3), start=1):
        expected = torch.zeros(t)
        expected[t0 + r] = 1.0  # frame t0 + r reads its left neighbour t0
        expected[t0] = 10.0
        expected[t0 - r] = 100.0  # frame t0 - r reads its right neighbour t0
        torch.testing.assert_close(out[0, k], expected)


def test_dtp_pads_with_zeros_at_the_clip_ends() -> None:
    dtp = DilatedTemporalPyramid(1, dilations=(2,))
    dtp.branches[0].weight.data.fill_(1.0)
    x = torch.arange(1.0, 5.0).view(1, 1, 4)  # frames 1, 2, 3, 4
    torch.testing.assert_close(dtp(x)[0, 1], torch.tensor([1.0 + 3, 2 + 4, 3 + 1, 4 + 2]))


def test_dtp_rejects_bad_dilations() -> None:
    with pytest.raises(ValueError, match="dilations"):
        DilatedTemporalPyramid(8, dilations=())
    with pytest.raises(ValueError, match="dilations"):
        DilatedTemporalPyramid(8, dilations=(1, 0))


def test_tsa_rows_sum_to_one_and_weights_are_column_means() -> None:
    torch.manual_seed(0)
    tsa = TemporalSelfAttention(16)
    _, attention = tsa(torch.randn(3, 16, 7) * 3)
    torch.testing.assert_close(attention.sum(dim=-1), torch.ones(3, 7))
    assert (attention > 0).all()
    assert not torch.allclose(attention, torch.full_like(attention, 1 / 7))  # not trivially flat

    model = tiny_gltr().eval()
    with torch.no_grad():
        extras = model(torch.randn(2, 5, 3, H, W), return_extras=True)["extras"]
    torch.testing.assert_close(extras["temporal_weights"], extras["temporal_attention"].mean(dim=1))


def test_scaled_tsa_divides_the_logits_by_the_root_of_the_inner_width() -> None:
    """The paper's TSA is unscaled (default); ``scaled`` divides the logits by sqrt(C'), which
    keeps rows of large-norm inputs from collapsing onto one frame."""
    torch.manual_seed(0)
    plain = TemporalSelfAttention(16)  # inner 8
    scaled = TemporalSelfAttention(16, scaled=True)
    scaled.load_state_dict(plain.state_dict())
    x = torch.randn(2, 16, 6) * 20  # large norms, as trained features have
    _, a = plain(x)
    _, b = scaled(x)
    logits = torch.bmm(plain.theta(x).transpose(1, 2), plain.phi(x))
    torch.testing.assert_close(a, torch.softmax(logits, dim=-1))
    torch.testing.assert_close(b, torch.softmax(logits / 8 ** 0.5, dim=-1))

    def entropy(p: torch.Tensor) -> float:
        return float(-(p * p.clamp_min(1e-30).log()).sum(-1).mean())

    assert entropy(b) > entropy(a)


def test_tsa_starts_as_identity_and_learns() -> None:
    torch.manual_seed(0)
    tsa = TemporalSelfAttention(16).train()
    x = torch.randn(4, 16, 6)
    z, _ = tsa(x)
    torch.testing.assert_close(z, x)  # zero-initialised output BN
    opt = torch.optim.SGD(tsa.parameters(), lr=0.1)
    z.pow(2).sum().backward()
    opt.step()
    z_after, _ = tsa(x)
    assert not torch.allclose(z_after, x)


def test_head_at_init_is_the_temporal_mean_of_the_pyramid() -> None:
    torch.manual_seed(0)
    head = GLTRHead(in_channels=32, reduced_dim=8, dilations=(1, 2)).eval()
    frames = torch.randn(2, 6, 32)
    gltr, _ = head(frames)
    expected = head.dtp(head.reduction(frames).transpose(1, 2)).mean(dim=2)
    assert gltr.shape == (2, 24)
    torch.testing.assert_close(gltr, expected)


def test_dilations_and_reduced_dim_set_the_descriptor_width() -> None:
    model = tiny_gltr(reduced_dim=16, dilations=(1, 2, 4, 8))
    assert model.feature_dim == 16 * 5
    assert model(torch.randn(2, 3, 3, H, W))["features"].shape == (2, 80)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="frame_chunk"):
        tiny_gltr(frame_chunk=0)
    with pytest.raises(ValueError, match=r"\[B, T, 3, H, W\]"):
        tiny_gltr()(torch.randn(2, 3, H, W))


def test_resnet50_paper_configuration_shape() -> None:
    """The paper's configuration (ResNet-50, last stride 1, d = 128) at a small resolution."""
    model = build_model("gltr", NUM_CLASSES, backbone="resnet50").eval()
    assert model.head.reduction.in_features == 2048
    with torch.no_grad():
        out = model(torch.randn(1, 2, 3, 64, 32), return_extras=True)
    assert out["features"].shape == (1, 512)
    assert out["extras"]["temporal_weights"].shape == (1, 2)


def test_configs_exist_for_every_dataset() -> None:
    names = {p.stem for p in CONFIGS}
    assert {*PAPER_DATASETS, "synth", "bench_gltr"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_and_builds(path: Path) -> None:
    """Every GLTR config loads and builds (backbone swapped to ``tiny`` to stay fast)."""
    cfg = load_config(path, ["model.backbone=tiny", "model.weights=null"])
    if path.stem == "mars_stage1":  # the paper's stage 1: a frame classifier, not GLTR
        assert cfg.model.name == "video_baseline" and cfg.data.seq_len == 1
        assert cfg.data.batch_size == 128
        return
    if path.stem == "bench_gltr_tp":  # GLTR's temporal module on the TP row's recipe
        tp = load_config(path.parent.parent / "baselines" / "bench_tp.yaml")
        assert cfg.model.name == "video_baseline" and cfg.model.head == "gltr"
        assert {k: v for k, v in cfg.model.items() if k not in ("head", "tsa_scaled")} == \
            {k: v for k, v in tp.model.items() if k != "head"} | {"backbone": "tiny",
                                                                   "weights": None}
        assert cfg.loss == tp.loss and cfg.optim == tp.optim and cfg.sched == tp.sched
        assert cfg.data.test_sampling == "all"
        return
    assert cfg.model.name == "gltr"
    assert cfg.data.test_sampling == "all" and cfg.data.max_clip_len is None
    model = builder.build_model(cfg, NUM_CLASSES).train()
    criterion = builder.build_criterion(cfg, NUM_CLASSES, model.feature_dim)
    out = model(torch.randn(2, 3, 3, H, W))
    assert out["logits"].shape == (2, NUM_CLASSES)
    if path.stem not in (*PAPER_DATASETS, "mars_e2e"):
        # synthetic recipe (synth.yaml): softmax + triplet on PK batches with positives
        assert set(criterion.terms) == {"cross_entropy", "triplet"}
        assert cfg.data.num_instances >= 2
    if path.stem in (*PAPER_DATASETS, "mars_e2e"):  # the paper's / code's recipe, real data
        assert set(criterion.terms) == {"cross_entropy"}  # softmax loss only, as the paper
        assert cfg.data.seq_len == 16 and cfg.data.batch_size == 10
        assert cfg.optim.name == "sgd" and cfg.optim.lr == 0.01
        assert cfg.sched.name == "step" and cfg.sched.step_size == 120
        assert cfg.sched.gamma == 0.1
        assert load_config(path).model.backbone == "resnet50"
        assert model.feature_dim == 512


def test_initialisation_follows_the_authors() -> None:
    """kanei1024/GLTR resnet.py:72-94: DTP N(0, 0.001), reduction kaiming fan-out, classifier
    N(0, 0.001), zero biases."""
    model = tiny_gltr()
    for branch in model.head.dtp.branches:
        assert abs(branch.weight.std().item() - 0.001) < 0.0002
    red = model.head.reduction
    expected = (2.0 / red.out_features) ** 0.5  # fan_out of a Linear weight [out, in]
    assert abs(red.weight.std().item() - expected) < 0.1 * expected
    assert torch.count_nonzero(red.bias) == 0
    linear = model.classifier[-1]
    assert abs(linear.weight.std().item() - 0.001) < 0.0003
    assert torch.count_nonzero(linear.bias) == 0


def test_ablation_without_dtp_and_tsa_is_temporal_average_of_reduced_features() -> None:
    """The paper's baseline: no DTP, no TSA -> mean over time of the reduced frame features."""
    torch.manual_seed(0)
    model = GLTR(num_classes=5, backbone="tiny", use_dtp=False, use_tsa=False).eval()
    clips = torch.randn(2, 6, 3, 32, 16)
    out = model(clips, return_extras=True)
    frames = model.frame_features(clips.flatten(0, 1)).view(2, 6, -1)
    assert out["features"].shape == (2, model.head.reduction.out_features)
    torch.testing.assert_close(out["features"], model.head.reduction(frames).mean(dim=1))
    torch.testing.assert_close(out["extras"]["temporal_weights"], torch.full((2, 6), 1 / 6))


def test_ablation_without_tsa_keeps_the_pyramid() -> None:
    torch.manual_seed(0)
    model = GLTR(num_classes=5, backbone="tiny", use_tsa=False).eval()
    clips = torch.randn(1, 5, 3, 32, 16)
    frames = model.frame_features(clips.flatten(0, 1)).view(1, 5, -1)
    local = model.head.dtp(model.head.reduction(frames).transpose(1, 2))
    torch.testing.assert_close(model(clips)["features"], local.mean(dim=2))
    assert model.feature_dim == local.shape[1]


def test_gltr_temporal_head_is_the_gltr_head_over_pooled_frames() -> None:
    """``video_baseline`` with ``head: gltr``: DTP + TSA + mean over the GAP'd frame maps,
    GLTR's extras and initialisation, the baseline's BNNeck around it."""
    torch.manual_seed(0)
    model = build_model("video_baseline", NUM_CLASSES, backbone="tiny", head="gltr",
                        tsa_scaled=True).eval()
    head = model.head
    assert isinstance(head, GLTRTemporalHead) and head.gltr.tsa.scale < 1.0
    for branch in head.gltr.dtp.branches:
        assert abs(branch.weight.std().item() - 0.001) < 0.0002
    fmaps = torch.randn(2, 6, model.backbone.out_channels, 4, 2)
    with torch.no_grad():
        feats, extras = head(fmaps, return_extras=True)
        expected, attention = head.gltr(fmaps.mean(dim=(3, 4)))
        pooled = head(head.summarize_frames(fmaps.flatten(0, 1)).view(2, 6, -1, 1, 1))
    torch.testing.assert_close(feats, expected)
    torch.testing.assert_close(pooled, expected)  # GAP'd frames are enough input
    assert feats.shape == (2, 512)
    torch.testing.assert_close(extras["temporal_attention"], attention)
    torch.testing.assert_close(extras["temporal_weights"], attention.mean(dim=1))
    out = model.train()(torch.randn(2, 3, 3, H, W), return_extras=True)
    assert out["logits"].shape == (2, NUM_CLASSES)
    assert out["extras"]["temporal_weights"].shape == (2, 3)
