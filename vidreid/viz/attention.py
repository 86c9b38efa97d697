"""Temporal weights under a frame strip: how much each frame counts in a video descriptor.

Used by ``vidreid viz attention`` for any model that returns ``extras["temporal_weights"]``
(GLTR's attention received per frame, per-group weights of the attribute model, TA's
weights...). The frame strip is aligned with the frame axis of the bar plots below it, so a
bar sits under its frame; long tracklets show an evenly spaced subset of the frames (every
frame keeps its bar).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vidreid.atomic import atomic_path

MAX_STRIP_FRAMES = 24  # frames drawn in the strip; longer tracklets show an even subset
MIN_FRAME_ROW_HEIGHT, MAX_FRAME_ROW_HEIGHT = 0.8, 3.0  # inches for the frame strip
WEIGHT_ROW_HEIGHT = 1.1  # inches per weight row
FIGURE_WIDTH = 12.0  # inches
DPI = 110


def _check_inputs(
    frames: Sequence[np.ndarray], weights: np.ndarray, labels: Sequence[str] | None
) -> np.ndarray:
    if len(frames) == 0:
        raise ValueError("draw_temporal_weights: no frames given")
    for i, frame in enumerate(frames):
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(
                f"draw_temporal_weights: frame {i} has shape {frame.shape} and dtype "
                f"{frame.dtype}; expected H x W x 3 uint8"
            )
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 1:
        w = w[None]
    if w.ndim != 2 or w.shape[1] != len(frames):
        raise ValueError(
            f"draw_temporal_weights: weights of shape {np.shape(weights)} do not match "
            f"{len(frames)} frames; expected [T] or [G, T] with T = {len(frames)}"
        )
    if not np.isfinite(w).all():
        raise ValueError("draw_temporal_weights: weights contain NaN or infinite values")
    if labels is not None and len(labels) != w.shape[0]:
        raise ValueError(
            f"draw_temporal_weights: {len(labels)} labels for {w.shape[0]} weight rows"
        )
    return w


def draw_temporal_weights(
    frames: list[np.ndarray],
    weights: np.ndarray,
    out_path: str,
    labels: list[str] | None = None,
) -> None:
    """Plot ``weights`` ([T] or [G, T]) as bar rows under the strip of ``frames`` (T x HxWx3).

    Writes a PNG atomically to ``out_path`` (temporary file in the same folder, then rename).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    w = _check_inputs(frames, weights, labels)
    num_rows, t = w.shape
    shown = np.unique(np.linspace(0, t - 1, min(t, MAX_STRIP_FRAMES)).round().astype(int))
    slot = t / len(shown)  # frame-axis width given to each drawn frame
    frame_h, frame_w = frames[0].shape[:2]
    strip_height = float(  # keep the drawn frames near their aspect ratio
        np.clip(
            FIGURE_WIDTH * 0.9 / len(shown) * frame_h / frame_w,
            MIN_FRAME_ROW_HEIGHT,
            MAX_FRAME_ROW_HEIGHT,
        )
    )

    fig, axes = plt.subplots(
        1 + num_rows,
        1,
        sharex=True,
        figsize=(FIGURE_WIDTH, strip_height + WEIGHT_ROW_HEIGHT * num_rows),
        gridspec_kw={"height_ratios": [strip_height] + [WEIGHT_ROW_HEIGHT] * num_rows},
        squeeze=False,
    )
    axes = axes[:, 0]
    strip = axes[0]
    for k, idx in enumerate(shown):
        left = k * slot - 0.5
        strip.imshow(
            frames[idx],
            extent=(left, left + slot, 0.0, 1.0),
            aspect="auto",
            interpolation="bilinear",
        )
    strip.set_xlim(-0.5, t - 0.5)
    strip.set_ylim(0.0, 1.0)
    strip.set_yticks([])
    strip.tick_params(bottom=False, labelbottom=False)
    strip.set_title(
        f"{t} frames" + ("" if len(shown) == t else f" (strip shows {len(shown)} of them)")
    )
    if len(shown) < t:  # link each drawn frame to its bar
        for k, idx in enumerate(shown):
            strip.annotate(
                str(idx),
                (k * slot - 0.5 + slot / 2, 0.0),
                xytext=(0, -2),
                textcoords="offset points",
                ha="center",
                va="top",
                fontsize=6,
            )

    uniform = 1.0 / t  # the weight of every frame under plain temporal averaging
    for row, ax in enumerate(axes[1:]):
        ax.bar(np.arange(t), w[row], width=0.9, color="tab:blue")
        ax.axhline(uniform, color="tab:red", linewidth=0.8, linestyle="--")
        ax.set_ylim(0.0, max(float(w[row].max()), uniform) * 1.1 or 1.0)
        ax.set_ylabel(labels[row] if labels else "weight", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("frame (dashed line: uniform weight 1/T)")
    fig.tight_layout()

    try:
        with atomic_path(out_path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI)
    finally:
        plt.close(fig)
