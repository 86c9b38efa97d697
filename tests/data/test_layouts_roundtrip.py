"""Every layout: synth (tiny) -> load -> the loader sees exactly what the generator planned."""

import csv
import os

import pytest

from vidreid.data import build_dataset
from vidreid.data.synth import generate, load_frame_truth, load_tracklet_table

CAMERAS = {"mars": 3, "dukev": 3, "lsvid": 3, "folder": 3, "ilidsvid": 2, "prid2011": 2}
MAX_LEN = {"prid2011": 34}  # PRID needs room above its 27-frame filter
IDS = 8


def _key(frames, pid, camid):
    return (tuple(frames), pid, camid)


def _loaded(tracklets, raw=None):
    return sorted(_key(t.frames, raw[t.pid] if raw else t.pid, t.camid) for t in tracklets)


def _planned(ddir, rows):
    return sorted(
        _key([os.path.join(ddir, f) for f in r["frames"]], r["pid"], r["camid"]) for r in rows
    )


@pytest.mark.parametrize("layout", sorted(CAMERAS))
def test_roundtrip(tmp_path, layout):
    root = generate(
        tmp_path,
        layout,
        IDS,
        CAMERAS[layout],
        seed=3,
        size=(64, 32),
        max_len=MAX_LEN.get(layout, 12),
        workers=1,
        occlusion_rate=0.3,
    )
    ds = build_dataset(layout, root)
    rows = load_tracklet_table(root)
    d = ds.root
    train_raw = ds.extra["train_raw_pids"]
    assert sorted({t.pid for t in ds.train}) == list(range(len(train_raw)))

    if layout in ("mars", "lsvid"):
        test = [r for r in rows if r["split"] == "test"]
        expect_q = [r for r in test if r["is_query"]]
        expect_g = [r for r in test if not r["is_query"] and r["pid"] != -1]
        assert _loaded(ds.train, train_raw) == _planned(
            d, [r for r in rows if r["split"] == "train"]
        )
        assert _loaded(ds.query) == _planned(d, expect_q)
        assert _loaded(ds.gallery) == _planned(d, expect_g)
    elif layout in ("dukev", "folder"):
        assert _loaded(ds.train, train_raw) == _planned(
            d, [r for r in rows if r["split"] == "train"]
        )
        for split in ("query", "gallery"):
            assert _loaded(getattr(ds, split)) == _planned(
                d, [r for r in rows if r["split"] == split]
            )
    else:  # ilidsvid / prid2011: split 0 of the written split file, pids relabelled per split
        test_raw = ds.extra["test_raw_pids"]
        by_key = {(r["pid"], r["camid"]): r for r in rows}
        for tracklets, raw in ((ds.train, train_raw), (ds.query, test_raw), (ds.gallery, test_raw)):
            for t in tracklets:
                r = by_key[(raw[t.pid], t.camid)]
                assert t.frames == tuple(os.path.join(d, f) for f in r["frames"])
        assert {t.camid for t in ds.query} == {0} and {t.camid for t in ds.gallery} == {1}
        assert not set(train_raw) & set(test_raw)
        if layout == "ilidsvid":
            assert len(train_raw) + len(test_raw) == IDS and len(test_raw) == IDS // 2
        else:
            lengths = {(r["pid"], r["camid"]): len(r["frames"]) for r in rows}
            eligible = sorted(
                p
                for (p, c), n in lengths.items()
                if c == 0 and n >= 27 and lengths.get((p, 1), 0) >= 27
            )
            assert sorted(train_raw + test_raw) == eligible
            assert len(eligible) < IDS  # the filter had something to filter

    # Attribute table: one row per raw pid the layout writes (0 / -1 are shared: no row).
    with open(ds.attributes_file, newline="") as f:
        table = list(csv.DictReader(f))
    assert {int(r["pid"]) for r in table} == {r["pid"] for r in rows if r["pid"] > 0}

    # Ground truth of an occluded frame: masks of the frame size and the clean render.
    row = next(r for r in rows if any(r["occluded"]))
    i = row["occluded"].index(True)
    truth = load_frame_truth(os.path.join(d, row["frames"][i]))
    assert truth.silhouette.shape == truth.occluder.shape == (64, 32)
    assert truth.occluder.any() and truth.clean is not None and truth.clean.shape == (64, 32, 3)
