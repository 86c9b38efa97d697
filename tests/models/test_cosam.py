"""COSAM (vidreid/models/cosam.py): shapes, masks, invariances, gradients, configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vidreid.models import build_model
from vidreid.models.cosam import COSAM, COSAMNet, insert_cosam, snippet_indices

CONFIG_DIR = Path(__file__).resolve().parents[2] / "vidreid" / "configs" / "cosam"
NUM_CLASSES = 10


def tiny_cosam(**kw) -> COSAMNet:
    torch.manual_seed(0)
    return build_model("cosam", num_classes=NUM_CLASSES, backbone="tiny", **kw)


@pytest.mark.parametrize(("t", "hw"), [(1, (64, 32)), (2, (64, 32)), (3, (96, 48)),
                                       (4, (128, 64)), (6, (80, 48))])
@pytest.mark.parametrize("training", [True, False])
def test_shapes_and_masks_in_unit_interval(t: int, hw: tuple[int, int], training: bool) -> None:
    model = tiny_cosam().train(training)
    b = 2
    with torch.no_grad():
        out = model(torch.randn(b, t, 3, *hw), return_extras=True)
    assert out["features"].shape == (b, model.feature_dim)
    assert ("logits" in out) == training
    if training:
        assert out["logits"].shape == (b, NUM_CLASSES)
    spatial, channel = out["extras"]["spatial_masks"], out["extras"]["channel_masks"]
    assert set(spatial) == set(channel) == {"layer3", "layer4"}
    h, w = hw[0] // 16, hw[1] // 16  # tiny: /16 at layer3 and (last stride 1) at layer4
    for stage, c in (("layer3", 128), ("layer4", 256)):
        assert spatial[stage].shape == (b, t, h, w)
        assert channel[stage].shape == (b, c)
        for m in (spatial[stage], channel[stage]):
            assert torch.isfinite(m).all() and m.min() >= 0 and m.max() <= 1


def test_no_extras_unless_asked() -> None:
    out = tiny_cosam().eval()(torch.randn(1, 4, 3, 64, 32))
    assert "extras" not in out


def _module() -> COSAM:
    torch.manual_seed(0)
    module = COSAM(64).eval()
    for bn in (module.dim_reduction[1], module.spatial_mask_summary[1]):  # non-trivial stats
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    return module


def test_frame_mask_invariant_to_order_of_other_frames() -> None:
    module = _module()
    x = torch.randn(1, 5, 64, 6, 4)
    perm = torch.tensor([0, 3, 1, 4, 2])  # frame 0 stays, the others are shuffled
    with torch.no_grad():
        _, mask, channel = module(x)
        _, mask_perm, channel_perm = module(x[:, perm])
    torch.testing.assert_close(mask_perm[:, 0], mask[:, 0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(mask_perm, mask[:, perm], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(channel_perm, channel, rtol=1e-5, atol=1e-6)


def test_frame_mask_depends_on_the_other_frames() -> None:
    module = _module()
    x = torch.randn(1, 4, 64, 6, 4)
    y = x.clone()
    y[:, 1:] = torch.randn(1, 3, 64, 6, 4)  # same frame 0, different partners
    with torch.no_grad():
        _, mask_x, _ = module(x)
        _, mask_y, _ = module(y)
    assert (mask_x[:, 0] - mask_y[:, 0]).abs().max() > 1e-3


def test_single_frame_equals_snippet_of_copies() -> None:
    """T = 1 (eval): the frame is its own partner, i.e. what a cycled 1-frame snippet gives."""
    model = tiny_cosam().eval()
    frame = torch.randn(2, 1, 3, 64, 32)
    with torch.no_grad():
        one = model(frame, return_extras=True)
        copies = model(frame.expand(-1, 4, -1, -1, -1), return_extras=True)
        image = model.encode_image(frame[:, 0])
    torch.testing.assert_close(one["features"], copies["features"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(image, one["features"])
    for stage in ("layer3", "layer4"):
        torch.testing.assert_close(
            one["extras"]["spatial_masks"][stage][:, 0],
            copies["extras"]["spatial_masks"][stage][:, 0], rtol=1e-4, atol=1e-5,
        )


def test_long_clip_is_the_mean_of_its_snippets() -> None:
    model = tiny_cosam(snippet_len=4).eval()
    clip = torch.randn(1, 6, 3, 64, 32)
    assert snippet_indices(6, 4).tolist() == [[0, 1, 2, 3], [4, 5, 4, 5]]
    with torch.no_grad():
        whole = model(clip, return_extras=True)
        first = model(clip[:, :4], return_extras=True)
        last = model(clip[:, [4, 5, 4, 5]], return_extras=True)
    torch.testing.assert_close(
        whole["features"], (first["features"] + last["features"]) / 2, rtol=1e-4, atol=1e-5
    )
    masks = whole["extras"]["spatial_masks"]["layer4"]
    assert masks.shape[1] == 6
    torch.testing.assert_close(masks[:, :4], first["extras"]["spatial_masks"]["layer4"])
    torch.testing.assert_close(masks[:, 4:], last["extras"]["spatial_masks"]["layer4"][:, :2])


def test_frame_chunk_gives_the_same_output() -> None:
    clips = torch.randn(3, 4, 3, 64, 32)
    whole, chunked = tiny_cosam().eval(), tiny_cosam(frame_chunk=5).eval()
    with torch.no_grad():
        a, b = whole(clips, return_extras=True), chunked(clips, return_extras=True)
    torch.testing.assert_close(a["features"], b["features"])
    torch.testing.assert_close(
        a["extras"]["spatial_masks"]["layer3"], b["extras"]["spatial_masks"]["layer3"]
    )


def test_gradients_reach_backbone_and_modules() -> None:
    model = tiny_cosam().train()
    out = model(torch.randn(4, 4, 3, 64, 32))
    (out["logits"].logsumexp(1).mean() + out["features"].pow(2).mean()).backward()
    stem_grad = model.backbone.stem[0].conv.weight.grad
    assert stem_grad is not None and stem_grad.abs().sum() > 0
    for stage, module in model.cosams.items():
        for name, p in module.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{stage}.{name}"


def test_resnet50_cosam45_shapes() -> None:
    torch.manual_seed(0)
    model = build_model("cosam", num_classes=NUM_CLASSES, backbone="resnet50").eval()
    assert model.cosams["layer3"].cosam.mid_channels == 256  # C' of a 1024-channel map
    with torch.no_grad():
        out = model(torch.randn(1, 2, 3, 64, 32), return_extras=True)
    assert out["features"].shape == (1, 2048)
    assert out["extras"]["spatial_masks"]["layer3"].shape == (1, 2, 4, 2)
    assert out["extras"]["spatial_masks"]["layer4"].shape == (1, 2, 4, 2)  # last stride 1
    assert out["extras"]["channel_masks"]["layer3"].shape == (1, 1024)


def test_bad_arguments_name_the_problem() -> None:
    with pytest.raises(ValueError, match="cosam_stages"):
        tiny_cosam(cosam_stages=["conv4"])
    with pytest.raises(ValueError, match="snippet_len"):
        tiny_cosam(snippet_len=0)
    with pytest.raises(ValueError, match="COSAM needs a backbone with stages"):
        insert_cosam(torch.nn.Conv2d(3, 8, 3))  # no stem / stage_names / stage_channels
    with pytest.raises(ValueError, match=r"\[B, T, 3, H, W\]"):
        tiny_cosam()(torch.randn(4, 3, 64, 32))


def test_configs_name_cosam_for_every_dataset() -> None:
    """(Loading and building every config: tests/test_configs.py.)"""
    from vidreid.engine.config import load_config

    paths = sorted(CONFIG_DIR.glob("*.yaml"))
    assert {p.stem for p in paths} >= {"mars", "dukev", "ilidsvid", "synth"}
    assert all(load_config(p).model.name == "cosam" for p in paths)
