"""Schedules (vidreid/engine/optim.py): a run shorter than its recipe's warmup still runs."""

from __future__ import annotations

import pytest
import torch

from vidreid.engine.optim import build_scheduler

LR = 1.0
WARMUP_FACTOR = 0.1


def _lrs(epochs: int, warmup_epochs: int) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=LR)
    sched = build_scheduler(opt, "warmup_cosine", epochs=epochs, warmup_epochs=warmup_epochs,
                            warmup_factor=WARMUP_FACTOR)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_warmup_longer_than_the_run_is_shortened_to_leave_one_cosine_epoch() -> None:
    assert _lrs(2, 2) == _lrs(2, 1)  # warmup 2 in a 2-epoch run: one warmup epoch
    assert _lrs(2, 1)[0] == pytest.approx(LR * WARMUP_FACTOR)
    assert _lrs(1, 2) == [LR]  # a 1-epoch run: no warmup at all


def test_negative_warmup_is_refused() -> None:
    with pytest.raises(ValueError, match="warmup_epochs"):
        _lrs(3, -1)
