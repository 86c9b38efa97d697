"""The index backend contract and its registry.

A backend is one kind of FAISS index (flat, IVF, IVF-PQ, HNSW) behind
:class:`~vidreid.retrieval.index.GalleryIndex`. It works on prepared float32 vectors (already
checked and, for cosine, L2-normalised) and int64 FAISS ids chosen by the gallery index; it
knows nothing of tracklets, metadata or the file format. A new kind is one module with a
subclass registered here, e.g.::

    @INDEX_BACKENDS.register("mykind")
    class MyBackend(IndexBackend):
        param_names = ("a", "b")
        ...

and an import in ``vidreid/retrieval/index/__init__.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import faiss
import numpy as np

from vidreid.registry import Registry
from vidreid.retrieval.archive import first_line

INDEX_BACKENDS = Registry("index kind")


class IndexFileError(ValueError):
    """A gallery index file is corrupt, truncated, foreign or from a newer vidreid."""


def faiss_metric(metric: str) -> int:
    """FAISS metric of a gallery-index metric (cosine = inner product of unit vectors)."""
    return faiss.METRIC_L2 if metric == "euclidean" else faiss.METRIC_INNER_PRODUCT


def sample_rows(x: np.ndarray, size: int, seed: int) -> np.ndarray:
    """At most ``size`` rows of ``x``: a seeded uniform sample, kept in their order."""
    if len(x) <= size:
        return x
    pick = np.sort(np.random.default_rng(seed).choice(len(x), size, replace=False))
    return x[pick]


class IndexBackend(ABC):
    """One kind of FAISS index: train, add, remove, search, (de)serialise.

    ``param_names`` names the parameters stored with the index (construction and default
    search settings); ``search_param_names`` the ones a single search may override;
    :attr:`keeps_vectors` whether :class:`~vidreid.retrieval.index.GalleryIndex` keeps a
    float32 copy of the gallery next to this backend (needed to rebuild and to re-rank;
    IVF-PQ drops it to save memory).
    """

    kind: ClassVar[str] = ""
    param_names: ClassVar[tuple[str, ...]] = ()
    search_param_names: ClassVar[tuple[str, ...]] = ()
    #: Whether :meth:`search` scores are the metric's (squared L2 / inner product); when not
    #: (e.g. distances in a reduced space), the gallery index re-ranks every answer exactly.
    exact_scores: ClassVar[bool] = True

    def __init__(self, dim: int, metric: str, params: dict[str, Any]) -> None:
        unknown = sorted(set(params) - set(self.param_names))
        if unknown:
            known = ", ".join(self.param_names) or "(none)"
            raise ValueError(f"unknown {self.kind} index parameters {unknown}; known: {known}")
        self.dim = int(dim)
        self.metric = metric
        self.params: dict[str, Any] = dict(params)
        self.faiss: Any = None  # the FAISS index; None while untrained

    @property
    def keeps_vectors(self) -> bool:
        """Whether the gallery index keeps a float32 copy of the vectors beside this one."""
        return True

    def candidates(self, k: int) -> int:
        """How many hits to fetch for a top-``k`` answer (more: re-ranked exactly by the
        gallery index from its float copy; see ``ivfpq``'s ``refine``)."""
        return k

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def is_trained(self) -> bool:
        """Whether vectors can be added (trained kinds train on their first vectors)."""
        return self.faiss is not None

    def train(self, x: np.ndarray) -> None:  # noqa: B027 - untrained kinds need nothing
        """Fit whatever the kind learns from data (IVF cells, PQ codebooks) on ``x``."""

    def add(self, x: np.ndarray, ids: np.ndarray) -> None:
        """Add prepared vectors ``x`` ``[N, D]`` under FAISS ids ``ids`` ``[N]``."""
        self.faiss.add_with_ids(x, ids)

    def remove(self, ids: np.ndarray) -> None:
        """Remove FAISS ids (all present: the gallery index checked)."""
        removed = self.faiss.remove_ids(faiss.IDSelectorBatch(ids))
        if removed != len(ids):  # pragma: no cover - would be a FAISS/bookkeeping bug
            raise RuntimeError(f"FAISS removed {removed} of {len(ids)} ids")

    @abstractmethod
    def search(
        self, q: np.ndarray, k: int, **overrides: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """FAISS ``(scores, ids)`` ``[Q, k]``: squared L2 or inner product, ids -1 padded.

        ``overrides``: values for ``search_param_names`` (``None`` = stored default); names this
        kind does not have are ignored, so one call serves every kind.
        """

    @property
    def ntotal(self) -> int:
        return int(self.faiss.ntotal) if self.faiss is not None else 0

    @property
    def tombstones(self) -> np.ndarray:
        """FAISS ids removed but still held (only HNSW has them)."""
        return np.zeros(0, np.int64)

    def needs_compaction(self) -> bool:
        return False

    def compact(self, vectors: np.ndarray, ids: np.ndarray) -> None:  # noqa: B027
        """Rebuild from the live vectors (drops tombstones); a no-op for most kinds."""

    # -- persistence -----------------------------------------------------------------------
    def serialize(self) -> np.ndarray:
        """The FAISS index as uint8 bytes (empty when untrained)."""
        if self.faiss is None:
            return np.zeros(0, np.uint8)
        return faiss.serialize_index(self.faiss)

    def restore(self, blob: np.ndarray, vectors: np.ndarray, ids: np.ndarray,
                tombstones: np.ndarray) -> None:
        """Set the state saved by :meth:`serialize` (``vectors``/``ids``: the live gallery).

        Raises :class:`IndexFileError` (without the file name; the caller adds it) when the
        bytes do not hold a FAISS index matching ``ids`` and ``tombstones``.
        """
        if not len(blob) and not len(ids):
            return  # saved before its first add: still untrained
        try:
            index = faiss.deserialize_index(blob)
        except RuntimeError as exc:
            raise IndexFileError(
                f"the FAISS index inside cannot be read ({first_line(exc)})"
            ) from None
        expected = len(ids) + len(tombstones)
        if index.ntotal != expected or index.d != self.dim:
            raise IndexFileError(
                f"FAISS index holds {index.ntotal} x {index.d} vectors, header says "
                f"{expected} x {self.dim}"
            )
        self.faiss = index
