"""A persistent, incrementally editable gallery index on FAISS.

Kinds (``kind=``):

- ``"flat"`` (default): exact search, brute force over all gallery vectors;
- ``"ivf"``: inverted file (``IndexIVFFlat``), ``nlist`` k-means cells of which ``nprobe`` are
  scanned per query; approximate, fast on large galleries, needs training (done in
  :meth:`GalleryIndex.build` on the gallery itself);
- ``"hnsw"``: graph search (``IndexHNSWFlat``, ``M`` links per node, ``ef_search`` beam
  width); approximate, fastest queries, slow to build.

Metrics: ``"euclidean"`` reports the true Euclidean distance ``||q - g||``: FAISS's L2
indexes return the *squared* distance, which :meth:`GalleryIndex.search` converts with a
square root. ``"cosine"`` L2-normalises gallery and queries, searches by inner product and
reports the cosine distance ``1 - cos(q, g)`` in ``[0, 2]``.

Each tracklet has a stable int64 FAISS id: flat and HNSW are wrapped in ``IndexIDMap2``;
IVF stores the ids in its inverted lists itself.
Removal: flat and IVF remove ids from the FAISS index (``remove_ids``). HNSW cannot remove
nodes in FAISS, so removed ids become *tombstones*: they stay in the graph, are excluded from
every search with an ``IDSelectorNot`` (results are still exactly the top-k live hits the
graph finds), and are dropped when the graph is rebuilt from the stored vectors, which
:meth:`GalleryIndex.compact` does on demand and :meth:`GalleryIndex.remove` does by itself
once tombstones exceed ``COMPACT_TOMBSTONE_FRACTION`` of the graph.

The index keeps its gallery vectors (normalised for cosine) next to the FAISS index, so it
can always be rebuilt; this costs one extra copy of the vectors in memory and on disk
(``N * D * 4`` bytes: 2 GB for 1M x 512). A flat index is saved as its vectors only and
rebuilt on load (adding to a flat index is a copy).

File format (one file, written atomically: temp file in the same folder, then
``os.replace``; a failed save leaves the previous file untouched): an uncompressed ``.npz``
(zip; read with ``allow_pickle=False``) with ``header`` (JSON text: ``format`` =
``"vidreid-gallery-index"``, ``version``, kind, metric, dim, params, meta, counts),
``vectors`` float32 ``[N, D]``, ``faiss_ids`` int64 ``[N]``, ``tombstones`` int64,
``tracklet_ids``, ``pids``, ``camids``, ``frames`` (JSON text) and ``faiss`` (the bytes of
``faiss.serialize_index``; empty for flat). The zip CRC catches corrupted members.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import faiss
import numpy as np

from vidreid.retrieval.features_file import FeatureTable, atomic_write_bytes

INDEX_FORMAT = "vidreid-gallery-index"
INDEX_VERSION = 1
KINDS = ("flat", "ivf", "hnsw")
METRICS = ("euclidean", "cosine")

# IVF: nlist ~ 4 * sqrt(N) cells (the usual FAISS guideline) ...
IVF_NLIST_PER_SQRT_N = 4
# ... but at least this many training points per cell (below it FAISS's k-means warns and
# the cells are poor), so small galleries get fewer cells.
IVF_MIN_POINTS_PER_LIST = 39
# k-means trains on at most this many points per cell (a random subset; FAISS's own cap is 256).
IVF_TRAIN_POINTS_PER_LIST = 64
IVF_DEFAULT_NPROBE = 16
HNSW_DEFAULT_M = 32
HNSW_DEFAULT_EF_CONSTRUCTION = 40
HNSW_DEFAULT_EF_SEARCH = 64
# HNSW removal leaves tombstones; past this fraction of the graph, rebuild it.
COMPACT_TOMBSTONE_FRACTION = 0.5
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
_KIND_PARAMS = {
    "flat": (),
    "ivf": ("nlist", "nprobe", "train_size", "seed"),
    "hnsw": ("M", "ef_construction", "ef_search"),
}


class IndexFileError(ValueError):
    """A gallery index file is corrupt, truncated, foreign or from a newer vidreid."""


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


def _faiss_metric(metric: str) -> int:
    return faiss.METRIC_L2 if metric == "euclidean" else faiss.METRIC_INNER_PRODUCT


class GalleryIndex:
    """Gallery tracklet vectors + metadata in a FAISS index that can be saved, edited, searched.

    Make one with :meth:`build` (or :meth:`load`); the constructor makes an empty index (an
    IVF one is trained on the vectors of its first :meth:`add`).
    """

    def __init__(
        self,
        dim: int,
        kind: str = "flat",
        metric: str = "euclidean",
        meta: dict[str, Any] | None = None,
        **params: Any,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS)}")
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        if int(dim) <= 0:
            raise ValueError(f"index dim must be positive, got {dim}")
        unknown = sorted(set(params) - set(_KIND_PARAMS[kind]))
        if unknown:
            known = ", ".join(_KIND_PARAMS[kind]) or "(none)"
            raise ValueError(f"unknown {kind} index parameters {unknown}; known: {known}")
        self.dim = int(dim)
        self.kind = kind
        self.metric = metric
        self.meta: dict[str, Any] = dict(meta or {})
        self.params: dict[str, Any] = dict(params)
        self._vectors = np.zeros((0, self.dim), np.float32)  # [N, D], normalised for cosine
        self._faiss_ids = np.zeros(0, np.int64)  # [N] FAISS id of each row
        self._records: list[TrackletRecord] = []
        self._row_of: dict[str, int] = {}  # tracklet id -> row
        self._tombstones = np.zeros(0, np.int64)  # HNSW ids removed but still in the graph
        self._next_id = 0
        self._faiss: Any = None
        if kind != "ivf":
            self._faiss = self._new_faiss(None)

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

        ``params``: ivf ``nlist`` (default ~4*sqrt(N)), ``nprobe`` (16), ``train_size``
        (64*nlist), ``seed`` (0); hnsw ``M`` (32), ``ef_construction`` (40), ``ef_search`` (64).
        """
        feats = np.asarray(features)
        if feats.ndim != 2:
            raise ValueError(f"features must be a 2-D [N, D] array, got shape {feats.shape}")
        if kind == "ivf" and len(feats) == 0:
            raise ValueError("an ivf index is trained on the gallery: give at least one vector")
        index = cls(feats.shape[1], kind, metric, meta, **params)
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

    def _resolve_ivf_params(self, n_train: int) -> None:
        p = self.params
        if "nlist" not in p:
            by_rule = round(IVF_NLIST_PER_SQRT_N * math.sqrt(n_train))
            p["nlist"] = max(1, min(by_rule, n_train // IVF_MIN_POINTS_PER_LIST))
        p["nlist"] = int(p["nlist"])
        if not 1 <= p["nlist"] <= n_train:
            raise ValueError(f"ivf nlist={p['nlist']} must be in [1, {n_train}] (gallery size)")
        p["nprobe"] = int(p.get("nprobe", min(IVF_DEFAULT_NPROBE, p["nlist"])))
        p["train_size"] = int(p.get("train_size", IVF_TRAIN_POINTS_PER_LIST * p["nlist"]))
        p["seed"] = int(p.get("seed", 0))

    def _new_faiss(self, train: np.ndarray | None) -> Any:
        """A fresh empty FAISS index of this kind taking our ids (IVF trained on ``train``)."""
        metric = _faiss_metric(self.metric)
        if self.kind == "flat":
            base = faiss.IndexFlat(self.dim, metric)
        elif self.kind == "hnsw":
            self.params.setdefault("M", HNSW_DEFAULT_M)
            self.params.setdefault("ef_construction", HNSW_DEFAULT_EF_CONSTRUCTION)
            self.params.setdefault("ef_search", HNSW_DEFAULT_EF_SEARCH)
            base = faiss.IndexHNSWFlat(self.dim, int(self.params["M"]), metric)
            base.hnsw.efConstruction = int(self.params["ef_construction"])
            base.hnsw.efSearch = int(self.params["ef_search"])
        else:
            assert train is not None
            self._resolve_ivf_params(len(train))
            quantizer = faiss.IndexFlat(self.dim, metric)
            base = faiss.IndexIVFFlat(quantizer, self.dim, self.params["nlist"], metric)
            base.nprobe = self.params["nprobe"]
            if len(train) > self.params["train_size"]:
                rng = np.random.default_rng(self.params["seed"])
                pick = np.sort(rng.choice(len(train), self.params["train_size"], replace=False))
                train = train[pick]
            base.cp.seed = self.params["seed"]
            base.train(train)
            # IVF stores our ids in its inverted lists itself. (Wrapping it in IndexIDMap2
            # would be wrong: IndexIDMap.remove_ids assumes the inner index renumbers the
            # remaining vectors, as IndexFlat does, but IVF keeps them.)
            return base
        # FAISS's Python wrappers keep ``base`` (and the quantizer) alive with the wrapper.
        return faiss.IndexIDMap2(base)

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
        if self._faiss is None:  # an IVF index is trained on its first vectors
            self._faiss = self._new_faiss(x)
        fids = np.arange(self._next_id, self._next_id + len(x), dtype=np.int64)
        self._faiss.add_with_ids(x, fids)
        self._next_id += len(x)
        start = len(self._records)
        self._vectors = np.concatenate([self._vectors, x]) if start else x.copy()
        self._faiss_ids = np.concatenate([self._faiss_ids, fids])
        self._records.extend(records)
        self._row_of.update((t, start + i) for i, t in enumerate(ids))

    def remove(self, tracklet_ids: Iterable[str], missing_ok: bool = False) -> int:
        """Remove tracklets by id; returns how many were removed.

        Unknown ids are an error unless ``missing_ok``. HNSW: see the module doc (tombstones).
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
        fids = self._faiss_ids[rows]
        if self.kind == "hnsw":
            self._tombstones = np.union1d(self._tombstones, fids)
        else:
            removed = self._faiss.remove_ids(faiss.IDSelectorBatch(fids))
            if removed != len(fids):  # pragma: no cover - would be a FAISS/bookkeeping bug
                raise RuntimeError(f"FAISS removed {removed} of {len(fids)} ids")
        keep = np.ones(len(self._records), dtype=bool)
        keep[rows] = False
        self._vectors = self._vectors[keep]
        self._faiss_ids = self._faiss_ids[keep]
        self._records = [r for r, k in zip(self._records, keep, strict=True) if k]
        self._row_of = {r.tracklet_id: i for i, r in enumerate(self._records)}
        if len(self._tombstones) > COMPACT_TOMBSTONE_FRACTION * self._faiss.ntotal:
            self.compact()
        return len(rows)

    def compact(self) -> None:
        """Rebuild the FAISS index from the stored vectors (drops HNSW tombstones).

        IVF keeps its trained cells; flat/IVF never hold tombstones, so this is a no-op there.
        """
        if self.kind != "hnsw" or not len(self._tombstones):
            return
        index = self._new_faiss(None)
        if len(self._vectors):
            index.add_with_ids(self._vectors, self._faiss_ids)
        self._faiss = index
        self._tombstones = np.zeros(0, np.int64)

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
        return self._vectors.copy()

    def _search_params(self, nprobe: int | None, ef_search: int | None) -> tuple[Any, tuple]:
        """FAISS search parameters, plus the objects they point to (keep them alive)."""
        if self.kind == "ivf":
            return faiss.SearchParametersIVF(nprobe=int(nprobe or self.params["nprobe"])), ()
        if self.kind == "hnsw":
            ef = int(ef_search or self.params["ef_search"])
            if not len(self._tombstones):
                return faiss.SearchParametersHNSW(efSearch=ef), ()
            batch = faiss.IDSelectorBatch(self._tombstones)
            exclude = faiss.IDSelectorNot(batch)
            return faiss.SearchParametersHNSW(efSearch=ef, sel=exclude), (batch, exclude)
        return None, ()

    def search(
        self,
        queries: np.ndarray,
        k: int = 10,
        *,
        nprobe: int | None = None,
        ef_search: int | None = None,
    ) -> list[list[SearchHit]]:
        """Top-``k`` gallery tracklets for each query row of ``queries`` ``[Q, D]``.

        Returns Q lists of at most ``k`` hits, nearest first. ``nprobe`` (ivf) and
        ``ef_search`` (hnsw) override the stored search parameters for this call.
        """
        if int(k) <= 0:
            raise ValueError(f"k must be positive, got {k}")
        q = self._prepare(queries, "queries")
        if not len(self):
            return [[] for _ in range(len(q))]
        params, _keepalive = self._search_params(nprobe, ef_search)
        dist, fids = self._faiss.search(q, min(int(k), len(self)), params=params)
        del _keepalive
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
            "faiss_ntotal": int(self._faiss.ntotal) if self._faiss is not None else 0,
            "tombstones": len(self._tombstones),
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
            "faiss_ntotal": int(self._faiss.ntotal) if self._faiss is not None else 0,
        }
        if self.kind == "flat" or self._faiss is None:
            blob = np.zeros(0, np.uint8)  # rebuilt from the vectors on load
        else:
            blob = faiss.serialize_index(self._faiss)
        arrays = {
            "header": np.asarray(json.dumps(header)),
            "vectors": self._vectors,
            "faiss_ids": self._faiss_ids,
            "tombstones": self._tombstones,
            "tracklet_ids": np.asarray(self.tracklet_ids, dtype=np.str_),
            "pids": np.asarray([r.pid for r in self._records], dtype=np.int64),
            "camids": np.asarray([r.camid for r in self._records], dtype=np.int64),
            "frames": np.asarray(json.dumps([list(r.frames) for r in self._records])),
            "faiss": blob,
        }
        atomic_write_bytes(path, lambda fh: np.savez(fh, **arrays))
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
        try:
            with np.load(path, allow_pickle=False) as npz:
                missing = [k for k in _FILE_KEYS if k not in npz.files]
                if "header" in missing:
                    raise IndexFileError(
                        f"{path} is not a vidreid gallery index (an archive without a header); "
                        "build one with `vidreid index build`"
                    )
                header = json.loads(str(npz["header"]))
                if not isinstance(header, dict) or header.get("format") != INDEX_FORMAT:
                    raise IndexFileError(
                        f"{path} is not a vidreid gallery index (format "
                        f"{header.get('format') if isinstance(header, dict) else None!r})"
                    )
                version = header.get("version")
                if not isinstance(version, int) or version > INDEX_VERSION:
                    raise IndexFileError(
                        f"{path} has index format version {version!r}; this vidreid reads up "
                        f"to {INDEX_VERSION}: upgrade vidreid or rebuild the index"
                    )
                if missing:
                    raise IndexFileError(f"{path} lacks {missing}: the file is damaged")
                data = {k: npz[k] for k in _FILE_KEYS if k != "header"}
            frames = json.loads(str(data["frames"]))
        except IndexFileError:
            raise
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise IndexFileError(
                f"{path} is corrupt or truncated ({type(exc).__name__}: {exc}); "
                "restore it or rebuild it with `vidreid index build`"
            ) from None
        return cls._from_arrays(path, header, data, frames)

    @classmethod
    def _from_arrays(
        cls, path: Path, header: dict[str, Any], data: dict[str, np.ndarray], frames: list
    ) -> GalleryIndex:
        try:
            index = cls(
                int(header["dim"]),
                header["kind"],
                header["metric"],
                header.get("meta"),
                **header.get("params", {}),
            )
            n = int(header["count"])
            vectors = np.ascontiguousarray(data["vectors"], dtype=np.float32)
            consistent = (
                vectors.shape == (n, index.dim)
                and all(len(data[k]) == n for k in ("faiss_ids", "tracklet_ids", "pids", "camids"))
                and len(frames) == n
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFileError(
                f"{path} has an invalid header ({exc}); rebuild the index"
            ) from None
        if not consistent:
            raise IndexFileError(
                f"{path}: stored arrays disagree with the header count {n}; the file is damaged"
            )
        index._vectors = vectors
        index._faiss_ids = data["faiss_ids"].astype(np.int64)
        index._tombstones = data["tombstones"].astype(np.int64)
        index._next_id = int(header["next_id"])
        index._records = [
            TrackletRecord(str(t), int(p), int(c), tuple(f))
            for t, p, c, f in zip(
                data["tracklet_ids"], data["pids"], data["camids"], frames, strict=True
            )
        ]
        index._row_of = {r.tracklet_id: i for i, r in enumerate(index._records)}
        if len(index._row_of) != n:
            raise IndexFileError(f"{path}: tracklet ids repeat; the file is damaged")
        if index.kind == "flat":
            index._faiss = index._new_faiss(None)
            if n:
                index._faiss.add_with_ids(vectors, index._faiss_ids)
        elif index.kind == "ivf" and n == 0 and not len(data["faiss"]):
            index._faiss = None  # saved before its first add: still untrained
        else:
            try:
                index._faiss = faiss.deserialize_index(data["faiss"])
            except RuntimeError as exc:
                raise IndexFileError(
                    f"{path}: the FAISS index inside cannot be read ({exc}); rebuild the index"
                ) from None
            expected = n + len(index._tombstones)
            if index._faiss.ntotal != expected or index._faiss.d != index.dim:
                raise IndexFileError(
                    f"{path}: FAISS index holds {index._faiss.ntotal} x {index._faiss.d} vectors, "
                    f"header says {expected} x {index.dim}; the file is damaged"
                )
        return index
