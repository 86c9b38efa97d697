"""PRID-2011 multi_shot (Hirzer et al., SCIA 2011): 2 cameras, one tracklet per camera.

Layout (``ROOT/prid2011``)::

    prid_2011/multi_shot/cam_{a,b}/person_XXXX/NNNN.png
    splits_prid2011.json      # [{"train": [person folders], "test": [...]}, ...] (torchreid)

Protocol: keep persons with at least 27 frames in *both* cameras (178 on the real data),
10 random splits of half train / half test. Query = cam_a, gallery = cam_b; pids are
relabelled per split (raw person numbers in ``extra``). The split file normally lists only
eligible persons already; the loader applies the same filter (:func:`eligible_persons`) to
what it lists and drops the rest, recording them in ``extra["dropped_short"]``.
:func:`make_splits` builds a split file from the data on disk when there is none.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping

import numpy as np

from vidreid.data.datasets.common import (
    attributes_file,
    check_split_id,
    list_images,
    register,
    require_dir,
    require_file,
    resolve_root,
    sorted_subdirs,
    two_camera_split,
)
from vidreid.data.errors import DatasetError
from vidreid.data.tracklet import VideoDataset

#: Persons need at least this many frames in both cameras (the standard PRID protocol).
MIN_FRAMES = 27
NUM_SPLITS = 10
SPLIT_FILE = "splits_prid2011.json"
CAMERAS = ("cam_a", "cam_b")
PERSON_PATTERN = re.compile(r"person_(\d+)")
FRAME_PATTERN = re.compile(r"\d+\.png")


def eligible_persons(
    lengths_a: Mapping[str, int], lengths_b: Mapping[str, int], min_len: int = MIN_FRAMES
) -> list[str]:
    """Sorted person folders with at least ``min_len`` frames in both cameras."""
    return sorted(
        p for p, n in lengths_a.items() if n >= min_len and lengths_b.get(p, 0) >= min_len
    )


def camera_dirs(dataset_dir: str) -> list[str]:
    """The cam_a / cam_b folders of a PRID dataset folder."""
    base = os.path.join(dataset_dir, "prid_2011", "multi_shot")
    return [require_dir(os.path.join(base, c), f"PRID-2011 camera {c}") for c in CAMERAS]


def make_splits(
    lengths_a: Mapping[str, int],
    lengths_b: Mapping[str, int],
    rng: np.random.Generator,
    num_splits: int = NUM_SPLITS,
    min_len: int = MIN_FRAMES,
) -> list[dict[str, list[str]]]:
    """Random half/half train/test splits of the eligible persons (torchreid's format)."""
    persons = eligible_persons(lengths_a, lengths_b, min_len)
    if len(persons) < 2:
        raise DatasetError(
            f"only {len(persons)} PRID persons have >= {min_len} frames in both cameras; "
            "need at least 2 to split into train and test"
        )
    num_train = len(persons) // 2
    splits = []
    for _ in range(num_splits):
        order = rng.permutation(len(persons))
        splits.append(
            {
                "train": sorted(persons[i] for i in order[:num_train]),
                "test": sorted(persons[i] for i in order[num_train:]),
            }
        )
    return splits


def _read_splits(path: str) -> list[dict[str, list[str]]]:
    require_file(path, "PRID-2011 split file (torchreid's splits_prid2011.json)")
    try:
        with open(path, encoding="utf-8") as f:
            splits = json.load(f)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is not valid JSON ({exc})") from None
    ok = isinstance(splits, list) and all(
        isinstance(s, dict)
        and all(
            isinstance(s.get(k), list) and all(isinstance(p, str) for p in s[k])
            for k in ("train", "test")
        )
        for s in splits
    )
    if not ok or not splits:
        raise DatasetError(
            f'{path}: expected a non-empty list of {{"train": [person folders], '
            '"test": [person folders]}} objects'
        )
    return splits


def _person_frames(cam_dir: str, person: str) -> tuple[str, ...]:
    folder = os.path.join(cam_dir, person)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"PRID-2011 person {person} listed by the split has no {folder}")
    names = list_images(folder)
    for n in names:
        if not FRAME_PATTERN.fullmatch(n):
            raise DatasetError(
                f"malformed PRID-2011 frame name {os.path.join(folder, n)}; expected NNNN.png"
            )
    return tuple(os.path.join(folder, n) for n in names)


@register("prid2011")
def load_prid2011(root: str, split_id: int = 0, min_seq_len: int = MIN_FRAMES) -> VideoDataset:
    """Load PRID-2011 split ``split_id`` keeping persons with >= ``min_seq_len`` frames in
    both cameras (27 is the protocol)."""
    ddir = resolve_root(root, "prid2011", "prid_2011")
    cam_dirs = camera_dirs(ddir)
    split_path = os.path.join(ddir, SPLIT_FILE)
    splits = _read_splits(split_path)
    split_id = check_split_id(split_id, len(splits), split_path)
    split = splits[split_id]
    for p in split["train"] + split["test"]:
        if not PERSON_PATTERN.fullmatch(p):
            raise DatasetError(f"{split_path}: {p!r} is not a person_XXXX folder name")

    cache: dict[tuple[int, str], tuple[str, ...]] = {}

    def frames(camid: int, person: str) -> tuple[str, ...]:
        key = (camid, person)
        if key not in cache:
            cache[key] = _person_frames(cam_dirs[camid], person)
        return cache[key]

    listed = split["train"] + split["test"]
    lengths = [{p: len(frames(c, p)) for p in listed} for c in (0, 1)]
    keep = set(eligible_persons(lengths[0], lengths[1], min_seq_len))
    dropped = sorted(set(listed) - keep)
    train = [p for p in split["train"] if p in keep]
    test = [p for p in split["test"] if p in keep]
    if not train or not test:
        raise DatasetError(
            f"{split_path} split {split_id}: no train or no test person has >= {min_seq_len} "
            "frames in both cameras"
        )

    def raw_pid(person: str) -> int:
        return int(person[len("person_") :])

    tr, q, g, raw_train, raw_test = two_camera_split(train, test, frames, raw_pid)
    return VideoDataset(
        name="prid2011",
        root=ddir,
        train=tr,
        query=q,
        gallery=g,
        attributes_file=attributes_file(ddir),
        extra={
            "train_raw_pids": raw_train,
            "test_raw_pids": raw_test,
            "split_id": split_id,
            "num_splits": len(splits),
            "dropped_short": dropped,
        },
    )


def lengths_on_disk(dataset_dir: str) -> list[dict[str, int]]:
    """Frame counts per person folder in cam_a and cam_b (for :func:`make_splits`)."""
    out = []
    for cam_dir in camera_dirs(dataset_dir):
        out.append({p: len(list_images(os.path.join(cam_dir, p))) for p in sorted_subdirs(cam_dir)})
    return out
