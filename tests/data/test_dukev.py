from _fixtures import touch

from vidreid.data import build_dataset

BASE = "dukemtmc-vidreid/DukeMTMC-VideoReID"


def test_frames_not_starting_at_1_and_both_name_variants(tmp_path):
    # Tracklet starting at F0002 with F0010 after F0009 (numeric order), underscore names.
    for i in range(2, 11):
        touch(tmp_path / BASE / f"train/0005/0001/0005_C6_F{i:04d}_X{3000 + i}.jpg")
    # Older variant without underscores, camera 2.
    for i in (1, 2):
        touch(tmp_path / BASE / f"train/0009/0003/0009C2F{i:04d}X{777 + i}.jpg")
    for split in ("query", "gallery"):
        touch(tmp_path / BASE / f"{split}/0011/0001/0011_C1_F0001_X5.jpg")
    touch(tmp_path / BASE / "gallery/0011/0002/0011_C3_F0001_X99.jpg")
    ds = build_dataset("dukev", tmp_path)
    t0, t1 = ds.train
    assert (t0.pid, t0.camid, len(t0.frames)) == (0, 5, 9)
    assert t0.frames[0].endswith("0005_C6_F0002_X3002.jpg")
    assert t0.frames[-1].endswith("0005_C6_F0010_X3010.jpg")  # last frame kept
    assert (t1.pid, t1.camid, len(t1.frames)) == (1, 1, 2)
    assert ds.extra["train_raw_pids"] == [5, 9]
    assert [(t.pid, t.camid) for t in ds.query] == [(11, 0)]
    assert sorted((t.pid, t.camid) for t in ds.gallery) == [(11, 0), (11, 2)]
    short = build_dataset("dukev", tmp_path / "dukemtmc-vidreid", min_seq_len=3)
    assert [len(t.frames) for t in short.train] == [9]
