"""``ivf`` and ``ivfpq``: inverted-file indexes, trained on a sample of the gallery.

Both split the space into ``nlist`` k-means cells and scan ``nprobe`` of them per query
(per call: ``nprobe=``). ``ivf`` (``IndexIVFFlat``) stores the float vectors in its cells and
computes exact distances inside them. ``ivfpq`` (``IndexIVFPQ``) stores each vector's
residual to its cell centre as a product-quantisation code of ``pq_m`` sub-vectors of
``pq_nbits`` bits (``pq_m * pq_nbits / 8`` bytes: 64 for the default at 512-d, 32x less than
float32). By default the gallery index keeps no float copy beside it: the kind for galleries
that do not fit in memory, with PQ-approximate distances and so a lower recall. With
``refine=R`` (R > 0) the float copy is kept after all and the R*k best PQ hits are re-ranked
by their exact distance: a query then reads small codes (memory bandwidth, not arithmetic,
bounds a scan on a shared machine) and still returns the exact top-k of its candidates.

Scaling choices (build time and memory grow with them; see ``benchmarks/bench_index.py``):

- ``nlist`` (cells) from the gallery size N of the first add: ``IVF_NLIST_PER_SQRT_N *
  sqrt(N)`` (the FAISS guideline of 4 * sqrt(N)), at most ``IVF_MAX_NLIST`` (``ivf``) or
  ``IVFPQ_MAX_NLIST`` (``ivfpq``), and at least ``IVF_MIN_POINTS_PER_LIST`` training points
  per cell. The caps are ours: adding N vectors costs N * nlist distance computations and
  k-means about nlist^2 * points-per-cell * iterations, so at 1M the guideline's 4000 cells
  took 488 s to build on 2 cores (issue 18). ``ivf`` scans float vectors and needs small
  cells for fast queries, so it keeps more cells (1024); ``ivfpq`` scans 32x smaller codes,
  so fewer, larger cells (256) cost less at query time and shorten its build (1M x 512 on
  2 shared cores under load 15-20: ivfpq 111-122 s, ivf 193 s). Past the cap
  the cells grow with N and a query scans about nprobe * N / nlist vectors.
- Training sample: ``train_size`` points drawn with ``seed``: ``IVF_TRAIN_POINTS_PER_LIST``
  (64) per cell, for ``ivfpq`` at least 64 per PQ centroid (64 * 2^pq_nbits = 16,384), which
  also train the PQ codebooks. FAISS's own k-means limits (``ClusteringParameters``), which
  these stay within: ``min_points_per_centroid = 39`` (fewer: it warns and the cells are
  poor) and ``max_points_per_centroid = 256`` (more: it subsamples itself); 10 k-means
  iterations for the IVF cells and 25 for each PQ codebook (FAISS defaults). So the training
  cost is fixed by nlist and pq_nbits, whatever N is. Small galleries get fewer PQ bits
  (``default_pq_nbits``) so each codebook centroid keeps 39 training points.

Ids: IVF stores our int64 ids in its inverted lists itself. (Wrapping it in IndexIDMap2 would
be wrong: IndexIDMap.remove_ids assumes the inner index renumbers the remaining vectors, as
IndexFlat does, but IVF keeps them.) Removal is ``remove_ids`` on the lists.
"""

from __future__ import annotations

import math
from typing import Any

import faiss
import numpy as np

from vidreid.retrieval.index.base import INDEX_BACKENDS, IndexBackend, faiss_metric, sample_rows

IVF_NLIST_PER_SQRT_N = 4
IVF_MAX_NLIST = 1024
IVF_MIN_POINTS_PER_LIST = 39  # FAISS ClusteringParameters.min_points_per_centroid
IVF_TRAIN_POINTS_PER_LIST = 64  # within FAISS's [39, 256] points per centroid
# Default cells scanned. benchmarks/bench_index.py (recall@10 vs exact): ivf nprobe=32 gave
# 0.965 at 100k but 0.709 at 1M (0.852 at 64), so large galleries want a larger nprobe.
IVF_DEFAULT_NPROBE = 32
# ivfpq with refine=10: 0.950 at 100k, 0.866 at 1M; at nprobe=16, 0.859 and 0.703.
IVFPQ_DEFAULT_NPROBE = 32
PQ_DEFAULT_BYTES_PER_DIM = 1 / 8  # pq_m = D / 8 sub-quantisers of 8 bits: 64 B at D=512
PQ_DEFAULT_NBITS = 8
PQ_MAX_NBITS = 16
# ivfpq: fewer, larger cells than ivf (build cost; see the module doc).
IVFPQ_MAX_NLIST = 256


def default_nlist(n: int, max_nlist: int = IVF_MAX_NLIST) -> int:
    """Cells for a gallery of ``n`` vectors (see the module doc)."""
    by_rule = round(IVF_NLIST_PER_SQRT_N * math.sqrt(n))
    return max(1, min(by_rule, max_nlist, n // IVF_MIN_POINTS_PER_LIST))


def default_pq_nbits(n: int) -> int:
    """Bits per PQ code: ``PQ_DEFAULT_NBITS`` (256 centroids per codebook), fewer when the
    gallery is too small to train them with ``IVF_MIN_POINTS_PER_LIST`` points each."""
    fits = int(math.log2(max(n, 1) / IVF_MIN_POINTS_PER_LIST)) if n >= 2 else 1
    return max(1, min(PQ_DEFAULT_NBITS, fits))


@INDEX_BACKENDS.register("ivf")
class IVFBackend(IndexBackend):
    """``IndexIVFFlat``: exact distances inside the ``nprobe`` scanned cells."""

    kind = "ivf"
    param_names: tuple[str, ...] = ("nlist", "nprobe", "train_size", "seed")
    search_param_names = ("nprobe",)
    max_nlist = IVF_MAX_NLIST
    default_nprobe = IVF_DEFAULT_NPROBE

    def _resolve_params(self, n_train: int) -> None:
        p = self.params
        p["nlist"] = int(p.get("nlist", default_nlist(n_train, self.max_nlist)))
        if not 1 <= p["nlist"] <= n_train:
            raise ValueError(f"{self.kind} nlist={p['nlist']} must be in [1, {n_train}] "
                             "(gallery size)")
        p["nprobe"] = int(p.get("nprobe", min(self.default_nprobe, p["nlist"])))
        p["train_size"] = int(p.get("train_size", IVF_TRAIN_POINTS_PER_LIST * p["nlist"]))
        p["seed"] = int(p.get("seed", 0))

    def _new_index(self, quantizer: Any) -> Any:
        return faiss.IndexIVFFlat(
            quantizer, self.dim, self.params["nlist"], faiss_metric(self.metric)
        )

    def train(self, x: np.ndarray) -> None:
        """Resolve the parameters from ``len(x)`` and train on a seeded sample of ``x``."""
        if not len(x):
            raise ValueError(f"an {self.kind} index is trained on the gallery: give at least "
                             "one vector")
        self._resolve_params(len(x))
        quantizer = faiss.IndexFlat(self.dim, faiss_metric(self.metric))
        index = self._new_index(quantizer)
        index.nprobe = self.params["nprobe"]
        index.cp.seed = self.params["seed"]
        index.train(sample_rows(x, self.params["train_size"], self.params["seed"]))
        self.faiss = index  # FAISS's Python wrapper keeps the quantizer alive with it

    def search(
        self, q: np.ndarray, k: int, **overrides: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        nprobe = int(overrides.get("nprobe") or self.params["nprobe"])
        return self.faiss.search(q, k, params=faiss.SearchParametersIVF(nprobe=nprobe))


@INDEX_BACKENDS.register("ivfpq")
class IVFPQBackend(IVFBackend):
    """``IndexIVFPQ``: PQ codes of the residuals; no float copy of the gallery is kept.

    ``pq_m`` must divide the dim. Without float vectors it cannot be rebuilt from itself
    (:meth:`GalleryIndex.vectors` is an error): rebuild from the features folder.
    """

    kind = "ivfpq"
    param_names = (*IVFBackend.param_names, "pq_m", "pq_nbits", "refine")
    max_nlist = IVFPQ_MAX_NLIST
    default_nprobe = IVFPQ_DEFAULT_NPROBE

    def __init__(self, dim: int, metric: str, params: dict[str, Any]) -> None:
        super().__init__(dim, metric, params)
        self.params["refine"] = int(self.params.get("refine", 0))
        if self.params["refine"] < 0:
            raise ValueError(f"ivfpq refine={self.params['refine']} must be >= 0 (0 = off)")

    @property
    def keeps_vectors(self) -> bool:
        return self.params["refine"] > 0

    def candidates(self, k: int) -> int:
        return k * self.params["refine"] if self.params["refine"] else k

    def _resolve_params(self, n_train: int) -> None:
        train_size_given = "train_size" in self.params
        super()._resolve_params(n_train)
        p = self.params
        p["pq_m"] = int(p.get("pq_m", max(1, round(self.dim * PQ_DEFAULT_BYTES_PER_DIM))))
        p["pq_nbits"] = int(p.get("pq_nbits", default_pq_nbits(n_train)))
        if p["pq_m"] <= 0 or self.dim % p["pq_m"]:
            raise ValueError(f"ivfpq pq_m={p['pq_m']} must divide the dim {self.dim}")
        if not 1 <= p["pq_nbits"] <= PQ_MAX_NBITS:
            raise ValueError(f"ivfpq pq_nbits={p['pq_nbits']} must be in [1, {PQ_MAX_NBITS}]")
        if n_train < 2 ** p["pq_nbits"]:
            raise ValueError(
                f"ivfpq with pq_nbits={p['pq_nbits']} trains {2 ** p['pq_nbits']} centroids per "
                f"codebook: give at least that many vectors (got {n_train}) or a smaller pq_nbits"
            )
        if not train_size_given:  # the PQ codebooks may want more points than the cells
            pq_points = IVF_TRAIN_POINTS_PER_LIST * 2 ** p["pq_nbits"]
            p["train_size"] = max(p["train_size"], pq_points)

    def _new_index(self, quantizer: Any) -> Any:
        p = self.params
        index = faiss.IndexIVFPQ(
            quantizer, self.dim, p["nlist"], p["pq_m"], p["pq_nbits"], faiss_metric(self.metric)
        )
        index.pq.cp.seed = p["seed"]
        return index
