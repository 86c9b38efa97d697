"""Spatial attention masks over the frames: where each inserted module looks.

Used by ``vidreid viz masks`` for models that return ``extras["spatial_masks"]`` (COSAM:
one ``[T, h, w]`` mask per inserted module). The figure is a grid: the first row shows the
frames, then one row per module with its mask upsampled to the frame (bilinear, by
matplotlib) and overlaid as a heat map on a fixed [0, 1] colour scale, so rows and figures
compare. Long tracklets show an evenly spaced subset of their frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from vidreid.atomic import atomic_path

MAX_FRAMES = 16  # columns drawn; longer tracklets show an even subset
CELL_WIDTH = 1.3  # inches per frame column
CELL_HEIGHT = 2.6  # inches per row (a 2:1 person crop)
OVERLAY_ALPHA = 0.55  # heat map opacity over the frame
COLORMAP = "jet"
DPI = 110


def _check_inputs(
    frames: Sequence[np.ndarray], masks: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    if len(frames) == 0:
        raise ValueError("draw_masks: no frames given")
    for i, frame in enumerate(frames):
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(
                f"draw_masks: frame {i} has shape {frame.shape} and dtype {frame.dtype}; "
                f"expected H x W x 3 uint8"
            )
    if not masks:
        raise ValueError("draw_masks: no masks given (expected {module name: [T, h, w]})")
    checked = {}
    for name, mask in masks.items():
        m = np.asarray(mask, dtype=np.float64)
        if m.ndim != 3 or m.shape[0] != len(frames):
            raise ValueError(
                f"draw_masks: mask {name!r} has shape {np.shape(mask)}; expected "
                f"[T, h, w] with T = {len(frames)} frames"
            )
        if not np.isfinite(m).all() or m.min() < 0.0 or m.max() > 1.0:
            raise ValueError(
                f"draw_masks: mask {name!r} has values outside [0, 1] or non-finite "
                f"(min {np.nanmin(m):.3g}, max {np.nanmax(m):.3g}); pass sigmoid masks"
            )
        checked[str(name)] = m
    return checked


def draw_masks(
    frames: list[np.ndarray], masks: dict[str, np.ndarray], out_path: str
) -> None:
    """Draw ``frames`` (T x HxWx3 uint8) and each ``masks[name]`` ([T, h, w] in [0, 1]) over them.

    Writes a PNG atomically to ``out_path`` (temporary file in the same folder, then rename).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    checked = _check_inputs(frames, masks)
    t = len(frames)
    shown = np.unique(np.linspace(0, t - 1, min(t, MAX_FRAMES)).round().astype(int))
    rows = 1 + len(checked)
    fig, axes = plt.subplots(
        rows, len(shown), figsize=(CELL_WIDTH * len(shown) + 1.0, CELL_HEIGHT * rows),
        squeeze=False, layout="constrained",  # constrained: leaves room for the colour bar
    )
    heat = None
    for col, idx in enumerate(shown):
        frame = frames[idx]
        extent = (0.0, float(frame.shape[1]), float(frame.shape[0]), 0.0)
        axes[0, col].imshow(frame, extent=extent)
        axes[0, col].set_title(f"frame {idx}", fontsize=8)
        for row, m in enumerate(checked.values(), start=1):
            ax = axes[row, col]
            ax.imshow(frame, extent=extent)
            heat = ax.imshow(
                m[idx], cmap=COLORMAP, vmin=0.0, vmax=1.0, alpha=OVERLAY_ALPHA,
                extent=extent, interpolation="bilinear",
            )
    for row in range(rows):
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    for row, (name, m) in enumerate(checked.items(), start=1):
        axes[row, 0].set_ylabel(f"{name}\nmean {m.mean():.2f}", fontsize=8)
    axes[0, 0].set_ylabel("frames", fontsize=8)
    if len(shown) < t:
        fig.suptitle(f"{len(shown)} of {t} frames", fontsize=9)
    if heat is not None:
        fig.colorbar(heat, ax=axes[1:, -1].tolist(), label="mask value", shrink=0.9)

    try:
        with atomic_path(out_path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI)
    finally:
        plt.close(fig)
