import pytest
import torch

from vidreid.losses import build_criterion


def _brute_force(x: torch.Tensor, pids: list[int], margin: float | None) -> torch.Tensor:
    losses = []
    for a in range(len(pids)):
        pos = [torch.dist(x[a], x[p]) for p in range(len(pids)) if pids[p] == pids[a]]
        neg = [torch.dist(x[a], x[n]) for n in range(len(pids)) if pids[n] != pids[a]]
        if not neg:
            continue
        diff = max(pos) - min(neg)
        losses.append(torch.nn.functional.softplus(diff) if margin is None
                      else torch.clamp(diff + margin, min=0))
    return torch.stack(losses).mean()


def _term(**kw):
    return build_criterion({"triplet": kw}).terms["triplet"]


@pytest.mark.parametrize("normalize", [False, True])
def test_batch_hard_equals_brute_force(normalize: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(12, 5)
    pids = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4]  # pid 4 has a single sample
    ref_x = torch.nn.functional.normalize(x, dim=1) if normalize else x
    got = _term(margin=0.3, normalize_feature=normalize)({"features": x}, torch.tensor(pids))
    torch.testing.assert_close(got, _brute_force(ref_x, pids, 0.3))
    assert got > 0


@pytest.mark.parametrize("kwargs", [{"margin": None}, {"soft": True}])
def test_soft_margin(kwargs: dict) -> None:
    torch.manual_seed(1)
    x, pids = torch.randn(8, 4), [0, 0, 1, 1, 2, 2, 3, 3]
    got = _term(**kwargs)({"features": x}, torch.tensor(pids))
    torch.testing.assert_close(got, _brute_force(x, pids, None))


def test_zero_when_separated_and_gradient_when_not() -> None:
    pids = torch.tensor([0, 0, 1, 1])
    far = torch.tensor([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [10.1, 0.0]])
    assert _term(margin=0.3)({"features": far}, pids) == 0
    near = far.clone()
    near[2:, 0] -= 9.9  # the negatives come within the margin
    near.requires_grad_(True)
    _term(margin=0.3)({"features": near}, pids).backward()
    assert near.grad.abs().sum() > 0 and torch.isfinite(near.grad).all()


def test_single_identity_batch_gives_zero_with_graph() -> None:
    x = torch.randn(3, 4, requires_grad=True)
    loss = _term()({"features": x}, torch.zeros(3, dtype=torch.long))
    loss.backward()
    assert loss == 0 and x.grad is not None
