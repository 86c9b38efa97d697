"""vidreid/viz/attention.py: frame strip + temporal weight rows, atomic PNG."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from vidreid.viz.attention import draw_temporal_weights


def solid_frames(t: int, colour=(255, 0, 0)) -> list[np.ndarray]:
    frame = np.zeros((16, 8, 3), dtype=np.uint8)
    frame[:] = colour
    return [frame.copy() for _ in range(t)]


def red_pixels(path) -> int:
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int(((img[..., 0] > 200) & (img[..., 1] < 60) & (img[..., 2] < 60)).sum())


def test_single_row_png_shows_the_frames(tmp_path) -> None:
    out = tmp_path / "att.png"
    draw_temporal_weights(solid_frames(6), np.full(6, 1 / 6), str(out))
    assert Image.open(out).format == "PNG"
    assert red_pixels(out) > 500  # the (red) frame strip is drawn
    assert os.listdir(tmp_path) == ["att.png"]  # no temporary file left behind


def test_group_rows_with_labels_make_a_taller_figure(tmp_path) -> None:
    one, three = tmp_path / "one.png", tmp_path / "three.png"
    weights = np.random.default_rng(0).dirichlet(np.ones(5), size=3)  # [G=3, T=5]
    draw_temporal_weights(solid_frames(5), weights[0], str(one))
    draw_temporal_weights(solid_frames(5), weights, str(three), labels=["head", "upper", "lower"])
    assert Image.open(three).size[1] > Image.open(one).size[1]


def test_long_tracklet_draws_a_subset_of_frames(tmp_path) -> None:
    out = tmp_path / "long.png"
    draw_temporal_weights(solid_frames(300), np.full(300, 1 / 300), str(out))
    assert red_pixels(out) > 500


@pytest.mark.parametrize(
    ("weights", "labels", "match"),
    [
        (np.ones(5), None, "do not match 4 frames"),
        (np.ones((2, 3)), None, "do not match 4 frames"),
        (np.ones((2, 4)), ["only one"], "1 labels for 2 weight rows"),
        (np.array([0.1, np.nan, 0.2, 0.3]), None, "NaN"),
    ],
)
def test_bad_inputs_are_named(tmp_path, weights, labels, match) -> None:
    with pytest.raises(ValueError, match=match):
        draw_temporal_weights(solid_frames(4), weights, str(tmp_path / "x.png"), labels=labels)


def test_bad_frames_are_named(tmp_path) -> None:
    with pytest.raises(ValueError, match="no frames"):
        draw_temporal_weights([], np.ones(0), str(tmp_path / "x.png"))
    with pytest.raises(ValueError, match="frame 1"):
        frames = solid_frames(2)
        frames[1] = frames[1].astype(np.float32)
        draw_temporal_weights(frames, np.ones(2), str(tmp_path / "x.png"))


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch) -> None:
    from matplotlib.figure import Figure

    out = tmp_path / "att.png"
    out.write_bytes(b"previous")

    def broken_savefig(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        draw_temporal_weights(solid_frames(3), np.ones(3) / 3, str(out))
    assert out.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["att.png"]
