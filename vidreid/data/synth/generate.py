"""Generate a synthetic video re-ID dataset in any benchmark layout.

``generate`` plans the dataset (:mod:`vidreid.data.synth.layouts`), samples identities and
camera styles, renders tracklets in worker processes (each with
``np.random.default_rng([seed, tracklet_index])``, so the output does not depend on the
number of workers), writes frames and per-frame ground truth
(:mod:`vidreid.data.synth.ground_truth`), then the attribute table, the layout's index files
and, last, ``ground_truth/tracklets.jsonl``, whose presence marks a finished dataset.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import shutil
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from vidreid.atomic import atomic_path, write_bytes, write_text
from vidreid.data.errors import DatasetError
from vidreid.data.synth import ground_truth as gt
from vidreid.data.synth.layouts import (
    DATASET_FOLDERS,
    Plan,
    make_plan,
    write_index,
)

#: Length cap used when ``max_len`` is None (MARS lengths reach 900; this keeps sets small).
DEFAULT_MAX_LEN = 120
DEFAULT_TRACKLETS_PER_CAMERA = (1, 2)
DEFAULT_SIZE = (256, 128)
JPEG_QUALITY = 90
#: zlib level for PNG frames and masks: fast; the pixels are the same at any level.
PNG_COMPRESS_LEVEL = 1
ATTRIBUTES_FILE = "attributes.csv"
#: What the folder layout writes directly into the output root.
FOLDER_LAYOUT_ENTRIES = ("train", "query", "gallery", gt.GROUND_TRUTH_DIR, ATTRIBUTES_FILE)


def _save_image(path: str, array: np.ndarray, fmt: str) -> None:
    """Encode in memory, then write to a temp file beside ``path`` and ``os.replace`` it."""
    buf = io.BytesIO()
    img = Image.fromarray(array)
    if fmt == "jpg":
        img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    else:
        img.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    write_bytes(path, lambda f: f.write(buf.getbuffer()))


def _render_job(job: tuple) -> tuple[int, list[bool]]:
    """Render one tracklet and write its frames and ground truth; return its occluded flags."""
    from vidreid.data.synth.render import render_tracklet

    index, ddir, frames, fmt, identity, camera, seed, render_index, size, rate, run = job
    rng = np.random.default_rng([seed, render_index])
    r = render_tracklet(identity, camera, len(frames), rng, size=size, occlusion_rate=rate,
                        occlusion_run=run)
    if len(r.frames) != len(frames):
        raise RuntimeError(f"renderer returned {len(r.frames)} frames, asked for {len(frames)}")
    gt_root = os.path.join(ddir, gt.GROUND_TRUTH_DIR)
    made: set[str] = set()
    for i, rel in enumerate(frames):
        path = os.path.join(ddir, rel)
        stem = gt.truth_stem(gt_root, rel)
        for d in (os.path.dirname(path), os.path.dirname(stem)):
            if d not in made:
                os.makedirs(d, exist_ok=True)
                made.add(d)
        _save_image(path, r.frames[i], fmt)
        _save_image(stem + gt.MASK_SUFFIX, gt.encode_mask(r.silhouette[i], r.occluder[i]), "png")
        if r.occluded[i]:
            _save_image(stem + gt.CLEAN_SUFFIX, r.clean[i], "png")
    return index, [bool(x) for x in r.occluded]


def _prepare_output(out: str, ddir: str, layout: str, overwrite: bool) -> None:
    """Refuse to overwrite an existing dataset unless asked; with ``overwrite`` clear it."""
    if layout == "folder":
        existing = [
            os.path.join(out, e)
            for e in FOLDER_LAYOUT_ENTRIES
            if os.path.lexists(os.path.join(out, e))
        ]
    else:
        existing = [ddir] if os.path.lexists(ddir) else []
    if existing and not overwrite:
        done = os.path.isfile(os.path.join(ddir, gt.GROUND_TRUTH_DIR, gt.TRACKLET_TABLE))
        state = "a finished synthetic dataset" if done else "existing data (an unfinished run?)"
        raise DatasetError(
            f"{existing[0]} already exists and holds {state}; choose another output folder "
            "or pass --overwrite (overwrite=True) to replace it"
        )
    for path in existing:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    os.makedirs(ddir, exist_ok=True)


def _write_attributes(path: str, identities: Sequence[Any], plan: Plan) -> None:
    """One row per raw pid the layout writes (MARS/Duke reuse the identity number; iLIDS and
    PRID number person folders differently), so loaders' raw pids find their row. Distractor
    (0) and junk (-1) pids are shared by several identities and are left out."""
    from vidreid.data.synth.render import ATTRIBUTE_COLUMNS

    by_identity = {ident.pid: ident for ident in identities}
    rows: dict[int, Any] = {}
    for t in plan.tracklets:
        if t.pid > 0:
            rows.setdefault(t.pid, by_identity[t.identity])
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["pid", *ATTRIBUTE_COLUMNS])
        for pid in sorted(rows):
            w.writerow([pid, *(rows[pid].attributes[c] for c in ATTRIBUTE_COLUMNS)])


def _write_table(ddir: str, plan: Plan, occluded: dict[int, list[bool]]) -> None:
    lines = []
    for t in plan.tracklets:
        row = {
            "index": t.index,
            "split": t.split,
            "pid": t.pid,
            "camid": t.camid,
            "identity": t.identity,
            "is_query": t.is_query,
            "frames": list(t.frames),
            "occluded": occluded[t.index],
        }
        lines.append(json.dumps(row) + "\n")
    write_text(os.path.join(ddir, gt.GROUND_TRUTH_DIR, gt.TRACKLET_TABLE), "".join(lines))


def generate(
    out: str | os.PathLike,
    layout: str,
    ids: int,
    cameras: int,
    seed: int,
    *,
    size: tuple[int, int] = DEFAULT_SIZE,
    max_len: int | None = None,
    occlusion_rate: float = 0.0,
    occlusion_run: tuple[float, float] | None = None,
    workers: int | None = None,
    tracklets_per_camera: tuple[int, int] = DEFAULT_TRACKLETS_PER_CAMERA,
    overwrite: bool = False,
    progress: bool = False,
) -> str:
    """Write a synthetic dataset of ``ids`` labelled identities in ``layout`` under ``out``.

    Returns the root to pass to ``build_dataset(layout, root)`` (``out`` itself). ``size`` is
    (height, width); ``max_len`` caps tracklet lengths (None: ``DEFAULT_MAX_LEN``);
    ``tracklets_per_camera`` is the inclusive (min, max) per identity and camera (iLIDS-VID
    and PRID always have one); ``workers`` defaults to the CPU count. ``occlusion_rate`` is
    the share of tracklets with an occlusion event, ``occlusion_run`` the (min, max) share of
    a tracklet's frames the event lasts (None: the renderer's ``OCCLUSION_RUN``, 0.2-0.6).
    """
    from vidreid.data.synth.render import sample_camera, sample_identities

    out = os.path.abspath(os.path.expanduser(os.fspath(out)))
    if layout not in DATASET_FOLDERS:
        raise DatasetError(
            f"unknown layout {layout!r}; expected one of {', '.join(DATASET_FOLDERS)}"
        )
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DatasetError(f"seed must be a non-negative integer, got {seed!r}")
    if len(size) != 2 or min(size) < 8:
        raise DatasetError(f"size must be (height, width) with both >= 8, got {size}")
    if not 0.0 <= occlusion_rate <= 1.0:
        raise DatasetError(f"occlusion_rate must be in [0, 1], got {occlusion_rate}")
    from vidreid.data.synth.render import OCCLUSION_RUN

    occlusion_run = OCCLUSION_RUN if occlusion_run is None else tuple(occlusion_run)
    if len(occlusion_run) != 2 or not 0.0 < occlusion_run[0] <= occlusion_run[1] <= 1.0:
        raise DatasetError(f"occlusion_run must be (min, max) with 0 < min <= max <= 1, got "
                           f"{occlusion_run}")
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise DatasetError(f"workers must be >= 1, got {workers}")
    max_len = DEFAULT_MAX_LEN if max_len is None else max_len

    rng = np.random.default_rng(seed)
    plan = make_plan(
        layout, ids, cameras, rng, max_len=max_len, tracklets_per_camera=tuple(tracklets_per_camera)
    )
    ddir = os.path.join(out, plan.dataset_folder) if plan.dataset_folder else out
    _prepare_output(out, ddir, layout, overwrite)

    identities = sample_identities(plan.num_identities, rng, first_pid=1)
    by_pid = {i.pid: i for i in identities}
    styles = [sample_camera(c, rng) for c in range(cameras)]
    size = (int(size[0]), int(size[1]))
    jobs = [
        (
            t.index,
            ddir,
            t.frames,
            plan.image_format,
            by_pid[t.identity],
            styles[t.camid],
            int(seed),
            t.render_index,
            size,
            occlusion_rate if t.occlusion_rate is None else t.occlusion_rate,
            occlusion_run,
        )
        for t in plan.tracklets
    ]
    occluded: dict[int, list[bool]] = {}
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc=f"synth {layout}", unit="tracklet", disable=not progress)
    if workers == 1:
        for job in jobs:
            i, flags = _render_job(job)
            occluded[i] = flags
            bar.update()
    else:
        # Longest first so the last tracklets to finish are short ones.
        jobs.sort(key=lambda j: -len(j[2]))
        with multiprocessing.get_context().Pool(workers) as pool:
            for i, flags in pool.imap_unordered(_render_job, jobs, chunksize=4):
                occluded[i] = flags
                bar.update()
    bar.close()

    _write_attributes(os.path.join(ddir, ATTRIBUTES_FILE), identities, plan)
    write_index(plan, ddir)
    _write_table(ddir, plan, occluded)
    return out
