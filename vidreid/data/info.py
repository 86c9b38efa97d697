"""Dataset statistics: ids, tracklets, frames, cameras and tracklet lengths per split."""

from __future__ import annotations

from typing import Any

import numpy as np

from vidreid.data.tracklet import VideoDataset

SPLITS = ("train", "query", "gallery")
PERCENTILES = (0, 25, 50, 75, 100)
LENGTH_KEYS = ("min", "p25", "p50", "p75", "max")


def summarize(dataset: VideoDataset) -> dict[str, Any]:
    """Per split: ``ids``, ``tracklets``, ``frames``, ``cameras`` (sorted 0-based camids)
    and ``length`` (min / p25 / p50 / p75 / max frames per tracklet; None when empty)."""
    out: dict[str, Any] = {"name": dataset.name, "root": dataset.root, "splits": {}}
    for split in SPLITS:
        tracklets = getattr(dataset, split)
        lengths = np.array([len(t.frames) for t in tracklets], dtype=np.int64)
        stats = (
            dict(zip(LENGTH_KEYS, np.percentile(lengths, PERCENTILES).tolist(), strict=True))
            if lengths.size
            else dict.fromkeys(LENGTH_KEYS)
        )
        out["splits"][split] = {
            "ids": len({t.pid for t in tracklets}),
            "tracklets": len(tracklets),
            "frames": int(lengths.sum()),
            "cameras": sorted({t.camid for t in tracklets}),
            "length": stats,
        }
    out["junk_pids"] = list(dataset.junk_pids)
    out["attributes_file"] = dataset.attributes_file
    return out


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if float(value).is_integer() else f"{value:.1f}"


def format_summary(dataset: VideoDataset) -> str:
    """A plain-text table of :func:`summarize`."""
    s = summarize(dataset)
    header = ("split", "ids", "tracklets", "frames", "cams", *LENGTH_KEYS)
    rows = [header]
    for split in SPLITS:
        d = s["splits"][split]
        rows.append(
            (
                split,
                str(d["ids"]),
                str(d["tracklets"]),
                str(d["frames"]),
                str(len(d["cameras"])),
                *(_fmt(d["length"][k]) for k in LENGTH_KEYS),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [f"{s['name']} at {s['root']}"]
    lines += [
        "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.append("tracklet length in frames: min / 25th / 50th / 75th percentile / max")
    if s["junk_pids"]:
        lines.append(f"junk pids (skipped by evaluation): {s['junk_pids']}")
    if s["attributes_file"]:
        lines.append(f"attributes: {s['attributes_file']}")
    return "\n".join(lines)
