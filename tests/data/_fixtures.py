"""Hand-built tiny benchmark layouts (empty frame files; loaders never open images)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
from scipy.io import savemat

# MARS: (folder, cam, tracklet, frames)
MARS_TRAIN = [("0001", 1, 1, 3), ("0001", 2, 2, 2), ("0003", 1, 1, 4)]
MARS_TEST = [
    ("0002", 1, 1, 3),
    ("0002", 2, 2, 2),
    ("0004", 1, 1, 2),
    ("0004", 3, 2, 3),
    ("0000", 2, 1, 2),
    ("00-1", 1, 1, 2),
]
MARS_QUERIES = [("0002", 1), ("0004", 3)]  # (folder, cam) of the query tracklets


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path


def _mars_split(ddir: Path, split: str, tracks):
    names = []
    for folder, cam, tk, n in tracks:
        for f in range(1, n + 1):
            name = f"{folder}C{cam}T{tk:04d}F{f:03d}.jpg"
            names.append(name)
            touch(ddir / f"bbox_{split}" / folder / name)
    names.sort()
    rows, keys = [], []
    for folder, cam, tk, _ in sorted(tracks):
        prefix = f"{folder}C{cam}T{tk:04d}"
        idx = [i for i, n in enumerate(names) if n.startswith(prefix)]
        pid = -1 if folder == "00-1" else int(folder)
        rows.append([idx[0] + 1, idx[-1] + 1, pid, cam])
        keys.append((folder, cam))
    return names, np.array(rows), keys


def make_mars(root: Path, *, crlf: bool = False, dtype=np.int32) -> Path:
    """MARS layout under ``root/mars``; returns ``root``."""
    ddir = root / "mars"
    info = ddir / "info"
    info.mkdir(parents=True)
    end = "\r\n" if crlf else "\n"
    for split, tracks in (("train", MARS_TRAIN), ("test", MARS_TEST)):
        names, rows, keys = _mars_split(ddir, split, tracks)
        (info / f"{split}_name.txt").write_bytes("".join(n + end for n in names).encode())
        savemat(info / f"tracks_{split}_info.mat", {f"track_{split}_info": rows.astype(dtype)})
        if split == "test":
            q = [keys.index(k) + 1 for k in MARS_QUERIES]
            savemat(info / "query_IDX.mat", {"query_IDX": np.array([q], dtype=dtype)})
    return root


def make_ilidsvid(root: Path, persons=(1, 4, 10, 12), splits: int = 10, seed: int = 0) -> Path:
    """iLIDS-VID layout with gapped person numbers and frames not starting at 1."""
    ddir = root / "ilids-vid"
    for num in persons:
        for cam in (1, 2):
            for f in (98, 99, 100, 101):  # 5-digit, crosses a decimal boundary
                touch(
                    ddir / f"i-LIDS-VID/sequences/cam{cam}/person{num:03d}/"
                    f"cam{cam}_person{num:03d}_{f:05d}.png"
                )
    rng = np.random.default_rng(seed)
    ls_set = np.stack([rng.permutation(len(persons)) + 1 for _ in range(splits)])
    split_dir = ddir / "train-test people splits"
    split_dir.mkdir(parents=True)
    savemat(split_dir / "train_test_splits_ilidsvid.mat", {"ls_set": ls_set.astype(np.float64)})
    return root


def make_prid(
    root: Path,
    lengths_a: dict[int, int],
    lengths_b: dict[int, int],
    splits: list[dict] | None = None,
) -> Path:
    ddir = root / "prid2011"
    for cam, lengths in (("a", lengths_a), ("b", lengths_b)):
        for num, n in lengths.items():
            for f in range(1, n + 1):
                touch(ddir / f"prid_2011/multi_shot/cam_{cam}/person_{num:04d}/{f:04d}.png")
    if splits is not None:
        (ddir / "splits_prid2011.json").write_text(json.dumps(splits))
    return root


def make_lsvid(root: Path, query_shape=(1, -1)) -> Path:
    """Two train and three test sequences; queries are test lines 3 and 1 (1-based)."""
    ddir = root / "LS-VID"
    seqs = {
        "train": [
            ("tracklet_train/0001/0001_0001_03_", 1, 3),
            ("tracklet_train/0002/0002_0001_01_", 2, 2),
        ],
        "test": [
            ("tracklet_test/0005/0005_0001_02_", 5, 11),
            ("tracklet_test/0005/0005_0002_04_", 5, 2),
            ("tracklet_test/0007/0007_0001_02_", 7, 2),
        ],
    }
    lists = ddir / "list_sequence"
    lists.mkdir(parents=True)
    for split, entries in seqs.items():
        for prefix, _, n in entries:
            for f in range(1, n + 1):
                touch(ddir / f"{prefix}{f}.jpg")  # unpadded: 10 must sort after 9
        (lists / f"list_seq_{split}.txt").write_text(
            "".join(f"{p} {pid}\n" for p, pid, _ in entries)
        )
    (lists / "list_seq_val.txt").write_text("")
    (ddir / "test/data").mkdir(parents=True)
    with h5py.File(ddir / "test/data/info_test.mat", "w", userblock_size=512) as f:
        f.create_dataset("query", data=np.array([3.0, 1.0]).reshape(query_shape))
    return root
