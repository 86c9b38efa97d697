"""``vidreid ingest``: from a video file to re-ID tracklets in the ``folder`` layout.

Pipeline: decode (OpenCV) -> detect people (:mod:`vidreid.retrieval.detect`; default the
``ssdlite`` CNN on frame + tiles, in batches of frames) on every ``every``-th frame ->
embed each box (the tracker's appearance encoder, if any) -> track
(:mod:`vidreid.retrieval.track`; ``reid`` with appearance, else ``sort``) -> cut tracks into
tracklets (:func:`~vidreid.retrieval.track.cut_tracklets`: gaps, appearance jumps, boxes too
wide for one person, boxes between two other tracks' people,
:func:`~vidreid.retrieval.track.bridging_boxes`) -> decode again and write the crops (and, with ``draw``, the video
with boxes and track ids). ``start`` / ``max_frames`` take a piece of the video.

Output ``DIR`` (loads with ``build_dataset("folder", DIR)``)::

    DIR/gallery/<pid>/<camid>_<tracklet>/<frame>.jpg   the crops (pid = track id)
    DIR/query -> the same tracklet folders (relative symlinks; copies where the file system
                 has none), so the folder loads on its own and a video can be searched
                 against itself; use the gallery split for indexing
    DIR/manifest.csv   one row per crop (see MANIFEST_COLUMNS)
    DIR/ingest.json    the run: video, settings, counts, stage timings

``pid`` is the tracker's identity hypothesis (tracklets cut from one track share it), not a
true identity; ``camid`` is ``--camera``. ``frame`` numbers are 0-based video frames.

Atomic and resumable: the work happens in ``DIR.partial/`` and ``DIR.partial`` is renamed
to ``DIR`` only when everything is written, so ``DIR`` is complete or absent; an existing
``DIR`` is never overwritten. Detection, the slow stage, is saved per chunk of
``chunk_frames`` video frames (``DIR.partial/chunks/*.npz``, with the video's size and
modification time and the settings in ``DIR.partial/state.json``); re-running the same
command skips finished chunks (their frames are only grabbed, not detected) and redoes the
cheap rest (tracking, cutting, crops). A detector with state across frames (``stateful =
True``: background subtraction) is instead fed the finished chunks' frames again, so the
resumed run equals a straight one (bgsub is cheap; the slow detectors are stateless). A ``DIR.partial`` of another video or other settings
is refused, not mixed in.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

from vidreid.atomic import write_text
from vidreid.retrieval.detect import Detector, build_detector, default_detector
from vidreid.retrieval.track import (
    bridging_boxes,
    build_tracker,
    crowded_boxes,
    cut_tracklets,
    grown_boxes,
)

MANIFEST_NAME = "manifest.csv"
SUMMARY_NAME = "ingest.json"
STATE_NAME = "state.json"
CHUNK_DIR = "chunks"
SPLIT = "gallery"
MIRROR_SPLIT = "query"
MANIFEST_COLUMNS = ("path", "pid", "camid", "tracklet", "split", "video", "frame", "x", "y",
                    "w", "h", "score", "track_id")
_COLUMN_TYPES = (str, int, int, str, str, str, int, float, float, float, float, float, int)
DEFAULT_CHUNK_FRAMES = 200
JPEG_QUALITY = 95
STATE_VERSION = 2
#: Frames per call of a batched detector (``detect_batch``): one forward pass over them.
DEFAULT_BATCH_FRAMES = 4
#: A walking person's box is about 0.3-0.6 times as wide as tall; a box wider than this
#: times its height is mostly two or more people merged (or a cut-off person), and is left
#: out of tracklets.
MAX_PERSON_WIDTH_RATIO = 0.8
#: Cosine distance between the mean appearance before and after a point of a track above
#: which the track is cut there, for an encoder without thresholds of its own (a trained
#: model via ``--model``; the default encoder carries its own, see
#: :mod:`vidreid.retrieval.appearance`). Set for the former default encoder (ImageNet
#: MobileNetV2, last layer pooled) on vtest.avi: single crops of one person two frames apart
#: were 0.11 / 0.19 / 0.33 apart (5th / 50th / 95th percentile), crops of two people in one
#: frame 0.28 / 0.35 / 0.44 (5th / 25th / 50th); a trained re-ID model separates more.
DEFAULT_MAX_JUMP = 0.25
#: A crop farther than this (cosine distance) from its tracklet's mean appearance is left
#: out (a few crops of someone else at a tracklet's ends, crops mostly covered by someone or
#: something else; see ``cut_tracklets``), for an encoder without its own (as
#: ``DEFAULT_MAX_JUMP``).
DEFAULT_MAX_OUTLIER = 0.25
#: A box more than this times as wide (for its height) as its track's median box is left
#: out: a walker's width / height varies by ~1.2x over a stride, a second person beside
#: them widens the box by ~1.5x (see ``cut_tracklets``). On vtest.avi (ssdlite) it removed a
#: tracklet of boxes holding a walking pair, and also 130 of ~1960 one-person crops (cut
#: tracklets, which are allowed; mixed ones are not). Meant for CNN boxes: background-
#: subtraction masks vary more in width.
DEFAULT_MAX_ASPECT_GROWTH = 1.3
#: A box more than this times as tall as its track's last few boxes is left out (someone
#: behind or in front taken into it; see ``track.grown_boxes``). On vtest.avi this height
#: ratio is 0.88 / 1.00 / 1.13 (5th / 50th / 95th percentile); at 1.2 it flags 2% of the
#: boxes, among them the runs that took in a second person (1.21-1.45x).
DEFAULT_MAX_HEIGHT_GROWTH = 1.2
#: Torch intra-op threads for detection and encoding. One: the convolutions of a few small
#: views and crops are too short to share between threads; measured on the 2-core machine
#: with other jobs running, two OpenMP threads made the appearance encoder 15-100x slower per
#: crop in CPU time (the threads spin at every barrier while the other is descheduled) and
#: one thread was never slower in CPU time. The second core is left to decoding and the rest.
DEFAULT_THREADS = 1
#: ``vidreid ingest`` runs the detector on every N-th frame; the frames between get their tracklet
#: boxes by interpolation (:func:`tracklet_boxes`). The detector (full frame + 2x2 tiles)
#: is ~80% of the CPU time per frame; detecting every 2nd frame halves it. Measured on
#: vtest.avi (10 frames/s, frames 0-159, 282 tracklet boxes on odd frames): the box
#: interpolated from the two neighbouring detections overlaps the one the detector finds on
#: that frame at IoU 0.68 / 0.81 / 0.89 (5th / 25th / 50th percentile), all >= 0.5 (the
#: match criterion): no tracklet box is lost (``benchmarks/ingest_real.py``,
#: ``interpolation``). The one-view alternatives (no tiles, or one larger input, at
#: 25-70 ms a frame against ~140-180 ms under load) found only 53-69% of the five-view
#: boxes at IoU 0.5 (``--detector-views``): the full frame and the tiles miss different
#: people, and their union is what finds the people 60-130 px tall.
DEFAULT_EVERY = 2
#: Frame rate of the drawn video when the input does not say.
DEFAULT_FPS = 25.0

#: ``encoder(crops) -> [N, D]``: appearance embeddings of RGB uint8 crops, for the tracker.
Encoder = Callable[[list[np.ndarray]], np.ndarray]


class CropRecord(NamedTuple):
    """One manifest row: a crop file and where it came from."""

    path: str  # relative to the output folder, ``/`` separated
    pid: int
    camid: int
    tracklet: str
    split: str
    video: str
    frame: int
    x: float
    y: float
    w: float
    h: float
    score: float
    track_id: int


@dataclass
class IngestSummary:
    """What :func:`ingest_video` did (also written to ``DIR/ingest.json``)."""

    out: str
    video: str
    camera: int
    frames_announced: int
    frames_decoded: int
    frames_detected: int
    detections: int
    tracks: int
    tracklets: int
    crops: int
    tracklet_lengths: list[int]
    truncated: bool
    resumed_chunks: int
    stage_seconds: dict[str, float] = field(default_factory=dict)  # wall
    stage_cpu_seconds: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


class _Clock:
    """Wall and CPU seconds per stage."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def add(self, stage: str, wall: float, cpu: float) -> None:
        self.wall[stage] = self.wall.get(stage, 0.0) + wall
        self.cpu[stage] = self.cpu.get(stage, 0.0) + cpu

    def measure(self, stage: str) -> _Stage:
        return _Stage(self, stage)


class _Stage:
    def __init__(self, clock: _Clock, stage: str) -> None:
        self.clock, self.stage = clock, stage

    def __enter__(self) -> None:
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def __exit__(self, *exc: object) -> None:
        self.clock.add(self.stage, time.perf_counter() - self.t0, time.process_time() - self.c0)


def _set_torch_threads(threads: int | None) -> int | None:
    """Set torch's intra-op threads (``None``: leave them); returns the previous setting."""
    if threads is None:
        return None
    import torch

    if threads < 1:
        raise ValueError(f"threads must be >= 1 (or None), got {threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    return previous


def tracklet_boxes(frames: np.ndarray, boxes: np.ndarray, every: int
                   ) -> list[tuple[int, np.ndarray]]:
    """A tracklet's ``(frame, box)`` pairs, in frame order, with the frames skipped by
    ``every`` filled in: between two consecutive detections ``g <= every`` frames apart the
    ``g - 1`` frames the detector did not run on get the linear interpolation of the two
    boxes (score: the lower of the two). Longer gaps (missed detections) stay gaps.

    Why linear: at 10-25 frames/s a walker's box moves almost uniformly over two or three
    frames (what DeepSORT/ByteTrack's Kalman prediction assumes too), and with both ends
    known interpolation is closer than prediction from one end. ``frames`` ``[N]``,
    ``boxes`` ``[N, 5]`` (x1, y1, x2, y2, score).
    """
    order = np.argsort(frames, kind="stable")
    frames, boxes = np.asarray(frames)[order], np.asarray(boxes, np.float32)[order]
    out: list[tuple[int, np.ndarray]] = []
    for i, (f, b) in enumerate(zip(frames, boxes, strict=True)):
        out.append((int(f), b))
        if i + 1 == len(frames):
            break
        gap = int(frames[i + 1] - f)
        if 1 < gap <= every:
            nxt = boxes[i + 1]
            for j in range(1, gap):
                t = j / gap
                mid = (1 - t) * b + t * nxt
                mid[4] = min(b[4], nxt[4])
                out.append((int(f) + j, mid.astype(np.float32)))
    return out


def _open(video: str) -> Any:
    import cv2

    if not os.path.isfile(video):
        raise FileNotFoundError(f"video file not found: {video}")
    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        cap.release()
        raise ValueError(f"{video}: OpenCV cannot open it as a video (not a video file, or "
                         "an unsupported/corrupt container)")
    return cap


def _seek(cap: Any, start: int, clock: _Clock) -> None:
    """Skip the first ``start`` frames (grabbed one by one: exact for every codec, unlike
    seeking by ``CAP_PROP_POS_FRAMES``, which lands on key frames for some)."""
    with clock.measure("decode"):
        for _ in range(start):
            if not cap.grab():
                return


def _frames(cap: Any, clock: _Clock, first: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """Decoded BGR frames until the first one that fails (end, or a truncated file)."""
    index = first
    while True:
        t0, c0 = time.perf_counter(), time.process_time()
        ok, frame = cap.read()
        clock.add("decode", time.perf_counter() - t0, time.process_time() - c0)
        if not ok or frame is None:
            return
        yield index, frame
        index += 1


def _crop(frame: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    h, w = frame.shape[:2]
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x2 <= x1 or y2 <= y1:
        return None
    return frame[y1:y2, x1:x2]


def _atomic_json(path: str, payload: Any) -> None:
    write_text(path, json.dumps(payload, indent=2, sort_keys=True))


def _save_chunk(path: str, decoded: int, frames: list[int], boxes: list[np.ndarray],
                embeds: list[np.ndarray]) -> None:
    det_frames = np.concatenate([np.full(len(b), f, np.int64) for f, b in zip(frames, boxes,
                                                                              strict=True)]
                                or [np.zeros(0, np.int64)])
    all_boxes = np.concatenate(boxes or [np.zeros((0, 5), np.float32)]).reshape(-1, 5)
    arrays = {"decoded": np.int64(decoded), "frames": np.asarray(frames, np.int64),
              "det_frames": det_frames, "boxes": all_boxes.astype(np.float32)}
    if embeds:
        arrays["embeds"] = np.concatenate(embeds).astype(np.float32)
    tmp = f"{path}.tmp-{os.getpid()}.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _load_chunk(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _video_key(video: str) -> dict[str, Any]:
    st = os.stat(video)
    return {"video": os.path.abspath(video), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def ingest_root(frame: Any) -> str | None:
    """The ingest output folder a crop path belongs to (``DIR/<split>/<pid>/<tracklet>/
    <frame>.jpg`` with ``DIR/manifest.csv`` and ``DIR/ingest.json``), or ``None`` (also for
    a frame that is not a path, e.g. a decoded video frame)."""
    if not isinstance(frame, (str, os.PathLike)):
        return None
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(os.fspath(frame))))))
    if (os.path.isfile(os.path.join(root, MANIFEST_NAME))
            and os.path.isfile(os.path.join(root, SUMMARY_NAME))):
        return root
    return None


def read_manifest(out: str | os.PathLike[str]) -> list[CropRecord]:
    """The crop records of an ingest output folder (``DIR/manifest.csv``), in file order."""
    path = os.path.join(os.fspath(out), MANIFEST_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: is {out} a finished vidreid ingest output?")
    casts = dict(zip(MANIFEST_COLUMNS, _COLUMN_TYPES, strict=True))
    out_rows = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != MANIFEST_COLUMNS:
            raise ValueError(f"{path}: header {reader.fieldnames}; expected "
                             f"{','.join(MANIFEST_COLUMNS)}")
        for lineno, row in enumerate(reader, 2):
            try:
                out_rows.append(CropRecord(**{k: casts[k](row[k]) for k in MANIFEST_COLUMNS}))
            except (TypeError, ValueError):
                raise ValueError(f"{path}, line {lineno}: malformed row {row}") from None
    return out_rows


def ingest_video(
    video: str | os.PathLike[str],
    out: str | os.PathLike[str],
    camera: int,
    *,
    detector: str | Detector = "auto",
    detector_options: dict[str, Any] | None = None,
    every: int = 1,
    min_len: int = 8,
    max_gap: int = 10,
    max_len: int | None = None,
    tracker: str = "auto",
    tracker_options: dict[str, Any] | None = None,
    encoder: Encoder | None = None,
    encoder_id: str | None = None,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    progress: bool = False,
    start: int = 0,
    max_frames: int | None = None,
    batch_frames: int = DEFAULT_BATCH_FRAMES,
    max_width_ratio: float | None = MAX_PERSON_WIDTH_RATIO,
    max_jump: float | None = DEFAULT_MAX_JUMP,
    max_outlier: float | None = DEFAULT_MAX_OUTLIER,
    max_lower_body_outlier: float | None = None,
    max_aspect_growth: float | None = DEFAULT_MAX_ASPECT_GROWTH,
    drop_bridging: bool = True,
    drop_crowded: bool = True,
    max_height_growth: float | None = DEFAULT_MAX_HEIGHT_GROWTH,
    draw: str | os.PathLike[str] | None = None,
    threads: int | None = DEFAULT_THREADS,
    interpolate: bool = True,
) -> IngestSummary:
    """Detect, track and cut the people of ``video`` into tracklets written to ``out``.

    ``camera`` is the 0-based camera id of the tracklets; ``detector`` a name for
    :func:`~vidreid.retrieval.detect.build_detector` (with ``detector_options``; ``auto`` =
    ``ssdlite`` when installed, else ``bgsub``) or a detector object (then resuming trusts
    the caller to pass the same one); ``every`` runs the detector on every N-th frame;
    ``min_len`` / ``max_gap`` / ``max_len`` are the cutting rules of
    :func:`~vidreid.retrieval.track.cut_tracklets`, in processed frames; ``tracker`` is
    ``sort``, ``reid``, ``deepsort`` or ``auto`` (``reid`` with an encoder, else ``sort``);
    ``encoder`` (with a stable ``encoder_id`` for resuming) gives the tracker appearance
    embeddings of the RGB crops, which also cut a track where its appearance jumps by more
    than ``max_jump`` (cosine distance; ``None``: no such cut). Boxes wider than
    ``max_width_ratio`` times their height are not one walking person (mostly two people
    merged into one box) and are left out of tracklets (``None``: keep all), and so are
    boxes more than ``max_aspect_growth`` times as wide (for their height) as their track's
    median box, and crops farther than ``max_outlier`` from their tracklet's mean appearance
    (see :func:`~vidreid.retrieval.track.cut_tracklets`; ``None``: no such rule). With an
    encoder that has ``lower_body(embeddings)`` (the default one), crops whose lower-body
    colour is farther than ``max_lower_body_outlier`` from their tracklet's median are left
    out without splitting it (a passer-by in front; ``None``: no such rule).
    ``drop_bridging``: boxes between two other tracks' people (the detector's one box
    for two people walking side by side) are left out too
    (:func:`~vidreid.retrieval.track.bridging_boxes`); ``drop_crowded``: so are boxes
    another tracked person's box covers much of, off its centre (people crossing or walking
    close: :func:`~vidreid.retrieval.track.crowded_boxes`), and boxes more than
    ``max_height_growth`` times as tall as their track's recent ones (someone behind or in
    front taken in: :func:`~vidreid.retrieval.track.grown_boxes`; ``None``: no such rule).
    ``start`` / ``max_frames`` take a piece of the video (frame numbers stay the video's);
    a detector with ``detect_batch`` gets ``batch_frames`` frames per call. ``draw``: also
    write the video (the piece taken) with every box and its track id (MP4). With ``every > 1`` and
    ``interpolate``, a tracklet also gets crops on the frames skipped between two of its
    detections (boxes interpolated linearly, :func:`tracklet_boxes`), so tracklets keep the
    video's frame rate at a fraction of the detector's cost. ``threads``: torch intra-op threads while detecting and encoding (restored after; ``None``: leave
    torch's setting), see ``DEFAULT_THREADS``. See the module
    docstring for the output and resuming. Raises ``ValueError`` with a clear message for an
    unreadable or empty video and for a video in which no tracklet was found (then nothing
    is written).
    """
    import cv2

    video, out = os.fspath(video), os.path.abspath(os.fspath(out))
    if every < 1 or chunk_frames < 1 or batch_frames < 1:
        raise ValueError(f"every, chunk_frames and batch_frames must be >= 1, got {every}, "
                         f"{chunk_frames}, {batch_frames}")
    if start < 0 or (max_frames is not None and max_frames < 1):
        raise ValueError(f"need start >= 0 and max_frames >= 1, got {start}, {max_frames}")
    if camera < 0:
        raise ValueError(f"camera must be a 0-based camera id, got {camera}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 (or None), got {threads}")
    if os.path.lexists(out):
        raise ValueError(f"{out} already exists; ingest never overwrites a finished output: "
                         "choose another --out or delete it")
    if draw is not None and not os.fspath(draw).lower().endswith(".mp4"):
        raise ValueError(f"--draw {os.fspath(draw)!r}: the drawn video is written as MP4; "
                         "give a path ending in .mp4")
    cap = _open(video)
    announced = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or DEFAULT_FPS
    if detector == "auto":
        detector = default_detector()
    if tracker == "auto":
        tracker = "reid" if encoder is not None else "sort"
    if tracker in ("reid", "deepsort") and encoder is None:
        cap.release()
        raise ValueError(f"the {tracker} tracker needs appearance embeddings: give an encoder "
                         "(--config/--weights, or the default ImageNet one) or use sort")
    detector_options = dict(detector_options or {})
    tracker_options = dict(tracker_options or {})
    det_name = detector if isinstance(detector, str) else type(detector).__name__
    settings = {"detector": det_name, "detector_options": detector_options, "every": every,
                "chunk_frames": chunk_frames, "encoder": encoder_id if encoder else None,
                "start": start, "max_frames": max_frames, "version": STATE_VERSION}
    key = {**_video_key(video), **settings}
    partial = out + ".partial"
    chunk_dir = os.path.join(partial, CHUNK_DIR)
    state_path = os.path.join(partial, STATE_NAME)
    if os.path.isdir(partial):
        try:
            with open(state_path, encoding="utf-8") as f:
                previous = json.load(f)
        except (OSError, ValueError):
            previous = None
        if previous != json.loads(json.dumps(key)):
            cap.release()
            raise ValueError(
                f"{partial} holds an interrupted ingest of another video or with other "
                "settings; delete it, or re-run with the same video and settings to resume"
            )
    os.makedirs(chunk_dir, exist_ok=True)
    _atomic_json(state_path, key)
    det = build_detector(detector, **detector_options) if isinstance(detector, str) else detector
    batched = hasattr(det, "detect_batch")
    clock = _Clock()
    limit = max_frames if max_frames is not None else 1 << 62

    def detect(pending: list[tuple[int, np.ndarray]], frames: list[int],
               boxes: list[np.ndarray], embeds: list[np.ndarray]) -> None:
        """Detect (one batch), embed, and append the results of the pending frames."""
        if not pending:
            return
        with clock.measure("detect"):
            results = (det.detect_batch([f for _, f in pending]) if batched
                       else [det(f) for _, f in pending])
        results = [np.asarray(b, np.float32).reshape(-1, 5) for b in results]
        if encoder is not None and sum(len(b) for b in results):
            with clock.measure("encode"):  # all crops of the batch of frames in one call
                crops = [cv2.cvtColor(c if (c := _crop(frame, x)) is not None
                                      else frame[:1, :1], cv2.COLOR_BGR2RGB)
                         for (_, frame), b in zip(pending, results, strict=True) for x in b]
                embeds.append(np.asarray(encoder(crops), np.float32))
        for (index, _), b in zip(pending, results, strict=True):
            frames.append(index)
            boxes.append(b)
        pending.clear()

    # 1. Decode and detect, chunk by chunk (finished chunks are loaded, their frames grabbed).
    bar = None
    if progress:
        from tqdm import tqdm

        total = max(0, min(announced - start, limit)) if announced else None
        bar = tqdm(total=total or None, desc=f"ingest {os.path.basename(video)}",
                   unit="frame", dynamic_ncols=True)
    chunks: list[dict[str, np.ndarray]] = []
    resumed = 0
    decoded = 0
    torch_threads = _set_torch_threads(threads)
    try:
        _seek(cap, start, clock)
        for c in range(1 << 40):
            path = os.path.join(chunk_dir, f"{c:06d}.npz")
            first = c * chunk_frames  # position in the piece taken
            want = min(chunk_frames, limit - decoded)
            if want <= 0:
                break
            if os.path.isfile(path):
                data = _load_chunk(path)
                n = int(data["decoded"])
                if getattr(det, "stateful", False):  # replay: same state as a straight run
                    got = 0
                    for _ in range(n):
                        t0, c0 = time.perf_counter(), time.process_time()
                        ok, frame = cap.read()
                        clock.add("decode", time.perf_counter() - t0, time.process_time() - c0)
                        if not ok or frame is None:
                            break
                        if (first + got) % every == 0:
                            with clock.measure("detect"):
                                det(frame)
                        got += 1
                else:
                    with clock.measure("decode"):
                        got = sum(bool(cap.grab()) for _ in range(n))
                if got != n:
                    raise ValueError(f"{video} now has fewer frames than when {partial} was "
                                     f"written; delete {partial} and re-run")
                chunks.append(data)
                resumed += 1
            else:
                frames: list[int] = []
                boxes: list[np.ndarray] = []
                embeds: list[np.ndarray] = []
                pending: list[tuple[int, np.ndarray]] = []
                n = 0
                for _ in range(want):
                    position = first + n
                    t0, c0 = time.perf_counter(), time.process_time()
                    if position % every:  # not detected: only advance the decoder
                        ok, frame = cap.grab(), None
                    else:
                        ok, frame = cap.read()
                        ok = ok and frame is not None
                    clock.add("decode", time.perf_counter() - t0, time.process_time() - c0)
                    if not ok:
                        break
                    n += 1
                    if frame is None:
                        continue
                    pending.append((start + position, frame))
                    if len(pending) >= batch_frames:
                        detect(pending, frames, boxes, embeds)
                detect(pending, frames, boxes, embeds)
                _save_chunk(path, n, frames, boxes, embeds)
                data = _load_chunk(path)
                chunks.append(data)
            decoded += int(data["decoded"])
            if bar is not None:
                bar.update(int(data["decoded"]))
            if int(data["decoded"]) < want:
                break
    finally:
        _set_torch_threads(torch_threads)
        cap.release()
        if bar is not None:
            bar.close()
    if decoded == 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise ValueError(f"{video}: no frame could be decoded (an empty, zero-frame or "
                         f"corrupt video, or --start {start} past its end); nothing was "
                         "written")

    # 2. Track over all detections, in frame order; 3. cut.
    det_frames = np.concatenate([d["det_frames"] for d in chunks])
    boxes = np.concatenate([d["boxes"] for d in chunks]).reshape(-1, 5)
    has_embeds = encoder is not None and all("embeds" in d or len(d["boxes"]) == 0
                                             for d in chunks)
    embeds = (np.concatenate([d["embeds"] for d in chunks if "embeds" in d])
              if has_embeds and len(boxes) else None)
    processed = np.concatenate([d["frames"] for d in chunks])
    track_ids = np.zeros(len(boxes), np.int64)
    with clock.measure("track"):
        trk = build_tracker(tracker, **tracker_options)
        order = np.argsort(det_frames, kind="stable")
        starts = np.searchsorted(det_frames[order], processed, side="left")
        stops = np.searchsorted(det_frames[order], processed, side="right")
        for a, b in zip(starts, stops, strict=True):
            rows = order[a:b]
            track_ids[rows] = trk.update(boxes[rows],
                                         embeds[rows] if embeds is not None else None)
        steps = (det_frames - start) // every
        width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        keep = (np.ones(len(boxes), bool) if max_width_ratio is None
                else width <= max_width_ratio * np.maximum(height, 1e-6))
        if drop_bridging:
            keep &= ~bridging_boxes(steps, track_ids, boxes, max_gap=max_gap)
        if drop_crowded:
            keep &= ~crowded_boxes(steps, track_ids, boxes, max_gap=max_gap)
        if max_height_growth is not None:
            keep &= ~grown_boxes(steps, track_ids, boxes, growth=max_height_growth,
                                 max_gap=max_gap)
        lower_body = (encoder.lower_body(embeds) if embeds is not None
                      and max_lower_body_outlier is not None and hasattr(encoder, "lower_body")
                      else None)
        tracklets = cut_tracklets(steps, track_ids, min_len=min_len, max_gap=max_gap,
                                  max_len=max_len, keep=keep, embeddings=embeds,
                                  max_jump=max_jump if embeds is not None else None,
                                  max_outlier=max_outlier if embeds is not None else None,
                                  aspects=width / np.maximum(height, 1e-6),
                                  max_aspect_growth=max_aspect_growth, parts=lower_body,
                                  max_part_outlier=(max_lower_body_outlier
                                                    if lower_body is not None else None))
    if not tracklets:
        shutil.rmtree(partial, ignore_errors=True)
        raise ValueError(
            f"{video}: no tracklet found ({decoded} frames decoded, {len(boxes)} detections "
            f"with {det_name}; tracklets need >= {min_len} detections with gaps <= {max_gap}): "
            "a video with no (moving) people, or try another --detector / a lower --min-len; "
            "nothing was written"
        )

    # 4. Decode again and write the crops (the crop stage is redone in full on resume).
    split_dir = os.path.join(partial, SPLIT)
    for d in (split_dir, os.path.join(partial, MIRROR_SPLIT)):
        shutil.rmtree(d, ignore_errors=True)
    # frame -> [(box x1 y1 x2 y2 score, tracklet no., track id)]
    wanted: dict[int, list[tuple[np.ndarray, int, int]]] = {}
    for k, rows in enumerate(tracklets):
        for f, box in tracklet_boxes(det_frames[rows], boxes[rows],
                                     every if interpolate else 1):
            wanted.setdefault(f, []).append((box, k, int(track_ids[rows[0]])))
    tracklet_dirs = []
    for k, rows in enumerate(tracklets):
        pid = int(track_ids[rows[0]])
        rel = f"{SPLIT}/{pid}/{camera}_{k + 1:04d}"
        tracklet_dirs.append(rel)
        os.makedirs(os.path.join(partial, rel), exist_ok=True)
    records: list[CropRecord] = []
    last = start + decoded - 1 if draw is not None else max(wanted)
    painter = _Painter(draw, fps, det_frames, boxes, tracklets, tracklet_dirs, wanted) \
        if draw is not None else None
    cap = _open(video)
    try:
        _seek(cap, start, clock)
        for index, frame in _frames(cap, clock, start):
            if index > last:
                break
            with clock.measure("write"):
                for box, k, tid in wanted.get(index, ()):
                    crop = _crop(frame, box)
                    if crop is None:
                        continue
                    rel = f"{tracklet_dirs[k]}/{index:06d}.jpg"
                    if not cv2.imwrite(os.path.join(partial, rel), crop,
                                       [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
                        raise ValueError(f"cannot write {os.path.join(partial, rel)}")
                    x1, y1, x2, y2, score = (float(v) for v in box)
                    records.append(CropRecord(
                        rel, tid, int(camera), tracklet_dirs[k].rsplit("_", 1)[1],
                        SPLIT, os.path.abspath(video), index, round(x1, 1), round(y1, 1),
                        round(x2 - x1, 1), round(y2 - y1, 1), round(score, 4), tid,
                    ))
            if painter is not None:
                with clock.measure("draw"):
                    painter.write(index, frame)
        if painter is not None:
            with clock.measure("draw"):
                painter.close()
    finally:
        cap.release()
        if painter is not None:
            painter.abort()
    if not records:
        raise ValueError(f"{video}: decoding the crops failed on the second pass; delete "
                         f"{partial} and re-run")
    records.sort(key=lambda c: (c.path.rsplit("/", 1)[0], c.frame))
    # Tracklet folders whose every crop was empty (boxes outside the frame) are dropped.
    for rel in tracklet_dirs:
        full = os.path.join(partial, rel)
        if not os.listdir(full):
            os.rmdir(full)
            if not os.listdir(os.path.dirname(full)):
                os.rmdir(os.path.dirname(full))
    _mirror(partial)
    tmp = os.path.join(partial, f"{MANIFEST_NAME}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(MANIFEST_COLUMNS)
        w.writerows(records)
    os.replace(tmp, os.path.join(partial, MANIFEST_NAME))
    lengths: dict[str, int] = {}
    for rec in records:
        key_dir = rec.path.rsplit("/", 1)[0]
        lengths[key_dir] = lengths.get(key_dir, 0) + 1
    summary = IngestSummary(
        out=out, video=os.path.abspath(video), camera=int(camera), frames_announced=announced,
        frames_decoded=decoded, frames_detected=len(processed), detections=len(boxes),
        tracks=len({int(track_ids[t[0]]) for t in tracklets}), tracklets=len(lengths),
        crops=len(records), tracklet_lengths=sorted(lengths.values()),
        truncated=announced > 0 and decoded < min(announced - start, limit),
        resumed_chunks=resumed,
        stage_seconds={k: round(v, 4) for k, v in clock.wall.items()},
        stage_cpu_seconds={k: round(v, 4) for k, v in clock.cpu.items()},
        settings={**settings, "tracker": tracker, "tracker_options": tracker_options,
                  "min_len": min_len, "max_gap": max_gap, "max_len": max_len,
                  "max_width_ratio": max_width_ratio,
                  "max_jump": max_jump if embeds is not None else None,
                  "max_outlier": max_outlier if embeds is not None else None,
                  "max_lower_body_outlier": (max_lower_body_outlier
                                             if lower_body is not None else None),
                  "max_aspect_growth": max_aspect_growth, "drop_bridging": drop_bridging,
                  "drop_crowded": drop_crowded, "max_height_growth": max_height_growth,
                  "batch_frames": batch_frames, "interpolate": interpolate,
                  "draw": os.path.abspath(os.fspath(draw)) if draw is not None else None},
    )
    _atomic_json(os.path.join(partial, SUMMARY_NAME), asdict(summary))
    shutil.rmtree(chunk_dir)
    os.remove(state_path)
    os.rename(partial, out)  # the finished output appears at once
    return summary


class _Painter:
    """Writes the drawn video: every tracklet box (detected or interpolated) with its
    tracklet's name in the tracklet's colour, and the detections in no tracklet in grey.
    Atomic: a temporary file is renamed to the destination by :meth:`close`."""

    def __init__(self, dest: str | os.PathLike[str], fps: float, det_frames: np.ndarray,
                 boxes: np.ndarray, tracklets: list[np.ndarray], tracklet_dirs: list[str],
                 tracklet_boxes: dict[int, list[tuple[np.ndarray, int, int]]]) -> None:
        self.dest = os.path.abspath(os.fspath(dest))
        folder = os.path.dirname(self.dest)
        if not os.path.isdir(folder):
            raise ValueError(f"--draw {self.dest}: folder {folder} does not exist")
        self.tmp = os.path.join(folder, f".{os.path.basename(self.dest)}.tmp-{os.getpid()}.mp4")
        self.fps, self.writer = fps, None
        self.tracklet_of = np.full(len(boxes), -1, np.int64)
        for k, rows in enumerate(tracklets):
            self.tracklet_of[rows] = k
        self.names = [d.split("/", 1)[1] for d in tracklet_dirs]  # "<pid>/<cam>_<no>"
        self.rows: dict[int, list[int]] = {}
        for r, f in enumerate(det_frames):
            self.rows.setdefault(int(f), []).append(r)
        self.boxes, self.tracklet_boxes = boxes, tracklet_boxes

    def write(self, index: int, frame: np.ndarray) -> None:
        import cv2

        if self.writer is None:
            h, w = frame.shape[:2]
            self.writer = cv2.VideoWriter(self.tmp, cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                          (w, h))
            if not self.writer.isOpened():
                raise ValueError(f"--draw {self.dest}: OpenCV cannot write an MP4 video here")
        img = frame.copy()
        for r in self.rows.get(index, ()):
            if self.tracklet_of[r] < 0:
                x1, y1, x2, y2 = (int(round(v)) for v in self.boxes[r, :4])
                cv2.rectangle(img, (x1, y1), (x2, y2), (160, 160, 160), 1)
        for box, k, _ in self.tracklet_boxes.get(index, ()):
            x1, y1, x2, y2 = (int(round(v)) for v in box[:4])
            hue = (k * 47) % 180  # distinct, stable colour per tracklet
            colour = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
            colour = tuple(int(c) for c in colour)
            cv2.rectangle(img, (x1, y1), (x2, y2), colour, 2)
            cv2.putText(img, self.names[k], (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.45, colour, 1, cv2.LINE_AA)
        cv2.putText(img, f"frame {index}", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                    (255, 255, 255), 1, cv2.LINE_AA)
        self.writer.write(img)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            os.replace(self.tmp, self.dest)

    def abort(self) -> None:
        """Drop an unfinished drawing (after an error)."""
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if os.path.exists(self.tmp):
            os.remove(self.tmp)


def _mirror(root: str) -> None:
    """``root/query/<pid>/<tracklet>`` -> ``../../gallery/<pid>/<tracklet>`` (relative
    symlinks; copies where symlinks are not available)."""
    src_root = os.path.join(root, SPLIT)
    for pid in sorted(os.listdir(src_root)):
        dst_pid = os.path.join(root, MIRROR_SPLIT, pid)
        os.makedirs(dst_pid, exist_ok=True)
        for name in sorted(os.listdir(os.path.join(src_root, pid))):
            dst = os.path.join(dst_pid, name)
            try:
                os.symlink(os.path.join("..", "..", SPLIT, pid, name), dst,
                           target_is_directory=True)
            except OSError:
                shutil.copytree(os.path.join(src_root, pid, name), dst)
