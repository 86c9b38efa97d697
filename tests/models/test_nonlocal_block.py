import pytest
import torch
import torch.nn.functional as F

from vidreid.models import build_backbone
from vidreid.models.base import clip_length
from vidreid.models.nonlocal_block import NonLocalBlock, insert_nonlocal


def test_block_starts_as_identity_then_learns() -> None:
    torch.manual_seed(0)
    block = NonLocalBlock(8)
    assert block.inner_channels == 4
    x = torch.randn(2, 8, 3, 4, 4)
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)

    opt = torch.optim.SGD(block.parameters(), lr=0.1)
    loss = (block(x) * torch.randn_like(x)).sum()
    loss.backward()
    opt.step()
    assert not torch.allclose(block(x), x)


@pytest.mark.parametrize("sub_sample", [True, False])
@pytest.mark.parametrize("mode", ["embedded_gaussian", "dot_product"])
def test_block_shapes_incl_one_pixel_maps(sub_sample: bool, mode: str) -> None:
    block = NonLocalBlock(6, inner_channels=3, sub_sample=sub_sample, mode=mode)
    for shape in [(1, 6, 1, 5, 3), (2, 6, 4, 1, 1)]:
        assert tuple(block(torch.randn(shape)).shape) == shape


def test_block_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="mode"):
        NonLocalBlock(4, mode="gaussian_kernel")
    with pytest.raises(ValueError, match=r"\[B, 4, T, H, W\]"):
        NonLocalBlock(4)(torch.randn(2, 4, 3, 3))


def _make_active(module: torch.nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, NonLocalBlock):
            torch.nn.init.ones_(m.W[1].weight)


def test_inserted_blocks_mix_frames_within_a_clip_only() -> None:
    torch.manual_seed(0)
    net = insert_nonlocal(build_backbone("tiny"), layer2_blocks=(0,), layer3_blocks=(0,))
    assert "layer2.nonlocal0.block.theta.weight" in net.state_dict()
    assert "layer2.0.conv.weight" in net.state_dict()  # original keys unchanged
    _make_active(net)
    net.eval()
    b, t = 2, 3
    frames = torch.randn(b * t, 3, 32, 16)
    with torch.no_grad(), clip_length(net, t):
        before = net(frames)
        changed = frames.clone()
        changed[0] += 1.0  # first frame of clip 0
        after = net(changed)
    delta = (after - before).abs().flatten(1).amax(dim=1)
    assert (delta[1:t] > 0).all()  # the other frames of clip 0 see the change
    assert (delta[t:] == 0).all()  # clip 1 does not


def test_inserted_blocks_need_the_clip_length() -> None:
    net = insert_nonlocal(build_backbone("tiny"), layer2_blocks=(0,), layer3_blocks=())
    with pytest.raises(RuntimeError, match="clip_length"):
        net(torch.randn(2, 3, 32, 16))
    with pytest.raises(ValueError, match="whole number"), clip_length(net, 3):
        net(torch.randn(4, 3, 32, 16))


def test_insert_rejects_missing_blocks() -> None:
    with pytest.raises(ValueError, match=r"layer3 has blocks 0..0.*\[1, 3, 5\]"):
        insert_nonlocal(build_backbone("tiny"), layer2_blocks=(0,))


def _reference_5d(block: NonLocalBlock, x: torch.Tensor) -> torch.Tensor:
    """Wang et al.'s block written directly on [B, C, T, H, W] with 3-D ops."""
    def conv(layer, v):
        return F.conv3d(v, layer.weight.unsqueeze(-1), layer.bias)

    b = x.shape[0]
    theta = conv(block.theta, x).flatten(2).transpose(1, 2)  # [B, N, C']
    phi = F.max_pool3d(conv(block.phi, x), (1, 2, 2)).flatten(2)  # [B, C', N']
    g = F.max_pool3d(conv(block.g, x), (1, 2, 2)).flatten(2).transpose(1, 2)  # [B, N', C']
    y = (theta @ phi).softmax(dim=-1) @ g  # [B, N, C']
    y = y.transpose(1, 2).reshape(b, -1, *x.shape[2:])
    bn = block.W[1]
    z = F.batch_norm(conv(block.W[0], y), None, None, bn.weight, bn.bias, training=True)
    return x + z


def test_block_equals_the_3d_formulation() -> None:
    torch.manual_seed(0)
    block = NonLocalBlock(6).train().double()
    torch.nn.init.normal_(block.W[1].weight)
    x = torch.randn(2, 6, 3, 4, 6, dtype=torch.float64)
    torch.testing.assert_close(block(x), _reference_5d(block, x))
