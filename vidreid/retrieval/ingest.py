"""``vidreid ingest``: from a video file to re-ID tracklets in the ``folder`` layout.

Pipeline: decode (OpenCV) -> detect people (:mod:`vidreid.retrieval.detect`) on every
``every``-th frame -> track (:mod:`vidreid.retrieval.track`) -> cut tracks into tracklets
(:func:`~vidreid.retrieval.track.cut_tracklets`) -> decode again and write the crops.

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
from vidreid.retrieval.detect import Detector, build_detector
from vidreid.retrieval.track import build_tracker, cut_tracklets

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
STATE_VERSION = 1

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


def _frames(cap: Any, clock: _Clock) -> Iterator[tuple[int, np.ndarray]]:
    """Decoded BGR frames until the first one that fails (end, or a truncated file)."""
    index = 0
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
    detector: str | Detector = "bgsub",
    detector_options: dict[str, Any] | None = None,
    every: int = 1,
    min_len: int = 8,
    max_gap: int = 10,
    max_len: int | None = None,
    tracker: str = "sort",
    tracker_options: dict[str, Any] | None = None,
    encoder: Encoder | None = None,
    encoder_id: str | None = None,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    progress: bool = False,
) -> IngestSummary:
    """Detect, track and cut the people of ``video`` into tracklets written to ``out``.

    ``camera`` is the 0-based camera id of the tracklets; ``detector`` a name for
    :func:`~vidreid.retrieval.detect.build_detector` (with ``detector_options``) or a detector
    object (then resuming trusts the caller to pass the same one); ``every`` runs the
    detector on every N-th frame; ``min_len`` / ``max_gap`` / ``max_len`` are the cutting
    rules of :func:`~vidreid.retrieval.track.cut_tracklets`, in processed frames;
    ``tracker`` is ``sort`` or ``deepsort``; ``encoder`` (with a stable ``encoder_id`` for
    resuming) gives the tracker appearance embeddings of the RGB crops. See the module
    docstring for the output and resuming. Raises ``ValueError`` with a clear message for
    an unreadable or empty video and for a video in which no tracklet was found (then
    nothing is written).
    """
    import cv2

    video, out = os.fspath(video), os.path.abspath(os.fspath(out))
    if every < 1 or chunk_frames < 1:
        raise ValueError(f"every and chunk_frames must be >= 1, got {every}, {chunk_frames}")
    if camera < 0:
        raise ValueError(f"camera must be a 0-based camera id, got {camera}")
    if os.path.lexists(out):
        raise ValueError(f"{out} already exists; ingest never overwrites a finished output: "
                         "choose another --out or delete it")
    cap = _open(video)
    announced = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    detector_options = dict(detector_options or {})
    tracker_options = dict(tracker_options or {})
    det_name = detector if isinstance(detector, str) else type(detector).__name__
    settings = {"detector": det_name, "detector_options": detector_options, "every": every,
                "chunk_frames": chunk_frames, "encoder": encoder_id if encoder else None,
                "version": STATE_VERSION}
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
    clock = _Clock()

    # 1. Decode and detect, chunk by chunk (finished chunks are loaded, their frames grabbed).
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=announced or None, desc=f"ingest {os.path.basename(video)}",
                   unit="frame", dynamic_ncols=True)
    chunks: list[dict[str, np.ndarray]] = []
    resumed = 0
    decoded = 0
    try:
        for c in range(1 << 40):
            path = os.path.join(chunk_dir, f"{c:06d}.npz")
            first = c * chunk_frames
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
                frames, boxes, embeds, n = [], [], [], 0
                for _ in range(chunk_frames):
                    t0, c0 = time.perf_counter(), time.process_time()
                    ok, frame = cap.read()
                    clock.add("decode", time.perf_counter() - t0, time.process_time() - c0)
                    if not ok or frame is None:
                        break
                    index = first + n
                    n += 1
                    if index % every:
                        continue
                    with clock.measure("detect"):
                        b = det(frame)
                    if encoder is not None and len(b):
                        with clock.measure("encode"):
                            crops = [cv2.cvtColor(_crop(frame, x) if _crop(frame, x) is not None
                                                  else frame[:1, :1], cv2.COLOR_BGR2RGB)
                                     for x in b]
                            embeds.append(np.asarray(encoder(crops), np.float32))
                    frames.append(index)
                    boxes.append(np.asarray(b, np.float32).reshape(-1, 5))
                _save_chunk(path, n, frames, boxes, embeds)
                data = _load_chunk(path)
                chunks.append(data)
            decoded += int(data["decoded"])
            if bar is not None:
                bar.update(int(data["decoded"]))
            if int(data["decoded"]) < chunk_frames:
                break
    finally:
        cap.release()
        if bar is not None:
            bar.close()
    if decoded == 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise ValueError(f"{video}: no frame could be decoded (an empty, zero-frame or "
                         "corrupt video); nothing was written")

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
        steps = det_frames // every
        tracklets = cut_tracklets(steps, track_ids, min_len=min_len, max_gap=max_gap,
                                  max_len=max_len)
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
    wanted: dict[int, list[tuple[int, int]]] = {}  # frame -> [(detection row, tracklet no.)]
    for k, rows in enumerate(tracklets):
        for r in rows:
            wanted.setdefault(int(det_frames[r]), []).append((int(r), k))
    tracklet_dirs = []
    for k, rows in enumerate(tracklets):
        pid = int(track_ids[rows[0]])
        rel = f"{SPLIT}/{pid}/{camera}_{k + 1:04d}"
        tracklet_dirs.append(rel)
        os.makedirs(os.path.join(partial, rel), exist_ok=True)
    records: list[CropRecord] = []
    last = max(wanted)
    cap = _open(video)
    try:
        for index, frame in _frames(cap, clock):
            if index > last:
                break
            with clock.measure("write"):
                for r, k in wanted.get(index, ()):
                    crop = _crop(frame, boxes[r])
                    if crop is None:
                        continue
                    rel = f"{tracklet_dirs[k]}/{index:06d}.jpg"
                    if not cv2.imwrite(os.path.join(partial, rel), crop,
                                       [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
                        raise ValueError(f"cannot write {os.path.join(partial, rel)}")
                    x1, y1, x2, y2, score = (float(v) for v in boxes[r])
                    records.append(CropRecord(
                        rel, int(track_ids[r]), int(camera), tracklet_dirs[k].rsplit("_", 1)[1],
                        SPLIT, os.path.abspath(video), index, round(x1, 1), round(y1, 1),
                        round(x2 - x1, 1), round(y2 - y1, 1), round(score, 4), int(track_ids[r]),
                    ))
    finally:
        cap.release()
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
        truncated=announced > 0 and decoded < announced, resumed_chunks=resumed,
        stage_seconds={k: round(v, 4) for k, v in clock.wall.items()},
        stage_cpu_seconds={k: round(v, 4) for k, v in clock.cpu.items()},
        settings={**settings, "tracker": tracker, "tracker_options": tracker_options,
                  "min_len": min_len, "max_gap": max_gap, "max_len": max_len},
    )
    _atomic_json(os.path.join(partial, SUMMARY_NAME), asdict(summary))
    shutil.rmtree(chunk_dir)
    os.remove(state_path)
    os.rename(partial, out)  # the finished output appears at once
    return summary


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
