import pytest
import torch
import torchvision
from torch import nn

from vidreid.models import build_backbone
from vidreid.models.backbones.weights import load_pretrained


def _assert_same(backbone: nn.Module, tv_state: dict) -> None:
    ours = backbone.state_dict()
    for key, value in tv_state.items():
        if key.startswith("fc."):
            continue
        ours_key = "stem." + key if key.startswith(("conv1.", "bn1.")) else key
        assert torch.equal(ours[ours_key], value), key


def test_torchvision_resnet50_file_loads(tmp_path) -> None:
    tv_state = torchvision.models.resnet50(weights=None).state_dict()
    for value in tv_state.values():  # make every tensor distinct from a fresh init
        if value.is_floating_point():
            value.uniform_()
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(tv_state, path)
    backbone = build_backbone("resnet50")
    report = load_pretrained(backbone, path)
    _assert_same(backbone, tv_state)
    assert sorted(report.ignored) == ["fc.bias", "fc.weight"]


@pytest.mark.parametrize("wrap", ["module_prefix", "state_dict", "model"])
def test_wrapped_files_load(tmp_path, wrap: str) -> None:
    tv_state = torchvision.models.resnet18(weights=None).state_dict()
    if wrap == "module_prefix":
        obj = {"module." + k: v for k, v in tv_state.items()}
    else:
        obj = {wrap: tv_state, "epoch": torch.tensor(3)}
    path = tmp_path / "w.pth"
    torch.save(obj, path)
    _assert_same(build_backbone("resnet18", weights=str(path)), tv_state)


def test_old_files_without_bn_counters_load(tmp_path) -> None:
    tv_state = torchvision.models.resnet18(weights=None).state_dict()
    old = {k: v for k, v in tv_state.items() if not k.endswith("num_batches_tracked")}
    torch.save(old, tmp_path / "old.pth")
    _assert_same(build_backbone("resnet18", weights=str(tmp_path / "old.pth")), old)


def test_missing_file_says_what_to_do(tmp_path) -> None:
    path = tmp_path / "nowhere.pth"
    with pytest.raises(FileNotFoundError, match="resnet50-0676ba61.pth") as err:
        build_backbone("resnet50", weights=str(path))
    assert str(path) in str(err.value) and "model.weights" in str(err.value)


def test_wrong_shape_names_the_key(tmp_path) -> None:
    tv_state = torchvision.models.resnet18(weights=None).state_dict()
    tv_state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(tv_state, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"layer1\.0\.conv1\.weight.*\(64, 64, 1, 1\)"):
        build_backbone("resnet18", weights=str(tmp_path / "bad.pth"))
    # Not strict: the rest loads and the mismatch is reported.
    backbone = build_backbone("resnet18")
    report = load_pretrained(backbone, tmp_path / "bad.pth", strict_backbone=False)
    assert report.mismatched and report.mismatched[0].startswith("layer1.0.conv1.weight")
    assert torch.equal(backbone.layer4[1].bn2.weight, tv_state["layer4.1.bn2.weight"])


def test_file_for_another_network_is_refused(tmp_path) -> None:
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ValueError, match="missing from the file: layer1.2"):
        build_backbone("resnet34", weights=str(tmp_path / "r18.pth"))


def test_pickled_module_is_refused_with_instructions(tmp_path) -> None:
    torch.save(nn.Linear(2, 2), tmp_path / "model.pt")  # a whole module, not a state dict
    with pytest.raises(ValueError, match=r"state_dict\(\)"):
        load_pretrained(build_backbone("tiny"), tmp_path / "model.pt")
