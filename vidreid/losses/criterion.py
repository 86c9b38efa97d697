"""The weighted sum of loss terms used for training."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from vidreid.losses import LOSSES
from vidreid.models import check_kwargs

DEFAULT_WEIGHT = 1.0


class LossTerm(nn.Module):
    """Base class of a loss term: ``forward(outputs, pids) -> scalar``.

    :meth:`read` fetches an output of the model with an error naming the term and the keys
    that are there, instead of a bare ``KeyError``.
    """

    def read(self, outputs: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
        if key not in outputs:
            raise ValueError(
                f"loss term {type(self).__name__} reads outputs[{key!r}], but the model "
                f"returned only {sorted(outputs)}; is the model in training mode, and does "
                f"it produce {key!r}?"
            )
        return outputs[key]

    def forward(self, outputs: Mapping[str, torch.Tensor], pids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Criterion(nn.Module):
    """``sum_k weight_k * term_k(outputs, pids)``.

    ``forward`` returns the weighted total and each term's unweighted value as a float (for
    logging). Terms with parameters (center loss) are sub-modules, so ``.parameters()``
    yields them for the optimiser.
    """

    def __init__(self, terms: Mapping[str, nn.Module], weights: Mapping[str, float]) -> None:
        super().__init__()
        if not terms:
            raise ValueError("a criterion needs at least one loss term")
        self.terms = nn.ModuleDict(dict(terms))
        self.weights = dict(weights)

    def batch_targets(self) -> dict[str, Any]:
        """Per-training-tracklet targets its terms need with each clip (``name -> [N, ...]``,
        rows in training-tracklet order): the loader yields them, the step adds them to
        ``outputs`` (e.g. the attribute term's per-tracklet labels)."""
        targets: dict[str, Any] = {}
        for term in self.terms.values():
            if hasattr(term, "batch_targets"):
                targets.update(term.batch_targets())
        return targets

    def forward(
        self, outputs: Mapping[str, torch.Tensor], pids: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        total: torch.Tensor | None = None
        values: dict[str, float] = {}
        for name, term in self.terms.items():
            value = term(outputs, pids)
            values[name] = float(value.detach())
            weighted = self.weights[name] * value
            total = weighted if total is None else total + weighted
        assert total is not None
        return total, values


def build_criterion(terms: Mapping[str, Mapping[str, Any]]) -> Criterion:
    """Build a :class:`Criterion` from ``{term_name: {"weight": w, **term_kwargs}}``.

    ``weight`` defaults to 1.0. Unknown term names and keyword arguments a term does not
    take raise errors naming them.
    """
    modules: dict[str, nn.Module] = {}
    weights: dict[str, float] = {}
    for name, spec in terms.items():
        cls = LOSSES.get(name)
        kwargs = dict(spec or {})
        weight = kwargs.pop("weight", DEFAULT_WEIGHT)
        check_kwargs(cls, kwargs, f"loss term {name!r}")
        modules[name] = cls(**kwargs)
        weights[name] = float(weight)
    return Criterion(modules, weights)
