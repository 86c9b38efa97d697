"""draw_masks (vidreid/viz/masks.py): the grid PNG and its input checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidreid.viz.masks import draw_masks


def _frames(t: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (32, 16, 3), dtype=np.uint8) for _ in range(t)]


def _masks(t: int, value: float | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    if value is not None:
        return {"layer3": np.full((t, 4, 2), value), "layer4": np.full((t, 4, 2), value)}
    return {"layer3": rng.random((t, 4, 2)), "layer4": rng.random((t, 2, 1))}


def test_writes_png_atomically(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "masks.png"
    draw_masks(_frames(3), _masks(3), str(out))
    with Image.open(out) as img:
        assert img.format == "PNG"
        width, height = img.size
    assert height > width / 3  # three rows of frames: frames, layer3, layer4
    assert sorted(p.name for p in out.parent.iterdir()) == ["masks.png"]  # no temp file left


def test_mask_values_change_the_picture(tmp_path: Path) -> None:
    low, high = tmp_path / "low.png", tmp_path / "high.png"
    draw_masks(_frames(2), _masks(2, 0.0), str(low))
    draw_masks(_frames(2), _masks(2, 1.0), str(high))
    a = np.asarray(Image.open(low).convert("RGB"), dtype=np.int16)
    b = np.asarray(Image.open(high).convert("RGB"), dtype=np.int16)
    assert a.shape == b.shape and np.abs(a - b).max() > 50


def test_long_tracklet_is_subsampled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vidreid.viz.masks.MAX_FRAMES", 3)
    short, long = tmp_path / "short.png", tmp_path / "long.png"
    draw_masks(_frames(3), _masks(3), str(short))
    draw_masks(_frames(9), _masks(9), str(long))
    assert Image.open(long).size == Image.open(short).size  # both draw 3 columns


@pytest.mark.parametrize(
    ("frames", "masks", "match"),
    [
        ([], _masks(2), "no frames"),
        (_frames(2), {}, "no masks"),
        (_frames(3), _masks(2), "T = 3"),
        (_frames(2), {"layer3": np.full((2, 4, 2), 1.5)}, r"outside \[0, 1\]"),
        ([np.zeros((32, 16), np.uint8)] * 2, _masks(2), "H x W x 3 uint8"),
    ],
)
def test_bad_input_is_named(tmp_path: Path, frames, masks, match: str) -> None:
    out = tmp_path / "m.png"
    with pytest.raises(ValueError, match=match):
        draw_masks(frames, masks, str(out))
    assert not out.exists()
