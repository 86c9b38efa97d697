import filecmp
import os

import h5py
import numpy as np
import pytest

from vidreid.data import DatasetError
from vidreid.data.synth import generate, load_tracklet_table
from vidreid.data.synth.layouts import make_plan

SMALL = dict(size=(32, 16), max_len=8)


def _plan(layout, ids=10, cameras=3, seed=0, max_len=12):
    return make_plan(layout, ids, cameras, np.random.default_rng(seed), max_len=max_len)


def test_same_seed_same_output_whatever_the_workers(tmp_path):
    a = generate(tmp_path / "a", "mars", 4, 2, seed=5, workers=1, occlusion_rate=0.5, **SMALL)
    b = generate(tmp_path / "b", "mars", 4, 2, seed=5, workers=2, occlusion_rate=0.5, **SMALL)
    rows_a, rows_b = load_tracklet_table(a), load_tracklet_table(b)
    assert rows_a == rows_b
    for f in rows_a[0]["frames"] + rows_a[-1]["frames"]:
        assert filecmp.cmp(os.path.join(a, "mars", f), os.path.join(b, "mars", f), shallow=False)
    for name in ("train_name.txt", "test_name.txt"):
        assert filecmp.cmp(f"{a}/mars/info/{name}", f"{b}/mars/info/{name}", shallow=False)
    c = generate(tmp_path / "c", "mars", 4, 2, seed=6, workers=1, **SMALL)
    assert load_tracklet_table(c) != rows_a


def test_existing_output_is_not_overwritten_silently(tmp_path):
    generate(tmp_path, "folder", 2, 2, seed=0, workers=1, **SMALL)
    with pytest.raises(DatasetError, match=r"train already exists .*finished.*--overwrite"):
        generate(tmp_path, "folder", 2, 2, seed=1, workers=1, **SMALL)
    (tmp_path / "unrelated.txt").write_text("keep me")
    generate(tmp_path, "folder", 3, 2, seed=1, workers=1, overwrite=True, **SMALL)
    assert (tmp_path / "unrelated.txt").read_text() == "keep me"
    assert {r["identity"] for r in load_tracklet_table(tmp_path)} == {1, 2, 3}


@pytest.mark.parametrize(
    "layout,cameras,match",
    [
        ("ilidsvid", 3, "exactly 2 cameras"),
        ("prid2011", 1, "exactly 2 cameras"),
        ("mars", 7, "2..6 cameras"),
        ("dukev", 9, "2..8 cameras"),
        ("lsvid", 16, "2..15 cameras"),
        ("mars", 1, "2..6 cameras"),
    ],
)
def test_camera_count_must_fit_layout(layout, cameras, match):
    with pytest.raises(DatasetError, match=match):
        _plan(layout, cameras=cameras)


def test_prid_needs_room_for_the_27_frame_filter():
    with pytest.raises(DatasetError, match="max_len >= 27"):
        _plan("prid2011", cameras=2, max_len=12)


def test_mars_plan_has_distractors_junk_and_one_query_per_pid_camera():
    plan = _plan("mars", ids=10, cameras=4)
    test = [t for t in plan.tracklets if t.split == "test"]
    assert any(t.pid == 0 for t in test) and any(t.pid == -1 for t in test)
    assert all(t.occlusion_rate == 1.0 for t in test if t.pid == -1)
    labelled = {(t.pid, t.camid) for t in test if t.pid > 0}
    queries = [(t.pid, t.camid) for t in test if t.is_query]
    assert sorted(queries) == sorted(labelled)
    for pid in {p for p, _ in labelled}:
        assert len({c for p, c in labelled if p == pid}) >= 2  # a cross-camera match exists
    train_pids = {t.pid for t in plan.tracklets if t.split == "train"}
    assert not train_pids & {p for p, _ in labelled}


def test_ilids_plan_gapped_folders_and_late_frame_numbers():
    plan = _plan("ilidsvid", ids=30, cameras=2)
    nums = sorted({t.pid for t in plan.tracklets})
    assert len(nums) == 30 and nums[-1] > 30
    assert any(not t.frames[0].endswith("_00001.png") for t in plan.tracklets)
    assert plan.meta["ls_set"].shape == (10, 30)
    assert all(sorted(row) == list(range(1, 31)) for row in plan.meta["ls_set"].tolist())


def test_duke_plan_late_starts_and_query_copies():
    plan = _plan("dukev", ids=20, cameras=4)
    assert any("_F0002_" in t.frames[0] for t in plan.tracklets)
    queries = [t for t in plan.tracklets if t.split == "query"]
    test_ids = {t.pid for t in plan.tracklets if t.split == "gallery" and t.pid <= 20}
    assert sorted(t.pid for t in queries) == sorted(test_ids)
    originals = {t.index: t for t in plan.tracklets}
    for q in queries:
        g = originals[q.render_index]
        assert g.split == "gallery" and (g.pid, g.camid, len(g.frames)) == (
            q.pid,
            q.camid,
            len(q.frames),
        )


def test_prid_plan_single_camera_persons():
    plan = _plan("prid2011", ids=10, cameras=2, max_len=40)
    cam_a = {t.pid for t in plan.tracklets if t.camid == 0}
    cam_b = {t.pid for t in plan.tracklets if t.camid == 1}
    assert cam_a - cam_b and cam_b - cam_a and len(cam_a & cam_b) == 10


def test_lsvid_query_table_is_matlab_v73(tmp_path):
    root = generate(tmp_path, "lsvid", 4, 2, seed=0, workers=1, **SMALL)
    path = os.path.join(root, "LS-VID/test/data/info_test.mat")
    assert open(path, "rb").read(10) == b"MATLAB 7.3"
    with h5py.File(path, "r") as f:
        q = f["query"][()]
    rows = [r for r in load_tracklet_table(root) if r["split"] == "test"]
    assert q.shape == (1, sum(r["is_query"] for r in rows))
    assert all(rows[int(i) - 1]["is_query"] for i in q[0])
