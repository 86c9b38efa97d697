import pytest
import torch

from vidreid.losses import build_criterion


def test_value_and_decrease() -> None:
    torch.manual_seed(0)
    criterion = build_criterion({"center": {"num_classes": 3, "feat_dim": 4}})
    term = criterion.terms["center"]
    x, pids = torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2])
    expected = 0.5 * ((x - term.centers[pids]) ** 2).sum(dim=1).mean()
    torch.testing.assert_close(term({"features": x}, pids), expected)

    params = list(criterion.parameters())
    assert len(params) == 1 and params[0] is term.centers  # exposed for the optimiser
    opt = torch.optim.SGD(params, lr=0.5)
    values = []
    for _ in range(5):
        loss, logged = criterion({"features": x}, pids)
        values.append(logged["center"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(b < a for a, b in zip(values, values[1:], strict=False))


def test_errors_name_the_problem() -> None:
    term = build_criterion({"center": {"num_classes": 3, "feat_dim": 4}}).terms["center"]
    with pytest.raises(ValueError, match="feat_dim=4"):
        term({"features": torch.randn(2, 5)}, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"0\.\.2"):
        term({"features": torch.randn(2, 4)}, torch.tensor([0, 3]))
