"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), memory-bounded.

The final distance mixes the Jaccard distance of k-reciprocal neighbour sets with the
original distance: ``d* = (1 - lambda) d_J + lambda d``. Following the paper's code, ``d`` is
the squared Euclidean (or cosine) distance over all ``N = Q + G`` samples, each row divided by
its maximum; ``V`` holds, per sample, Gaussian-kernel weights ``exp(-d)`` (normalised to sum
to 1) on its expanded k-reciprocal set ``R*(p, k1)``; local query expansion averages ``V`` over
the ``k2`` nearest neighbours; ``d_J(q, g) = 1 - sum_k min(V_qk, V_gk) / (2 - sum_k min(...))``.

Memory. The dense original holds about five ``N x N`` arrays (distance, rank, V, V after
expansion, Jaccard; ~20 N^2 bytes: 2.6 GB for MARS' N = 11,310). Here only the output
``[Q, G]`` float32 is dense; the rest is a chunk of distance rows (``chunk_rows * N`` floats),
the top ``k1 + 1`` neighbour lists (``N * (k1 + 1)`` ints) and ``V`` as sparse rows of at most
``(k1 + 1) * (round(k1 / 2) + 2)`` entries (times ``k2`` after expansion).
:func:`rerank_memory_bytes` gives the bound; :func:`re_ranking` refuses problems above
``max_memory_gb`` with that estimate in the error.

Ties in the neighbour ranking are broken by sample index (stable order), as everywhere in
:mod:`vidreid.metrics`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from .distance import default_chunk_rows, distance_block, prepare_features

RERANK_METRICS = ("euclidean", "cosine")
_BYTES_F32, _BYTES_I64 = 4, 8
_WORKING_COPIES = 4  # distance chunk, its normalised copy, comparison masks, topk buffers
_SPARSE_ENTRY_BYTES = 12  # float32 value + int64 column index (scipy, worst case)
_PAIR_BUDGET = 1 << 23  # (query, gallery, shared neighbour) triples per Jaccard step
_GB = 1024**3


def _half(k1: int) -> int:
    """``round(k1 / 2)`` as ``np.around`` does it in the paper's code (half to even)."""
    return int(np.around(k1 / 2.0))


def rerank_memory_bytes(num_query: int, num_gallery: int, k1: int = 20, k2: int = 6,
                        chunk_rows: int | None = None) -> int:
    """Upper estimate of the peak extra memory of :func:`re_ranking`, in bytes."""
    n = num_query + num_gallery
    rows = min(chunk_rows or default_chunk_rows(n), n)  # a chunk never exceeds the rows
    set_size = (k1 + 1) * (_half(k1) + 2)  # R(p, k1) plus accepted half-size sets
    output = _BYTES_F32 * num_query * num_gallery
    working = _WORKING_COPIES * _BYTES_F32 * rows * n
    neighbours = _BYTES_I64 * n * (k1 + 1)
    recip = rows * (k1 + 1) ** 2 * (_half(k1) + 1)  # bool membership tests per chunk
    sparse_v = _SPARSE_ENTRY_BYTES * n * set_size * (1 + max(1, k2))
    jaccard = 3 * _BYTES_I64 * _PAIR_BUDGET
    return int(output + working + neighbours + recip + sparse_v + jaccard)


def _stable_topk(block: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` smallest entries per row, ordered by (value, index)."""
    vals, idx = torch.topk(block, k, dim=1, largest=False, sorted=True)
    # order ties inside the top k by index: sort by index, then stably by value
    by_idx, perm = torch.sort(idx, dim=1)
    order = torch.sort(torch.gather(vals, 1, perm), dim=1, stable=True).indices
    idx = torch.gather(by_idx, 1, order)
    # rows where an equal value was left out at the boundary: resolve them exactly
    kth = vals[:, -1:]
    spill = torch.nonzero((block <= kth).sum(1) > k).flatten()
    for r in spill.tolist():
        idx[r] = torch.sort(block[r], stable=True).indices[:k]
    return idx


def _reciprocal_mask(nbrs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``mask[r, j]``: is ``rows[r]`` among the neighbours of its j-th neighbour?"""
    back = nbrs[nbrs[rows]]  # [c, k, k]
    return (back == rows[:, None, None]).any(axis=2)


def re_ranking(
    qf: torch.Tensor | np.ndarray,
    gf: torch.Tensor | np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    metric: str = "euclidean",
    normalize: bool = False,
    max_memory_gb: float = 4.0,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Re-ranked query-gallery distances ``[Q, G]`` (float32) from features.

    ``metric``: ``"euclidean"`` (squared, as in the paper's code) or ``"cosine"``.
    Raises ``ValueError`` if :func:`rerank_memory_bytes` exceeds ``max_memory_gb``.
    """
    if metric not in RERANK_METRICS:
        raise ValueError(f"re-ranking metric must be one of {', '.join(RERANK_METRICS)}, "
                         f"got {metric!r}")
    if k1 < 1 or k2 < 1:
        raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value}")
    dist_metric = "sqeuclidean" if metric == "euclidean" else "cosine"
    q, g = prepare_features(qf, gf, dist_metric, normalize)
    nq, ng = len(q), len(g)
    feats = torch.cat([q, g])
    n = len(feats)
    rows_per_chunk = chunk_size or default_chunk_rows(n)
    need = rerank_memory_bytes(nq, ng, k1, k2, rows_per_chunk)
    if need > max_memory_gb * _GB:
        raise ValueError(
            f"re-ranking {nq} queries x {ng} gallery needs about {need / _GB:.1f} GB "
            f"(> max_memory_gb={max_memory_gb}); raise max_memory_gb, lower chunk_size, or "
            "evaluate without re-ranking")
    k_top = min(n, max(k1 + 1, k2))
    sqnorm = None if dist_metric == "cosine" else feats.pow(2).sum(1)

    # 1. row maxima and stable top-k neighbour lists of the row-normalised distance
    row_max = torch.empty(n)
    nbrs = torch.empty(n, k_top, dtype=torch.int64)
    for s in range(0, n, rows_per_chunk):
        block = distance_block(feats[s:s + rows_per_chunk], feats, dist_metric, sqnorm)
        row_max[s:s + len(block)] = block.max(1).values
        block /= row_max[s:s + len(block), None]
        nbrs[s:s + len(block)] = _stable_topk(block, k_top)
    nb = nbrs.numpy()
    r_full, r_half = nb[:, :min(k1 + 1, k_top)], nb[:, :min(_half(k1) + 1, k_top)]

    # 2. expanded k-reciprocal sets R*(p, k1) as (row, column) pairs
    half_mask = np.concatenate([_reciprocal_mask(r_half, np.arange(s, min(s + rows_per_chunk, n)))
                                for s in range(0, n, rows_per_chunk)])
    pair_rows, pair_cols = [], []
    for s in range(0, n, rows_per_chunk):
        rows = np.arange(s, min(s + rows_per_chunk, n))
        recip = _reciprocal_mask(r_full, rows)  # [c, k1+1]: R(p, k1)
        cand = r_full[rows]  # [c, k1+1]
        cand_set, cand_mask = r_half[cand], half_mask[cand]  # [c, k1+1, kh+1]: R(c, k1/2)
        member = ((cand_set[..., None] == cand[:, None, None, :])
                  & recip[:, None, None, :]).any(axis=3)
        inter = (member & cand_mask).sum(axis=2)
        accept = recip & (inter > (2.0 / 3.0) * cand_mask.sum(axis=2))
        grow = accept[..., None] & cand_mask
        local = np.concatenate([np.nonzero(recip)[0], np.nonzero(grow)[0]])
        cols = np.concatenate([cand[recip], cand_set[grow]])
        key = np.unique(rows[local] * n + cols)
        pair_rows.append(key // n)
        pair_cols.append(key % n)
    pr, pc = np.concatenate(pair_rows), np.concatenate(pair_cols)

    # 3. V: Gaussian weights of the row-normalised distance on R*, rows summing to 1
    d = _pair_distance(feats, torch.from_numpy(pr), torch.from_numpy(pc), dist_metric, sqnorm)
    w = torch.exp(-(d / row_max[torch.from_numpy(pr)])).numpy()
    v = sp.csr_matrix((w, (pr, pc)), shape=(n, n), dtype=np.float32)
    v = sp.diags(1.0 / np.asarray(v.sum(axis=1)).ravel()).astype(np.float32) @ v
    # 4. local query expansion: mean of V over the k2 nearest neighbours
    if k2 != 1:
        k2_eff = min(k2, k_top)
        avg = sp.csr_matrix((np.full(n * k2_eff, 1.0 / k2_eff, dtype=np.float32),
                             (np.repeat(np.arange(n), k2_eff), nb[:, :k2_eff].ravel())),
                            shape=(n, n))
        v = (avg @ v).tocsr()

    # 5. Jaccard distance query x gallery from shared neighbours, then the final mix
    v_q = v[:nq].tocsr()
    v_g_t = v[nq:].T.tocsr()  # row k: the gallery samples with weight on neighbour k
    col_len = np.diff(v_g_t.indptr)
    out = torch.empty(nq, ng, dtype=torch.float32)
    q_rows = 0
    pairs_per_q = np.bincount(np.repeat(np.arange(nq), np.diff(v_q.indptr)),
                              weights=col_len[v_q.indices], minlength=nq)
    while q_rows < nq:
        stop = q_rows + 1
        budget = pairs_per_q[q_rows]
        while stop < nq and stop - q_rows < rows_per_chunk and budget + pairs_per_q[stop] \
                <= _PAIR_BUDGET:
            budget += pairs_per_q[stop]
            stop += 1
        out[q_rows:stop] = _final_rows(v_q[q_rows:stop], v_g_t, col_len, feats, nq, q_rows, stop,
                                       row_max, dist_metric, sqnorm, lambda_value, ng)
        q_rows = stop
    return out


def _pair_distance(feats: torch.Tensor, i: torch.Tensor, j: torch.Tensor, metric: str,
                   sqnorm: torch.Tensor | None) -> torch.Tensor:
    """Distances of the listed pairs (same formula as :func:`distance_block`)."""
    dot = (feats[i] * feats[j]).sum(1)
    if metric == "cosine":
        return 1.0 - dot
    return (sqnorm[i] + sqnorm[j] - 2.0 * dot).clamp(min=0.0)


def _final_rows(vq: sp.csr_matrix, v_g_t: sp.csr_matrix, col_len: np.ndarray,
                feats: torch.Tensor, nq: int, start: int, stop: int, row_max: torch.Tensor,
                metric: str, sqnorm: torch.Tensor | None, lambda_value: float,
                ng: int) -> torch.Tensor:
    """``(1 - lambda) d_J + lambda d`` for query rows ``start:stop``."""
    coo = vq.tocoo()
    lens = col_len[coo.col]
    # every (query row, neighbour k, gallery j) with both weights non-zero
    first = np.repeat(v_g_t.indptr[coo.col] - np.cumsum(lens) + lens, lens) \
        + np.arange(lens.sum())
    a = np.repeat(coo.data, lens)
    b = v_g_t.data[first]
    flat = np.repeat(coo.row, lens) * ng + v_g_t.indices[first]
    shared = np.bincount(flat, weights=np.minimum(a, b), minlength=(stop - start) * ng)
    shared = torch.from_numpy(shared.reshape(stop - start, ng)).float()
    jaccard = 1.0 - shared / (2.0 - shared)
    g = feats[nq:]
    sq_g = None if sqnorm is None else sqnorm[nq:]
    orig = distance_block(feats[start:stop], g, metric, sq_g) / row_max[start:stop, None]
    return jaccard * (1.0 - lambda_value) + orig * lambda_value
