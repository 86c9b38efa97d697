"""Search results as a self-contained HTML page and a PNG: query frames, then the top-k hits.

Each gallery hit is a strip of up to ``max_frames`` thumbnails sampled evenly over its
tracklet, with rank, tracklet name, pid, camera and distance. When the query label is known,
a hit with the same pid gets a green border (CSS class ``match``) and any other hit a red one
(``mismatch``); without a label hits get a neutral grey border (``unlabelled``).

Tracklets are named by their folder (``<pid>/<tracklet>``, the last two folders of their
frames' path) rather than by their position in a features file. On ``vidreid ingest``
output the pids are the tracker's track ids, not identities: with
``identity_labels=False`` they are shown as "track N" and nothing is coloured as a match or
mismatch (no hit has a known identity).

The HTML embeds every thumbnail as a base64 JPEG (``data:`` URI): the page can be mailed or
archived without the frame files. A gallery frame that cannot be read (moved, deleted) is drawn
as a grey placeholder and counted in the page, so one stale path does not lose the report; a
query frame that cannot be read is an error.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from vidreid.retrieval.features_file import atomic_write_bytes
from vidreid.retrieval.index import SearchHit

THUMB_HEIGHT = 128  # px; person crops are ~2:1, so thumbnails are ~64 x 128
JPEG_QUALITY = 85
BORDER_PX = 4
THUMB_GAP_PX = 2  # between thumbnails of one strip
LABEL_WIDTH_PX = 260  # PNG: text column left of each strip
ROW_GAP_PX = 8
COLOURS = {"match": "#2e7d32", "mismatch": "#c62828", "unlabelled": "#9e9e9e", "query": "#1565c0"}
PLACEHOLDER_GREY = (200, 200, 200)


def _sample(items: Sequence, max_frames: int) -> list:
    """Up to ``max_frames`` items spread evenly from first to last."""
    if len(items) <= max_frames:
        return list(items)
    picks = np.linspace(0, len(items) - 1, max_frames).round().astype(int)
    return [items[i] for i in picks]


def _to_image(frame: str | os.PathLike[str] | np.ndarray) -> Image.Image:
    """An RGB PIL image from a path or an ``[H, W]`` / ``[H, W, 3]`` uint8 (or [0, 1] float) array."""
    if isinstance(frame, np.ndarray):
        arr = frame
        if arr.dtype != np.uint8:
            if not np.issubdtype(arr.dtype, np.floating):
                raise ValueError(f"frame array dtype {arr.dtype}: give uint8 or float in [0, 1]")
            arr = (np.clip(arr, 0.0, 1.0) * 255).round().astype(np.uint8)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
            raise ValueError(f"frame array shape {arr.shape}: give [H, W] or [H, W, 3] (RGB)")
        return Image.fromarray(arr).convert("RGB")
    with Image.open(frame) as img:
        return img.convert("RGB")


def _thumbnail(img: Image.Image) -> Image.Image:
    width = max(1, round(img.width * THUMB_HEIGHT / img.height))
    return img.resize((width, THUMB_HEIGHT), Image.Resampling.BILINEAR)


def _placeholder() -> Image.Image:
    """Grey box with a cross: a gallery frame that could not be read."""
    img = Image.new("RGB", (THUMB_HEIGHT // 2, THUMB_HEIGHT), PLACEHOLDER_GREY)
    draw = ImageDraw.Draw(img)
    draw.line((0, 0, img.width, img.height), fill="white", width=2)
    draw.line((0, img.height, img.width, 0), fill="white", width=2)
    return img


def _data_uri(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def tracklet_name(tracklet_id: str, frames: Sequence[str | os.PathLike[str]]) -> str:
    """``<pid>/<tracklet>``: the last two folders of the tracklet's first frame path (the
    folder layout's names), or ``tracklet_id`` when there are no frame paths."""
    if not frames or not isinstance(frames[0], (str, os.PathLike)):
        return str(tracklet_id)
    folder = os.path.dirname(os.fspath(frames[0]))
    parent, name = os.path.split(folder)
    pid = os.path.basename(parent)
    return f"{pid}/{name}" if pid and name else str(tracklet_id)


def _hit_class(hit: SearchHit, query_label: int | None) -> str:
    if query_label is None:
        return "unlabelled"
    return "match" if int(hit.pid) == int(query_label) else "mismatch"


_CSS = f"""
body {{ font-family: sans-serif; margin: 1em; }}
.strip {{ display: inline-flex; gap: {THUMB_GAP_PX}px; padding: 2px; border: {BORDER_PX}px solid; }}
.strip img {{ height: {THUMB_HEIGHT}px; }}
.query {{ border-color: {COLOURS["query"]}; }}
.match {{ border-color: {COLOURS["match"]}; }}
.mismatch {{ border-color: {COLOURS["mismatch"]}; }}
.unlabelled {{ border-color: {COLOURS["unlabelled"]}; }}
td {{ padding: 4px 8px; vertical-align: middle; }}
.note {{ color: #c62828; }}
"""


def _strip_html(thumbs: list[Image.Image], css_class: str) -> str:
    imgs = "".join(f'<img src="{_data_uri(t)}" alt="frame">' for t in thumbs)
    return f'<div class="strip {css_class}">{imgs}</div>'


def _strip_width(thumbs: list[Image.Image]) -> int:
    """PNG width of a bordered strip: thumbnails, gaps between them, two borders."""
    return sum(t.width for t in thumbs) + THUMB_GAP_PX * (len(thumbs) - 1) + 2 * BORDER_PX


def _compose_png(
    rows: list[tuple[str, str, list[Image.Image]]],
) -> Image.Image:
    """Rows of (text, border colour, thumbnails) stacked into one image."""
    strip_widths = [_strip_width(thumbs) for _, _, thumbs in rows]
    width = LABEL_WIDTH_PX + max(strip_widths, default=0)
    row_h = THUMB_HEIGHT + 2 * BORDER_PX + ROW_GAP_PX
    canvas = Image.new("RGB", (width, row_h * len(rows)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (text, colour, thumbs) in enumerate(rows):
        top = i * row_h
        draw.multiline_text((4, top + 4), text, fill="black")
        strip_w = _strip_width(thumbs)
        box = (
            LABEL_WIDTH_PX,
            top,
            LABEL_WIDTH_PX + strip_w - 1,
            top + THUMB_HEIGHT + 2 * BORDER_PX - 1,
        )
        draw.rectangle(box, fill=colour)
        x = LABEL_WIDTH_PX + BORDER_PX
        for t in thumbs:
            canvas.paste(t, (x, top + BORDER_PX))
            x += t.width + THUMB_GAP_PX
    return canvas


def write_report(
    query_frames: Sequence[str | os.PathLike[str] | np.ndarray],
    results: Sequence[SearchHit],
    out_html: str | os.PathLike[str],
    *,
    query_label: int | None = None,
    png: str | os.PathLike[str] | None = None,
    max_frames: int = 8,
    title: str = "vidreid search results",
    identity_labels: bool = True,
) -> Path:
    """Write the HTML report of one query's ranked ``results`` (and a PNG if ``png``).

    ``identity_labels=False``: the pids are track ids (ingest output), not identities; they
    are shown as such and no hit is coloured as a match or mismatch."""
    if max_frames <= 0:
        raise ValueError(f"max_frames must be positive, got {max_frames}")
    if not query_frames:
        raise ValueError("the report needs at least one query frame")
    query_thumbs = []
    for frame in _sample(query_frames, max_frames):
        try:
            query_thumbs.append(_thumbnail(_to_image(frame)))
        except FileNotFoundError:
            raise FileNotFoundError(f"query frame {frame} does not exist") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"query frame {frame} is not a readable image ({exc})") from None

    unreadable = 0
    hit_rows = []
    for rank, hit in enumerate(results, start=1):
        thumbs = []
        for path in _sample(hit.frames, max_frames):
            try:
                thumbs.append(_thumbnail(_to_image(path)))
            except (UnidentifiedImageError, OSError):
                unreadable += 1
                thumbs.append(_placeholder())
        if not thumbs:
            thumbs.append(_placeholder())
        css = _hit_class(hit, query_label if identity_labels else None)
        hit_rows.append((rank, hit, css, thumbs))

    pid_word = "pid" if identity_labels else "track"
    label_text = "unknown" if query_label is None else str(int(query_label))
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<h2>Query ({len(query_frames)} frames, {pid_word} {label_text})</h2>",
        _strip_html(query_thumbs, "query"),
        f"<h2>Top {len(hit_rows)} gallery tracklets</h2>",
    ]
    if unreadable:
        parts.append(
            f'<p class="note">{unreadable} gallery frame(s) could not be read and are shown '
            "as grey placeholders (moved or deleted since indexing?).</p>"
        )
    if not identity_labels:
        parts.append("<p>Track ids come from the tracker, not from identity labels: no hit "
                     "is marked right or wrong.</p>")
    parts.append(
        f"<table><tr><th>rank</th><th>tracklet</th><th>{pid_word}</th><th>camera</th>"
        "<th>distance</th><th>frames</th></tr>"
    )
    for rank, hit, css, thumbs in hit_rows:
        name = html.escape(tracklet_name(hit.tracklet_id, hit.frames))
        if name != html.escape(str(hit.tracklet_id)):  # the index's id, in small print
            name += f"<br><small>{html.escape(str(hit.tracklet_id))}</small>"
        parts.append(
            f'<tr class="hit {css}"><td>{rank}</td><td>{name}</td>'
            f"<td>{int(hit.pid)}</td><td>{int(hit.camid)}</td><td>{hit.distance:.4f}</td>"
            f"<td>{_strip_html(thumbs, css)}</td></tr>"
        )
    parts.append("</table></body></html>\n")
    out_html = Path(out_html)
    page = "\n".join(parts).encode("utf-8")
    atomic_write_bytes(out_html, lambda fh: fh.write(page))

    if png is not None:
        rows = [(f"query\n{pid_word} {label_text}", COLOURS["query"], query_thumbs)]
        for rank, hit, css, thumbs in hit_rows:
            name = tracklet_name(hit.tracklet_id, hit.frames)
            text = (
                f"#{rank} {name}\n{pid_word} {hit.pid}  cam {hit.camid}\nd = {hit.distance:.4f}"
            )
            rows.append((text, COLOURS[css], thumbs))
        canvas = _compose_png(rows)
        atomic_write_bytes(png, lambda fh: canvas.save(fh, format="PNG"))
    return out_html
