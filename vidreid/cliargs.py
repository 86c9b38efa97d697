"""Argument helpers shared by the ``vidreid`` sub-commands."""

from __future__ import annotations

import argparse
from typing import Any


class ValueThenOverrides(argparse.Action):
    """``--opt VALUE [KEY=VALUE ...]``: overrides written after an option still count.

    argparse cannot resume a positional list after an option (``CONFIG --weights W k=v``);
    this action keeps the first value and collects the ``KEY=VALUE`` items in ``more_items``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, nargs="+", **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        value, *rest = values
        bad = [x for x in rest if "=" not in x]
        if bad:
            parser.error(f"{option_string} takes one value; unexpected {bad[0]!r}")
        setattr(namespace, self.dest, value)
        namespace.more_items = [*(getattr(namespace, "more_items", None) or []), *rest]


def split_args(items: list[str]) -> tuple[str | None, list[str]]:
    """Positional items: the config path or run (no ``=``) and the ``key=value`` overrides."""
    paths = [x for x in items if "=" not in x]
    overrides = [x for x in items if "=" in x]
    if len(paths) > 1:
        raise ValueError(f"expected one CONFIG and KEY=VALUE overrides, got {paths}")
    return (paths[0] if paths else None), overrides
