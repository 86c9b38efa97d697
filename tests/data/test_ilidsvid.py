import numpy as np
import pytest
from _fixtures import make_ilidsvid
from scipy.io import loadmat

from vidreid.data import DatasetError, build_dataset

PERSONS = (1, 4, 10, 12)


@pytest.mark.parametrize("split_id", [0, 9])
def test_split_indexes_sorted_person_folders(tmp_path, split_id):
    make_ilidsvid(tmp_path, PERSONS)
    ds = build_dataset("ilidsvid", tmp_path, split_id=split_id)
    ls = loadmat(tmp_path / "ilids-vid/train-test people splits/train_test_splits_ilidsvid.mat")
    row = ls["ls_set"][split_id].astype(int)
    assert ds.extra["test_raw_pids"] == sorted(PERSONS[i - 1] for i in row[:2])
    assert ds.extra["train_raw_pids"] == sorted(PERSONS[i - 1] for i in row[2:])
    assert ds.extra["num_splits"] == 10
    # Train: both cameras of each train person; query cam1, gallery cam2; per-split labels.
    assert sorted((t.pid, t.camid) for t in ds.train) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [(t.pid, t.camid) for t in ds.query] == [(0, 0), (1, 0)]
    assert [(t.pid, t.camid) for t in ds.gallery] == [(0, 1), (1, 1)]
    num = ds.extra["test_raw_pids"][0]
    assert ds.query[0].frames[0].endswith(f"cam1/person{num:03d}/cam1_person{num:03d}_00098.png")
    assert [f[-9:-4] for f in ds.gallery[0].frames] == ["00098", "00099", "00100", "00101"]


def test_split_id_out_of_range(tmp_path):
    make_ilidsvid(tmp_path, PERSONS)
    with pytest.raises(DatasetError, match=r"split_id 10 .*train_test_splits_ilidsvid.mat"):
        build_dataset("ilidsvid", tmp_path, split_id=10)


def test_split_width_must_match_person_folders(tmp_path):
    make_ilidsvid(tmp_path, PERSONS)
    from scipy.io import savemat

    path = tmp_path / "ilids-vid/train-test people splits/train_test_splits_ilidsvid.mat"
    savemat(path, {"ls_set": np.ones((10, 3))})
    with pytest.raises(DatasetError, match=r"train_test_splits_ilidsvid.mat.*shape \(10, 3\)"):
        build_dataset("ilidsvid", tmp_path)
