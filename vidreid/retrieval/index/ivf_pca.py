"""``ivf_pca``: an inverted file over PCA-reduced vectors, its candidates re-ranked exactly.

The gallery is projected to its ``pca_dim`` principal components (the same rule and sample
as ``hnsw_pca``: FAISS ``PCAMatrix`` in an ``IndexPreTransform``) and split into ``nlist``
k-means cells there (``IndexIVFFlat``); a search scans the ``nprobe`` nearest cells for the
``refine * k`` nearest candidates in the PCA space and the gallery index re-ranks them by
their exact distance from its float copy, so the answer is the exact top-k of the candidates
and every distance is the metric's. FAISS's "PCA{d},IVF{nlist},Flat" + ``IndexRefineFlat``
pattern ("Guidelines to choose an index" in the FAISS wiki), with our own re-rank.

Why (issue 18's goal: 1M x 512 built in < 2 min on 2 cores, recall@10 >= 0.95, < 5 ms per
query): both costs of an IVF build, k-means training and assigning every vector to its
nearest cell, are distances to the ``nlist`` centres, and at 64 components instead of 512 each
is 8x cheaper. So the cells can be as many as a 1M gallery wants (4 * sqrt(N) = 4000, FAISS's
guideline, which ``ivf`` at 512-d caps at 1024 for its build time) and a query scans few
vectors. A scratch run of these FAISS indexes on ``bench_index.py``'s data at 1M with the
identity centres in 64 dims (quiet machine): 4096 cells, train + add 50 s wall (101 CPU s),
recall@10 0.966 / 0.987 / 0.997 at nprobe 16 / 32 / 64 (0.17 / 0.30 / 0.56 ms per query
batched), against 95-131 s for an HNSW graph on the same 64 components (``hnsw_pca``).
The measured figures with this backend are in ``benchmarks/results/index.md``.

Departures and limits: the cells are trained on a seeded sample of the first add
(``IVF_PCA_TRAIN_POINTS_PER_LIST`` points per cell, near FAISS's minimum of 39: k-means
costs ``nlist * points * iterations`` distances, and 64 per cell, ``ivf``'s choice, took ~1.6x
longer); vectors added later are projected and assigned with the PCA and cells fitted then,
so a gallery whose distribution drifts far should be rebuilt. Removal is exact (IVF lists),
no tombstones. Distances in the PCA space are L2 for both metrics (only candidates).
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from vidreid.retrieval.index.base import INDEX_BACKENDS, sample_rows
from vidreid.retrieval.index.hnsw_pca import PCA_TRAIN_POINTS_PER_DIM, default_pca_dim
from vidreid.retrieval.index.ivf import IVF_MIN_POINTS_PER_LIST, IVFBackend

# 64 components make cell assignment 8x cheaper than at 512-d, so more cells fit the build
# budget than ivf's 1024: at 1M, 4096 cells trained and filled in 50 s on 2 cores; 8192 took
# 177 s (k-means grows with nlist^2).
IVF_PCA_MAX_NLIST = 4096
IVF_PCA_TRAIN_POINTS_PER_LIST = 40  # just above FAISS's min_points_per_centroid (39)
IVF_PCA_DEFAULT_NPROBE = 32
IVF_PCA_DEFAULT_REFINE = 5


@INDEX_BACKENDS.register("ivf_pca")
class IVFPCABackend(IVFBackend):
    """``IndexPreTransform(PCAMatrix, IndexIVFFlat)`` in the PCA space; exact re-rank of
    ``refine * k`` candidates by the gallery index (which keeps the float vectors)."""

    kind = "ivf_pca"
    param_names = ("nlist", "nprobe", "pca_dim", "refine", "train_size", "seed")
    search_param_names = ("nprobe",)
    max_nlist = IVF_PCA_MAX_NLIST
    default_nprobe = IVF_PCA_DEFAULT_NPROBE
    exact_scores = False  # PCA-space L2: the gallery index always re-ranks

    def __init__(self, dim: int, metric: str, params: dict[str, Any]) -> None:
        super().__init__(dim, metric, params)
        p = self.params
        p["pca_dim"] = int(p.get("pca_dim", default_pca_dim(self.dim)))
        p["refine"] = int(p.get("refine", IVF_PCA_DEFAULT_REFINE))
        if not 1 <= p["pca_dim"] <= self.dim:
            raise ValueError(f"ivf_pca pca_dim={p['pca_dim']} must be in [1, {self.dim}] "
                             "(the dim)")
        if p["refine"] < 1:
            raise ValueError(f"ivf_pca refine must be positive, got {p['refine']}")

    def candidates(self, k: int) -> int:
        return k * self.params["refine"]

    def _resolve_params(self, n_train: int) -> None:
        train_size_given = "train_size" in self.params
        super()._resolve_params(n_train)
        if not train_size_given:
            self.params["train_size"] = IVF_PCA_TRAIN_POINTS_PER_LIST * self.params["nlist"]

    def train(self, x: np.ndarray) -> None:
        """Fit the PCA on a seeded sample of ``x`` (the vectors of the first add), then the
        cells on a seeded sample projected by it."""
        if len(x) < IVF_MIN_POINTS_PER_LIST:
            raise ValueError(f"an ivf_pca index is trained on the gallery: give at least "
                             f"{IVF_MIN_POINTS_PER_LIST} vectors (got {len(x)}) or use flat")
        self._resolve_params(len(x))
        p = self.params
        pca = faiss.PCAMatrix(self.dim, p["pca_dim"])
        pca.train(sample_rows(x, PCA_TRAIN_POINTS_PER_DIM * self.dim, p["seed"]))
        quantizer = faiss.IndexFlatL2(p["pca_dim"])
        cells = faiss.IndexIVFFlat(quantizer, p["pca_dim"], p["nlist"], faiss.METRIC_L2)
        cells.cp.seed = p["seed"]
        cells.train(pca.apply(sample_rows(x, p["train_size"], p["seed"])))
        cells.nprobe = p["nprobe"]
        self.faiss = faiss.IndexPreTransform(pca, cells)

    # search: IVFBackend's. Its SearchParametersIVF passes through IndexPreTransform, which
    # forwards parameters that are not its own to the inner index.
