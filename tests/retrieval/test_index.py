"""Gallery index: exactness, save/load/add/remove round trips, damaged files, atomic save."""

from __future__ import annotations

import numpy as np
import pytest

from vidreid.retrieval import index as index_mod
from vidreid.retrieval.index import (
    COMPACT_TOMBSTONE_FRACTION,
    GalleryIndex,
    IndexFileError,
    TrackletRecord,
)

DIM = 8
N = 120
KINDS = ("flat", "ivf", "hnsw")
# Search settings that make IVF / HNSW exhaustive on a gallery this small.
EXHAUSTIVE = {"nprobe": 10_000, "ef_search": 512}


def _data(n: int = N, seed: int = 0, prefix: str = "t") -> tuple[np.ndarray, list[TrackletRecord]]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    recs = [TrackletRecord(f"{prefix}{i}", i % 7, i % 3, (f"{prefix}{i}/0.jpg",)) for i in range(n)]
    return x, recs


def _brute_force(q: np.ndarray, g: np.ndarray, metric: str) -> np.ndarray:
    if metric == "cosine":
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        gn = g / np.linalg.norm(g, axis=1, keepdims=True)
        return 1.0 - qn @ gn.T
    return np.sqrt(((q[:, None, :] - g[None, :, :]) ** 2).sum(-1))


def _ids(hits) -> list[list[str]]:
    return [[h.tracklet_id for h in row] for row in hits]


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_flat_search_is_brute_force(metric):
    x, recs = _data()
    q = np.random.default_rng(1).standard_normal((5, DIM)).astype(np.float32)
    hits = GalleryIndex.build(x, recs, "flat", metric).search(q, k=4)
    d = _brute_force(q, x, metric)
    order = np.argsort(d, axis=1)[:, :4]
    assert _ids(hits) == [[f"t{j}" for j in row] for row in order]
    # true (not squared) Euclidean distance, or cosine distance
    got = np.array([[h.distance for h in row] for row in hits])
    np.testing.assert_allclose(got, np.take_along_axis(d, order, 1), rtol=1e-4, atol=1e-5)
    assert hits[0][0].pid == recs[order[0, 0]].pid and hits[0][0].frames == recs[order[0, 0]].frames


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_add_remove_round_trip(tmp_path, kind):
    x, recs = _data()
    index = GalleryIndex.build(x, recs, kind, meta={"identity": "abc"})
    x2, recs2 = _data(20, seed=5, prefix="new")
    index.add(x2, recs2)
    removed = [f"t{i}" for i in range(0, N, 4)]  # 30 of 140: below the HNSW compaction point
    assert index.remove(removed) == len(removed)
    q = np.concatenate([x[:8], x2[:4]])  # includes removed vectors (t0, t4) as queries
    before = index.search(q, k=5, **EXHAUSTIVE)

    path = index.save(tmp_path / "gallery.index")
    loaded = GalleryIndex.load(path)
    assert len(loaded) == N + 20 - len(removed)
    assert loaded.info() == index.info()
    assert loaded.tracklet_ids == index.tracklet_ids
    after = loaded.search(q, k=5, **EXHAUSTIVE)
    assert _ids(after) == _ids(before)

    # exhaustive search over the live tracklets equals brute force over them
    live = [i for i in range(N) if f"t{i}" not in removed]
    gallery = np.concatenate([x[live], x2])
    names = [f"t{i}" for i in live] + [r.tracklet_id for r in recs2]
    order = np.argsort(_brute_force(q, gallery, "euclidean"), axis=1)[:, :5]
    assert _ids(after) == [[names[j] for j in row] for row in order]
    assert not set(removed) & {t for row in _ids(after) for t in row}

    # edits keep working after a load
    loaded.add(x[:1], [TrackletRecord("t0", 0, 0)])  # a removed id may come back
    assert loaded.search(x[:1], k=1)[0][0].tracklet_id == "t0"


def test_ivf_and_hnsw_parameters_recorded():
    x, recs = _data()
    ivf = GalleryIndex.build(x, recs, "ivf", nprobe=2)
    assert ivf.info()["params"]["nprobe"] == 2 and 1 <= ivf.info()["params"]["nlist"] <= N
    hnsw = GalleryIndex.build(x, recs, "hnsw", M=8, ef_search=16)
    assert hnsw.info()["params"] == {"M": 8, "ef_construction": 40, "ef_search": 16}
    with pytest.raises(ValueError, match="unknown flat index parameters"):
        GalleryIndex.build(x, recs, "flat", nlist=4)


def test_hnsw_removal_compacts_past_threshold():
    x, recs = _data()
    index = GalleryIndex.build(x, recs, "hnsw")
    few = [f"t{i}" for i in range(10)]
    index.remove(few)
    assert index.info()["tombstones"] == 10
    assert index.search(x[:1], k=1, ef_search=512)[0][0].tracklet_id != "t0"
    many = [f"t{i}" for i in range(10, int(N * COMPACT_TOMBSTONE_FRACTION) + 10)]
    index.remove(many)
    info = index.info()
    assert info["tombstones"] == 0 and info["faiss_ntotal"] == len(index)


def test_duplicate_and_unknown_ids_are_errors():
    x, recs = _data(10)
    with pytest.raises(ValueError, match="repeated"):
        GalleryIndex.build(x[:2], [TrackletRecord("a", 0, 0), TrackletRecord("a", 1, 0)])
    index = GalleryIndex.build(x, recs)
    with pytest.raises(ValueError, match=r"already in the index.*\['t3'\]"):
        index.add(x[:1], [TrackletRecord("t3", 0, 0)])
    assert len(index) == 10
    with pytest.raises(ValueError, match="not in the index"):
        index.remove(["t1", "zzz"])
    assert len(index) == 10  # nothing removed when one id is unknown
    assert index.remove(["t1", "zzz"], missing_ok=True) == 1


def test_bad_vectors_are_errors():
    x, recs = _data(10)
    index = GalleryIndex.build(x, recs)
    with pytest.raises(ValueError, match=r"queries must be \[N, 8\]"):
        index.search(np.zeros((1, DIM + 1), np.float32))
    with pytest.raises(ValueError, match="3 metadata records"):
        index.add(x[:2] + 10, [TrackletRecord(f"n{i}", 0, 0) for i in range(3)])
    with pytest.raises(ValueError, match="all zeros"):
        GalleryIndex.build(np.zeros((2, DIM)), recs[:2], metric="cosine")


def test_k_larger_than_gallery_and_empty_index():
    x, recs = _data(3)
    assert len(GalleryIndex.build(x, recs).search(x[:1], k=10)[0]) == 3
    empty = GalleryIndex(DIM, "hnsw")
    assert empty.search(x[:2], k=5) == [[], []]


@pytest.mark.parametrize(
    "content, match",
    [
        (b"hello, this is not an index", "not a vidreid gallery index"),
        (b"", "not a vidreid gallery index"),
    ],
)
def test_foreign_file_is_a_clear_error(tmp_path, content, match):
    path = tmp_path / "foreign.index"
    path.write_bytes(content)
    with pytest.raises(IndexFileError, match=match) as err:
        GalleryIndex.load(path)
    assert str(path) in str(err.value)


def test_foreign_npz_is_a_clear_error(tmp_path):
    path = tmp_path / "other.npz"
    with open(path, "wb") as fh:
        np.savez(fh, weights=np.zeros(3))
    with pytest.raises(IndexFileError, match="without a header"):
        GalleryIndex.load(path)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_corrupt_file_is_a_clear_error(tmp_path, kind):
    x, recs = _data()
    path = GalleryIndex.build(x, recs, kind).save(tmp_path / "g.index")
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(IndexFileError, match="corrupt or truncated") as err:
        GalleryIndex.load(path)
    assert str(path) in str(err.value)
    damaged = bytearray(blob)
    damaged[len(blob) // 2] ^= 0xFF  # inside the stored arrays: the zip CRC catches it
    path.write_bytes(bytes(damaged))
    with pytest.raises(IndexFileError, match=str(path)):
        GalleryIndex.load(path)


def test_newer_format_version_asks_to_upgrade(tmp_path, monkeypatch):
    x, recs = _data(5)
    monkeypatch.setattr(index_mod, "INDEX_VERSION", 99)
    path = GalleryIndex.build(x, recs).save(tmp_path / "g.index")
    monkeypatch.setattr(index_mod, "INDEX_VERSION", 1)
    with pytest.raises(IndexFileError, match="upgrade vidreid"):
        GalleryIndex.load(path)


def test_failed_save_keeps_previous_index(tmp_path, monkeypatch):
    x, recs = _data()
    path = GalleryIndex.build(x, recs, "ivf").save(tmp_path / "g.index")
    original = path.read_bytes()
    bigger = GalleryIndex.build(np.concatenate([x, x + 1]), recs + _data(N, prefix="u")[1], "ivf")

    def savez_then_crash(fh, **arrays):
        fh.write(b"PK\x03\x04 half an index")
        raise OSError("No space left on device")

    monkeypatch.setattr(index_mod.np, "savez", savez_then_crash)
    with pytest.raises(OSError, match="No space left"):
        bigger.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.index"]  # no temp file left
    assert len(GalleryIndex.load(path)) == N
