"""Checkpoints of other toolkits as the whole frame encoder (vidreid/models/foreign.py) and
the OSNet backbones in torchreid's key layout. The checkpoints are built here from the
architectures (torchvision's ResNet-50, our OSNet written in torchreid's layout), saved in
each toolkit's file layout, and must give the toolkit's frame feature exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision import models as tvm

from vidreid import build as B
from vidreid.engine.config import load_config
from vidreid.models import build_backbone

SIZE = (64, 32)
TRAIN_IDS = 7  # the foreign classifier's width: dropped
FRAMES = 3


def _cfg(backbone: str, **model):
    return load_config({"data": {"height": SIZE[0], "width": SIZE[1]},
                        "model": {"name": "video_baseline", "backbone": backbone, "head": "tp",
                                  **model}})


def _frames(seed: int = 0) -> torch.Tensor:
    return torch.randn(FRAMES, 3, *SIZE, generator=torch.Generator().manual_seed(seed))


def _randomise_bn(net: torch.nn.Module, seed: int = 1) -> None:
    """Non-trivial BN statistics, so that a BN left at its initialisation is noticed."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def _video_feature(model: torch.nn.Module, frames: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(frames.unsqueeze(0))["features"][0]


def test_torchreid_resnet50_checkpoint_is_the_frame_encoder(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref = tvm.resnet50(weights=None).eval()  # torchreid's resnet50: torchvision's layers
    _randomise_bn(ref)
    state = {f"module.{k}": v for k, v in ref.state_dict().items() if not k.startswith("fc.")}
    state["module.classifier.weight"] = torch.randn(TRAIN_IDS, 2048)
    state["module.classifier.bias"] = torch.zeros(TRAIN_IDS)
    path = tmp_path / "model.pth.tar-60"
    torch.save({"state_dict": state, "epoch": 60, "rank1": 0.9}, path)
    # torchreid's resnet50: last stride 2, GAP, no neck
    model, _ = B.load_model(_cfg("resnet50", last_stride=2, bnneck=False), path)
    frames = _frames()
    with torch.no_grad():
        expected = torch.flatten(torch.nn.Sequential(*list(ref.children())[:-1])(frames), 1)
    torch.testing.assert_close(_video_feature(model, frames), expected.mean(0),
                               atol=1e-4, rtol=1e-4)
    # fine-tuning starts from it too
    fresh = B.build_model(_cfg("resnet50", last_stride=2, bnneck=False), 3).eval()
    B.init_from_checkpoint(fresh, str(path))
    torch.testing.assert_close(_video_feature(fresh, frames), expected.mean(0),
                               atol=1e-4, rtol=1e-4)


# torchreid's osnet_x0_25 layout (from its osnet.py): a few keys and shapes
OSNET_X0_25_KEYS = {
    "conv1.conv.weight": (16, 3, 7, 7),
    "conv2.0.conv1.conv.weight": (16, 16, 1, 1),
    "conv2.0.conv2d.3.conv2.weight": (16, 1, 3, 3),
    "conv2.0.gate.fc1.weight": (1, 16, 1, 1),
    "conv2.0.downsample.conv.weight": (64, 16, 1, 1),
    "conv2.2.0.conv.weight": (64, 64, 1, 1),
    "conv4.1.conv3.bn.running_var": (128,),
    "conv5.conv.weight": (128, 128, 1, 1),
    "fc.0.weight": (512, 128),
    "fc.1.running_mean": (512,),
}


def test_osnet_has_torchreids_key_layout() -> None:
    state = build_backbone("osnet_x0_25").state_dict()
    for key, shape in OSNET_X0_25_KEYS.items():
        assert tuple(state[key].shape) == shape, key
    maps = build_backbone("osnet_x0_25", fc_dim=None).eval()(_frames())
    assert maps.shape == (FRAMES, 128, SIZE[0] // 16, SIZE[1] // 16)


@pytest.mark.parametrize("arch", ["osnet_x0_25", "osnet_x1_0"])
def test_torchreid_osnet_checkpoint_is_the_frame_encoder(tmp_path: Path, arch: str) -> None:
    torch.manual_seed(0)
    ref = build_backbone(arch).eval()
    _randomise_bn(ref)
    state = {f"module.{k}": v for k, v in ref.state_dict().items()}
    state["module.classifier.weight"] = torch.randn(TRAIN_IDS, 512)
    state["module.classifier.bias"] = torch.zeros(TRAIN_IDS)
    path = tmp_path / "osnet.pth"
    torch.save({"state_dict": state, "epoch": 150}, path)
    model, _ = B.load_model(_cfg(arch, bnneck=False), path)
    frames = _frames()
    with torch.no_grad():
        expected = ref(frames).flatten(1).mean(0)  # torchreid's 512-d frame features, averaged
    torch.testing.assert_close(_video_feature(model, frames), expected, atol=1e-4, rtol=1e-4)


def _fastreid_state(ref: torch.nn.Module, neck: torch.nn.BatchNorm1d) -> dict:
    state = {f"backbone.{k}": v for k, v in ref.state_dict().items() if not k.startswith("fc.")}
    state.update({f"heads.bottleneck.0.{k}": v for k, v in neck.state_dict().items()})
    state["heads.weight"] = torch.randn(TRAIN_IDS, 2048)
    state["pixel_mean"] = torch.tensor([123.675, 116.28, 103.53]).view(1, -1, 1, 1)
    state["pixel_std"] = torch.tensor([58.395, 57.12, 57.375]).view(1, -1, 1, 1)
    return state


def test_fastreid_resnet50_checkpoint_with_its_bnneck(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref = tvm.resnet50(weights=None).eval()
    ref.layer4[0].conv2.stride = ref.layer4[0].downsample[0].stride = (1, 1)  # last stride 1
    neck = torch.nn.BatchNorm1d(2048).eval()
    _randomise_bn(ref)
    _randomise_bn(neck, seed=2)
    path = tmp_path / "model_final.pth"
    torch.save({"model": _fastreid_state(ref, neck), "iteration": 100}, path)
    model, _ = B.load_model(_cfg("resnet50", bnneck=True, neck_feat="after"), path)
    frames = _frames()
    with torch.no_grad():
        pooled = torch.flatten(torch.nn.Sequential(*list(ref.children())[:-1])(frames), 1)
        expected = neck(pooled.mean(0, keepdim=True))[0]  # TP, then FastReID's BNNeck
    torch.testing.assert_close(_video_feature(model, frames), expected, atol=1e-3, rtol=1e-4)

    bad = _fastreid_state(ref, neck)
    bad["pixel_mean"] = torch.zeros(1, 3, 1, 1)
    torch.save({"model": bad}, tmp_path / "other_norm.pth")
    with pytest.raises(ValueError, match="pixel_mean"):
        B.load_model(_cfg("resnet50"), tmp_path / "other_norm.pth")


def test_unrecognised_layout_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"encoder.block0.weight": torch.ones(4, 3, 3, 3)}, path)
    with pytest.raises(ValueError, match="layout not recognised.*torchreid.*FastReID"):
        B.load_model(_cfg("tiny"), path)


def test_deep_sort_mobilenetv2_file_is_accepted_as_weights(tmp_path: Path) -> None:
    from vidreid.models.backbones.weights import imagenet_weights_path
    from vidreid.retrieval.extractor import open_extractor

    config = tmp_path / "mobilenet.yaml"
    config.write_text("data: {test_sampling: all}\n"
                      "model: {name: video_baseline, backbone: mobilenetv2, head: tp,"
                      " bnneck: false, last_stride: 2}\n")
    by_weights = open_extractor(str(config), imagenet_weights_path(), amp="off")
    zero_shot = open_extractor("imagenet", amp="off")
    frames = [torch.randint(0, 255, (FRAMES, 3, 96, 48), dtype=torch.uint8)]
    torch.testing.assert_close(by_weights.tracklets(frames), zero_shot.tracklets(frames))
