import pytest
import torch

from vidreid.models import HEADS, build_head

B, C, H, W = 2, 16, 4, 2


@pytest.mark.parametrize("name", ["tp", "tmp", "ta", "rnn"])
@pytest.mark.parametrize("t", [1, 3, 8])
def test_head_shapes_for_any_length(name: str, t: int) -> None:
    head = build_head(name, C)
    out, extras = head(torch.randn(B, t, C, H, W), return_extras=True)
    assert tuple(out.shape) == (B, head.out_dim)
    assert isinstance(extras, dict)
    assert torch.isfinite(out).all()


def test_tp_and_tmp_pool_gap_features_over_time() -> None:
    x = torch.randn(B, 5, C, H, W)
    gap = x.mean(dim=(3, 4))  # [B, T, C]
    torch.testing.assert_close(build_head("tp", C)(x), gap.mean(dim=1))
    torch.testing.assert_close(build_head("tmp", C)(x), gap.max(dim=1).values)


@pytest.mark.parametrize("att_gen", ["softmax", "sigmoid"])
def test_ta_weights_sum_to_one_and_weight_the_frames(att_gen: str) -> None:
    head = build_head("ta", C, middle_dim=8, att_gen=att_gen)
    x = torch.randn(B, 6, C, H, W)
    out, extras = head(x, return_extras=True)
    a = extras["temporal_attention"]
    assert tuple(a.shape) == (B, 6)
    torch.testing.assert_close(a.sum(dim=1), torch.ones(B))
    torch.testing.assert_close(out, (x.mean(dim=(3, 4)) * a.unsqueeze(-1)).sum(dim=1))


def test_ta_attention_depends_on_content() -> None:
    torch.manual_seed(0)
    head = build_head("ta", C, middle_dim=8)
    for p in head.parameters():  # positive weights: brighter frames score higher
        p.data.abs_()
    x = torch.rand(1, 3, C, H, W)
    x[:, 1] += 5.0
    _, extras = head(x, return_extras=True)
    assert int(extras["temporal_attention"].argmax(dim=1)) == 1


def test_rnn_hidden_size_and_order_sensitivity() -> None:
    head = build_head("rnn", C, hidden_dim=7)
    x = torch.randn(1, 4, C, H, W)
    assert head.out_dim == 7
    assert not torch.allclose(head(x), head(x.flip(1)))  # an LSTM sees the order


def test_head_errors() -> None:
    with pytest.raises(KeyError, match="tp"):
        build_head("lstm", C)
    with pytest.raises(ValueError, match="hidden"):
        build_head("tp", C, hidden_dim=3)
    with pytest.raises(ValueError, match=r"\[B, T, C, h, w\]"):
        build_head("tp", C)(torch.randn(B, C, H, W))
    assert {"tp", "tmp", "ta", "rnn"} <= set(HEADS.names())
