"""A persistent, incrementally editable gallery index on FAISS.

Kinds (``kind=``) are backends in :data:`INDEX_BACKENDS` (``base.py``), one module each:

- ``"flat"`` (default, ``flat.py``): exact search, brute force over all gallery vectors;
- ``"ivf"`` (``ivf.py``): inverted file (``IndexIVFFlat``), ``nlist`` k-means cells of which
  ``nprobe`` are scanned per query; approximate, fast on large galleries, trained on a sample
  of the vectors of its first :meth:`GalleryIndex.add`;
- ``"ivfpq"`` (``ivf.py``): IVF with product-quantised codes (``IndexIVFPQ``), ~32x less
  memory than float vectors and no float copy kept: for galleries that do not fit in memory;
  approximate distances. With ``refine=R`` it keeps the float copy after all and re-ranks
  the R*k best PQ hits by their exact distance: fast scans of small codes, exact top-k;
- ``"ivf_pca"`` (``ivf_pca.py``): IVF cells in the ``pca_dim`` principal components, whose
  ``refine * k`` candidates are re-ranked exactly from the kept float vectors: the fastest
  build of a large gallery (issue 18's 1M x 512 in under 2 minutes on 2 cores);
- ``"hnsw"`` (``hnsw.py``): graph search (``IndexHNSWFlat``, ``M`` links per node,
  ``ef_search`` beam width); approximate, fastest queries, slowest to build; removal leaves
  tombstones until the graph is rebuilt (see ``hnsw.py``);
- ``"hnsw_pca"`` (``hnsw_pca.py``): an HNSW graph over the ``pca_dim`` principal components
  (D/8, at least 64), whose ``refine * k`` candidates are re-ranked exactly from the kept
  float vectors: a cheaper graph, exact distances; tombstones as ``hnsw``.

Metrics: ``"euclidean"`` reports the true Euclidean distance ``||q - g||``: FAISS's L2
indexes return the *squared* distance, which :meth:`GalleryIndex.search` converts with a
square root. ``"cosine"`` L2-normalises gallery and queries, searches by inner product and
reports the cosine distance ``1 - cos(q, g)`` in ``[0, 2]``.

Each tracklet has a stable int64 FAISS id, given by :class:`GalleryIndex` and held by the
backend. Except for ``ivfpq`` without ``refine``, the index keeps its gallery vectors (normalised for cosine)
next to the FAISS index, so it can always be rebuilt; this costs one extra copy of the vectors
in memory and on disk (``N * D * 4`` bytes: 2 GB for 1M x 512). A flat index is saved as its
vectors only and rebuilt on load (adding to a flat index is a copy).

File format (one file, written atomically: temp file in the same folder, then
``os.replace``; a failed save leaves the previous file untouched): an uncompressed ``.npz``
(zip; read with ``allow_pickle=False``) with ``header`` (JSON text: ``format`` =
``"vidreid-gallery-index"``, ``version``, kind, metric, dim, params, meta, counts),
``vectors`` float32 ``[N, D]`` (``[0, D]`` for ``ivfpq``), ``faiss_ids`` int64 ``[N]``,
``tombstones`` int64, ``tracklet_ids``, ``pids``, ``camids``, ``frames`` (JSON text) and
``faiss`` (the bytes of ``faiss.serialize_index``; empty for flat). The zip CRC catches
corrupted members. Concurrent writers serialise on ``INDEX.lock`` (:meth:`GalleryIndex.edit`,
``lock.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from vidreid import atomic
from vidreid.retrieval.archive import check_format, first_line, read_npz
from vidreid.retrieval.features_file import FeatureTable
from vidreid.retrieval.index import flat, hnsw, hnsw_pca, ivf, ivf_pca  # noqa: F401 - register the backends
from vidreid.retrieval.index.base import INDEX_BACKENDS, IndexBackend, IndexFileError
from vidreid.retrieval.index.hnsw import (
    COMPACT_TOMBSTONE_FRACTION,
    HNSW_DEFAULT_EF_CONSTRUCTION,
    HNSW_DEFAULT_EF_SEARCH,
    HNSW_DEFAULT_M,
)
from vidreid.retrieval.index.ivf import (
    IVF_DEFAULT_NPROBE,
    IVF_MAX_NLIST,
    IVF_MIN_POINTS_PER_LIST,
    IVF_NLIST_PER_SQRT_N,
    IVF_TRAIN_POINTS_PER_LIST,
    IVFPQ_DEFAULT_NPROBE,
    IVFPQ_MAX_NLIST,
)
from vidreid.retrieval.index.lock import (
    DEFAULT_LOCK_TIMEOUT_S,
    IndexLockTimeout,
    index_write_lock,
)

__all__ = [
    "COMPACT_TOMBSTONE_FRACTION",
    "DEFAULT_LOCK_TIMEOUT_S",
    "HNSW_DEFAULT_EF_CONSTRUCTION",
    "HNSW_DEFAULT_EF_SEARCH",
    "HNSW_DEFAULT_M",
    "INDEX_BACKENDS",
    "INDEX_FORMAT",
    "INDEX_VERSION",
    "IVF_DEFAULT_NPROBE",
    "IVF_MAX_NLIST",
    "IVF_MIN_POINTS_PER_LIST",
    "IVF_NLIST_PER_SQRT_N",
    "IVF_TRAIN_POINTS_PER_LIST",
    "IVFPQ_DEFAULT_NPROBE",
    "IVFPQ_MAX_NLIST",
    "KINDS",
    "METRICS",
    "GalleryIndex",
    "IndexBackend",
    "IndexFileError",
    "IndexLockTimeout",
    "SearchHit",
    "TrackletRecord",
    "index_write_lock",
    "records_from_table",
]

INDEX_FORMAT = "vidreid-gallery-index"
INDEX_VERSION = 1
#: Registered index kinds (the CLI's ``--kind`` choices), from :data:`INDEX_BACKENDS`.
KINDS = tuple(INDEX_BACKENDS.names())
METRICS = ("euclidean", "cosine")
_ZIP_MAGIC = b"PK\x03\x04"
_FILE_KEYS = (
    "header",
    "vectors",
    "faiss_ids",
    "tombstones",
    "tracklet_ids",
    "pids",
    "camids",
    "frames",
    "faiss",
)
_RERANK_CHUNK = 64  # queries re-ranked at once ([64, candidates, D] floats in memory)
_REBUILD = "restore it or rebuild it with `vidreid index build`"


class TrackletRecord(NamedTuple):
    """What the index stores about one gallery tracklet besides its vector."""

    tracklet_id: str
    pid: int
    camid: int
    frames: tuple[str, ...] = ()


class SearchHit(NamedTuple):
    """One ranked gallery tracklet: ``distance`` per the index metric (see module doc)."""

    tracklet_id: str
    pid: int
    camid: int
    distance: float
    frames: tuple[str, ...]


def records_from_table(table: FeatureTable) -> list[TrackletRecord]:
    """The :class:`TrackletRecord` list of a features file, in its order."""
    return [
        TrackletRecord(str(t), int(p), int(c), tuple(f))
        for t, p, c, f in zip(
            table.tracklet_ids, table.pids, table.camids, table.frame_paths, strict=True
        )
    ]


def _as_record(item: Any, position: int) -> TrackletRecord:
    """Accept a TrackletRecord, a mapping with its fields, or a (id, pid, camid[, frames])."""
    try:
        if isinstance(item, Mapping):
            return TrackletRecord(
                str(item["tracklet_id"]),
                int(item["pid"]),
                int(item["camid"]),
                tuple(str(f) for f in item.get("frames", ())),
            )
        tid, pid, camid, *rest = item
        frames = tuple(str(f) for f in rest[0]) if rest else ()
        return TrackletRecord(str(tid), int(pid), int(camid), frames)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"metadata[{position}] = {item!r} is not a tracklet record: give a TrackletRecord "
            "or a mapping with tracklet_id, pid, camid (and optional frames)"
        ) from exc


class GalleryIndex:
    """Gallery tracklet vectors + metadata in a FAISS index that can be saved, edited, searched.

    Make one with :meth:`build` (or :meth:`load`); the constructor makes an empty index (an
    IVF / IVF-PQ one is trained on the vectors of its first :meth:`add`). The FAISS work is
    the backend's (:data:`INDEX_BACKENDS`); this class owns tracklet ids, metadata, metric,
    the stored vectors and the file.
    """

    def __init__(
        self,
        dim: int,
        kind: str = "flat",
        metric: str = "euclidean",
        meta: dict[str, Any] | None = None,
        **params: Any,
    ) -> None:
        if kind not in INDEX_BACKENDS:
            raise ValueError(
                f"unknown index kind {kind!r}; choose one of {', '.join(INDEX_BACKENDS.names())}"
            )
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        if int(dim) <= 0:
            raise ValueError(f"index dim must be positive, got {dim}")
        self.dim = int(dim)
        self.kind = kind
        self.metric = metric
        self.meta: dict[str, Any] = dict(meta or {})
        self._backend: IndexBackend = INDEX_BACKENDS.build(kind, self.dim, metric, dict(params))
        self._vectors = np.zeros((0, self.dim), np.float32)  # [N, D], normalised for cosine
        self._faiss_ids = np.zeros(0, np.int64)  # [N] FAISS id of each row
        self._records: list[TrackletRecord] = []
        self._row_of: dict[str, int] = {}  # tracklet id -> row
        self._next_id = 0

    @property
    def params(self) -> dict[str, Any]:
        """The backend's parameters (resolved ones included once trained)."""
        return self._backend.params

    @property
    def search_param_names(self) -> tuple[str, ...]:
        """The search settings one :meth:`search` call of this kind may override."""
        return tuple(self._backend.search_param_names)

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(
        cls,
        features: np.ndarray,
        metadata: Sequence[TrackletRecord | Mapping[str, Any]],
        kind: str = "flat",
        metric: str = "euclidean",
        *,
        meta: dict[str, Any] | None = None,
        **params: Any,
    ) -> GalleryIndex:
        """Index ``features`` ``[N, D]`` with one metadata record per row.

        ``params``: ivf/ivfpq ``nlist`` (default ~4*sqrt(N), capped), ``nprobe`` (32),
        ``train_size`` (64*nlist), ``seed`` (0), ivfpq also ``pq_m`` (D/8), ``pq_nbits`` (8),
        ``refine`` (0; R > 0 keeps the float vectors and re-ranks R*k PQ hits exactly);
        hnsw ``M`` (32), ``ef_construction`` (40), ``ef_search`` (128); hnsw_pca also
        ``pca_dim`` (D/8, at least 64), ``refine`` (5), ``train_size``, ``seed``, with its own
        defaults (M 24, efConstruction 32, efSearch 64: ``hnsw_pca.py``). See the backends.
        """
        feats = np.asarray(features)
        if feats.ndim != 2:
            raise ValueError(f"features must be a 2-D [N, D] array, got shape {feats.shape}")
        index = cls(feats.shape[1], kind, metric, meta, **params)
        if not len(feats) and not index._backend.is_trained:
            raise ValueError(f"an {kind} index is trained on the gallery: give at least one vector")
        index.add(feats, metadata)
        return index

    @classmethod
    def from_table(
        cls, table: FeatureTable, kind: str = "flat", metric: str = "euclidean", **params: Any
    ) -> GalleryIndex:
        """Build from a features file; its meta and model identity go into the index meta."""
        meta = {"features_meta": table.meta, "identity": table.identity}
        return cls.build(
            table.features, records_from_table(table), kind, metric, meta=meta, **params
        )

    # ------------------------------------------------------------------ editing
    def _prepare(self, x: np.ndarray, what: str) -> np.ndarray:
        """float32 C-contiguous ``[N, D]``, checked, L2-normalised for cosine."""
        arr = np.asarray(x)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ValueError(
                f"{what} must be [N, {self.dim}] (the index dim), got shape {tuple(arr.shape)}"
            )
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise ValueError(f"{what} contain NaN or inf")
        if self.metric == "cosine" and len(arr):
            norms = np.linalg.norm(arr, axis=1, keepdims=True)
            if (norms == 0).any():
                bad = int(np.flatnonzero(norms[:, 0] == 0)[0])
                raise ValueError(f"{what}[{bad}] is all zeros: it has no cosine direction")
            arr = arr / norms
        return arr

    def add(
        self, features: np.ndarray, metadata: Sequence[TrackletRecord | Mapping[str, Any]]
    ) -> None:
        """Add tracklets; their ids must be new (a duplicate id is an error)."""
        x = self._prepare(features, "features")
        records = [_as_record(m, i) for i, m in enumerate(metadata)]
        if len(records) != len(x):
            raise ValueError(f"got {len(x)} feature rows but {len(records)} metadata records")
        ids = [r.tracklet_id for r in records]
        seen: set[str] = set()
        dup = []
        for t in ids:
            if t in self._row_of or t in seen:
                dup.append(t)
            seen.add(t)
        if dup:
            raise ValueError(
                f"tracklet ids already in the index (or repeated): {dup[:5]}"
                f"{' ...' if len(dup) > 5 else ''}; remove them first or use new ids"
            )
        if not len(x):
            return
        if not self._backend.is_trained:  # IVF kinds train on their first vectors
            self._backend.train(x)
        fids = np.arange(self._next_id, self._next_id + len(x), dtype=np.int64)
        self._backend.add(x, fids)
        self._next_id += len(x)
        start = len(self._records)
        if self._backend.keeps_vectors:
            self._vectors = np.concatenate([self._vectors, x]) if start else x.copy()
        self._faiss_ids = np.concatenate([self._faiss_ids, fids])
        self._records.extend(records)
        self._row_of.update((t, start + i) for i, t in enumerate(ids))

    def remove(self, tracklet_ids: Iterable[str], missing_ok: bool = False) -> int:
        """Remove tracklets by id; returns how many were removed.

        Unknown ids are an error unless ``missing_ok``. HNSW: see ``hnsw.py`` (tombstones).
        """
        wanted = list(dict.fromkeys(str(t) for t in tracklet_ids))
        unknown = [t for t in wanted if t not in self._row_of]
        if unknown and not missing_ok:
            raise ValueError(
                f"tracklet ids not in the index: {unknown[:5]}{' ...' if len(unknown) > 5 else ''}"
                " (see `vidreid index info`; pass missing_ok to ignore)"
            )
        rows = np.array([self._row_of[t] for t in wanted if t in self._row_of], dtype=np.int64)
        if not len(rows):
            return 0
        self._backend.remove(self._faiss_ids[rows])
        keep = np.ones(len(self._records), dtype=bool)
        keep[rows] = False
        if self._backend.keeps_vectors:
            self._vectors = self._vectors[keep]
        self._faiss_ids = self._faiss_ids[keep]
        self._records = [r for r, k in zip(self._records, keep, strict=True) if k]
        self._row_of = {r.tracklet_id: i for i, r in enumerate(self._records)}
        if self._backend.needs_compaction():
            self.compact()
        return len(rows)

    def compact(self) -> None:
        """Rebuild the FAISS index from the stored vectors (drops HNSW tombstones).

        IVF keeps its trained cells; flat/IVF/IVF-PQ never hold tombstones: a no-op there.
        """
        self._backend.compact(self._vectors, self._faiss_ids)

    @classmethod
    @contextlib.contextmanager
    def edit(
        cls,
        path: str | os.PathLike[str],
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S,
    ) -> Iterator[GalleryIndex]:
        """Load the index at ``path`` under its writer lock, yield it, save it on success.

        The lock (``INDEX.lock``, see ``lock.py``) is taken *before* reading, so concurrent
        editors run one after the other, each on the file the previous one saved; nothing is
        saved if the block raises.
        """
        if not Path(path).is_file():  # no lock file beside an index that does not exist
            raise FileNotFoundError(f"gallery index {path} does not exist; build it first")
        with index_write_lock(path, lock_timeout):
            index = cls.load(path)
            yield index
            index.save(path)

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, tracklet_id: object) -> bool:
        return tracklet_id in self._row_of

    def record(self, tracklet_id: str) -> TrackletRecord:
        """The stored metadata of one tracklet."""
        if tracklet_id not in self._row_of:
            raise ValueError(f"tracklet id {tracklet_id!r} is not in the index")
        return self._records[self._row_of[tracklet_id]]

    @property
    def tracklet_ids(self) -> list[str]:
        return [r.tracklet_id for r in self._records]

    def vectors(self) -> np.ndarray:
        """A copy of the stored gallery vectors ``[N, D]`` (L2-normalised for cosine)."""
        if not self._backend.keeps_vectors:
            raise ValueError(
                f"a {self.kind} index keeps no float copy of its gallery (that is how it saves "
                "memory); read the vectors from the features folder it was built from"
            )
        return self._vectors.copy()

    def search(
        self,
        queries: np.ndarray,
        k: int = 10,
        *,
        nprobe: int | None = None,
        ef_search: int | None = None,
    ) -> list[list[SearchHit]]:
        """Top-``k`` gallery tracklets for each query row of ``queries`` ``[Q, D]``.

        Returns Q lists of at most ``k`` hits, nearest first. ``nprobe`` (ivf, ivfpq) and
        ``ef_search`` (hnsw) override the stored search parameters for this call; kinds
        without them ignore them.
        """
        if int(k) <= 0:
            raise ValueError(f"k must be positive, got {k}")
        q = self._prepare(queries, "queries")
        if not len(self):
            return [[] for _ in range(len(q))]
        k = min(int(k), len(self))
        fetch = min(self._backend.candidates(k), len(self))
        dist, fids = self._backend.search(q, fetch, nprobe=nprobe, ef_search=ef_search)
        if fetch > k or not self._backend.exact_scores:
            dist, fids = self._rerank(q, fids, k)
        if self.metric == "euclidean":
            dist = np.sqrt(np.maximum(dist, 0.0))  # FAISS L2 returns squared distances
        else:
            dist = np.clip(1.0 - dist, 0.0, 2.0)  # inner product of unit vectors = cosine
        out: list[list[SearchHit]] = []
        row_of_fid = self._row_of_fid(fids)
        for d_row, f_row in zip(dist, fids, strict=True):
            hits = []
            for d, f in zip(d_row, f_row, strict=True):
                if f < 0:  # FAISS pads with -1 when it finds fewer than k
                    continue
                r = self._records[row_of_fid[int(f)]]
                hits.append(SearchHit(r.tracklet_id, r.pid, r.camid, float(d), r.frames))
            out.append(hits)
        return out

    def _rerank(self, q: np.ndarray, fids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``k`` of the candidate ids ``fids`` ``[Q, C]`` from the stored float
        vectors, as FAISS scores (squared L2, or inner product for cosine; ids -1 padded)."""
        dist = np.empty((len(q), k), np.float32)
        out = np.empty((len(q), k), np.int64)
        for s in range(0, len(q), _RERANK_CHUNK):
            f = fids[s : s + _RERANK_CHUNK]
            valid = f >= 0
            rows = np.searchsorted(self._faiss_ids, np.where(valid, f, 0))
            cand = self._vectors[rows]  # [c, C, D]
            if self.metric == "euclidean":
                score = ((cand - q[s : s + _RERANK_CHUNK, None, :]) ** 2).sum(-1)
            else:  # larger inner product = nearer: sort its negation
                score = -np.einsum("ncd,nd->nc", cand, q[s : s + _RERANK_CHUNK])
            score = np.where(valid, score, np.inf)
            order = np.argsort(score, axis=1, kind="stable")[:, :k]
            best = np.take_along_axis(score, order, 1)
            dist[s : s + _RERANK_CHUNK] = best if self.metric == "euclidean" else -best
            out[s : s + _RERANK_CHUNK] = np.where(
                np.isfinite(best), np.take_along_axis(f, order, 1), -1
            )
        return dist, out

    def _row_of_fid(self, fids: np.ndarray) -> dict[int, int]:
        """Rows of the FAISS ids in ``fids`` (``_faiss_ids`` is sorted ascending)."""
        wanted = np.unique(fids[fids >= 0])
        rows = np.searchsorted(self._faiss_ids, wanted)
        return dict(zip(wanted.tolist(), rows.tolist(), strict=True))

    def info(self) -> dict[str, Any]:
        """A JSON-able summary: kind, metric, dim, size, parameters, identities, cameras."""
        pids = {r.pid for r in self._records}
        cams = {r.camid for r in self._records}
        return {
            "format": INDEX_FORMAT,
            "format_version": INDEX_VERSION,
            "kind": self.kind,
            "metric": self.metric,
            "dim": self.dim,
            "tracklets": len(self),
            "identities": len(pids),
            "cameras": len(cams),
            "faiss_ntotal": self._backend.ntotal,
            "tombstones": len(self._backend.tombstones),
            "params": dict(self.params),
            "meta": dict(self.meta),
        }

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index to one file atomically (the old file survives a failed save)."""
        path = Path(path)
        if not path.parent.is_dir():
            raise FileNotFoundError(f"folder {path.parent} for the index file does not exist")
        header = {
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "kind": self.kind,
            "metric": self.metric,
            "dim": self.dim,
            "params": self.params,
            "meta": self.meta,
            "count": len(self),
            "next_id": self._next_id,
            "faiss_ntotal": self._backend.ntotal,
        }
        arrays = {
            "header": np.asarray(json.dumps(header)),
            "vectors": self._vectors,
            "faiss_ids": self._faiss_ids,
            "tombstones": self._backend.tombstones,
            "tracklet_ids": np.asarray(self.tracklet_ids, dtype=np.str_),
            "pids": np.asarray([r.pid for r in self._records], dtype=np.int64),
            "camids": np.asarray([r.camid for r in self._records], dtype=np.int64),
            "frames": np.asarray(json.dumps([list(r.frames) for r in self._records])),
            "faiss": self._backend.serialize(),
        }
        atomic.write_bytes(path, lambda fh: np.savez(fh, **arrays), fsync=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> GalleryIndex:
        """Read an index written by :meth:`save`; a corrupt or foreign file is a clear error."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"gallery index {path} does not exist; build it first")
        with open(path, "rb") as fh:
            magic = fh.read(len(_ZIP_MAGIC))
        if magic != _ZIP_MAGIC:
            raise IndexFileError(
                f"{path} is not a vidreid gallery index (not an index archive); "
                "build one with `vidreid index build`"
            )
        fix = f"it is corrupt or truncated: {_REBUILD}"
        data = read_npz(path, error=IndexFileError, label=str(path), fix=fix)
        if "header" not in data:
            raise IndexFileError(
                f"{path} is not a vidreid gallery index (an archive without a header); "
                "build one with `vidreid index build`"
            )
        try:
            header = json.loads(str(data["header"]))
            frames = json.loads(str(data["frames"])) if "frames" in data else None
        except ValueError as exc:
            raise IndexFileError(f"{path} cannot be read ({first_line(exc)}); {fix}") from None
        check_format(
            path,
            header,
            name=INDEX_FORMAT,
            max_version=INDEX_VERSION,
            what="gallery index",
            error=IndexFileError,
            fix="upgrade vidreid or rebuild the index",
        )
        missing = [k for k in _FILE_KEYS if k not in data]
        if missing:
            raise IndexFileError(f"{path} lacks {missing}: the file is damaged; {_REBUILD}")
        return cls._from_arrays(path, header, data, frames)

    @classmethod
    def _from_arrays(
        cls, path: Path, header: dict[str, Any], data: dict[str, np.ndarray], frames: Any
    ) -> GalleryIndex:
        """Assemble a loaded file; any malformed field is an :class:`IndexFileError` naming
        ``path`` (never a bare KeyError or a numpy error)."""
        try:
            index = cls(
                int(header["dim"]),
                header["kind"],
                header["metric"],
                header.get("meta"),
                **header.get("params", {}),
            )
            n = int(header["count"])
            next_id = int(header["next_id"])
            vectors = np.ascontiguousarray(data["vectors"], dtype=np.float32)
            faiss_ids = data["faiss_ids"].astype(np.int64)
            tombstones = data["tombstones"].astype(np.int64)
            n_vectors = n if index._backend.keeps_vectors else 0
            consistent = (
                vectors.shape == (n_vectors, index.dim)
                and faiss_ids.shape == (n,)
                and tombstones.ndim == 1
                and all(len(data[k]) == n for k in ("tracklet_ids", "pids", "camids"))
                and isinstance(frames, list)
                and len(frames) == n
            )
            if not consistent:
                raise IndexFileError(
                    f"{path}: stored arrays disagree with the header count {n}; the file is "
                    f"damaged: {_REBUILD}"
                )
            records = [
                TrackletRecord(str(t), int(p), int(c), tuple(str(x) for x in f))
                for t, p, c, f in zip(
                    data["tracklet_ids"], data["pids"], data["camids"], frames, strict=True
                )
            ]
        except IndexFileError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFileError(
                f"{path} has an invalid header or arrays ({first_line(exc)}); the file is "
                f"damaged: {_REBUILD}"
            ) from None
        index._vectors = vectors
        index._faiss_ids = faiss_ids
        index._next_id = next_id
        index._records = records
        index._row_of = {r.tracklet_id: i for i, r in enumerate(records)}
        if len(index._row_of) != n:
            raise IndexFileError(f"{path}: tracklet ids repeat; the file is damaged: {_REBUILD}")
        try:
            index._backend.restore(data["faiss"], vectors, faiss_ids, tombstones)
        except IndexFileError as exc:
            raise IndexFileError(f"{path}: {exc}; the file is damaged: {_REBUILD}") from None
        return index
