"""Plans and index writers of the synthetic generator, one per benchmark layout.

A *plan* says, deterministically from a seeded generator, which identities are train or
test, which cameras and how many tracklets each has, how long each tracklet is and where
each frame goes (paths relative to the dataset folder, in temporal order). The frames are
rendered elsewhere (:mod:`vidreid.data.synth.generate`); once they exist, ``write_index``
writes the layout's own index files (MARS name lists and ``.mat`` tables, the iLIDS-VID
split ``.mat``, PRID's split JSON, LS-VID lists and v7.3 query table) so the loaders in
:mod:`vidreid.data.datasets` read the result exactly as the real data.

Every file is written atomically: to a temporary file in the same folder, then
``os.replace``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vidreid.atomic import atomic_path, write_text
from vidreid.data.datasets import prid2011 as prid_loader
from vidreid.data.datasets.mars import pid_folder
from vidreid.data.errors import DatasetError

#: Dataset folder each layout lives in under the output root ("" = the root itself).
DATASET_FOLDERS = {
    "mars": "mars",
    "ilidsvid": "ilids-vid",
    "prid2011": "prid2011",
    "dukev": "dukemtmc-vidreid",
    "lsvid": "LS-VID",
    "folder": "",
}
LAYOUTS = tuple(DATASET_FOLDERS)
#: Cameras each layout can hold (real benchmark counts; the folder layout has no limit).
MAX_CAMERAS = {"mars": 6, "ilidsvid": 2, "prid2011": 2, "dukev": 8, "lsvid": 15, "folder": 99}
EXACT_CAMERAS = {"ilidsvid": 2, "prid2011": 2}
#: Frame format per layout, as the real sets store them.
IMAGE_FORMATS = {
    "mars": "jpg",
    "dukev": "jpg",
    "lsvid": "jpg",
    "folder": "jpg",
    "ilidsvid": "png",
    "prid2011": "png",
}
MARS_MAX_FRAMES = 999
CAMERAS_PER_ID = 3.1  # mean distinct cameras per identity  # F + 3 digits
#: MARS-like test sets: distractor (pid 0) tracklets per test identity, junk (pid -1) ratio.
DISTRACTORS_PER_TEST_ID = 1.0
JUNK_PER_TEST_ID = 0.5
#: Junk tracklets are bad detections: rendered fully occluded.
JUNK_OCCLUSION_RATE = 1.0
#: Duke / PRID: extra identities (gallery distractors, single-camera persons) per labelled id.
EXTRA_IDS_RATIO = 0.5
DUKE_BASE = "DukeMTMC-VideoReID"
DUKE_LATE_START_RATE = 0.2  # tracklets whose frame index starts at F0002
PRID_SHORT_RATE = 0.2  # shared persons made shorter than 27 frames in one camera
ILIDS_NUM_SPLITS = 10


@dataclass
class PlannedTracklet:
    """One tracklet on disk: where its frames go and who it shows.

    ``pid`` is the pid the layout writes (0 distractor, -1 junk on MARS); ``identity`` is
    the rendered person (``Identity.pid``). ``render_index`` seeds the renderer; a copy (the
    Duke query repeated in the gallery) shares its original's, so its frames are identical.
    """

    index: int
    split: str
    pid: int
    camid: int
    identity: int
    frames: tuple[str, ...]
    render_index: int
    is_query: bool = False
    occlusion_rate: float | None = None


@dataclass
class Plan:
    """Everything the generator writes, decided before any pixel is rendered."""

    layout: str
    dataset_folder: str
    image_format: str
    num_identities: int
    tracklets: list[PlannedTracklet] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def add(
        self, split: str, pid: int, camid: int, identity: int, frames: list[str], **kw: Any
    ) -> PlannedTracklet:
        index = len(self.tracklets)
        kw.setdefault("render_index", index)
        t = PlannedTracklet(index, split, pid, camid, identity, tuple(frames), **kw)
        self.tracklets.append(t)
        return t


# --------------------------------------------------------------------------- atomic writes


def write_mat(path: str, variables: dict[str, np.ndarray]) -> None:
    """Write a MATLAB v5 file atomically (scipy.io)."""
    from scipy.io import savemat

    with atomic_path(path) as tmp:
        savemat(tmp, variables)


MAT73_HEADER = (
    b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created by: vidreid synth HDF5 schema 1.00 ."
)
MAT73_USERBLOCK = 512


def write_mat73(path: str, variables: dict[str, np.ndarray]) -> None:
    """Write a MATLAB v7.3 file atomically: HDF5 (h5py) behind MATLAB's 512-byte header."""
    import h5py

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", userblock_size=MAT73_USERBLOCK) as f:
            for name, value in variables.items():
                ds = f.create_dataset(name, data=value)
                ds.attrs["MATLAB_class"] = np.bytes_("double")
        with open(tmp, "r+b") as f:
            header = MAT73_HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
            f.write(header)


# --------------------------------------------------------------------------- planning


def _length(rng: np.random.Generator, max_len: int, min_len: int | None = None) -> int:
    from vidreid.data.synth.render import sample_length

    if min_len is None:
        return int(sample_length(rng, max_len=max_len))
    return int(sample_length(rng, max_len=max_len, min_len=min_len))


def _cameras(rng: np.random.Generator, cameras: int) -> list[int]:
    """Distinct cameras of one identity: 2 + Binomial(cameras - 2, p) with mean
    ``CAMERAS_PER_ID`` (MARS: 1,980 queries, one per (pid, camera), over 634 ids), so every
    test id has a cross-camera match and a few appear in every camera."""
    extra = cameras - 2
    k = 2 + (int(rng.binomial(extra, min(1.0, (CAMERAS_PER_ID - 2) / extra))) if extra else 0)
    return sorted(rng.choice(cameras, size=k, replace=False).tolist())


def _split_ids(rng: np.random.Generator, ids: int) -> tuple[list[int], list[int]]:
    """Shuffle identities 1..ids into a train half and a test half (both sorted)."""
    order = (rng.permutation(ids) + 1).tolist()
    n_train = ids // 2
    return sorted(order[:n_train]), sorted(order[n_train:])


def _per_camera(rng: np.random.Generator, span: tuple[int, int]) -> int:
    return int(rng.integers(span[0], span[1] + 1))


def _plan_mars(
    plan: Plan,
    rng: np.random.Generator,
    ids: int,
    cameras: int,
    max_len: int,
    span: tuple[int, int],
) -> None:
    if max_len > MARS_MAX_FRAMES:
        raise DatasetError(
            f"MARS frame numbers have 3 digits: max_len must be <= {MARS_MAX_FRAMES}"
        )
    train_ids, test_ids = _split_ids(rng, ids)
    counters: dict[int, int] = {}

    def add(split: str, pid: int, cam: int, identity: int, **kw: Any) -> PlannedTracklet:
        counters[pid] = counters.get(pid, 0) + 1
        folder = pid_folder(pid)
        stem = f"bbox_{split}/{folder}/{folder}C{cam + 1}T{counters[pid]:04d}F"
        n = _length(rng, max_len)
        return plan.add(
            split, pid, cam, identity, [f"{stem}{f:03d}.jpg" for f in range(1, n + 1)], **kw
        )

    for split, pids in (("train", train_ids), ("test", test_ids)):
        for pid in pids:
            for cam in _cameras(rng, cameras):
                made = [add(split, pid, cam, pid) for _ in range(_per_camera(rng, span))]
                if split == "test":  # one query per (pid, camera), as MARS
                    made[int(rng.integers(len(made)))].is_query = True
    n_distractors = max(1, round(DISTRACTORS_PER_TEST_ID * len(test_ids)))
    for k in range(n_distractors):
        add("test", 0, int(rng.integers(cameras)), ids + 1 + k)
    plan.num_identities = ids + n_distractors
    for _ in range(max(1, round(JUNK_PER_TEST_ID * len(test_ids)))):
        add(
            "test",
            -1,
            int(rng.integers(cameras)),
            int(rng.integers(1, ids + 1)),
            occlusion_rate=JUNK_OCCLUSION_RATE,
        )


def _plan_dukev(
    plan: Plan,
    rng: np.random.Generator,
    ids: int,
    cameras: int,
    max_len: int,
    span: tuple[int, int],
) -> None:
    train_ids, test_ids = _split_ids(rng, ids)
    n_extra = max(1, round(EXTRA_IDS_RATIO * len(test_ids)))
    plan.num_identities = ids + n_extra
    counters: dict[int, int] = {}

    def add(split: str, pid: int, cam: int) -> PlannedTracklet:
        counters[pid] = counters.get(pid, 0) + 1
        first = 2 if rng.random() < DUKE_LATE_START_RATE else 1
        n = _length(rng, max_len)
        x0 = int(rng.integers(0, 60000))
        stem = f"{DUKE_BASE}/{split}/{pid:04d}/{counters[pid]:04d}/{pid:04d}_C{cam + 1}_F"
        frames = [f"{stem}{i:04d}_X{x0 + i}.jpg" for i in range(first, first + n)]
        return plan.add(split, pid, cam, pid, frames)

    for pid in train_ids:
        for cam in _cameras(rng, cameras):
            for _ in range(_per_camera(rng, span)):
                add("train", pid, cam)
    for pid in test_ids:
        made = [
            add("gallery", pid, cam)
            for cam in _cameras(rng, cameras)
            for _ in range(_per_camera(rng, span))
        ]
        q = made[int(rng.integers(len(made)))]  # one query per test id, repeated in the gallery
        frames = [f.replace(f"{DUKE_BASE}/gallery/", f"{DUKE_BASE}/query/", 1) for f in q.frames]
        plan.add("query", pid, q.camid, pid, frames, render_index=q.render_index, is_query=True)
    for pid in range(ids + 1, ids + n_extra + 1):  # gallery-only distractor identities
        for _ in range(_per_camera(rng, span)):
            add("gallery", pid, int(rng.integers(cameras)))


def _plan_lsvid(
    plan: Plan,
    rng: np.random.Generator,
    ids: int,
    cameras: int,
    max_len: int,
    span: tuple[int, int],
) -> None:
    train_ids, test_ids = _split_ids(rng, ids)
    for split, pids in (("train", train_ids), ("test", test_ids)):
        for pid in pids:
            made = []
            tk = 0
            for cam in _cameras(rng, cameras):
                for _ in range(_per_camera(rng, span)):
                    tk += 1
                    stem = f"tracklet_{split}/{pid:04d}/{pid:04d}_{tk:04d}_{cam + 1:02d}_"
                    n = _length(rng, max_len)
                    frames = [f"{stem}{f:04d}.jpg" for f in range(1, n + 1)]
                    made.append(plan.add(split, pid, cam, pid, frames))
            if split == "test":
                made[int(rng.integers(len(made)))].is_query = True


def _plan_folder(
    plan: Plan,
    rng: np.random.Generator,
    ids: int,
    cameras: int,
    max_len: int,
    span: tuple[int, int],
) -> None:
    train_ids, test_ids = _split_ids(rng, ids)
    for split, pids in (("train", train_ids), ("test", test_ids)):
        for pid in pids:
            made = []
            for cam in _cameras(rng, cameras):
                for _ in range(_per_camera(rng, span)):
                    n = _length(rng, max_len)
                    made.append((cam, n))
            q = int(rng.integers(len(made))) if split == "test" else -1
            for k, (cam, n) in enumerate(made):
                s = split if split == "train" else ("query" if k == q else "gallery")
                stem = f"{s}/{pid}/{cam}_{k + 1:03d}/"
                plan.add(
                    s, pid, cam, pid, [f"{stem}{f:04d}.jpg" for f in range(n)], is_query=k == q
                )


def _plan_ilidsvid(
    plan: Plan,
    rng: np.random.Generator,
    ids: int,
    cameras: int,
    max_len: int,
    span: tuple[int, int],
) -> None:
    gaps = max(1, ids // 10)  # real folders run to person319 for 300 persons
    numbers = sorted((rng.choice(ids + gaps, size=ids, replace=False) + 1).tolist())
    for identity, num in enumerate(numbers, 1):
        person = f"person{num:03d}"
        for cam in (0, 1):
            first = int(rng.integers(1, 1000))  # frame numbers do not start at 1
            n = _length(rng, max_len)
            stem = f"i-LIDS-VID/sequences/cam{cam + 1}/{person}/cam{cam + 1}_{person}_"
            frames = [f"{stem}{f:05d}.png" for f in range(first, first + n)]
            plan.add("all", num, cam, identity, frames)
    plan.meta["ls_set"] = np.stack(
        [rng.permutation(ids) + 1 for _ in range(ILIDS_NUM_SPLITS)]
    ).astype(np.int32)


def _plan_prid2011(
    plan: Plan,
    rng: np.random.Generator,
    ids: int,
    cameras: int,
    max_len: int,
    span: tuple[int, int],
) -> None:
    min_len = prid_loader.MIN_FRAMES
    if max_len < min_len:
        raise DatasetError(
            f"the PRID-2011 layout needs max_len >= {min_len} (its protocol keeps persons with "
            f">= {min_len} frames in both cameras); got {max_len}"
        )
    n_short = max(1, round(PRID_SHORT_RATE * ids))
    if ids - n_short < 2:
        raise DatasetError(f"the PRID-2011 layout needs at least 3 identities, got {ids}")
    short = set((rng.choice(ids, size=n_short, replace=False) + 1).tolist())
    lengths: list[dict[str, int]] = [{}, {}]

    def add(cam: int, num: int, identity: int, n: int) -> None:
        person = f"person_{num:04d}"
        stem = f"prid_2011/multi_shot/cam_{'ab'[cam]}/{person}/"
        plan.add("all", num, cam, identity, [f"{stem}{f:04d}.png" for f in range(1, n + 1)])
        lengths[cam][person] = n

    for num in range(1, ids + 1):
        short_cam = int(rng.integers(2)) if num in short else -1
        for cam in (0, 1):
            n = (
                int(rng.integers(5, min_len))
                if cam == short_cam
                else _length(rng, max_len, min_len)
            )
            add(cam, num, num, n)
    # Single-camera persons (cam_a first, then cam_b), numbered after the shared ones. The
    # real set reuses numbers above 200 for different people in the two cameras; unique
    # numbers keep a split file built from folder names free of false pairs.
    n_extra = max(1, round(EXTRA_IDS_RATIO * ids))
    num = ids
    for cam in (0, 1):
        for _ in range(n_extra):
            num += 1
            add(cam, num, num, _length(rng, max_len))
    plan.num_identities = num
    plan.meta["splits"] = prid_loader.make_splits(lengths[0], lengths[1], rng)


PLANNERS: dict[str, Callable[..., None]] = {
    "mars": _plan_mars,
    "dukev": _plan_dukev,
    "lsvid": _plan_lsvid,
    "folder": _plan_folder,
    "ilidsvid": _plan_ilidsvid,
    "prid2011": _plan_prid2011,
}


def make_plan(
    layout: str,
    ids: int,
    cameras: int,
    rng: np.random.Generator,
    *,
    max_len: int,
    tracklets_per_camera: tuple[int, int] = (1, 2),
) -> Plan:
    """Plan a synthetic dataset in ``layout`` (deterministic given ``rng``'s state)."""
    if layout not in PLANNERS:
        raise DatasetError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    exact = EXACT_CAMERAS.get(layout)
    if exact is not None and cameras != exact:
        raise DatasetError(f"the {layout} layout has exactly {exact} cameras, got {cameras}")
    if not 2 <= cameras <= MAX_CAMERAS[layout]:
        raise DatasetError(
            f"the {layout} layout takes 2..{MAX_CAMERAS[layout]} cameras, got {cameras}"
        )
    if ids < 2:
        raise DatasetError(f"need at least 2 identities (train and test), got {ids}")
    lo, hi = tracklets_per_camera
    if not 1 <= lo <= hi:
        raise DatasetError(
            f"tracklets_per_camera must be (min, max) with 1 <= min <= max, "
            f"got {tracklets_per_camera}"
        )
    if max_len < 1:
        raise DatasetError(f"max_len must be >= 1, got {max_len}")
    plan = Plan(layout, DATASET_FOLDERS[layout], IMAGE_FORMATS[layout], num_identities=ids)
    PLANNERS[layout](plan, rng, ids, cameras, max_len, (lo, hi))
    return plan


# --------------------------------------------------------------------------- index writers


def _write_mars(plan: Plan, ddir: str) -> None:
    info = os.path.join(ddir, "info")
    query_rows: list[int] = []
    for split in ("train", "test"):
        tracks = sorted((t for t in plan.tracklets if t.split == split), key=lambda t: t.frames[0])
        names: list[str] = []
        rows = []
        for row, t in enumerate(tracks, 1):
            start = len(names) + 1
            names.extend(os.path.basename(f) for f in t.frames)
            rows.append((start, len(names), t.pid, t.camid + 1))
            if t.is_query:
                query_rows.append(row)
        write_text(os.path.join(info, f"{split}_name.txt"), "".join(n + "\n" for n in names))
        write_mat(
            os.path.join(info, f"tracks_{split}_info.mat"),
            {f"track_{split}_info": np.asarray(rows, dtype=np.int32).reshape(-1, 4)},
        )
    write_mat(
        os.path.join(info, "query_IDX.mat"), {"query_IDX": np.asarray([query_rows], dtype=np.int32)}
    )


def _write_lsvid(plan: Plan, ddir: str) -> None:
    lists = os.path.join(ddir, "list_sequence")
    query_lines = []
    for split in ("train", "val", "test"):
        lines = []
        for t in plan.tracklets:
            if t.split == split:
                prefix = t.frames[0][: t.frames[0].rindex("_") + 1]
                lines.append(f"{prefix} {t.pid}\n")
                if t.is_query:
                    query_lines.append(len(lines))
        write_text(os.path.join(lists, f"list_seq_{split}.txt"), "".join(lines))
    write_mat73(
        os.path.join(ddir, "test", "data", "info_test.mat"),
        {"query": np.asarray([query_lines], dtype=np.float64)},
    )


def _write_ilidsvid(plan: Plan, ddir: str) -> None:
    from vidreid.data.datasets.ilidsvid import SPLIT_FILE, SPLIT_VAR

    write_mat(os.path.join(ddir, SPLIT_FILE), {SPLIT_VAR: plan.meta["ls_set"]})


def _write_prid2011(plan: Plan, ddir: str) -> None:
    write_text(
        os.path.join(ddir, prid_loader.SPLIT_FILE), json.dumps(plan.meta["splits"], indent=1) + "\n"
    )


WRITERS: dict[str, Callable[[Plan, str], None]] = {
    "mars": _write_mars,
    "lsvid": _write_lsvid,
    "ilidsvid": _write_ilidsvid,
    "prid2011": _write_prid2011,
    "dukev": lambda plan, ddir: None,  # the folder tree is the index
    "folder": lambda plan, ddir: None,
}


def write_index(plan: Plan, dataset_dir: str) -> None:
    """Write the layout's index files for ``plan`` into ``dataset_dir``."""
    WRITERS[plan.layout](plan, dataset_dir)
