"""``hnsw_pca``: an HNSW graph over PCA-reduced vectors, its candidates re-ranked exactly.

The graph (``IndexHNSWFlat``) is built on the gallery projected to its ``pca_dim`` principal
components (FAISS ``PCAMatrix`` in an ``IndexPreTransform``, trained on a seeded sample of the
first :meth:`GalleryIndex.add`); a search takes the ``refine * k`` nearest graph hits in that
space and the gallery index re-ranks them by their exact distance from its float copy, so
the answer is the exact top-k of the candidates and distances are exact (never PCA ones).
This is FAISS's "PCA{d},HNSW{M}" + ``IndexRefineFlat`` pattern ("Indexing 1M vectors" and
"Guidelines to choose an index" in the FAISS wiki), with our own re-rank.

Why (issue 18, ``benchmarks/bench_index.py``): building an HNSW graph is a beam search per
inserted vector, each step a distance; at ``pca_dim = D/8`` those distances read 8x less
memory and do 8x less arithmetic, and the graph only has to bring the true neighbours among
``refine * k`` candidates, not rank them. Measured with ``benchmarks/bench_index.py`` at 100k
x 512 (default data, load ~12.7, so compare CPU seconds): ``hnsw`` (M=32, efConstruction 40)
built in 49.8 CPU-s and reached recall@10 0.964 at its default efSearch 128 (1.22 CPU ms/q);
this kind built in 24.6 CPU-s and reached 0.986 at efSearch 32 (0.31 CPU ms/q).

Issue 18's goal (1M x 512 built in < 2 min on 2 cores, recall@10 >= 0.95, < 5 ms/query) sets
the defaults. Quiet 2-core runs of ``bench_index.py --n 1000000 --kinds hnsw_pca --centre-dim 64``
(identity centres in a 64-d subspace; ``benchmarks/results/index.md``): PCA 128, M=32,
efConstruction 40 built in 172.7 s (recall 0.992 at efSearch 32); PCA 64, M=32, efC 40 in
146.3 s (0.993); **PCA 64, M=24, efC 32 in 94.7 s, recall 0.979 at efSearch 64 (0.31 ms/q
batched)**, the defaults now. Why 64 components suffice for re-ID embeddings: the identity
centres of our trained TP network's features (1280-d, 190 identities of the synthetic effects
set) hold 95% of their variance in 64 principal components, against 49% for isotropic centres
of the same count (participation ratio 18 vs 165 dims; the numbers in the results file).
On the benchmark's default data (centres i.i.d. in all 512 dims) these settings reach 0.970
at 100k, but no setting tried reaches the goal at 1M (0.39-0.65 at PCA 128, M=32): a graph
has nothing to follow towards the query's identity when all other identities are equally far.

What PCA costs: the projection keeps the gallery's main directions; distances in it are
approximate (on isotropic data a random quarter of the variance, on real embeddings, whose
variance is concentrated, most of it). Vectors added after the first add are projected with
the PCA fitted then, so a gallery whose distribution drifts far should be rebuilt. Removal
leaves tombstones as in ``hnsw`` (same compaction rule).

Defaults: ``pca_dim = D * HNSW_PCA_DIM_FRACTION`` (64 at 512-d, 256 at 2048-d), at least
``PCA_MIN_DIM`` or all D when D is smaller, ``M``
``HNSW_PCA_DEFAULT_M``, ``ef_construction`` ``HNSW_PCA_DEFAULT_EF_CONSTRUCTION``, ``ef_search``
``HNSW_PCA_DEFAULT_EF_SEARCH`` (FAISS searches with a beam of at least ``refine * k``),
``refine`` ``HNSW_PCA_DEFAULT_REFINE``. PCA training sample: ``PCA_TRAIN_POINTS_PER_DIM``
points per input dimension (51,200 at 512-d), within FAISS's own limit
(``PCAMatrix.max_points_per_d`` = 1000 per input dimension, past which it subsamples).
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from vidreid.retrieval.index.base import INDEX_BACKENDS, sample_rows
from vidreid.retrieval.index.hnsw import HNSWBackend

HNSW_PCA_DIM_FRACTION = 1 / 8
# Fewer components distort distances too much to find the neighbours among refine*k
# candidates: a k-d projection of isotropic data changes squared distances by ~sqrt(2/k)
# (18% at 64), and at 64-d -> 16 recall@10 fell to 0.70 (benchmark, 5,000 vectors).
PCA_MIN_DIM = 64
HNSW_PCA_DEFAULT_M = 24
HNSW_PCA_DEFAULT_EF_CONSTRUCTION = 32
HNSW_PCA_DEFAULT_EF_SEARCH = 64
HNSW_PCA_DEFAULT_REFINE = 5
PCA_TRAIN_POINTS_PER_DIM = 100  # FAISS PCAMatrix subsamples past 1000 per input dimension


def default_pca_dim(dim: int) -> int:
    """Components kept for a ``dim``-d gallery: ``dim * HNSW_PCA_DIM_FRACTION``, at least
    ``PCA_MIN_DIM`` (all ``dim`` of a smaller vector: then the PCA only rotates)."""
    return min(dim, max(PCA_MIN_DIM, round(dim * HNSW_PCA_DIM_FRACTION)))


@INDEX_BACKENDS.register("hnsw_pca")
class HNSWPCABackend(HNSWBackend):
    """``IndexIDMap2(IndexPreTransform(PCAMatrix, IndexHNSWFlat))``; exact re-rank of
    ``refine * k`` candidates by the gallery index (which keeps the float vectors)."""

    kind = "hnsw_pca"
    param_names = ("M", "ef_construction", "ef_search", "pca_dim", "refine", "train_size", "seed")
    search_param_names = ("ef_search",)
    exact_scores = False  # PCA-space L2: the gallery index always re-ranks

    def __init__(self, dim: int, metric: str, params: dict[str, Any]) -> None:
        p = dict(params)
        p.setdefault("M", HNSW_PCA_DEFAULT_M)
        p.setdefault("ef_construction", HNSW_PCA_DEFAULT_EF_CONSTRUCTION)
        p.setdefault("ef_search", HNSW_PCA_DEFAULT_EF_SEARCH)
        p.setdefault("pca_dim", default_pca_dim(dim))
        p.setdefault("refine", HNSW_PCA_DEFAULT_REFINE)
        p.setdefault("train_size", PCA_TRAIN_POINTS_PER_DIM * dim)
        p.setdefault("seed", 0)
        super().__init__(dim, metric, p)  # checks every parameter is a positive int
        if self.params["pca_dim"] > self.dim:
            raise ValueError(
                f"hnsw_pca pca_dim={self.params['pca_dim']} must be at most the dim {self.dim}"
            )

    def _check_positive(self, name: str) -> None:
        if name == "seed":  # any int
            self.params[name] = int(self.params[name])
            return
        super()._check_positive(name)

    def _empty(self) -> Any:
        """A graph with no vectors; ``None`` until the PCA is trained (first add)."""
        if self.faiss is None:
            return None
        index = faiss.clone_index(self.faiss)  # keeps the trained PCA and the settings
        index.reset()
        return index

    def train(self, x: np.ndarray) -> None:
        """Fit the PCA on a seeded sample of ``x`` (the vectors of the first add)."""
        p = self.params
        pca = faiss.PCAMatrix(self.dim, p["pca_dim"])
        pca.train(sample_rows(x, p["train_size"], p["seed"]))
        # L2 in the PCA space for both metrics: only candidates; the re-rank uses the metric.
        graph = faiss.IndexHNSWFlat(p["pca_dim"], p["M"])
        graph.hnsw.efConstruction = p["ef_construction"]
        graph.hnsw.efSearch = p["ef_search"]
        self.faiss = faiss.IndexIDMap2(faiss.IndexPreTransform(pca, graph))

    def candidates(self, k: int) -> int:
        return k * self.params["refine"]

    # search: HNSWBackend's. Its plain SearchParametersHNSW passes through IndexPreTransform (which
    # forwards parameters that are not its own to the graph) and IndexIDMap2 (which translates
    # the tombstone selector's ids) unchanged.
