import numpy as np
import pytest
from _fixtures import make_prid

from vidreid.data import DatasetError, build_dataset
from vidreid.data.datasets.prid2011 import eligible_persons, make_splits


def test_27_frame_filter_and_split(tmp_path):
    # person 2 has 26 frames in cam_b: dropped although the split lists it.
    lengths_a = {1: 27, 2: 40, 3: 30, 4: 28, 9: 50}
    lengths_b = {1: 27, 2: 26, 3: 33, 4: 29, 8: 60}
    split = {"train": ["person_0001", "person_0002"], "test": ["person_0003", "person_0004"]}
    make_prid(tmp_path, lengths_a, lengths_b, [split])
    ds = build_dataset("prid2011", tmp_path)
    assert ds.extra["dropped_short"] == ["person_0002"]
    assert ds.extra["train_raw_pids"] == [1] and ds.extra["test_raw_pids"] == [3, 4]
    assert [(t.pid, t.camid, len(t.frames)) for t in ds.query] == [(0, 0, 30), (1, 0, 28)]
    assert [(t.pid, t.camid, len(t.frames)) for t in ds.gallery] == [(0, 1, 33), (1, 1, 29)]
    assert ds.train[0].frames[-1].endswith("cam_a/person_0001/0027.png")
    # A lower threshold keeps person 2.
    assert build_dataset("prid2011", tmp_path, min_seq_len=26).extra["dropped_short"] == []


def test_make_splits_uses_only_eligible_persons():
    a = {"person_0001": 27, "person_0002": 40, "person_0003": 30, "person_0005": 99}
    b = {"person_0001": 30, "person_0002": 26, "person_0003": 31}
    assert eligible_persons(a, b) == ["person_0001", "person_0003"]
    splits = make_splits(a, b, np.random.default_rng(0))
    assert len(splits) == 10
    for s in splits:
        assert sorted(s["train"] + s["test"]) == ["person_0001", "person_0003"]
        assert len(s["train"]) == 1


def test_missing_split_file(tmp_path):
    make_prid(tmp_path, {1: 30}, {1: 30})
    with pytest.raises(FileNotFoundError, match="splits_prid2011.json"):
        build_dataset("prid2011", tmp_path)


def test_malformed_split_file(tmp_path):
    make_prid(tmp_path, {1: 30}, {1: 30}, [{"train": "person_0001"}])
    with pytest.raises(DatasetError, match="splits_prid2011.json: expected"):
        build_dataset("prid2011", tmp_path)
