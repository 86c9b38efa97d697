import pytest
import torch

from vidreid.models import build_model
from vidreid.models.base import VideoReIDModel

B, H, W, K = 2, 64, 32, 5


def _tiny(**kw) -> VideoReIDModel:
    torch.manual_seed(0)
    return build_model("video_baseline", K, backbone="tiny", **kw)


@pytest.mark.parametrize("head", ["tp", "tmp", "ta", "rnn"])
@pytest.mark.parametrize("t", [1, 3])
def test_train_and_eval_outputs(head: str, t: int) -> None:
    model = _tiny(head=head)
    clips = torch.randn(B, t, 3, H, W)
    out = model.train()(clips)
    assert tuple(out["features"].shape) == (B, model.feature_dim)
    assert tuple(out["logits"].shape) == (B, K)
    out = model.eval()(clips, return_extras=True)
    assert set(out) == {"features", "extras"}
    assert tuple(out["features"].shape) == (B, model.feature_dim)
    if head == "ta":
        assert tuple(out["extras"]["temporal_attention"].shape) == (B, t)


def test_without_bnneck_and_with_embedding() -> None:
    model = _tiny(bnneck=False, embed_dim=12).train()
    out = model(torch.randn(B, 2, 3, H, W))
    assert model.feature_dim == 12 and tuple(out["logits"].shape) == (B, K)
    model.eval()
    clips = torch.randn(B, 2, 3, H, W)
    assert torch.equal(model(clips)["features"], model(clips)["features"])


def test_frame_chunk_gives_the_same_features() -> None:
    clips = torch.randn(B, 3, 3, H, W)
    full = _tiny(head="ta").eval()
    chunked = _tiny(head="ta", frame_chunk=2).eval()
    chunked.load_state_dict(full.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(chunked(clips)["features"], full(clips)["features"])


def test_channels_last_and_encode_image() -> None:
    model = _tiny().eval()
    clips = torch.randn(B, 2, 3, H, W)
    frames_cl = clips.flatten(0, 1).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = model(clips)["features"]
        out = model(frames_cl.view(B, 2, 3, H, W))["features"]
        torch.testing.assert_close(out, ref)
        img = model.encode_image(clips[:, 0])
    assert tuple(img.shape) == (B, model.feature_dim)


def test_bad_input_shape() -> None:
    with pytest.raises(ValueError, match=r"\[B, T, 3, H, W\]"):
        _tiny()(torch.randn(B, 3, H, W))


def test_nonlocal_model_starts_equal_to_tp_baseline() -> None:
    nl = build_model(
        "nonlocal", K, backbone="tiny", layer2_blocks=(0,), layer3_blocks=(0,), frame_chunk=4
    ).eval()
    tp = _tiny().eval()
    missing, unexpected = tp.load_state_dict(nl.state_dict(), strict=False)
    assert not missing and all(".nonlocal0." in k for k in unexpected) and unexpected
    for t in (1, 3):
        clips = torch.randn(B, t, 3, H, W)
        with torch.no_grad():
            torch.testing.assert_close(nl(clips)["features"], tp(clips)["features"])


def test_nonlocal_default_is_resnet50_with_tkp_blocks() -> None:
    model = build_model("nonlocal", K)
    names = [n for n, _ in model.backbone.named_children()]
    assert names[:2] == ["stem", "layer1"]
    assert [n for n, _ in model.backbone.layer2.named_children()] == [
        "0", "1", "nonlocal1", "2", "3", "nonlocal3"
    ]
    assert sum(n.startswith("nonlocal") for n, _ in model.backbone.layer3.named_children()) == 3
    model.eval()
    with torch.no_grad():  # the single ResNet-50 forward of the suite: T = 2, 32x16
        assert tuple(model(torch.randn(1, 2, 3, 32, 16))["features"].shape) == (1, 2048)


@pytest.mark.parametrize("name", ["video_baseline", "cosam", "attribute"])
def test_frame_chunk_splits_the_backbone_batch_only_in_eval(name: str) -> None:
    """Batch norm must see the whole training batch; frame_chunk only bounds test memory."""
    torch.manual_seed(0)
    model = build_model(name, K, backbone="tiny", frame_chunk=4)  # one clip per pass
    calls: list[int] = []
    model.backbone.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    clips = torch.randn(B, 4, 3, H, W)
    model.train()(clips)
    assert calls == [B * 4]
    calls.clear()
    with torch.no_grad():
        model.eval()(clips)
    assert calls == [4] * B
