import numpy as np
import pytest
from _fixtures import MARS_TEST, make_mars
from scipy.io import savemat

from vidreid.data import DatasetError, build_dataset


def test_index_semantics_crlf_and_one_based(tmp_path):
    make_mars(tmp_path, crlf=True)
    ds = build_dataset("mars", tmp_path)
    assert ds.root == str(tmp_path / "mars")
    # Train: 3 tracklets, pids 1 and 3 relabelled 0 and 1, cameras 0-based.
    assert [(len(t.frames), t.pid, t.camid) for t in ds.train] == [(3, 0, 0), (2, 0, 1), (4, 1, 0)]
    assert ds.extra["train_raw_pids"] == [1, 3]
    first = ds.train[0].frames
    assert first[0].endswith("bbox_train/0001/0001C1T0001F001.jpg")
    assert first[-1].endswith("0001C1T0001F003.jpg")  # inclusive end
    # Queries follow query_IDX order: (0002, cam1) then (0004, cam3); raw pids kept.
    assert [(t.pid, t.camid, len(t.frames)) for t in ds.query] == [(2, 0, 3), (4, 2, 3)]
    assert ds.query[1].frames[0].endswith("0004C3T0002F001.jpg")


def test_protocol_gallery_sizes(tmp_path):
    make_mars(tmp_path)
    torchreid = build_dataset("mars", tmp_path)
    official = build_dataset("mars", tmp_path / "mars", protocol="official")
    # 6 test tracklets, 2 queries, 1 junk (pid -1).
    assert len(torchreid.gallery) == len(MARS_TEST) - 2 - 1
    assert {t.pid for t in torchreid.gallery} == {0, 2, 4}
    assert torchreid.junk_pids == ()
    assert len(official.gallery) == len(MARS_TEST)
    assert official.junk_pids == (-1,)
    assert set(official.query) <= set(official.gallery)


def test_min_seq_len_drops_short_tracklets(tmp_path):
    make_mars(tmp_path)
    ds = build_dataset("mars", tmp_path, min_seq_len=3)
    assert all(len(t.frames) >= 3 for t in ds.train + ds.query + ds.gallery)
    assert len(ds.train) == 2 and len(ds.gallery) == 0


def test_integral_float_indices_accepted(tmp_path):
    make_mars(tmp_path, dtype=np.float64)
    ds = build_dataset("mars", tmp_path)
    assert len(ds.train) == 3 and len(ds.query) == 2


def test_fractional_indices_rejected(tmp_path):
    make_mars(tmp_path)
    path = tmp_path / "mars/info/query_IDX.mat"
    savemat(path, {"query_IDX": np.array([[1.5, 2.0]])})
    with pytest.raises(DatasetError, match="query_IDX.mat.*non-integer"):
        build_dataset("mars", tmp_path)


def test_unknown_protocol(tmp_path):
    make_mars(tmp_path)
    with pytest.raises(DatasetError, match="protocol 'matlab'"):
        build_dataset("mars", tmp_path, protocol="matlab")


def test_tkp_protocol_gallery_is_queries_then_torchreid_gallery(tmp_path):
    make_mars(tmp_path)
    torchreid = build_dataset("mars", tmp_path)
    tkp = build_dataset("mars", tmp_path, protocol="tkp")
    assert tkp.gallery == tkp.query + torchreid.gallery
    assert tkp.junk_pids == () and all(t.pid != -1 for t in tkp.gallery)
    assert tkp.train == torchreid.train and tkp.extra["protocol"] == "tkp"
