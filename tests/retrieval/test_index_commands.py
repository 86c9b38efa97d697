"""`vidreid index ...` sub-commands end to end on a tiny features folder."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from PIL import Image

from vidreid.retrieval import commands
from vidreid.retrieval.features_file import FeatureWriter

DIM = 4
META = {"model": "tiny"}


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vidreid")
    commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def _feats(tmp_path, name: str, ids: list[str], meta: dict = META) -> str:
    rng = np.random.default_rng(len(name))
    frames = []
    for t in ids:
        path = tmp_path / f"{t}.jpg"
        Image.new("RGB", (16, 32), (10, 200, 10)).save(path)
        frames.append([path.name])  # relative: resolved with --frames-root
    writer = FeatureWriter(tmp_path / name, DIM, meta, shard_size=max(4, len(ids)))  # one shard
    feats = rng.standard_normal((len(ids), DIM)).astype(np.float32)
    writer.write_shard(0, feats, ids, [i % 2 for i in range(len(ids))], [0] * len(ids), frames)
    writer.finish(len(ids))
    return str(tmp_path / name)


def test_build_add_remove_search_info(tmp_path, capsys):
    gallery = _feats(tmp_path, "gallery", ["g0", "g1", "g2", "g3"])
    more = _feats(tmp_path, "more", ["g4"])
    index = str(tmp_path / "g.index")
    assert _run(["index", "build", gallery, "--out", index, "--kind", "hnsw"]) == 0
    assert _run(["index", "add", index, more]) == 0
    assert _run(["index", "remove", index, "g1"]) == 0
    capsys.readouterr()
    assert _run(["index", "info", index]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["kind"], info["tracklets"], info["tombstones"]) == ("hnsw", 4, 1)

    report, out_json = tmp_path / "r.html", tmp_path / "r.json"
    argv = ["index", "search", index, "--feats", gallery, "--id", "g0", "-k", "3"]
    argv += ["--json", str(out_json), "--report", str(report), "--frames-root", str(tmp_path)]
    assert _run(argv) == 0
    hits = json.loads(out_json.read_text())[0]["hits"]
    # The query's own tracklet is excluded by default ...
    assert [h["tracklet_id"] for h in hits] and "g0" not in [h["tracklet_id"] for h in hits]
    assert _run(argv + ["--include-self"]) == 0  # ... and kept on request
    hits = json.loads(out_json.read_text())[0]["hits"]
    assert hits[0]["tracklet_id"] == "g0" and hits[0]["distance"] == pytest.approx(0, abs=1e-5)
    assert "g1" not in [h["tracklet_id"] for h in hits]
    page = report.read_text()
    assert "hit match" in page and report.with_suffix(".png").is_file()
    assert "could not be read" not in page  # relative frame paths were resolved


def test_other_model_features_are_refused(tmp_path):
    index = str(tmp_path / "g.index")
    _run(["index", "build", _feats(tmp_path, "a", ["g0", "g1"]), "--out", index])
    other = _feats(tmp_path, "b", ["g9"], meta={"model": "other"})
    with pytest.raises(ValueError, match="different model"):
        _run(["index", "add", index, other])
    assert _run(["index", "add", index, other, "--force"]) == 0


def test_query_by_media_needs_the_model(tmp_path):
    index = str(tmp_path / "g.index")
    _run(["index", "build", _feats(tmp_path, "a", ["g0", "g1"]), "--out", index])
    with pytest.raises(ValueError, match="--config CONFIG --weights W"):
        _run(["index", "search", index, str(tmp_path / "person.jpg")])


def test_search_flags_override_the_index_settings(tmp_path, monkeypatch):
    gallery = _feats(tmp_path, "gallery", [f"g{i}" for i in range(80)])
    paths = {kind: str(tmp_path / f"{kind}.index") for kind in ("flat", "ivf", "hnsw_pca")}
    _run(["index", "build", gallery, "--out", paths["flat"]])
    _run(["index", "build", gallery, "--out", paths["ivf"], "--kind", "ivf", "--nlist", "8",
          "--nprobe", "1"])
    _run(["index", "build", gallery, "--out", paths["hnsw_pca"], "--kind", "hnsw_pca"])

    seen = []
    search = commands.GalleryIndex.search

    def spy(self, queries, k=10, **kw):
        seen.append(kw)
        return search(self, queries, k, **kw)

    monkeypatch.setattr(commands.GalleryIndex, "search", spy)

    def hits(kind: str, *flags: str) -> list:
        out = tmp_path / f"{kind}.json"
        argv = ["index", "search", paths[kind], "--feats", gallery, "-k", "5", "--json", str(out)]
        assert _run(argv + list(flags)) == 0
        return [[h["tracklet_id"] for h in q["hits"]] for q in json.loads(out.read_text())]

    exact = hits("flat")
    # every cell probed: the IVF answer is the exact one, whatever the stored nprobe (1)
    assert hits("ivf", "--nprobe", "8") == exact and seen[-1] == {"nprobe": 8}
    assert hits("hnsw_pca", "--ef-search", "64") == exact and seen[-1] == {"ef_search": 64}
    assert hits("ivf") and seen[-1] == {}  # no flag: the stored setting

    with pytest.raises(ValueError, match=r"--nprobe: a hnsw_pca index has no nprobe setting "
                       r"\(hnsw_pca search settings: --ef-search\)"):
        hits("hnsw_pca", "--nprobe", "4")
    with pytest.raises(ValueError, match=r"--ef-search: a flat index has no ef_search setting "
                       r"\(flat search settings: none\)"):
        hits("flat", "--ef-search", "4")
    with pytest.raises(ValueError, match="--nprobe must be positive, got 0"):
        hits("ivf", "--nprobe", "0")
