"""The PCA kinds (issue 18): ``hnsw_pca`` (an HNSW graph) and ``ivf_pca`` (IVF cells) over
PCA-reduced vectors, both with an exact re-rank."""

from __future__ import annotations

import numpy as np
import pytest

from vidreid.retrieval.index import GalleryIndex, TrackletRecord
from vidreid.retrieval.index.hnsw_pca import PCA_MIN_DIM, default_pca_dim

DIM = 64
PCA_DIM = 32  # a real reduction (the default keeps all of a 64-d vector)
N = 3000
IDENTITIES = 150  # ~20 vectors per identity, as in benchmarks/bench_index.py


def _gallery(n: int, seed: int = 0, centre_seed: int = 0) -> np.ndarray:
    """Vectors around identity centres (fixed by ``centre_seed``): a centre plus N(0, I)."""
    centres = np.random.default_rng(centre_seed).standard_normal((IDENTITIES, DIM))
    rng = np.random.default_rng(seed + 1)
    return (centres[rng.integers(0, IDENTITIES, n)] + rng.standard_normal((n, DIM))).astype(
        np.float32
    )


def _records(n: int, prefix: str = "t") -> list[TrackletRecord]:
    return [TrackletRecord(f"{prefix}{i}", i % 7, 0) for i in range(n)]


def _ids(hits) -> list[list[str]]:
    return [[h.tracklet_id for h in row] for row in hits]


def _recall(found: list[list[str]], exact: list[list[str]]) -> float:
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact, strict=True)]))


@pytest.fixture(scope="module")
def data():
    x, q = _gallery(N), _gallery(100, seed=1)  # queries: fresh samples, not gallery rows
    exact = GalleryIndex.build(x, _records(N))
    return x, q, exact


def test_default_pca_dim_follows_the_dim():
    assert default_pca_dim(512) == 64 and default_pca_dim(2048) == 256
    assert default_pca_dim(48) == 48 and default_pca_dim(PCA_MIN_DIM * 2) == PCA_MIN_DIM


@pytest.mark.parametrize("kind", ["hnsw_pca", "ivf_pca"])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_recall_against_flat_and_exact_distances(data, kind, metric):
    x, q, _ = data
    want = GalleryIndex.build(x, _records(N), metric=metric).search(q, 10)
    index = GalleryIndex.build(x, _records(N), kind, metric, pca_dim=PCA_DIM)
    assert index.params["pca_dim"] == PCA_DIM and index.params["refine"] == 5
    got = index.search(q, 10)
    assert _recall(_ids(got), _ids(want)) >= 0.9
    # distances are the metric's (re-ranked from the float copy), never PCA-space ones
    shared = []
    for got_row, want_row in zip(got, want, strict=True):
        by_id = {h.tracklet_id: h.distance for h in want_row}
        shared += [(h.distance, by_id[h.tracklet_id]) for h in got_row if h.tracklet_id in by_id]
    assert shared
    got_d, want_d = np.array(shared).T
    np.testing.assert_allclose(got_d, want_d, rtol=1e-4, atol=1e-5)
    assert all([h.distance for h in row] == sorted(h.distance for h in row) for row in got)


def test_refine_and_ef_search_trade_work_for_recall(data):
    x, q, exact = data
    want = _ids(exact.search(q, 10))
    one = GalleryIndex.build(x, _records(N), "hnsw_pca", pca_dim=PCA_DIM, refine=1)
    five = GalleryIndex.build(x, _records(N), "hnsw_pca", pca_dim=PCA_DIM, refine=5)
    assert _recall(_ids(five.search(q, 10)), want) > _recall(_ids(one.search(q, 10)), want)
    # a per-call ef_search reaches the graph: a beam of 1 (k=10 candidates) finds less
    narrow = _recall(_ids(one.search(q, 10, ef_search=1)), want)
    assert narrow < _recall(_ids(one.search(q, 10, ef_search=200)), want)


def test_save_load_add_remove_compact(tmp_path, data):
    x, q, _ = data
    index = GalleryIndex.build(x, _records(N), "hnsw_pca", pca_dim=PCA_DIM)
    assert index.params["pca_dim"] == PCA_DIM and index.vectors().shape == (N, DIM)

    new = _gallery(20, seed=7)
    index.add(new, _records(20, prefix="new"))  # projected with the PCA of the first add
    assert [row[0].tracklet_id for row in index.search(new, 1)] == [f"new{i}" for i in range(20)]
    gone = [row[0].tracklet_id for row in index.search(q[:10], 1)]
    assert index.remove(gone) == len(set(gone))
    assert index.info()["tombstones"] == len(set(gone))
    after = index.search(q, 10)
    assert not set(gone) & {h.tracklet_id for row in after for h in row}

    loaded = GalleryIndex.load(index.save(tmp_path / "hp.index"))
    assert loaded.info() == index.info()
    assert _ids(loaded.search(q, 10)) == _ids(after)

    loaded.compact()  # rebuilds the graph without the tombstones, same PCA
    assert loaded.info()["tombstones"] == 0 and len(loaded) == N + 20 - len(set(gone))
    assert _recall(_ids(loaded.search(q, 10)), _ids(after)) >= 0.9
    assert not set(gone) & {t for row in _ids(loaded.search(q, 10)) for t in row}


def test_removing_most_of_the_gallery_compacts_it(data):
    x, _, _ = data
    index = GalleryIndex.build(x[:200], _records(200), "hnsw_pca", pca_dim=PCA_DIM)
    index.remove([f"t{i}" for i in range(150)])
    assert index.info()["tombstones"] == 0 and len(index) == 50  # past half: rebuilt
    assert [row[0].tracklet_id for row in index.search(x[150:200], 1)] == [
        f"t{i}" for i in range(150, 200)
    ]


def test_bad_parameters_are_clear(data):
    x, _, _ = data
    with pytest.raises(ValueError, match="pca_dim=65 must be at most the dim 64"):
        GalleryIndex(DIM, "hnsw_pca", pca_dim=65)
    with pytest.raises(ValueError, match="hnsw_pca refine must be positive, got 0"):
        GalleryIndex(DIM, "hnsw_pca", refine=0)
    with pytest.raises(ValueError, match="unknown hnsw_pca index parameters.*nprobe"):
        GalleryIndex(DIM, "hnsw_pca", nprobe=4)
    index = GalleryIndex(DIM, "hnsw_pca")
    assert index.search(x[:2], 5) == [[], []]  # untrained and empty: no hits, no error


# -- ivf_pca ---------------------------------------------------------------------------------

def test_ivf_pca_nprobe_and_refine_trade_work_for_recall(data):
    x, q, exact = data
    want = _ids(exact.search(q, 10))
    index = GalleryIndex.build(x, _records(N), "ivf_pca", pca_dim=PCA_DIM, refine=1)
    one_cell = _recall(_ids(index.search(q, 10, nprobe=1)), want)
    assert one_cell < _recall(_ids(index.search(q, 10, nprobe=index.params["nlist"])), want)
    five = GalleryIndex.build(x, _records(N), "ivf_pca", pca_dim=PCA_DIM, refine=5)
    assert _recall(_ids(five.search(q, 10)), want) > _recall(_ids(index.search(q, 10)), want)


def test_ivf_pca_save_load_add_remove(tmp_path, data):
    x, q, _ = data
    index = GalleryIndex.build(x, _records(N), "ivf_pca", pca_dim=PCA_DIM)
    new = _gallery(20, seed=7)
    index.add(new, _records(20, prefix="new"))  # projected and assigned with the first add's fit
    assert [row[0].tracklet_id for row in index.search(new, 1)] == [f"new{i}" for i in range(20)]
    gone = sorted({row[0].tracklet_id for row in index.search(q[:10], 1)})
    assert index.remove(gone) == len(gone) and len(index) == N + 20 - len(gone)
    after = index.search(q, 10)
    assert not set(gone) & {h.tracklet_id for row in after for h in row}
    loaded = GalleryIndex.load(index.save(tmp_path / "ip.index"))
    assert loaded.info() == index.info()
    assert _ids(loaded.search(q, 10)) == _ids(after)


def test_ivf_pca_bad_parameters_and_tiny_galleries_are_clear(data):
    x, _, _ = data
    with pytest.raises(ValueError, match=r"pca_dim=65 must be in \[1, 64\]"):
        GalleryIndex(DIM, "ivf_pca", pca_dim=65)
    with pytest.raises(ValueError, match="ivf_pca refine must be positive, got 0"):
        GalleryIndex(DIM, "ivf_pca", refine=0)
    with pytest.raises(ValueError, match="unknown ivf_pca index parameters.*ef_search"):
        GalleryIndex(DIM, "ivf_pca", ef_search=4)
    with pytest.raises(ValueError, match="give at least 39 vectors .got 10. or use flat"):
        GalleryIndex.build(x[:10], _records(10), "ivf_pca")
    assert GalleryIndex(DIM, "ivf_pca").search(x[:2], 5) == [[], []]  # untrained: no hits
