"""LS-VID (Li et al., ICCV 2019, the GLTR paper): 15 cameras, list files + a v7.3 query table.

Layout (``ROOT/LS-VID``)::

    list_sequence/list_seq_{train,val,test}.txt    test/data/info_test.mat
    tracklet_{train,val,test}/...

A list line is ``<relative path prefix> <pid>``; a tracklet's frames are the image files
whose path starts with the prefix, in natural (numeric) order. camid = int(third ``_`` field
of the first frame's name) - 1. ``info_test.mat`` is MATLAB v7.3 (HDF5): ``query`` (at the
top level or in a ``test`` group) holds 1-based line indices into ``list_seq_test.txt``; the
gallery is every other test line. The val list is not used (as in the GLTR code). A MATLAB
v5 ``info_test.mat`` is read with scipy.io as a fallback.
"""

from __future__ import annotations

import bisect
import os

import numpy as np

from vidreid.data.datasets.common import (
    IMAGE_EXTENSIONS,
    as_index_array,
    attributes_file,
    natural_key,
    register,
    relabel_train,
    require_file,
    resolve_root,
)
from vidreid.data.errors import DatasetError
from vidreid.data.tracklet import Tracklet, VideoDataset

QUERY_FILE = os.path.join("test", "data", "info_test.mat")


def read_list(path: str) -> list[tuple[str, int]]:
    """Read an LS-VID list file into ``(prefix, pid)`` pairs (CRLF tolerated)."""
    require_file(path, "LS-VID sequence list")
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                if len(fields) != 2:
                    raise ValueError
                out.append((fields[0], int(fields[1])))
            except ValueError:
                raise DatasetError(
                    f"{path}, line {lineno}: {line.strip()!r}; expected '<path prefix> <pid>'"
                ) from None
    return out


def _tracklets(ddir: str, entries: list[tuple[str, int]], list_path: str) -> list[Tracklet]:
    listings: dict[str, list[str]] = {}
    out = []
    for lineno, (prefix, pid) in enumerate(entries, 1):
        folder, stem = os.path.split(os.path.join(ddir, prefix))
        if folder not in listings:
            try:
                names = os.listdir(folder)
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"{list_path}, entry {lineno}: folder {folder} of prefix {prefix!r} does not exist"
                ) from None
            listings[folder] = sorted(n for n in names if n.lower().endswith(IMAGE_EXTENSIONS))
        names = listings[folder]
        i = bisect.bisect_left(names, stem)
        matched = []
        while i < len(names) and names[i].startswith(stem):
            matched.append(names[i])
            i += 1
        if not matched:
            raise DatasetError(
                f"{list_path}, entry {lineno}: no image in {folder} starts with {stem!r}"
            )
        matched.sort(key=natural_key)
        fields = matched[0].split("_")
        try:
            camid = int(fields[2]) - 1
        except (IndexError, ValueError):
            raise DatasetError(
                f"malformed LS-VID frame name {os.path.join(folder, matched[0])}; expected the "
                "third '_' field to be the camera number"
            ) from None
        out.append(Tracklet(tuple(os.path.join(folder, n) for n in matched), pid, camid))
    return out


def read_query_indices(path: str) -> np.ndarray:
    """1-based query line indices from ``info_test.mat`` (v7.3 via h5py, v5 via scipy.io)."""
    import h5py

    require_file(path, "LS-VID query table (MATLAB v7.3 with variable 'query')")
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            node = f.get("query")
            if node is None and isinstance(f.get("test"), h5py.Group):
                node = f["test"].get("query")
            if not isinstance(node, h5py.Dataset):
                raise DatasetError(
                    f"{path} has no dataset 'query' (found: {', '.join(f.keys()) or 'none'}); "
                    "expected 1-based query line indices"
                )
            values = node[()]
    else:
        from scipy.io import loadmat
        from scipy.io.matlab import MatReadError

        try:
            data = loadmat(path, variable_names=["query"])
        except (MatReadError, ValueError, TypeError, OSError, NotImplementedError, IndexError,
                EOFError) as exc:  # scipy fails on garbage with any of these
            raise DatasetError(f"cannot read {path} as MATLAB v7.3 or v5 ({exc})") from None
        if "query" not in data:
            raise DatasetError(f"{path} has no variable 'query'; expected query line indices")
        values = data["query"]
    values = np.asarray(values)
    if values.ndim != 2 or 1 not in values.shape:
        raise DatasetError(f"{path}: 'query' has shape {values.shape}; expected 1 x Q")
    return as_index_array(values.ravel(), path, "query")


@register("lsvid")
def load_lsvid(root: str) -> VideoDataset:
    """Load LS-VID: train from ``list_seq_train.txt``, query/gallery from the test list."""
    ddir = resolve_root(root, "LS-VID", "list_sequence")
    list_dir = os.path.join(ddir, "list_sequence")
    train_path = os.path.join(list_dir, "list_seq_train.txt")
    test_path = os.path.join(list_dir, "list_seq_test.txt")
    train = _tracklets(ddir, read_list(train_path), train_path)
    test = _tracklets(ddir, read_list(test_path), test_path)
    query_path = os.path.join(ddir, QUERY_FILE)
    qidx = read_query_indices(query_path)
    bad = np.flatnonzero((qidx < 1) | (qidx > len(test)))
    if bad.size:
        raise DatasetError(
            f"{query_path}: query entry {int(bad[0]) + 1} is {qidx[bad[0]]}; expected 1-based "
            f"lines of {test_path} (1..{len(test)})"
        )
    is_query = np.zeros(len(test), dtype=bool)
    is_query[qidx - 1] = True
    train, raw = relabel_train(train)
    return VideoDataset(
        name="lsvid",
        root=ddir,
        train=train,
        query=[test[i] for i in (qidx - 1).tolist()],
        gallery=[t for t, q in zip(test, is_query, strict=True) if not q],
        attributes_file=attributes_file(ddir),
        extra={"train_raw_pids": raw},
    )
