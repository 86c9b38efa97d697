"""Search report: self-contained HTML with embedded thumbnails and match borders, plus a PNG."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from vidreid.retrieval.index import SearchHit
from vidreid.retrieval.report import COLOURS, LABEL_WIDTH_PX, write_report

IMG_SRC = re.compile(r'<img src="([^"]*)"')


def _frames(folder, name: str, n: int, colour: tuple[int, int, int]) -> tuple[str, ...]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{name}_{i}.jpg"
        Image.new("RGB", (32, 64), colour).save(path)
        paths.append(str(path))
    return tuple(paths)


def _hits(tmp_path) -> list[SearchHit]:
    return [
        SearchHit("g-match", 7, 1, 0.25, _frames(tmp_path / "g", "a", 3, (0, 0, 255))),
        SearchHit("g-other", 9, 2, 0.5, _frames(tmp_path / "g", "b", 20, (255, 255, 0))),
    ]


def _hex_rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])


def test_html_is_self_contained_with_borders(tmp_path):
    query = _frames(tmp_path / "q", "q", 2, (255, 0, 0))
    out = write_report(list(query), _hits(tmp_path), tmp_path / "r.html", query_label=7)
    page = out.read_text()
    srcs = IMG_SRC.findall(page)
    # 2 query frames + 3 + 20 sampled down to the default max_frames=8
    assert len(srcs) == 2 + 3 + 8
    assert all(s.startswith("data:image/jpeg;base64,") for s in srcs)
    assert 'class="hit match"' in page and 'class="hit mismatch"' in page
    assert page.index("g-match") < page.index("g-other")
    assert "0.2500" in page and "0.5000" in page
    assert str(tmp_path) not in page  # no reference to files on disk


def test_unlabelled_query_has_neutral_borders(tmp_path):
    out = write_report([np.zeros((64, 32, 3), np.uint8)], _hits(tmp_path), tmp_path / "r.html")
    page = out.read_text()
    assert 'class="hit unlabelled"' in page
    assert "hit match" not in page and "hit mismatch" not in page


def test_png_has_green_and_red_borders(tmp_path):
    query = _frames(tmp_path / "q", "q", 2, (255, 0, 0))
    png = tmp_path / "r.png"
    write_report(query, _hits(tmp_path), tmp_path / "r.html", query_label=7, png=png, max_frames=4)
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    rows = img.shape[0] // 3  # query row, match row, mismatch row of equal height
    assert img.shape[0] % 3 == 0

    # top-left pixel of each strip's border
    assert np.abs(img[rows, LABEL_WIDTH_PX] - _hex_rgb(COLOURS["match"])).max() <= 2
    assert np.abs(img[2 * rows, LABEL_WIDTH_PX] - _hex_rgb(COLOURS["mismatch"])).max() <= 2


def test_unreadable_gallery_frame_becomes_placeholder(tmp_path):
    hits = [SearchHit("gone", 1, 0, 1.0, (str(tmp_path / "missing.jpg"),))]
    out = write_report([np.zeros((8, 4, 3), np.uint8)], hits, tmp_path / "r.html")
    page = out.read_text()
    assert "1 gallery frame(s) could not be read" in page
    assert len(IMG_SRC.findall(page)) == 2


def test_missing_query_frame_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="query frame .*nope.jpg"):
        write_report([str(tmp_path / "nope.jpg")], [], tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()
