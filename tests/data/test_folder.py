import pytest
from _fixtures import touch

from vidreid.data import DatasetError, build_dataset


def _tree(root):
    for f in ("1.jpg", "2.jpg", "10.jpg"):
        touch(root / "train/7/0_a" / f)
    touch(root / "train/3/1_b/0.jpg")
    touch(root / "query/20/0_x/0.jpg")
    touch(root / "gallery/20/1_y/0.jpg")
    touch(root / "gallery/-1/2_z/0.jpg")


def test_tree(tmp_path):
    _tree(tmp_path)
    ds = build_dataset("folder", tmp_path)
    assert [(t.pid, t.camid) for t in ds.train] == [(0, 1), (1, 0)]
    assert ds.extra["train_raw_pids"] == [3, 7]
    assert [f.rsplit("/", 1)[1] for f in ds.train[1].frames] == ["1.jpg", "2.jpg", "10.jpg"]
    assert sorted((t.pid, t.camid) for t in ds.gallery) == [(-1, 2), (20, 1)]


def test_manifest_with_and_without_split_column(tmp_path):
    _tree(tmp_path)
    rows = [
        "train/7/0_a/10.jpg,7,0,a",
        "train/7/0_a/1.jpg,7,0,a",
        "query/20/0_x/0.jpg,20,0,x",
        "gallery/20/1_y/0.jpg,20,1,y",
    ]
    (tmp_path / "m.csv").write_text("path,pid,camid,tracklet\n" + "\n".join(rows) + "\n")
    ds = build_dataset("folder", tmp_path, manifest="m.csv")
    assert [f.rsplit("/", 1)[1] for f in ds.train[0].frames] == ["10.jpg", "1.jpg"]  # row order
    assert [(t.pid, t.camid) for t in ds.query + ds.gallery] == [(20, 0), (20, 1)]
    (tmp_path / "s.csv").write_text(
        "split,path,pid,camid,tracklet\ngallery,train/7/0_a/1.jpg,5,0,t\nquery,query/20/0_x/0.jpg,20,0,x\n"
    )
    ds = build_dataset("folder", tmp_path, manifest=str(tmp_path / "s.csv"))
    assert [(t.pid, len(t.frames)) for t in ds.gallery] == [(5, 1)]
    assert ds.train == []


def test_manifest_bad_split_and_missing_frame(tmp_path):
    _tree(tmp_path)
    (tmp_path / "m.csv").write_text("path,pid,camid,tracklet\nelsewhere/0.jpg,1,0,a\n")
    with pytest.raises(DatasetError, match=r"m.csv, line 2"):
        build_dataset("folder", tmp_path, manifest="m.csv")
    (tmp_path / "m.csv").write_text(
        "path,pid,camid,tracklet\nquery/20/0_x/9.jpg,1,0,a\ngallery/20/1_y/0.jpg,20,1,y\n"
    )
    with pytest.raises(FileNotFoundError, match=r"query/20/0_x/9.jpg"):
        build_dataset("folder", tmp_path, manifest="m.csv")
