"""``flat``: exact search, brute force over every gallery vector (``IndexFlat``)."""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from vidreid.retrieval.index.base import INDEX_BACKENDS, IndexBackend, faiss_metric


@INDEX_BACKENDS.register("flat")
class FlatBackend(IndexBackend):
    """Exact search. Saved as nothing: the gallery vectors are the index, rebuilt on load
    (adding to a flat index is a copy)."""

    kind = "flat"

    def __init__(self, dim: int, metric: str, params: dict[str, Any]) -> None:
        super().__init__(dim, metric, params)
        self.faiss = self._empty()

    def _empty(self) -> Any:
        # IndexIDMap2 maps our int64 ids; FAISS's Python wrappers keep the inner index alive.
        return faiss.IndexIDMap2(faiss.IndexFlat(self.dim, faiss_metric(self.metric)))

    def search(
        self, q: np.ndarray, k: int, **overrides: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.faiss.search(q, k)

    def serialize(self) -> np.ndarray:
        return np.zeros(0, np.uint8)

    def restore(self, blob: np.ndarray, vectors: np.ndarray, ids: np.ndarray,
                tombstones: np.ndarray) -> None:
        self.faiss = self._empty()
        if len(ids):
            self.faiss.add_with_ids(vectors, ids)
