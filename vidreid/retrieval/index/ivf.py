"""``ivf`` and ``ivfpq``: inverted-file indexes, trained on a sample of the gallery.

Both split the space into ``nlist`` k-means cells and scan ``nprobe`` of them per query
(per call: ``nprobe=``). ``ivf`` (``IndexIVFFlat``) stores the float vectors in its cells and
computes exact distances inside them. ``ivfpq`` (``IndexIVFPQ``) stores each vector's
residual to its cell centre as a product-quantisation code of ``pq_m`` sub-vectors of
``pq_nbits`` bits (``pq_m * pq_nbits / 8`` bytes: 64 for the default at 512-d, 32x less than
float32), and the gallery index keeps no float copy: the kind for galleries that do not fit in
memory. Its distances are PQ approximations, so its recall against exact search is lower.

Scaling choices (build time and memory grow with them; see ``benchmarks/bench_index.py``):

- ``nlist`` (cells) from the gallery size N of the first add: ``IVF_NLIST_PER_SQRT_N *
  sqrt(N)`` (the FAISS guideline of 4 * sqrt(N)), at most ``IVF_MAX_NLIST`` and at least
  ``IVF_MIN_POINTS_PER_LIST`` training points per cell. The cap is ours: adding N vectors
  costs N * nlist distance computations and k-means nlist^2 * points-per-cell, so at 1M the
  guideline's 4000 cells took 488 s to build on 2 cores (issue 18) where 1024 cells build in
  well under the 2-minute goal. Past ~1M vectors the cells grow and a query scans
  nprobe * N / nlist vectors.
- Training sample: the coarse k-means trains on ``train_size`` = ``IVF_TRAIN_POINTS_PER_LIST``
  (64) points per cell drawn with ``seed``; PQ codebooks train on ``PQ_TRAIN_POINTS`` of
  them. FAISS's own k-means limits, which these stay within: ``ClusteringParameters``
  ``min_points_per_centroid = 39`` (fewer: it warns and the cells are poor) and
  ``max_points_per_centroid = 256`` (more: it subsamples itself), 10 k-means iterations for
  the IVF cells and 25 for each PQ codebook (FAISS defaults). So at most 256 * nlist points
  train the cells and 256 * 2^pq_nbits (65,536) each codebook, whatever N is; ``ivfpq``'s
  default ``train_size`` is therefore max(64 * nlist, 256 * 2^pq_nbits). Small galleries get
  fewer PQ bits (``default_pq_nbits``) so each codebook centroid keeps 39 training points.

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
IVF_DEFAULT_NPROBE = 16
PQ_DEFAULT_BYTES_PER_DIM = 1 / 8  # pq_m = D / 8 sub-quantisers of 8 bits: 64 B at D=512
PQ_DEFAULT_NBITS = 8
PQ_MAX_NBITS = 16
# FAISS trains each PQ codebook (2^nbits centroids) on at most 256 points per centroid.
FAISS_MAX_POINTS_PER_CENTROID = 256


def default_nlist(n: int) -> int:
    """Cells for a gallery of ``n`` vectors (see the module doc)."""
    by_rule = round(IVF_NLIST_PER_SQRT_N * math.sqrt(n))
    return max(1, min(by_rule, IVF_MAX_NLIST, n // IVF_MIN_POINTS_PER_LIST))


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

    def _resolve_params(self, n_train: int) -> None:
        p = self.params
        p["nlist"] = int(p.get("nlist", default_nlist(n_train)))
        if not 1 <= p["nlist"] <= n_train:
            raise ValueError(f"{self.kind} nlist={p['nlist']} must be in [1, {n_train}] "
                             "(gallery size)")
        p["nprobe"] = int(p.get("nprobe", min(IVF_DEFAULT_NPROBE, p["nlist"])))
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
    param_names = (*IVFBackend.param_names, "pq_m", "pq_nbits")
    keeps_vectors = False

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
        if not train_size_given:  # the PQ codebooks want more points than the cells
            pq_points = FAISS_MAX_POINTS_PER_CENTROID * 2 ** p["pq_nbits"]
            p["train_size"] = max(p["train_size"], pq_points)

    def _new_index(self, quantizer: Any) -> Any:
        p = self.params
        index = faiss.IndexIVFPQ(
            quantizer, self.dim, p["nlist"], p["pq_m"], p["pq_nbits"], faiss_metric(self.metric)
        )
        index.pq.cp.seed = p["seed"]
        return index
