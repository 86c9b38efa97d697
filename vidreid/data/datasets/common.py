"""Helpers shared by the benchmark loaders: the registry, root detection, relabelling,
frame listing and checked reading of MATLAB files.

Every helper raises :class:`DatasetError` (or ``FileNotFoundError``) naming the file or
folder at fault and what was expected, so a wrong path or a damaged download reads as such.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from vidreid.data.errors import DatasetError
from vidreid.data.tracklet import Tracklet, VideoDataset
from vidreid.registry import Registry

DATASETS = Registry("dataset")

#: The per-identity attribute table the synthetic generator writes beside a dataset.
ATTRIBUTES_FILE = "attributes.csv"

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key ordering the digit runs of ``name`` numerically (``f9`` before ``f10``)."""
    return tuple(int(p) if p.isdigit() else p for p in _DIGITS.split(name))


def build_dataset(name: str, root: str | os.PathLike, **options: Any) -> VideoDataset:
    """Load benchmark ``name`` from ``root`` (the folder holding the dataset's own folder).

    ``options`` are the loader's keyword options (e.g. ``protocol``, ``split_id``); an option
    the loader does not take is an error that lists the ones it does.
    """
    loader = DATASETS.get(name)
    params = inspect.signature(loader).parameters
    accepted = [p for p in params if p != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DatasetError(
            f"dataset {name!r} does not take option(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(accepted) or '(none)'}"
        )
    return loader(os.fspath(root), **options)


def resolve_root(root: str, own_folder: str, marker: str) -> str:
    """Return the dataset's own folder given either it or the folder holding it.

    ``marker`` is a path relative to the own folder that must exist (e.g. ``info`` for MARS);
    it tells the two cases apart.
    """
    root = os.path.abspath(os.path.expanduser(root))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset root {root} does not exist or is not a folder")
    inside = os.path.join(root, own_folder)
    if os.path.exists(os.path.join(inside, marker)):
        return inside
    if os.path.exists(os.path.join(root, marker)):
        return root
    raise FileNotFoundError(
        f"no {own_folder!r} dataset under {root}: expected {os.path.join(inside, marker)} "
        f"(pass the folder that holds {own_folder!r}, or that folder itself)"
    )


def require_file(path: str, what: str) -> str:
    """Return ``path`` if it is a file, else a FileNotFoundError saying what it should hold."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"missing {what}: expected the file {path}")
    return path


def require_dir(path: str, what: str) -> str:
    """Return ``path`` if it is a folder, else a FileNotFoundError saying what it should hold."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"missing {what}: expected the folder {path}")
    return path


def list_images(folder: str) -> list[str]:
    """Image file names in ``folder``, sorted with numbers in numeric order; error if none."""
    try:
        names = [n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS)]
    except FileNotFoundError:
        raise FileNotFoundError(f"tracklet folder {folder} does not exist") from None
    if not names:
        raise DatasetError(f"tracklet folder {folder} holds no image files ({IMAGE_EXTENSIONS})")
    names.sort(key=natural_key)
    return names


def sorted_subdirs(folder: str) -> list[str]:
    """Names of the sub-folders of ``folder`` in plain sorted order."""
    require_dir(folder, "dataset folder")
    return sorted(e.name for e in os.scandir(folder) if e.is_dir())


def relabel_train(train: Sequence[Tracklet]) -> tuple[list[Tracklet], list[int]]:
    """Map train pids to 0..N-1 in sorted raw-pid order; return the tracklets and raw pids."""
    raw = sorted({t.pid for t in train})
    label = {pid: i for i, pid in enumerate(raw)}
    return [t._replace(pid=label[t.pid]) for t in train], raw


def filter_min_len(tracklets: Iterable[Tracklet], min_seq_len: int) -> list[Tracklet]:
    """Drop tracklets with fewer than ``min_seq_len`` frames."""
    if min_seq_len < 0:
        raise DatasetError(f"min_seq_len must be >= 0, got {min_seq_len}")
    return [t for t in tracklets if len(t.frames) >= min_seq_len]


#: The public tracklet-level attribute files' names (MARS-Attribute / BUAA release), looked
#: for after ``attributes.csv``.
PUBLIC_ATTRIBUTES_FILES = ("mars_attributes.csv", "duke_attributes.csv")


def attributes_file(dataset_dir: str) -> str | None:
    """Path of the attribute table in the dataset folder (``attributes.csv``, else a public
    ``mars_attributes.csv`` / ``duke_attributes.csv``), or None when there is none."""
    for name in (ATTRIBUTES_FILE, *PUBLIC_ATTRIBUTES_FILES):
        path = os.path.join(dataset_dir, name)
        if os.path.isfile(path):
            return path
    return None


def check_split_id(split_id: int, num_splits: int, source: str) -> int:
    """Validate a split index against the number of splits ``source`` holds."""
    if not isinstance(split_id, (int, np.integer)) or not 0 <= split_id < num_splits:
        raise DatasetError(
            f"split_id {split_id!r} is out of range: {source} holds {num_splits} splits "
            f"(use 0..{num_splits - 1})"
        )
    return int(split_id)


def as_index_array(values: Any, path: str, var: str) -> np.ndarray:
    """Convert a MATLAB index array to int64, accepting float arrays only if integral.

    MATLAB saves doubles by default, so integral floats are accepted; NaN or fractional
    values are an error naming the file and variable.
    """
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
            raise DatasetError(
                f"{path}: variable {var!r} holds non-integer values; expected integer indices"
            )
        return arr.astype(np.int64)
    raise DatasetError(f"{path}: variable {var!r} has dtype {arr.dtype}; expected numbers")


def load_mat_var(path: str, var: str, what: str) -> np.ndarray:
    """Read variable ``var`` of a MATLAB v5 file with scipy.io, as an int64 array."""
    from scipy.io import loadmat, whosmat
    from scipy.io.matlab import MatReadError

    require_file(path, what)
    try:
        data = loadmat(path, variable_names=[var])
    except (MatReadError, ValueError, TypeError, OSError, NotImplementedError, IndexError,
                EOFError) as exc:  # scipy fails on garbage with any of these
        raise DatasetError(
            f"cannot read {path} as a MATLAB v5 file ({exc}); expected {what}"
        ) from None
    if var not in data:
        found = sorted(name for name, _, _ in whosmat(path))
        raise DatasetError(
            f"{path} has no variable {var!r} (found: {', '.join(found) or 'none'}); expected {what}"
        )
    return as_index_array(data[var], path, var)


def check_frames_exist(dataset_dir: str, rel_paths_by_dir: dict[str, Iterable[str]]) -> None:
    """Check listed frame names against one listing per folder (no per-frame stat calls).

    ``rel_paths_by_dir`` maps a folder to the file names that must exist in it.
    """
    for folder, names in rel_paths_by_dir.items():
        try:
            present = set(os.listdir(folder))
        except FileNotFoundError:
            raise FileNotFoundError(f"folder {folder} listed by the index does not exist") from None
        missing = [n for n in names if n not in present]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise FileNotFoundError(
                f"frame {os.path.join(folder, missing[0])} is listed by the index of "
                f"{dataset_dir} but does not exist{more}"
            )


def register(name: str) -> Callable[[Callable[..., VideoDataset]], Callable[..., VideoDataset]]:
    """Register a loader function ``loader(root, **options) -> VideoDataset``."""
    return DATASETS.register(name)


def two_camera_split(
    train_persons: Sequence[str],
    test_persons: Sequence[str],
    frames: Callable[[int, str], tuple[str, ...]],
    raw_pid: Callable[[str], int],
) -> tuple[list[Tracklet], list[Tracklet], list[Tracklet], list[int], list[int]]:
    """Build the iLIDS-VID / PRID split: train = both cameras, query = camera 0, gallery =
    camera 1; train and test pids are each relabelled 0..N-1 in sorted folder order.

    ``frames(camid, person)`` returns a person's frame paths in one camera. Returns train,
    query, gallery and the raw pids of the train and test labels.
    """
    train_persons, test_persons = sorted(train_persons), sorted(test_persons)
    train = [Tracklet(frames(c, p), i, c) for i, p in enumerate(train_persons) for c in (0, 1)]
    query = [Tracklet(frames(0, p), i, 0) for i, p in enumerate(test_persons)]
    gallery = [Tracklet(frames(1, p), i, 1) for i, p in enumerate(test_persons)]
    return (
        train,
        query,
        gallery,
        [raw_pid(p) for p in train_persons],
        [raw_pid(p) for p in test_persons],
    )
