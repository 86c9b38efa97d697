import pytest
from _fixtures import make_lsvid

from vidreid.data import build_dataset


@pytest.mark.parametrize("shape", [(1, -1), (-1, 1)])
def test_prefix_matching_and_v73_query_indices(tmp_path, shape):
    make_lsvid(tmp_path, query_shape=shape)
    ds = build_dataset("lsvid", tmp_path)
    assert [(t.pid, t.camid, len(t.frames)) for t in ds.train] == [(0, 2, 3), (1, 0, 2)]
    assert ds.extra["train_raw_pids"] == [1, 2]
    # info_test.mat query = [3, 1], 1-based lines of list_seq_test.txt.
    assert [(t.pid, t.camid) for t in ds.query] == [(7, 1), (5, 1)]
    assert [(t.pid, t.camid, len(t.frames)) for t in ds.gallery] == [(5, 3, 2)]
    frames = ds.query[1].frames
    assert len(frames) == 11
    assert [f.rsplit("_", 1)[1] for f in frames[8:]] == ["9.jpg", "10.jpg", "11.jpg"]
