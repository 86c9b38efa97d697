"""Scene videos: several synthetic pedestrians crossing one static camera view.

Where :func:`~vidreid.data.synth.render.render_tracklet` draws a detector *crop* that
follows one person, :func:`render_scene` draws the whole camera view, so that detection and
tracking can be scored against truth: a static background (the camera's scene strip), and
people who walk in from either side at different depths (farther people are smaller and
higher in the image), crossing each other; nearer people are drawn last and occlude
farther ones, and an optional pole in the foreground occludes everyone who passes it.

Each person is rendered with ``render_tracklet`` (same figures, gait and clothing as the
re-ID data; detector jitter off) at its on-screen height, and its silhouette pixels are
pasted into the view. Output: a video (OpenCV ``VideoWriter``, MJPG in AVI by default)
and a ground-truth CSV ``frame,id,x,y,w,h`` (0-based frame index, the person's identity
``pid``, the box of the whole person, occluded parts included, as in MOTChallenge),
clipped to the image and listed while at least ``MIN_VISIBLE_WIDTH`` of the box is inside.
Both are written atomically (temp file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from vidreid.data.synth.render import (
    DIRECTIONS,
    CameraStyle,
    Identity,
    _scene,
    render_tracklet,
    sample_camera,
    sample_identities,
)

TRUTH_COLUMNS = ("frame", "id", "x", "y", "w", "h")
#: A person is in the ground truth while at least this fraction of its box width is inside.
MIN_VISIBLE_WIDTH = 0.5
#: Person height over image height, for the farthest and the nearest walking line.
HEIGHT_RANGE = (0.36, 0.5)
#: Crop aspect (width / height) the figure is rendered in: wide enough for swinging limbs.
CROP_ASPECT = 0.6
#: A crossing lasts this fraction of the clip (so everyone is on screen long enough).
CROSSING_FRACTION = (0.55, 0.85)
#: Pole width, as a fraction of the image width.
POLE_WIDTH = 0.025
#: Sensor noise std (grey levels) added to every frame independently.
FRAME_NOISE = 2.0
VIDEO_FOURCC = "MJPG"


@dataclass(frozen=True)
class SceneTruth:
    """What :func:`render_scene` wrote: the files, the people and the per-frame boxes.

    ``boxes`` is ``[N, 6]`` float: ``frame, id, x, y, w, h`` (the CSV rows).
    """

    video: str
    truth: str
    num_frames: int
    size: tuple[int, int]
    fps: float
    identities: tuple[Identity, ...]
    boxes: np.ndarray


def _atomic_tmp(path: str) -> str:
    """A temp name beside ``path`` with the same extension (OpenCV picks codecs by it)."""
    stem, ext = os.path.splitext(path)
    return f"{stem}.tmp-{os.getpid()}{ext}"


def read_truth(path: str | os.PathLike[str]) -> np.ndarray:
    """Load a ground-truth CSV (``frame,id,x,y,w,h``) as a ``[N, 6]`` float array."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"ground-truth file not found: {path}")
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != TRUTH_COLUMNS:
            raise ValueError(f"{path}: header {header}; expected {','.join(TRUTH_COLUMNS)}")
        rows = [[float(v) for v in row] for row in reader if row]
    return np.asarray(rows, np.float64).reshape(-1, len(TRUTH_COLUMNS))


def render_scene(
    video: str | os.PathLike[str],
    truth: str | os.PathLike[str],
    *,
    num_frames: int = 80,
    size: tuple[int, int] = (240, 320),
    people: int | Sequence[Identity] = 4,
    seed: int = 0,
    fps: float = 10.0,
    camera: CameraStyle | None = None,
    pole: bool = True,
) -> SceneTruth:
    """Render a static-camera scene of pedestrians crossing; write the video and its truth.

    ``size`` is (height, width); ``people`` is a number of identities to sample
    (``near_duplicate_rate`` 0, pids 1..n) or the identities themselves (to show the same
    people to two cameras); ``camera`` defaults to one sampled from ``seed``. Persons
    alternate directions (left-to-right, right-to-left), so paths cross. Deterministic
    given the arguments.
    """
    import cv2

    h, w = int(size[0]), int(size[1])
    if num_frames < 2:
        raise ValueError(f"num_frames must be >= 2, got {num_frames}")
    if h < 64 or w < 64:
        raise ValueError(f"size (H, W) must be at least (64, 64), got {size}")
    rng = np.random.default_rng(seed)
    if isinstance(people, int):
        if people < 1:
            raise ValueError(f"people must be >= 1, got {people}")
        identities = tuple(sample_identities(people, rng, near_duplicate_rate=0.0))
    else:
        identities = tuple(people)
        if not identities:
            raise ValueError("people: give at least one identity")
    cam = camera if camera is not None else sample_camera(0, rng)
    cam = replace(cam, jitter=0.0)  # boxes of a scene are exact; the detector adds its own

    # Static background: the camera's scene strip, cut to the view.
    background = np.array(_scene(cam, h, w, 0)[:, :w], np.float32)  # [H, W, 3]
    pole_x = None
    if pole:
        pole_x = int(rng.uniform(0.3, 0.7) * w)
        half = max(1, int(POLE_WIDTH * w / 2))
        pole_rgb = rng.uniform(30, 90, 3).astype(np.float32)

    # Plan each person: depth (foot line), direction, entry frame, speed; then render.
    layers = []  # (foot_y, person index, per-frame x-left, top, crop frames, silhouettes)
    n = len(identities)
    depths = rng.permutation(np.linspace(0.0, 1.0, n)) if n > 1 else np.zeros(1)
    for k, ident in enumerate(identities):
        depth = float(depths[k])  # 0 = far, 1 = near
        ph = int(round(h * (HEIGHT_RANGE[0] + depth * (HEIGHT_RANGE[1] - HEIGHT_RANGE[0]))))
        cw = max(16, int(round(ph * CROP_ASPECT)))
        foot = int(round(h * (0.72 + 0.24 * depth)))
        rightward = k % 2 == 0
        duration = max(2, int(rng.uniform(*CROSSING_FRACTION) * num_frames))
        start = int(rng.integers(0, max(1, num_frames - duration)))
        travel = w + cw  # from fully outside on one side to fully outside on the other
        t = np.arange(duration)
        cx = -cw / 2 + travel * t / (duration - 1)
        if not rightward:
            cx = w - cx
        weights = [0.0] * len(DIRECTIONS)
        weights[list(DIRECTIONS).index("right" if rightward else "left")] = 1.0
        style = replace(cam, direction_weights=tuple(weights), scale_range=(0.9, 0.92))
        prng = np.random.default_rng([seed, k])
        r = render_tracklet(ident, style, duration, prng, size=(ph, cw))
        top = foot - ph
        layers.append((foot, k, start, np.round(cx - cw / 2).astype(int), top, r))
    layers.sort(key=lambda item: item[0])  # far first: nearer people are drawn over them

    video, truth = os.fspath(video), os.fspath(truth)
    for path in (video, truth):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp_video = _atomic_tmp(video)
    writer = cv2.VideoWriter(tmp_video, cv2.VideoWriter_fourcc(*VIDEO_FOURCC), fps, (w, h))
    if not writer.isOpened():
        raise ValueError(f"OpenCV cannot write {VIDEO_FOURCC} video to {tmp_video}")
    rows: list[tuple[int, int, float, float, float, float]] = []
    noise_rng = np.random.default_rng([seed, 1 << 20])
    try:
        for f in range(num_frames):
            frame = background.copy()
            for _, k, start, left, top, r in layers:
                i = f - start
                if not 0 <= i < len(r.frames):
                    continue
                x0 = int(left[i])
                ch, cw = r.silhouette.shape[1:]
                # Visible part of the crop inside the image.
                ax0, ax1 = max(0, x0), min(w, x0 + cw)
                ay0, ay1 = max(0, top), min(h, top + ch)
                if ax0 >= ax1 or ay0 >= ay1:
                    continue
                sl = (slice(ay0 - top, ay1 - top), slice(ax0 - x0, ax1 - x0))
                mask = r.silhouette[i][sl]
                region = frame[ay0:ay1, ax0:ax1]
                region[mask] = r.frames[i][sl][mask]
                ys, xs = np.nonzero(r.silhouette[i])
                if len(xs) == 0:
                    continue
                bx0, bx1 = x0 + xs.min(), x0 + xs.max() + 1
                by0, by1 = top + ys.min(), top + ys.max() + 1
                cx0, cx1 = max(0, bx0), min(w, bx1)
                if (cx1 - cx0) >= MIN_VISIBLE_WIDTH * (bx1 - bx0):
                    rows.append((f, identities[k].pid, float(cx0), float(max(0, by0)),
                                 float(cx1 - cx0), float(min(h, by1) - max(0, by0))))
            if pole_x is not None:
                frame[:, max(0, pole_x - half) : pole_x + half] = pole_rgb
            frame += noise_rng.normal(0.0, FRAME_NOISE, frame.shape).astype(np.float32)
            rgb = np.clip(frame, 0, 255).astype(np.uint8)
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    except BaseException:
        writer.release()
        if os.path.exists(tmp_video):
            os.remove(tmp_video)
        raise
    writer.release()
    os.replace(tmp_video, video)

    tmp_truth = _atomic_tmp(truth)
    with open(tmp_truth, "w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(TRUTH_COLUMNS)
        out.writerows((f, i, f"{x:.1f}", f"{y:.1f}", f"{bw:.1f}", f"{bh:.1f}")
                      for f, i, x, y, bw, bh in sorted(rows))
    os.replace(tmp_truth, truth)
    return SceneTruth(video=video, truth=truth, num_frames=num_frames, size=(h, w), fps=fps,
                      identities=identities,
                      boxes=np.asarray(sorted(rows), np.float64).reshape(-1, 6))
