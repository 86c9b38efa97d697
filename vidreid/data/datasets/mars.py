"""MARS (Zheng et al., ECCV 2016): 6 cameras, tracklets indexed by MATLAB tables.

Layout (``ROOT/mars``)::

    bbox_train/<pid4>/<name>.jpg   bbox_test/<pid4>/<name>.jpg
    info/train_name.txt  test_name.txt  tracks_train_info.mat  tracks_test_info.mat  query_IDX.mat

Rows of ``track_*_info`` are ``[start, end, pid, cam]`` with 1-based inclusive line numbers
into the name file; ``query_IDX`` holds 1-based rows of ``track_test_info``. Float-typed
``.mat`` arrays are accepted when every value is integral (MATLAB saves doubles by default)
and rejected with a clear error otherwise.

Frame existence is checked eagerly but cheaply: each person folder is listed once and the
name file is compared against the listing (no per-frame ``stat``); ``check_frames=False``
skips it.
"""

from __future__ import annotations

import os
import re

import numpy as np

from vidreid.data.datasets.common import (
    attributes_file,
    check_frames_exist,
    filter_min_len,
    load_mat_var,
    register,
    relabel_train,
    require_dir,
    require_file,
    resolve_root,
)
from vidreid.data.errors import DatasetError
from vidreid.data.tracklet import Tracklet, VideoDataset

NUM_CAMERAS = 6
#: ``0065C1T0002F016.jpg``: pid (``00-1`` junk, ``0000`` distractor), camera, tracklet, frame.
NAME_PATTERN = re.compile(r"(?:\d{4}|00-1)C[1-9]T\d{4}F\d{3}\.jpg")
JUNK_FOLDER = "00-1"
PROTOCOLS = ("torchreid", "official", "tkp")


def folder_pid(folder: str) -> int:
    """Raw pid of a MARS person folder name (``00-1`` is the junk pid -1)."""
    return -1 if folder == JUNK_FOLDER else int(folder)


def pid_folder(pid: int) -> str:
    """MARS person folder name of a raw pid (inverse of :func:`folder_pid`)."""
    return JUNK_FOLDER if pid == -1 else f"{pid:04d}"


def read_names(path: str) -> list[str]:
    """Read a MARS name file: one bare file name per line, CRLF tolerated, names checked."""
    require_file(path, "MARS frame-name list")
    with open(path, encoding="utf-8", newline=None) as f:
        names = [line.strip() for line in f]
    names = [n for n in names if n]
    for lineno, name in enumerate(names, 1):
        if not NAME_PATTERN.fullmatch(name):
            raise DatasetError(
                f"{path}, non-empty line {lineno}: malformed MARS file name {name!r}; "
                "expected e.g. 0065C1T0002F016.jpg (pid4 C cam T tracklet4 F frame3 .jpg)"
            )
    return names


def read_track_info(path: str, var: str, num_names: int, names_path: str) -> np.ndarray:
    """Read and validate a ``[start, end, pid, cam]`` table against its name file."""
    info = load_mat_var(path, var, f"MARS track table {var!r} (N x 4: start, end, pid, cam)")
    if info.ndim != 2 or info.shape[1] != 4:
        raise DatasetError(
            f"{path}: {var!r} has shape {info.shape}; expected N x 4 (start, end, pid, cam)"
        )
    start, end, cam = info[:, 0], info[:, 1], info[:, 3]
    bad = np.flatnonzero((start < 1) | (end < start) | (end > num_names))
    if bad.size:
        r = int(bad[0])
        raise DatasetError(
            f"{path}: {var!r} row {r + 1} has start={start[r]}, end={end[r]}; expected "
            f"1-based inclusive line numbers with 1 <= start <= end <= {num_names} "
            f"(the length of {names_path})"
        )
    bad = np.flatnonzero((cam < 1) | (cam > NUM_CAMERAS))
    if bad.size:
        r = int(bad[0])
        raise DatasetError(
            f"{path}: {var!r} row {r + 1} has camera {cam[r]}; expected 1..{NUM_CAMERAS}"
        )
    return info


def _tracklets(
    info: np.ndarray, names: list[str], image_dir: str, names_path: str, info_path: str
) -> list[Tracklet]:
    """Cut the name list into tracklets as the table says; check pid and tracklet consistency."""
    out = []
    for row, (start, end, pid, cam) in enumerate(info.tolist(), 1):
        chunk = names[start - 1 : end]
        first, last = chunk[0], chunk[-1]
        if first[:11] != last[:11] or folder_pid(first[:4]) != pid:
            raise DatasetError(
                f"{info_path} row {row} (pid {pid}, lines {start}-{end} of {names_path}) "
                f"spans {first} .. {last}; expected the frames of one pid-{pid} tracklet"
            )
        prefix = f"{image_dir}{os.sep}{first[:4]}{os.sep}"
        chunk.sort()  # fixed-width frame numbers: lexical order is numeric order
        out.append(Tracklet(tuple(prefix + n for n in chunk), pid, cam - 1))
    return out


def _check_frames(dataset_dir: str, image_dir: str, names: list[str]) -> None:
    by_dir: dict[str, list[str]] = {}
    for n in names:
        by_dir.setdefault(n[:4], []).append(n)
    check_frames_exist(dataset_dir, {os.path.join(image_dir, k): v for k, v in by_dir.items()})


@register("mars")
def load_mars(
    root: str, protocol: str = "torchreid", min_seq_len: int = 0, check_frames: bool = True
) -> VideoDataset:
    """Load MARS.

    ``protocol="torchreid"``: gallery = test tracklets not used as queries, pid -1 dropped
    everywhere (pid 0 distractors stay). ``protocol="official"``: gallery = all test tracklets
    including the queries, ``junk_pids=(-1,)`` (evaluation also drops same pid + same camera).
    ``protocol="tkp"``: TKP's evaluation (guxinqian/TKP ``utils/data_manager.py:147``,
    ``train.py:374-378``): pid -1 dropped everywhere, gallery = the queries followed by the
    torchreid gallery, so the queries whose identity has no other-camera gallery tracklet
    still have a match (evaluate with trapezoidal AP, TKP ``utils/eval_metrics.py:21-28``).
    ``min_seq_len`` drops shorter tracklets from every split.
    """
    if protocol not in PROTOCOLS:
        raise DatasetError(f"unknown MARS protocol {protocol!r}; expected one of {PROTOCOLS}")
    ddir = resolve_root(root, "mars", "info")
    info_dir = os.path.join(ddir, "info")
    train_dir = require_dir(os.path.join(ddir, "bbox_train"), "MARS training images")
    test_dir = require_dir(os.path.join(ddir, "bbox_test"), "MARS test images")

    train_names_path = os.path.join(info_dir, "train_name.txt")
    test_names_path = os.path.join(info_dir, "test_name.txt")
    train_names = read_names(train_names_path)
    test_names = read_names(test_names_path)
    train_info_path = os.path.join(info_dir, "tracks_train_info.mat")
    test_info_path = os.path.join(info_dir, "tracks_test_info.mat")
    train_info = read_track_info(
        train_info_path, "track_train_info", len(train_names), train_names_path
    )
    test_info = read_track_info(test_info_path, "track_test_info", len(test_names), test_names_path)

    query_path = os.path.join(info_dir, "query_IDX.mat")
    query_idx = load_mat_var(query_path, "query_IDX", "MARS query rows (1 x Q, 1-based)")
    if query_idx.ndim != 2 or 1 not in query_idx.shape:
        raise DatasetError(f"{query_path}: 'query_IDX' has shape {query_idx.shape}; expected 1 x Q")
    query_idx = query_idx.ravel()
    bad = np.flatnonzero((query_idx < 1) | (query_idx > len(test_info)))
    if bad.size:
        raise DatasetError(
            f"{query_path}: query_IDX entry {int(bad[0]) + 1} is {query_idx[bad[0]]}; expected "
            f"1-based rows of track_test_info (1..{len(test_info)})"
        )

    if check_frames:
        _check_frames(ddir, train_dir, train_names)
        _check_frames(ddir, test_dir, test_names)

    train = _tracklets(train_info, train_names, train_dir, train_names_path, train_info_path)
    test = _tracklets(test_info, test_names, test_dir, test_names_path, test_info_path)
    is_query = np.zeros(len(test), dtype=bool)
    is_query[query_idx - 1] = True
    query = [test[i] for i in (query_idx - 1).tolist()]
    junk: tuple[int, ...] = ()
    if protocol in ("torchreid", "tkp"):
        gallery = [t for t, q in zip(test, is_query, strict=True) if not q and t.pid != -1]
        train = [t for t in train if t.pid != -1]
        query = [t for t in query if t.pid != -1]
        if protocol == "tkp":
            gallery = query + gallery
    else:
        gallery = list(test)
        junk = (-1,)

    train = filter_min_len(train, min_seq_len)
    query = filter_min_len(query, min_seq_len)
    gallery = filter_min_len(gallery, min_seq_len)
    train, raw = relabel_train(train)
    return VideoDataset(
        name="mars",
        root=ddir,
        train=train,
        query=query,
        gallery=gallery,
        junk_pids=junk,
        attributes_file=attributes_file(ddir),
        extra={"train_raw_pids": raw, "protocol": protocol},
    )
