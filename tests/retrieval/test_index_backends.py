"""Index backends: the registry (kinds, CLI choices, a new backend), IVF-PQ, build scaling."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from vidreid.registry import Registry
from vidreid.retrieval import commands
from vidreid.retrieval import index as index_mod
from vidreid.retrieval.index import INDEX_BACKENDS, KINDS, GalleryIndex, TrackletRecord
from vidreid.retrieval.index.base import IndexBackend
from vidreid.retrieval.index.flat import FlatBackend
from vidreid.retrieval.index.ivf import (
    IVF_MAX_NLIST,
    IVF_MIN_POINTS_PER_LIST,
    IVF_TRAIN_POINTS_PER_LIST,
    default_nlist,
    default_pq_nbits,
)

DIM = 32
CLUSTERS = 20


def _clustered(n: int, seed: int = 0) -> np.ndarray:
    """Vectors around CLUSTERS centres (so approximate search has structure to use)."""
    rng = np.random.default_rng(seed)
    centres = 3 * rng.standard_normal((CLUSTERS, DIM))
    return (centres[rng.integers(0, CLUSTERS, n)] + rng.standard_normal((n, DIM))).astype(
        np.float32
    )


def _records(n: int, prefix: str = "t") -> list[TrackletRecord]:
    return [TrackletRecord(f"{prefix}{i}", i % 5, 0) for i in range(n)]


def _ids(hits) -> list[list[str]]:
    return [[h.tracklet_id for h in row] for row in hits]


def _recall(found: list[list[str]], exact: list[list[str]]) -> float:
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact, strict=True)]))


def _kind_choices() -> list[str]:
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="command"))
    index_parser = parser._subparsers._group_actions[0].choices["index"]
    build = index_parser._subparsers._group_actions[0].choices["build"]
    return next(a for a in build._actions if a.dest == "kind").choices


def test_kinds_and_cli_choices_come_from_the_registry(monkeypatch):
    assert {"flat", "ivf", "ivfpq", "hnsw"} <= set(INDEX_BACKENDS.names())
    assert list(KINDS) == INDEX_BACKENDS.names() == list(_kind_choices())

    # A new kind is one registered class: the index and the CLI pick it up.
    registry = Registry("index kind")
    for name in INDEX_BACKENDS:
        registry.register(name)(INDEX_BACKENDS.get(name))

    @registry.register("exact2")
    class Exact2(FlatBackend):
        kind = "exact2"

    monkeypatch.setattr(index_mod, "INDEX_BACKENDS", registry)
    monkeypatch.setattr(commands, "INDEX_BACKENDS", registry)
    assert "exact2" in _kind_choices()
    x = _clustered(30)
    index = GalleryIndex.build(x, _records(30), "exact2")
    assert index.info()["kind"] == "exact2" and _ids(index.search(x[:1], 1)) == [["t0"]]
    assert isinstance(index._backend, IndexBackend)


def test_unknown_kind_lists_the_registered_ones():
    with pytest.raises(ValueError, match="unknown index kind 'annoy'.*ivfpq"):
        GalleryIndex(DIM, "annoy")


def test_ivfpq_round_trip_keeps_no_float_copy(tmp_path):
    x = _clustered(600)
    index = GalleryIndex.build(x, _records(600), "ivfpq", nprobe=1000)
    p = index.info()["params"]
    assert (p["pq_m"], p["pq_nbits"]) == (DIM // 8, default_pq_nbits(600))
    with pytest.raises(ValueError, match="keeps no float copy"):
        index.vectors()
    index.add(x[:5] + 0.01, _records(5, prefix="new"))
    assert index.remove(["t1", "t2"]) == 2
    before = _ids(index.search(x[:20], 5))
    assert not {"t1", "t2"} & {t for row in before for t in row}

    path = index.save(tmp_path / "pq.index")
    with np.load(path) as npz:
        assert npz["vectors"].shape == (0, DIM)  # codes only
    loaded = GalleryIndex.load(path)
    assert loaded.info() == index.info()
    assert _ids(loaded.search(x[:20], 5)) == before
    loaded.add(x[1:2], [TrackletRecord("t1", 1, 0)])  # edits keep working after a load
    assert "t1" in loaded and len(loaded) == len(index) + 1


def test_ivfpq_recall_grows_with_code_size():
    """Exhaustive probing leaves PQ as the only error: more sub-quantisers, better recall."""
    x, q = _clustered(2000), _clustered(50, seed=1)
    recs = _records(2000)
    exact = _ids(GalleryIndex.build(x, recs).search(q, 10))
    recall = {}
    for pq_m in (4, DIM):
        pq = GalleryIndex.build(x, recs, "ivfpq", pq_m=pq_m, nprobe=10_000)
        recall[pq_m] = _recall(_ids(pq.search(q, 10)), exact)
        # each gallery vector still finds itself first
        self_hits = [row[0].tracklet_id for row in pq.search(x[:100], 1)]
        assert np.mean([h == f"t{i}" for i, h in enumerate(self_hits)]) >= 0.95
    assert recall[DIM] > recall[4] and recall[DIM] >= 0.8, recall


def test_ivfpq_bad_parameters_are_clear():
    x = _clustered(100)
    with pytest.raises(ValueError, match="pq_m=5 must divide the dim 32"):
        GalleryIndex.build(x, _records(100), "ivfpq", pq_m=5)
    with pytest.raises(ValueError, match="at least that many vectors"):
        GalleryIndex.build(x[:10], _records(10), "ivfpq", pq_nbits=8)
    with pytest.raises(ValueError, match="trained on the gallery"):
        GalleryIndex.build(np.zeros((0, DIM), np.float32), [], "ivfpq")


def test_nlist_and_training_sample_follow_the_gallery_size():
    assert default_nlist(1_000_000) == IVF_MAX_NLIST  # 4*sqrt(N) = 4000, capped
    assert default_nlist(50_000) == round(4 * 50_000**0.5) == 894  # 4*sqrt(N)
    assert default_nlist(1000) == 1000 // IVF_MIN_POINTS_PER_LIST  # enough points per cell
    assert default_nlist(5) == 1
    x = _clustered(3000)
    assert GalleryIndex.build(x, _records(3000), "ivf").params["nlist"] == default_nlist(3000)
    ivf = GalleryIndex.build(x, _records(3000), "ivf", nlist=8)
    p = ivf.info()["params"]
    assert p["train_size"] == IVF_TRAIN_POINTS_PER_LIST * 8 < 3000  # trained on a sample
    # the same seed gives the same cells, another seed other cells
    again = GalleryIndex.build(x, _records(3000), "ivf", nlist=8)
    other = GalleryIndex.build(x, _records(3000), "ivf", nlist=8, seed=1)
    centroids = [i._backend.faiss.quantizer.reconstruct_n(0, p["nlist"]) for i in (ivf, again, other)]
    np.testing.assert_array_equal(centroids[0], centroids[1])
    assert not np.array_equal(centroids[0], centroids[2])


def test_ivfpq_refine_reranks_exactly_from_the_kept_vectors(tmp_path):
    """With refine, the answer is the exact top-k of the PQ candidates (true distances)."""
    x, q = _clustered(2000), _clustered(50, seed=1)
    recs = _records(2000)
    exact_index = GalleryIndex.build(x, recs)
    exact = _ids(exact_index.search(q, 10))
    coarse = GalleryIndex.build(x, recs, "ivfpq", pq_m=4, nprobe=10_000)
    refined = GalleryIndex.build(x, recs, "ivfpq", pq_m=4, nprobe=10_000, refine=20)
    assert refined.vectors().shape == (2000, DIM)  # the float copy is kept for re-ranking
    hits = refined.search(q, 10)
    assert _recall(_ids(hits), exact) > _recall(_ids(coarse.search(q, 10)), exact)
    # distances are exact: equal to the flat index's for the same tracklet
    d_exact = np.linalg.norm(q[:, None, :] - x[None, :, :], axis=-1)
    for qi, row in enumerate(hits):
        got = [h.distance for h in row]
        want = [d_exact[qi, int(h.tracklet_id[1:])] for h in row]
        np.testing.assert_allclose(got, want, rtol=1e-4)
        assert got == sorted(got)
    refined.remove(["t0"])
    path = refined.save(tmp_path / "r.index")
    loaded = GalleryIndex.load(path)
    assert _ids(loaded.search(q, 10)) == _ids(refined.search(q, 10))
    assert "t0" not in {t for row in _ids(loaded.search(x[:1], 10)) for t in row}
