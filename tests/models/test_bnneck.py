import pytest
import torch

from vidreid.models.bnneck import BNNeck


def test_train_returns_pre_bn_features_and_logits_of_post_bn() -> None:
    neck = BNNeck(6, 4).train()
    assert not neck.bn.bias.requires_grad
    x = torch.randn(5, 6) * 3 + 2
    out = neck(x)
    assert torch.equal(out["features"], x)
    bn = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + neck.bn.eps)
    torch.testing.assert_close(out["logits"], bn @ neck.classifier.weight.T)


@pytest.mark.parametrize("neck_feat", ["after", "before"])
def test_eval_returns_chosen_feature(neck_feat: str) -> None:
    neck = BNNeck(6, 4, neck_feat=neck_feat)
    neck.bn.running_mean.fill_(1.0)
    neck.eval()
    x = torch.randn(3, 6)
    out = neck(x)
    assert set(out) == {"features"}
    expected = neck.bn(x) if neck_feat == "after" else x
    torch.testing.assert_close(out["features"], expected)
    assert not torch.allclose(neck.bn(x), x)


def test_bad_neck_feat() -> None:
    with pytest.raises(ValueError, match="neck_feat"):
        BNNeck(4, 2, neck_feat="middle")
