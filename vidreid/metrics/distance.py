"""Pairwise query-gallery distances, computed in float32 chunks.

Re-ID ranks a gallery by distance to each query. The full ``[Q, G]`` matrix can be larger
than memory (10,000 x 200,000 float32 is 8 GB), so every function here works on row chunks;
:func:`iter_distance_chunks` lets the evaluator consume one chunk at a time.

Metrics:

- ``"euclidean"``: ``||q - g||_2``;
- ``"sqeuclidean"``: ``||q - g||_2^2`` (what torchreid and fastreid feed to their
  evaluators; same ranking as ``"euclidean"``);
- ``"cosine"``: ``1 - cos(q, g)``.

``normalize=True`` L2-normalises both feature sets first (the usual BNNeck test setting).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

METRICS = ("euclidean", "sqeuclidean", "cosine")

# Elements per distance chunk (rows x gallery): 2^24 float32 = 64 MB, a few copies of which
# (matmul output, norms added in place) stay well inside memory at any gallery size.
DEFAULT_CHUNK_ELEMENTS = 1 << 24


def as_features(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    """Return ``x`` as a contiguous CPU float32 ``[N, D]`` tensor, or raise a clear error."""
    t = torch.as_tensor(x)
    if t.dim() != 2:
        raise ValueError(f"{name} must be a 2-D [N, D] feature matrix, got shape {tuple(t.shape)}")
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"{name} must hold real numbers, got dtype {t.dtype}")
    return t.detach().to(device="cpu", dtype=torch.float32).contiguous()


def check_metric(metric: str) -> None:
    """Raise ``ValueError`` naming the known metrics if ``metric`` is not one of them."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")


def prepare_features(
    qf: torch.Tensor | np.ndarray,
    gf: torch.Tensor | np.ndarray,
    metric: str,
    normalize: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate, convert to float32 and (for cosine or ``normalize``) L2-normalise."""
    check_metric(metric)
    q, g = as_features(qf, "query features"), as_features(gf, "gallery features")
    if q.shape[1] != g.shape[1]:
        raise ValueError(
            f"query features have dimension {q.shape[1]} but gallery features {g.shape[1]}; "
            "they must come from the same model"
        )
    if normalize or metric == "cosine":
        q, g = F.normalize(q, dim=1), F.normalize(g, dim=1)
    return q, g


def distance_block(q: torch.Tensor, g: torch.Tensor, metric: str,
                   g_sqnorm: torch.Tensor | None = None) -> torch.Tensor:
    """Distances ``[len(q), len(g)]`` for already-prepared features (see
    :func:`prepare_features`); ``g_sqnorm`` (``[G]``) may be passed to avoid recomputing it."""
    if metric == "cosine":
        # q and g are unit vectors: 1 - cos = 1 - q.g
        return torch.addmm(torch.ones(()), q, g.t(), beta=1.0, alpha=-1.0)
    if g_sqnorm is None:
        g_sqnorm = g.pow(2).sum(1)
    # ||q||^2 + ||g||^2 - 2 q.g, clamped: rounding can make it slightly negative
    d = torch.addmm(g_sqnorm.unsqueeze(0), q, g.t(), beta=1.0, alpha=-2.0)
    d.add_(q.pow(2).sum(1, keepdim=True)).clamp_(min=0.0)
    if metric == "euclidean":
        d.sqrt_()
    return d


def default_chunk_rows(num_gallery: int) -> int:
    """Query rows per chunk so that one chunk holds about ``DEFAULT_CHUNK_ELEMENTS``."""
    return max(1, DEFAULT_CHUNK_ELEMENTS // max(1, num_gallery))


def iter_distance_chunks(
    qf: torch.Tensor | np.ndarray,
    gf: torch.Tensor | np.ndarray,
    metric: str = "euclidean",
    normalize: bool = False,
    chunk_size: int | None = None,
    rows: Sequence[int] | np.ndarray | None = None,
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Yield ``(query_indices, distances [len(query_indices), G] float32)`` chunk by chunk.

    ``rows`` selects (and orders) the queries; by default all, in order. ``chunk_size`` is
    the number of query rows per chunk (default: about 2^24 distances per chunk).
    """
    q, g = prepare_features(qf, gf, metric, normalize)
    return _iter_prepared(q, g, metric, chunk_size, rows)


def _iter_prepared(
    q: torch.Tensor,
    g: torch.Tensor,
    metric: str,
    chunk_size: int | None,
    rows: Sequence[int] | np.ndarray | None,
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    order = np.arange(len(q)) if rows is None else np.asarray(rows, dtype=np.int64)
    step = chunk_size or default_chunk_rows(len(g))
    if step < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    g_sqnorm = None if metric == "cosine" else g.pow(2).sum(1)
    for start in range(0, len(order), step):
        idx = order[start:start + step]
        yield idx, distance_block(q[torch.from_numpy(idx)], g, metric, g_sqnorm)


def pairwise_distance(
    qf: torch.Tensor | np.ndarray,
    gf: torch.Tensor | np.ndarray,
    metric: str = "euclidean",
    normalize: bool = False,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """The full ``[Q, G]`` float32 distance matrix, computed chunk-wise.

    Use :func:`vidreid.metrics.evaluate_features` instead when the matrix would not fit.
    """
    q, g = prepare_features(qf, gf, metric, normalize)
    out = torch.empty(len(q), len(g), dtype=torch.float32)
    for idx, block in _iter_prepared(q, g, metric, chunk_size, None):
        out[idx[0]:idx[-1] + 1] = block
    return out
