"""``hnsw``: graph search (``IndexHNSWFlat``), approximate, fastest queries, slowest to build.

Construction: ``M`` links per node and a beam of ``ef_construction`` while inserting; search:
a beam of ``ef_search`` (per call: ``ef_search=``). FAISS cannot remove graph nodes, so
removed ids become *tombstones*: they stay in the graph, are excluded from every search with
an ``IDSelectorNot`` (results are still exactly the top-k live hits the graph finds), and are
dropped when the graph is rebuilt from the stored vectors (:meth:`HNSWBackend.compact`),
which the gallery index does by itself once tombstones exceed
``COMPACT_TOMBSTONE_FRACTION`` of the graph.

Defaults (``HNSW_DEFAULT_*``), from ``benchmarks/bench_index.py`` (its docstring describes
the data): with M=32 and efConstruction=40, recall@10 against exact search at 100k x 512 was
0.893 / 0.942 / 0.962 / 0.971 at efSearch 32 / 64 / 128 / 256, so the default efSearch is
128. At 1M the same graph was not measured to the end here (its build alone took ~1500 s in
issue 18); recall falls as N grows at a fixed efConstruction, so reaching 0.95 at 1M likely
needs a larger ``ef_construction`` (and a build several times longer) or ``ef_search`` 256.
Build time is HNSW's cost: about N log N insertions, each a beam search of
``ef_construction`` over nodes with up to 2*M links; it is the slowest build here.
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from vidreid.retrieval.index.base import INDEX_BACKENDS, IndexBackend, faiss_metric

HNSW_DEFAULT_M = 32
HNSW_DEFAULT_EF_CONSTRUCTION = 40
HNSW_DEFAULT_EF_SEARCH = 128
# HNSW removal leaves tombstones; past this fraction of the graph, rebuild it.
COMPACT_TOMBSTONE_FRACTION = 0.5


@INDEX_BACKENDS.register("hnsw")
class HNSWBackend(IndexBackend):
    """HNSW graph over the float vectors, wrapped in ``IndexIDMap2`` for our ids."""

    kind = "hnsw"
    param_names = ("M", "ef_construction", "ef_search")
    search_param_names = ("ef_search",)

    def __init__(self, dim: int, metric: str, params: dict[str, Any]) -> None:
        super().__init__(dim, metric, params)
        self.params.setdefault("M", HNSW_DEFAULT_M)
        self.params.setdefault("ef_construction", HNSW_DEFAULT_EF_CONSTRUCTION)
        self.params.setdefault("ef_search", HNSW_DEFAULT_EF_SEARCH)
        for name in self.param_names:
            self._check_positive(name)
        self._tombstones = np.zeros(0, np.int64)
        self.faiss = self._empty()

    def _check_positive(self, name: str) -> None:
        self.params[name] = int(self.params[name])
        if self.params[name] <= 0:
            raise ValueError(f"{self.kind} {name} must be positive, got {self.params[name]}")

    def _empty(self) -> Any:
        base = faiss.IndexHNSWFlat(self.dim, self.params["M"], faiss_metric(self.metric))
        base.hnsw.efConstruction = self.params["ef_construction"]
        base.hnsw.efSearch = self.params["ef_search"]
        return faiss.IndexIDMap2(base)

    def remove(self, ids: np.ndarray) -> None:
        self._tombstones = np.union1d(self._tombstones, ids)

    @property
    def tombstones(self) -> np.ndarray:
        return self._tombstones

    def needs_compaction(self) -> bool:
        return len(self._tombstones) > COMPACT_TOMBSTONE_FRACTION * self.ntotal

    def compact(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        if not len(self._tombstones):
            return
        index = self._empty()
        if len(ids):
            index.add_with_ids(vectors, ids)
        self.faiss = index
        self._tombstones = np.zeros(0, np.int64)

    def search(
        self, q: np.ndarray, k: int, **overrides: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        ef = int(overrides.get("ef_search") or self.params["ef_search"])
        if not len(self._tombstones):
            return self.faiss.search(q, k, params=faiss.SearchParametersHNSW(efSearch=ef))
        batch = faiss.IDSelectorBatch(self._tombstones)
        exclude = faiss.IDSelectorNot(batch)  # keep ``batch`` alive until the search is done
        params = faiss.SearchParametersHNSW(efSearch=ef, sel=exclude)
        return self.faiss.search(q, k, params=params)

    def restore(self, blob: np.ndarray, vectors: np.ndarray, ids: np.ndarray,
                tombstones: np.ndarray) -> None:
        super().restore(blob, vectors, ids, tombstones)
        self._tombstones = np.asarray(tombstones, np.int64)
