"""Loss terms and the weighted criterion built from a config.

:data:`LOSSES` maps a term name to an ``nn.Module`` class whose ``forward(outputs, pids)``
reads the model's output dict (each term documents which keys). Every module of this
package is imported here automatically, so a method can add its own term in one file.
:func:`build_criterion` turns ``{"cross_entropy": {"weight": 1.0, "label_smoothing": 0.1},
"triplet": {"weight": 1.0, "margin": 0.3}}`` into a :class:`Criterion`.
"""

from __future__ import annotations

import importlib
import pkgutil

from vidreid.registry import Registry

LOSSES = Registry("loss term")


def _import_all() -> None:
    for info in pkgutil.walk_packages(__path__, prefix=__name__ + "."):
        if not info.name.rsplit(".", 1)[-1].startswith("_"):
            importlib.import_module(info.name)


_import_all()

from vidreid.losses.criterion import Criterion, LossTerm, build_criterion  # noqa: E402

__all__ = ["LOSSES", "Criterion", "LossTerm", "build_criterion"]
