import pytest
import torch

from vidreid.losses import build_criterion


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_label_smoothing_matches_hand_formula(eps: float) -> None:
    torch.manual_seed(0)
    logits, pids = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 0])
    term = build_criterion({"cross_entropy": {"label_smoothing": eps}}).terms["cross_entropy"]
    k = logits.shape[1]
    target = (1 - eps) * torch.nn.functional.one_hot(pids, k) + eps / k
    expected = -(target * logits.log_softmax(dim=1)).sum(dim=1).mean()
    torch.testing.assert_close(term({"logits": logits}, pids), expected)


def test_bad_labels_and_missing_logits() -> None:
    term = build_criterion({"cross_entropy": {}}).terms["cross_entropy"]
    with pytest.raises(ValueError, match=r"0\.\.4"):
        term({"logits": torch.randn(2, 5)}, torch.tensor([0, 7]))
    with pytest.raises(ValueError, match="logits.*features"):
        term({"features": torch.randn(2, 5)}, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="label_smoothing"):
        build_criterion({"cross_entropy": {"label_smoothing": 1.5}})
