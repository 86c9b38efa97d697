"""Human- and machine-readable evaluation reports: a text table, JSON and a CMC plot.

All numbers are reported in percent. Results from :func:`aggregate_splits` carry a standard
deviation across splits, shown as ``mean±std`` in the table and as ``*_std`` keys in JSON.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from vidreid.atomic import atomic_path

from .rank import RankResult

TABLE_RANKS = (1, 5, 10, 20)
PERCENT = 100.0


def _row(result: RankResult) -> dict[str, float | None]:
    std = result.extra.get("std") if result.extra else None
    row: dict[str, float | None] = {}
    for k in TABLE_RANKS:
        inside = k <= len(result.cmc)
        row[f"R{k}"] = PERCENT * float(result.cmc[k - 1]) if inside else None
        if std is not None:
            row[f"R{k}_std"] = PERCENT * float(std["cmc"][k - 1]) if inside else None
    row["mAP"], row["mINP"] = PERCENT * result.mAP, PERCENT * result.mINP
    if std is not None:
        row["mAP_std"], row["mINP_std"] = PERCENT * std["mAP"], PERCENT * std["mINP"]
    return row


def format_table(results: Mapping[str, RankResult], digits: int = 1) -> str:
    """A fixed-width table: one row per protocol, columns R1 R5 R10 R20 mAP mINP (percent).

    Ranks beyond a result's ``max_rank`` are shown as ``-``.
    """
    columns = [f"R{k}" for k in TABLE_RANKS] + ["mAP", "mINP"]
    cells = [["protocol", *columns]]
    for name, result in results.items():
        row = _row(result)
        line = [name]
        for col in columns:
            value, std = row[col], row.get(f"{col}_std")
            if value is None:
                line.append("-")
            elif std is None:
                line.append(f"{value:.{digits}f}")
            else:
                line.append(f"{value:.{digits}f}±{std:.{digits}f}")
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in cells]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def results_to_json(results: Mapping[str, RankResult]) -> dict:
    """JSON-ready dict: per protocol R1/R5/R10/R20/mAP/mINP (percent, ``None`` if beyond
    ``max_rank``), ``*_std`` for split averages, the full ``cmc`` (percent) and
    ``num_valid_queries``."""
    out: dict = {}
    for name, result in results.items():
        entry: dict = dict(_row(result))
        entry["cmc"] = [PERCENT * float(v) for v in np.asarray(result.cmc)]
        entry["num_valid_queries"] = int(result.num_valid_queries)
        if result.extra and "num_splits" in result.extra:
            entry["num_splits"] = int(result.extra["num_splits"])
        out[name] = entry
    return out


def plot_cmc(results: Mapping[str, RankResult], path: str | os.PathLike,
             title: str = "CMC") -> Path:
    """Write a CMC curve per protocol (rank 1..max_rank vs matching rate in percent) to
    ``path`` (format from its suffix, e.g. ``.png``), atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    if not results:
        raise ValueError("plot_cmc needs at least one result to plot")
    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, result in results.items():
        ranks = np.arange(1, len(result.cmc) + 1)
        ax.plot(ranks, PERCENT * np.asarray(result.cmc), marker=".", label=name)
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    return path
