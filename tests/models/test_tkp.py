from pathlib import Path

import pytest
import torch

from vidreid import build as builder
from vidreid.engine.config import load_config
from vidreid.engine.inference import extract_features
from vidreid.models import build_backbone, build_model
from vidreid.models.nonlocal_block import FrameNonLocal, NonLocalBlock
from vidreid.models.tkp import TKP

B, T, H, W, K = 2, 3, 64, 32, 5
CONFIGS = sorted((Path(__file__).resolve().parents[2] / "vidreid" / "configs" / "tkp").glob("*.yaml"))
TINY = dict(backbone="tiny", layer2_blocks=[0], layer3_blocks=[0])


def _tiny() -> TKP:
    torch.manual_seed(0)
    return build_model("tkp", K, **TINY)


def test_train_outputs_of_both_networks() -> None:
    model = _tiny().train()
    out = model(torch.randn(B, T, 3, H, W))
    d = model.feature_dim
    shapes = {k: tuple(v.shape) for k, v in out.items()}
    assert shapes == {
        "features": (B, d), "logits": (B, K), "image_features": (B, T, d),
        "image_logits": (B, T, K), "video_frame_features": (B, T, d),
    }
    # video feature = temporal mean of the video network's frame features
    torch.testing.assert_close(out["features"], out["video_frame_features"].mean(1))
    # one classifier shared by both networks
    torch.testing.assert_close(out["image_logits"], model.classifier(out["image_features"]))
    torch.testing.assert_close(out["logits"], model.classifier(out["features"]))


def test_eval_features_are_the_video_network_and_encode_image_the_image_network() -> None:
    model = _tiny().eval()
    clips = torch.randn(B, T, 3, H, W)
    with torch.no_grad():
        out = model(clips, return_extras=True)
        assert set(out) == {"features", "extras"}
        torch.testing.assert_close(out["features"], model.video_frame_features(clips).mean(1))
        image = model.encode_image(clips[:, 0])
        ref = model.pool(model.image_net(clips[:, 0])).flatten(1)
    assert tuple(image.shape) == (B, model.feature_dim)
    torch.testing.assert_close(image, ref)


def test_image_side_of_the_evaluation_uses_encode_image() -> None:
    model = _tiny()
    with torch.no_grad():  # make the two networks differ
        for p in model.image_net.parameters():
            p.add_(0.1)
    frames = torch.randn(3, 1, 3, H, W)
    dataset = [(frames[i], i) for i in range(3)]
    feats = extract_features(model, dataset, 3, image=True, amp="off", channels_last=False)
    with torch.no_grad():
        expected = model.eval().encode_image(frames[:, 0])
        video = model(frames)["features"]
    torch.testing.assert_close(feats, expected)
    assert not torch.allclose(feats, video)


def test_nonlocal_blocks_start_as_identity() -> None:
    model = _tiny().eval()
    plain = build_backbone("tiny", last_stride=1).eval()
    missing, unexpected = plain.load_state_dict(model.video_net.state_dict(), strict=False)
    assert not missing and all("nonlocal" in k for k in unexpected) and unexpected
    frames = torch.randn(B * T, 3, H, W)
    with torch.no_grad():
        video = model.video_frame_features(frames.reshape(B, T, 3, H, W))
        ref = model.pool(plain(frames)).flatten(1).reshape(B, T, -1)
    torch.testing.assert_close(video, ref)


def test_nonlocal_convs_are_he_initialised_with_fan_out() -> None:
    torch.manual_seed(0)
    model = build_model("tkp", K, backbone="tiny", layer2_blocks=[0], layer3_blocks=[0])
    blocks = [m for m in model.video_net.modules() if isinstance(m, NonLocalBlock)]
    assert len(blocks) == 2
    for block in blocks:
        for conv in (block.theta, block.phi, block.g, block.W[0]):
            std = (2.0 / conv.out_channels) ** 0.5
            assert conv.weight.std().item() == pytest.approx(std, rel=0.1)
        assert not block.W[1].weight.any() and not block.W[1].bias.any()


def test_resnet50_configuration_small_input() -> None:
    torch.manual_seed(0)
    model = build_model("tkp", K).eval()
    names = {n for n, m in model.video_net.named_modules() if isinstance(m, FrameNonLocal)}
    assert names == {"layer2.nonlocal1", "layer2.nonlocal3",
                     "layer3.nonlocal1", "layer3.nonlocal3", "layer3.nonlocal5"}
    assert not any(isinstance(m, FrameNonLocal) for m in model.image_net.modules())
    assert model.feature_dim == 2048
    with torch.no_grad():
        out = model(torch.randn(1, 2, 3, 64, 32))
        img = model.encode_image(torch.randn(1, 3, 64, 32))
    assert tuple(out["features"].shape) == (1, 2048) and tuple(img.shape) == (1, 2048)


@pytest.mark.parametrize("bad", [torch.randn(B, 3, H, W), torch.randn(B, T, 1, H, W)])
def test_bad_clip_shape(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"\[B, T, 3, H, W\]"):
        _tiny()(bad)


def test_bad_image_shape() -> None:
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        _tiny().encode_image(torch.randn(B, T, 3, H, W))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_config_has_the_tkp_terms_and_protocols(path: Path) -> None:
    """(Loading and building every config: tests/test_configs.py.)"""
    cfg = load_config(path)
    assert cfg.model.name == "tkp"
    assert {"i2v", "v2v"} <= set(cfg.eval.protocols)
    small = load_config(path, [f"model.{k}={v}" for k, v in TINY.items()])
    criterion = builder.build_criterion(small, 10, 16)
    assert {"tkp_cross_entropy", "integrated_triplet"} <= set(criterion.terms)
