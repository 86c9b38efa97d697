import pytest
import torch
import torch.nn.functional as F

from vidreid.losses import build_criterion
from vidreid.losses.tkp import (
    IntegratedTriplet,
    TKPCrossEntropy,
    TKPDistance,
    TKPFeature,
    cross_batch_hard,
)
from vidreid.models import build_model

B, T, D, K = 4, 3, 8, 5
PIDS = torch.tensor([0, 0, 1, 1])


def _frames(requires_grad: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    image = torch.randn(B, T, D, requires_grad=requires_grad)
    video = torch.randn(B, T, D, requires_grad=requires_grad)
    return image, video


@pytest.mark.parametrize("term", [TKPFeature, TKPDistance])
def test_tkp_terms_zero_when_networks_agree_positive_otherwise(term: type) -> None:
    image, video = _frames()
    loss = term()
    agree = loss({"image_features": video.clone(), "video_frame_features": video}, PIDS)
    differ = loss({"image_features": image, "video_frame_features": video}, PIDS)
    assert agree.item() == pytest.approx(0.0, abs=1e-6)
    assert differ.item() > 0.1


def test_tkp_feature_value() -> None:
    image, video = _frames()
    out = TKPFeature()({"image_features": image, "video_frame_features": video}, PIDS)
    expected = ((image - video) ** 2).sum(-1).mean()
    torch.testing.assert_close(out, expected)


def test_tkp_distance_only_sees_distances() -> None:
    image, _ = _frames()
    shifted = image + 3.0  # same pairwise distances, different features
    loss = TKPDistance()({"image_features": image, "video_frame_features": shifted}, PIDS)
    assert loss.item() == pytest.approx(0.0, abs=1e-5)
    feat = TKPFeature()({"image_features": image, "video_frame_features": shifted}, PIDS)
    assert feat.item() == pytest.approx(9.0 * D, rel=1e-5)


@pytest.mark.parametrize("term", [TKPFeature, TKPDistance])
@pytest.mark.parametrize("backprop", [False, True])
def test_detach_option_on_the_video_side(term: type, backprop: bool) -> None:
    image, video = _frames(requires_grad=True)
    loss = term(backprop_to_video=backprop)(
        {"image_features": image, "video_frame_features": video}, PIDS)
    loss.backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    if backprop:
        assert video.grad is not None and video.grad.abs().sum() > 0
    else:
        assert video.grad is None


@pytest.mark.parametrize("backprop", [False, True])
def test_tkp_terms_do_not_reach_the_video_network_by_default(backprop: bool) -> None:
    torch.manual_seed(0)
    model = build_model("tkp", K, backbone="tiny", layer2_blocks=[0], layer3_blocks=[0]).train()
    criterion = build_criterion({"tkp_feature": {"backprop_to_video": backprop},
                                 "tkp_distance": {"backprop_to_video": backprop}})
    loss, _ = criterion(model(torch.randn(B, 2, 3, 64, 32)), PIDS)
    loss.backward()
    video_grads = [p.grad for p in model.video_net.parameters()]
    assert all(p.grad is not None for p in model.image_net.parameters())
    if backprop:
        assert any(g is not None and g.abs().sum() > 0 for g in video_grads)
    else:
        assert all(g is None for g in video_grads)


def test_cross_batch_hard() -> None:
    anchors = torch.tensor([[0.0], [10.0]])
    others = torch.tensor([[1.0], [3.0], [9.0]])
    d_pos, d_neg, valid = cross_batch_hard(
        anchors, torch.tensor([0, 1]), others, torch.tensor([0, 0, 1]))
    torch.testing.assert_close(d_pos, torch.tensor([3.0, 1.0]))
    torch.testing.assert_close(d_neg, torch.tensor([9.0, 7.0]))
    assert valid.all()


def test_integrated_triplet_values() -> None:
    same = torch.zeros(B, D)
    collapsed = {"features": same, "image_features": torch.zeros(B, T, D)}
    # every distance 0: each part is relu(0 - 0 + margin) = margin
    assert IntegratedTriplet()(collapsed, PIDS).item() == pytest.approx(4 * 0.3)
    assert IntegratedTriplet(pairs=["i2v"])(collapsed, PIDS).item() == pytest.approx(0.3)
    # identities far apart, frames on their clip's feature: every part satisfied
    video = PIDS[:, None].float().repeat(1, D) * 10.0
    separated = {"features": video, "image_features": video[:, None].repeat(1, T, 1)}
    assert IntegratedTriplet()(separated, PIDS).item() == pytest.approx(0.0)


def test_integrated_triplet_one_identity_gives_zero_with_graph() -> None:
    feats = torch.randn(B, D, requires_grad=True)
    out = IntegratedTriplet()(
        {"features": feats, "image_features": feats[:, None].repeat(1, T, 1)},
        torch.zeros(B, dtype=torch.long))
    assert out.item() == 0.0 and out.requires_grad


def test_integrated_triplet_bad_pairs() -> None:
    with pytest.raises(ValueError, match="subset"):
        IntegratedTriplet(pairs=["i2x"])


def test_tkp_cross_entropy_is_video_plus_image() -> None:
    torch.manual_seed(0)
    logits, image_logits = torch.randn(B, K), torch.randn(B, T, K)
    out = TKPCrossEntropy()({"logits": logits, "image_logits": image_logits}, PIDS)
    expected = F.cross_entropy(logits, PIDS) + F.cross_entropy(
        image_logits.reshape(B * T, K), PIDS.repeat_interleave(T))
    torch.testing.assert_close(out, expected)


def test_missing_output_names_the_key() -> None:
    with pytest.raises(ValueError, match="video_frame_features"):
        TKPFeature()({"image_features": torch.zeros(B, T, D)}, PIDS)
    with pytest.raises(ValueError, match=r"\[B, T, D\]"):
        TKPFeature()({"image_features": torch.zeros(B, D),
                      "video_frame_features": torch.zeros(B, D)}, PIDS)
