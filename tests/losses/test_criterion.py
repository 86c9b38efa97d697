import pytest
import torch

from vidreid.losses import LOSSES, build_criterion


def test_weighted_total_and_logged_terms() -> None:
    torch.manual_seed(0)
    outputs = {"logits": torch.randn(4, 3), "features": torch.randn(4, 6)}
    pids = torch.tensor([0, 0, 1, 2])
    criterion = build_criterion({
        "cross_entropy": {"weight": 0.5, "label_smoothing": 0.1},
        "triplet": {"weight": 2.0, "margin": 0.3},
    })
    total, values = criterion(outputs, pids)
    assert set(values) == {"cross_entropy", "triplet"}
    ce = criterion.terms["cross_entropy"](outputs, pids)
    tri = criterion.terms["triplet"](outputs, pids)
    torch.testing.assert_close(total, 0.5 * ce + 2.0 * tri)
    assert values["triplet"] == pytest.approx(float(tri))
    assert list(criterion.parameters()) == []


def test_default_weight_is_one() -> None:
    outputs, pids = {"logits": torch.randn(3, 2)}, torch.tensor([0, 1, 1])
    total, values = build_criterion({"cross_entropy": {}})(outputs, pids)
    assert float(total) == pytest.approx(values["cross_entropy"])


def test_unknown_term_and_unknown_argument() -> None:
    with pytest.raises(KeyError) as err:
        build_criterion({"arcface": {"weight": 1.0}})
    assert "arcface" in str(err.value) and "triplet" in str(err.value)
    with pytest.raises(ValueError, match="margn.*margin"):
        build_criterion({"triplet": {"margn": 0.3}})
    with pytest.raises(ValueError, match="at least one"):
        build_criterion({})
    assert {"cross_entropy", "triplet", "center"} <= set(LOSSES.names())
