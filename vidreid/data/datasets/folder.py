"""Your own data: a folder tree or a CSV manifest.

Folder tree (``root``)::

    {train,query,gallery}/<pid>/<camid>_<tracklet>/<frames>

``<pid>`` is an integer (negative allowed, e.g. -1 for junk), ``<camid>`` is 0-based as
written, frames are taken in natural (numeric) name order. ``train`` may be absent
(evaluation-only data); ``query`` and ``gallery`` are required.

Manifest (``manifest="path.csv"``): one row per frame with header ``path,pid,camid,tracklet``
and an optional ``split`` column. Relative paths (and a relative manifest path that does not
exist from the working directory) are resolved against ``root``. Without a ``split`` column
the split is the first component of the relative path (``train/``, ``query/`` or
``gallery/``). A tracklet is the rows sharing (split, pid, camid, tracklet); its frames keep
the manifest's row order, which the author of the manifest controls.
"""

from __future__ import annotations

import csv
import os
import re

from vidreid.data.datasets.common import (
    attributes_file,
    check_frames_exist,
    list_images,
    register,
    relabel_train,
    require_dir,
    require_file,
    sorted_subdirs,
)
from vidreid.data.errors import DatasetError
from vidreid.data.tracklet import Tracklet, VideoDataset

SPLITS = ("train", "query", "gallery")
MANIFEST_COLUMNS = ("path", "pid", "camid", "tracklet")
PID_PATTERN = re.compile(r"-?\d+")
TRACKLET_PATTERN = re.compile(r"(\d+)_(.+)")


def _load_tree_split(split_dir: str) -> list[Tracklet]:
    out = []
    for pfolder in sorted_subdirs(split_dir):
        pdir = os.path.join(split_dir, pfolder)
        if not PID_PATTERN.fullmatch(pfolder):
            raise DatasetError(f"unexpected folder {pdir}; expected an integer <pid> folder")
        for tfolder in sorted_subdirs(pdir):
            tdir = os.path.join(pdir, tfolder)
            m = TRACKLET_PATTERN.fullmatch(tfolder)
            if not m:
                raise DatasetError(
                    f"unexpected tracklet folder {tdir}; expected <camid>_<tracklet>, e.g. 0_001"
                )
            frames = tuple(os.path.join(tdir, n) for n in list_images(tdir))
            out.append(Tracklet(frames, int(pfolder), int(m.group(1))))
    return out


def _load_manifest(root: str, manifest: str, check_frames: bool) -> dict[str, list[Tracklet]]:
    path = manifest if os.path.isfile(manifest) else os.path.join(root, manifest)
    require_file(path, "tracklet manifest (CSV with header path,pid,camid,tracklet[,split])")
    groups: dict[tuple[str, int, int, str], list[str]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in MANIFEST_COLUMNS if c not in header]
        if missing:
            raise DatasetError(
                f"{path}: header {header} lacks {', '.join(missing)}; expected "
                "path,pid,camid,tracklet with an optional split column"
            )
        reader.fieldnames = header
        has_split = "split" in header
        for lineno, row in enumerate(reader, 2):
            rel = (row["path"] or "").strip()
            try:
                pid, camid = int(row["pid"]), int(row["camid"])
            except (TypeError, ValueError):
                raise DatasetError(
                    f"{path}, line {lineno}: pid {row['pid']!r} / camid {row['camid']!r} must "
                    "be integers"
                ) from None
            if has_split:
                split = (row["split"] or "").strip()
            else:
                split = rel.replace("\\", "/").split("/", 1)[0]
            if split not in SPLITS or not rel or camid < 0:
                raise DatasetError(
                    f"{path}, line {lineno}: split {split!r}, path {rel!r}, camid {camid}; "
                    f"expected split in {SPLITS} (a split column, or paths starting with it), "
                    "a non-empty path and a 0-based camid"
                )
            frame = rel if os.path.isabs(rel) else os.path.join(root, rel)
            key = (split, pid, camid, (row["tracklet"] or "").strip())
            groups.setdefault(key, []).append(os.path.normpath(frame))
    if not groups:
        raise DatasetError(f"{path} lists no frames")
    if check_frames:
        by_dir: dict[str, list[str]] = {}
        for frames in groups.values():
            for fr in frames:
                d, n = os.path.split(fr)
                by_dir.setdefault(d, []).append(n)
        check_frames_exist(path, by_dir)
    out: dict[str, list[Tracklet]] = {s: [] for s in SPLITS}
    for (split, pid, camid, _), frames in groups.items():
        out[split].append(Tracklet(tuple(frames), pid, camid))
    return out


@register("folder")
def load_folder(root: str, manifest: str | None = None, check_frames: bool = True) -> VideoDataset:
    """Load a ``{train,query,gallery}/<pid>/<camid>_<tracklet>/`` tree, or a CSV manifest."""
    root = os.path.abspath(os.path.expanduser(root))
    require_dir(root, "dataset folder")
    if manifest is not None:
        splits = _load_manifest(root, manifest, check_frames)
    else:
        splits = {}
        for s in SPLITS:
            d = os.path.join(root, s)
            if s == "train" and not os.path.isdir(d):
                splits[s] = []
                continue
            splits[s] = _load_tree_split(require_dir(d, f"{s} split of the folder dataset"))
    if not splits["query"] or not splits["gallery"]:
        raise DatasetError(f"folder dataset {root} has an empty query or gallery split")
    train, raw = relabel_train(splits["train"])
    return VideoDataset(
        name="folder",
        root=root,
        train=train,
        query=splits["query"],
        gallery=splits["gallery"],
        attributes_file=attributes_file(root),
        extra={"train_raw_pids": raw},
    )
