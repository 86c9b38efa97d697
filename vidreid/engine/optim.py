"""Optimisers and epoch-wise learning-rate schedules from plain arguments.

Schedules step once per epoch (the papers' recipes are stated in epochs). Warmup is a linear
ramp from ``warmup_factor * lr`` to ``lr`` over ``warmup_epochs``, available before any of
the step, multistep and cosine schedules. All are torch's own schedulers, so their
``state_dict`` is plain data and resumes exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import torch
from torch.optim.lr_scheduler import (
    ChainedScheduler,
    ConstantLR,
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    SequentialLR,
    StepLR,
)

logger = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("none", "step", "multistep", "warmup_cosine", "cosine")


def build_optimizer(
    params: Iterable[torch.nn.Parameter],
    name: str = "adam",
    *,
    lr: float = 3e-4,
    weight_decay: float = 5e-4,
    momentum: float = 0.9,
    nesterov: bool = False,
    betas: Sequence[float] = (0.9, 0.999),
) -> torch.optim.Optimizer:
    """Adam or SGD over ``params`` (model and criterion parameters, e.g. centre loss)."""
    params = [p for p in params if p.requires_grad]
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, betas=tuple(betas))
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov
        )
    raise ValueError(f"unknown optimiser optim.name={name!r}; choose one of {OPTIMIZERS}")


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str = "multistep",
    *,
    epochs: int,
    step_size: int = 40,
    milestones: Sequence[int] = (40, 80),
    gamma: float = 0.1,
    warmup_epochs: int = 0,
    warmup_factor: float = 0.01,
    min_lr: float = 0.0,
) -> LRScheduler:
    """An epoch-wise schedule; ``milestones`` / ``step_size`` count from epoch 0 (incl. warmup)."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule sched.name={name!r}; choose one of {SCHEDULES}")
    cosine = name in ("cosine", "warmup_cosine")
    if warmup_epochs < 0:
        raise ValueError(f"sched.warmup_epochs={warmup_epochs} must be >= 0")
    if cosine and warmup_epochs >= epochs:
        # A short run (a first try with train.epochs=2 of a recipe made for 30) keeps one
        # cosine epoch: the warmup is shortened instead of refusing the recipe.
        shortened = max(epochs - 1, 0)
        logger.warning("sched.warmup_epochs=%d is not shorter than train.epochs=%d: warming up"
                       " for %d epoch(s)", warmup_epochs, epochs, shortened)
        warmup_epochs = shortened
    if name == "none":
        main: LRScheduler = ConstantLR(optimizer, factor=1.0, total_iters=0)
    elif name == "step":
        main = StepLR(optimizer, step_size=step_size, gamma=gamma)
    elif name == "multistep":
        main = MultiStepLR(optimizer, milestones=list(milestones), gamma=gamma)
    else:  # cosine after the warmup
        main = CosineAnnealingLR(optimizer, T_max=max(epochs - warmup_epochs, 1), eta_min=min_lr)
    if warmup_epochs == 0:
        return main
    warmup = LinearLR(optimizer, start_factor=warmup_factor, total_iters=warmup_epochs)
    if name in ("step", "multistep"):
        # milestones count from epoch 0: the warmup and the steps run side by side
        return ChainedScheduler([warmup, main], optimizer=optimizer)
    return SequentialLR(optimizer, [warmup, main], milestones=[warmup_epochs])
