"""iLIDS-VID (Wang et al., ECCV 2014): 300 persons, 2 cameras, one tracklet per camera.

Layout (``ROOT/ilids-vid``)::

    i-LIDS-VID/sequences/cam{1,2}/personXXX/cam1_personXXX_NNNNN.png
    train-test people splits/train_test_splits_ilidsvid.mat

``ls_set`` (splits x persons) holds 1-based indices into the *sorted* cam1 person folders;
the first half of each row is the test set, the rest the train set. Query = cam1, gallery =
cam2. Train and test pids are relabelled per split (raw person numbers in ``extra``).
"""

from __future__ import annotations

import os
import re

import numpy as np

from vidreid.data.datasets.common import (
    attributes_file,
    check_split_id,
    list_images,
    load_mat_var,
    register,
    require_dir,
    resolve_root,
    sorted_subdirs,
    two_camera_split,
)
from vidreid.data.errors import DatasetError
from vidreid.data.tracklet import VideoDataset

PERSON_PATTERN = re.compile(r"person(\d+)")
FRAME_PATTERN = re.compile(r"cam([12])_(person\d+)_(\d+)\.png")
SPLIT_FILE = os.path.join("train-test people splits", "train_test_splits_ilidsvid.mat")
SPLIT_VAR = "ls_set"


def _person_frames(cam_dir: str, cam: int, person: str) -> tuple[str, ...]:
    folder = os.path.join(cam_dir, person)
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"iLIDS-VID person {person} has no folder {folder}; every person needs both cameras"
        )
    names = list_images(folder)
    for n in names:
        m = FRAME_PATTERN.fullmatch(n)
        if not m or int(m.group(1)) != cam or m.group(2) != person:
            raise DatasetError(
                f"malformed iLIDS-VID frame name {os.path.join(folder, n)}; "
                f"expected cam{cam}_{person}_NNNNN.png"
            )
    return tuple(os.path.join(folder, n) for n in names)


@register("ilidsvid")
def load_ilidsvid(root: str, split_id: int = 0) -> VideoDataset:
    """Load iLIDS-VID split ``split_id`` (0-9 on the real data)."""
    ddir = resolve_root(root, "ilids-vid", "i-LIDS-VID")
    root_dir = os.path.join(ddir, "i-LIDS-VID", "sequences")
    cam_dirs = [
        require_dir(os.path.join(root_dir, f"cam{c}"), f"iLIDS-VID camera {c}") for c in (1, 2)
    ]
    persons = sorted_subdirs(cam_dirs[0])
    for p in persons:
        if not PERSON_PATTERN.fullmatch(p):
            raise DatasetError(
                f"unexpected folder {os.path.join(cam_dirs[0], p)}; expected personXXX folders"
            )
    if not persons:
        raise DatasetError(f"{cam_dirs[0]} holds no personXXX folders")

    split_path = os.path.join(ddir, SPLIT_FILE)
    ls_set = load_mat_var(split_path, SPLIT_VAR, "iLIDS-VID splits 'ls_set' (splits x persons)")
    if ls_set.ndim != 2 or ls_set.shape[1] != len(persons):
        raise DatasetError(
            f"{split_path}: 'ls_set' has shape {ls_set.shape}; expected (splits, {len(persons)}) "
            f"for the {len(persons)} person folders in {cam_dirs[0]}"
        )
    split_id = check_split_id(split_id, ls_set.shape[0], split_path)
    row = ls_set[split_id]
    if row.min() < 1 or row.max() > len(persons) or len(np.unique(row)) != len(row):
        raise DatasetError(
            f"{split_path}: 'ls_set' row {split_id} is not a permutation of 1..{len(persons)} "
            "(1-based indices into the sorted cam1 person folders)"
        )
    num_test = len(persons) // 2
    test = [persons[i - 1] for i in row[:num_test].tolist()]
    train = [persons[i - 1] for i in row[num_test:].tolist()]

    def frames(camid: int, person: str) -> tuple[str, ...]:
        return _person_frames(cam_dirs[camid], camid + 1, person)

    def raw_pid(person: str) -> int:
        return int(person[len("person") :])

    tr, q, g, raw_train, raw_test = two_camera_split(train, test, frames, raw_pid)
    return VideoDataset(
        name="ilidsvid",
        root=ddir,
        train=tr,
        query=q,
        gallery=g,
        attributes_file=attributes_file(ddir),
        extra={
            "train_raw_pids": raw_train,
            "test_raw_pids": raw_test,
            "split_id": split_id,
            "num_splits": int(ls_set.shape[0]),
        },
    )
