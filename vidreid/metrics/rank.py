"""CMC, mAP and mINP: exact, fast and memory-bounded.

Semantics (torchreid's and fastreid's ``evaluate_rank``): for each query, rank the gallery by
ascending distance, drop entries with the same pid **and** the same camera as the query (and
entries whose pid is in ``junk_pids``), and skip the query if no match remains. CMC@k is the
fraction of valid queries with a match within the first k kept entries; AP is the
non-interpolated average precision (``ap="standard"``) or the official MARS MATLAB
trapezoidal one (``ap="trapezoid"``: ``ap += (r - r_old) * (p_old + p) / 2``); INP
(Ye et al., 2021) is ``#positives / rank of the last positive``. Means are over valid queries.

Ties: entries at equal distance are ranked by gallery index, lowest first: exactly the order
of ``numpy.argsort(row, kind="stable")``. torchreid and fastreid use the default (quicksort)
argsort, whose order among equal distances is unspecified, so their numbers can differ from
ours (and between their own runs) only when a query has ties involving a match.

How it is fast without sorting: a positive's rank is the number of kept entries that come
before it, so per query only the distances to its P positives are needed as thresholds and
each kept distance is compared with them (``O(P * G)`` vectorised compares on cache-sized
row blocks, run on a thread pool) instead of an ``O(G log G)`` argsort. Excluded entries are
masked as NaN, which compares false with everything. Memory is one chunk of rows at a time,
so :func:`evaluate_features` never holds the full ``[Q, G]`` matrix.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from .distance import iter_distance_chunks

AP_KINDS = ("standard", "trapezoid")

# A row block of about 2^17 distances (512 kB in float32) stays in the per-core cache while it
# is compared with each of its queries' positive distances; numpy's compare loops run much
# slower on single-row blocks, hence the minimum.
_BLOCK_ELEMENTS = 1 << 17
_MIN_BLOCK_ROWS = 4
# Counting True values per row without numpy's slow bool->int sum: view 8 booleans as one
# uint64 word and add words ("SIMD within a register"); each byte lane holds at most 255.
_LANES = 8
_MAX_WORDS_PER_SUM = 255
_GROUP_BYTES = _LANES * _MAX_WORDS_PER_SUM


@dataclass
class RankResult:
    """Ranking metrics over the valid queries (those with at least one kept match).

    ``cmc[k]`` is the rank-(k+1) matching rate in [0, 1]; ``mAP``/``mINP`` are in [0, 1];
    ``ap``/``inp`` hold the per-query values for the queries listed in ``valid_queries``
    (indices into the query set); ``first_match_rank`` is each one's 0-based rank of its
    first match among the kept gallery entries.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int
    ap: np.ndarray
    inp: np.ndarray
    valid_queries: np.ndarray
    first_match_rank: np.ndarray
    extra: dict = field(default_factory=dict)

    def rank(self, k: int) -> float:
        """CMC at rank ``k`` (1-based)."""
        if not 1 <= k <= len(self.cmc):
            raise ValueError(f"rank {k} is outside 1..{len(self.cmc)} (max_rank of this result)")
        return float(self.cmc[k - 1])


# ----------------------------------------------------------------------------- labels


def _as_labels(x: Sequence[int] | np.ndarray | torch.Tensor, name: str, n: int | None) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if a.dtype.kind not in "fb":  # strings, objects: np.mod would fail without the name
            raise ValueError(f"{name} must hold integer labels, got dtype {a.dtype}"
                             f" (e.g. {a.flat[0]!r}); map the labels to integers first")
        if not np.all(np.equal(np.mod(a, 1), 0)):
            raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
    a = a.astype(np.int64)
    if n is not None and len(a) != n:
        raise ValueError(f"{name} has {len(a)} entries but the distance matrix has {n} on that axis")
    return a


@dataclass
class _QueryPlan:
    """Per query: its positive gallery columns and the same-pid-same-camera ones."""

    positives: list[np.ndarray]
    excluded: list[np.ndarray]
    junk_cols: np.ndarray


def _plan(q_pids: np.ndarray, g_pids: np.ndarray, q_camids: np.ndarray, g_camids: np.ndarray,
          junk_pids: Iterable[int]) -> _QueryPlan:
    junk = np.asarray(sorted(set(int(p) for p in junk_pids)), dtype=np.int64)
    junk_cols = np.flatnonzero(np.isin(g_pids, junk))
    order = np.argsort(g_pids, kind="stable")  # gallery columns grouped by pid, ascending
    sorted_pids = g_pids[order]
    left = np.searchsorted(sorted_pids, q_pids, side="left")
    right = np.searchsorted(sorted_pids, q_pids, side="right")
    empty = np.zeros(0, dtype=np.int64)
    positives, excluded = [], []
    for qi in range(len(q_pids)):
        cols = order[left[qi]:right[qi]]
        if cols.size == 0 or q_pids[qi] in junk:
            positives.append(empty)
            excluded.append(empty)
            continue
        same_cam = g_camids[cols] == q_camids[qi]
        positives.append(cols[~same_cam])
        excluded.append(cols[same_cam])
    return _QueryPlan(positives, excluded, junk_cols)


# ----------------------------------------------------------------------------- counting


def _count_true_rows(buf: np.ndarray) -> np.ndarray:
    """Number of True per row of a C-contiguous bool ``[B, W]`` array, W a multiple of
    ``_GROUP_BYTES`` (SWAR: byte lanes of uint64 words summed 255 words at a time)."""
    words = buf.view(np.uint64).reshape(len(buf), -1, _MAX_WORDS_PER_SUM)
    lanes = words.sum(axis=2, dtype=np.uint64)  # [B, groups], each byte lane <= 255
    return lanes.view(np.uint8).sum(axis=1, dtype=np.int64)


def _positive_ranks(x: np.ndarray, pos: list[np.ndarray], excl: list[np.ndarray],
                    junk_cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0-based ranks (among kept entries, stable order) of each row's positives, ascending.

    ``x`` is a writable ``[B, G]`` block of distances; it is modified (excluded -> NaN).
    Returns ``ranks [B, Pmax]`` (padding entries are meaningless) and ``pad [B, Pmax]``.
    """
    b = len(x)
    if x.dtype.kind == "f" and np.isnan(x).any():
        row = int(np.flatnonzero(np.isnan(x).any(axis=1))[0])
        raise ValueError(f"distance matrix contains NaN (a query row, block row {row}); "
                         "check the features for NaN/Inf before evaluating")
    x[:, junk_cols] = np.nan
    ex_r = np.repeat(np.arange(b), [len(e) for e in excl])
    if ex_r.size:
        x[ex_r, np.concatenate(excl)] = np.nan
    num_pos = np.array([len(p) for p in pos])
    p_max = int(num_pos.max())
    pad = np.arange(p_max)[None, :] >= num_pos[:, None]  # [B, Pmax]
    cols = np.zeros((b, p_max), dtype=np.int64)
    cols[~pad] = np.concatenate(pos)
    thr = np.take_along_axis(x, cols, axis=1)
    thr[pad] = np.inf
    # positives are in ascending column order, so a stable sort orders them as (distance, col)
    srt = np.argsort(thr, axis=1, kind="stable")
    thr = np.take_along_axis(thr, srt, axis=1)
    cols = np.take_along_axis(cols, srt, axis=1)
    pad = np.take_along_axis(pad, srt, axis=1)

    below = np.empty((b, p_max), dtype=np.int64)  # kept entries with d < threshold
    at_or_below = np.empty((b, p_max), dtype=np.int64)  # ... with d <= threshold
    width = -(-x.shape[1] // _GROUP_BYTES) * _GROUP_BYTES
    buf = np.zeros((b, width), dtype=bool)  # padding columns stay False
    view = buf[:, :x.shape[1]]
    for i in range(p_max):
        t = thr[:, i:i + 1]
        np.less(x, t, out=view)
        below[:, i] = _count_true_rows(buf)
        np.less_equal(x, t, out=view)
        at_or_below[:, i] = _count_true_rows(buf)
    # Another kept entry at exactly a positive's distance: it comes first iff its column is
    # lower (stable order). Rare with real features; resolved exactly, one (row, positive) each.
    for r, i in np.argwhere((at_or_below - below > 1) & ~pad):
        below[r, i] += np.count_nonzero(x[r, :cols[r, i]] == thr[r, i])
    return below, pad


def _single_shot_cmc(x: np.ndarray, g_pids: np.ndarray, q_pid: int, max_rank: int,
                     num_repeats: int, rng: np.random.Generator) -> np.ndarray:
    """CUHK03-style CMC for one query row ``x`` (excluded entries already NaN): keep one
    random kept gallery entry per identity, rank, repeat ``num_repeats`` times, average."""
    kept = np.flatnonzero(~np.isnan(x))
    pids = g_pids[kept]
    cmc = np.zeros(max_rank)
    for _ in range(num_repeats):
        key = rng.random(len(kept))
        order = np.lexsort((key, pids))  # by pid, then random key
        _, first = np.unique(pids[order], return_index=True)
        chosen = kept[order[first]]  # one random entry per pid
        match = chosen[g_pids[chosen] == q_pid][0]
        d = x[chosen]
        rank = np.count_nonzero((d < x[match]) | ((d == x[match]) & (chosen < match)))
        cmc[rank:] += 1.0
    return cmc / num_repeats


# ----------------------------------------------------------------------------- driver


def _check_options(max_rank: int, ap: str, num_repeats: int) -> None:
    if ap not in AP_KINDS:
        raise ValueError(f"unknown ap {ap!r}; use one of {', '.join(AP_KINDS)}")
    if int(max_rank) < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    if int(num_repeats) < 1:
        raise ValueError(f"num_repeats must be >= 1, got {num_repeats}")


def _run(
    chunks: Callable[[np.ndarray], Iterable[tuple[np.ndarray, np.ndarray]]],
    plan: _QueryPlan,
    g_pids: np.ndarray,
    q_pids: np.ndarray,
    num_gallery: int,
    max_rank: int,
    ap: str,
    single_gallery_shot: bool,
    num_repeats: int,
    seed: int,
    num_threads: int | None,
) -> RankResult:
    """Evaluate the queries with a match. ``chunks(order)`` yields ``(query_idx, source,
    rows)``: the distances of ``query_idx`` are ``source[rows]``."""
    num_pos = np.array([len(p) for p in plan.positives], dtype=np.int64)
    valid = np.flatnonzero(num_pos > 0)
    if valid.size == 0:
        raise ValueError("no query has a match in the gallery (after removing same-pid "
                         "same-camera and junk entries): check the pids/camids passed")
    # Queries with similar numbers of positives share a row block (little padding).
    order = valid[np.argsort(num_pos[valid], kind="stable")]
    block_rows = max(_MIN_BLOCK_ROWS, _BLOCK_ELEMENTS // max(1, num_gallery))
    workers = num_threads or max(1, min(torch.get_num_threads(), os.cpu_count() or 1))

    slot = np.empty(len(q_pids), dtype=np.int64)
    slot[valid] = np.arange(len(valid))  # query index -> position in ``valid``
    aps, inps = np.empty(len(valid)), np.empty(len(valid))
    first = np.empty(len(valid), dtype=np.int64)
    ss_cmc = np.zeros((len(valid), max_rank)) if single_gallery_shot else None

    def work(args: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        qidx, source, rows = args
        x = source[rows]  # a copy made in the worker: in cache, and writable
        ranks, pad = _positive_ranks(x, [plan.positives[q] for q in qidx],
                                     [plan.excluded[q] for q in qidx], plan.junk_cols)
        r = ranks.astype(np.float64)
        hits = np.arange(1, r.shape[1] + 1, dtype=np.float64)  # hits up to and incl. each
        precision = np.where(pad, 0.0, hits / (r + 1.0))
        if ap == "trapezoid":  # precision just before each hit (1 at rank 0, as in MATLAB)
            before = np.divide(hits - 1.0, r, out=np.ones_like(r), where=r > 0)
            precision = np.where(pad, 0.0, (before + precision) / 2.0)
        n_pos = (~pad).sum(axis=1)
        out = slot[qidx]
        # cumsum adds left to right, so the zero padding (which depends on how queries were
        # grouped into blocks) cannot change the rounding, unlike SIMD-grouped ``sum``.
        aps[out] = precision.cumsum(axis=1)[:, -1] / n_pos
        inps[out] = n_pos / (r[np.arange(len(r)), n_pos - 1] + 1.0)
        first[out] = ranks[:, 0]
        if ss_cmc is not None:
            for q, o, row in zip(qidx, out, x, strict=True):
                rng = np.random.default_rng([seed, int(q)])  # per query: order-independent
                ss_cmc[o] = _single_shot_cmc(row, g_pids, int(q_pids[q]), max_rank,
                                             num_repeats, rng)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for qidx, source, rows in chunks(order):
            blocks = [(qidx[s:s + block_rows], source, rows[s:s + block_rows])
                      for s in range(0, len(qidx), block_rows)]
            list(pool.map(work, blocks))

    if ss_cmc is not None:
        cmc = ss_cmc.mean(axis=0)
    else:
        hits_at = np.bincount(np.minimum(first, max_rank), minlength=max_rank + 1)[:max_rank]
        cmc = np.cumsum(hits_at) / len(valid)
    # fsum: exactly rounded, independent of numpy's summation order and memory alignment.
    return RankResult(cmc=cmc, mAP=math.fsum(aps) / len(aps), mINP=math.fsum(inps) / len(inps),
                      num_valid_queries=int(len(valid)), ap=aps, inp=inps,
                      valid_queries=valid, first_match_rank=first)


def evaluate_rank(
    distmat: np.ndarray | torch.Tensor,
    q_pids: Sequence[int] | np.ndarray | torch.Tensor,
    g_pids: Sequence[int] | np.ndarray | torch.Tensor,
    q_camids: Sequence[int] | np.ndarray | torch.Tensor,
    g_camids: Sequence[int] | np.ndarray | torch.Tensor,
    max_rank: int = 50,
    ap: str = "standard",
    junk_pids: Iterable[int] = (),
    single_gallery_shot: bool = False,
    num_repeats: int = 10,
    seed: int = 0,
    num_threads: int | None = None,
) -> RankResult:
    """CMC / mAP / mINP from a ``[Q, G]`` distance matrix (smaller = more similar).

    ``junk_pids``: gallery entries with these pids are ignored like same-pid-same-camera ones
    (official MARS: ``(-1,)``; a query whose pid is junk has no match). ``ap``: ``"standard"``
    or ``"trapezoid"`` (module docstring). ``single_gallery_shot``: CUHK03-style CMC averaged
    over ``num_repeats`` draws of one random kept entry per gallery identity, reproducible for
    a given ``seed`` (AP and INP always use the whole kept gallery). ``num_threads``: worker
    threads (default: torch's intra-op thread count). Extra memory: a few cache-sized row
    blocks per thread; the input matrix is never copied or modified. ``cmc`` has ``max_rank`` entries even when fewer gallery entries
    are kept: a valid query's cumulative match stays 1 past its last entry (torchreid instead
    shortens ``max_rank`` to the gallery size).
    """
    _check_options(max_rank, ap, num_repeats)
    if isinstance(distmat, torch.Tensor):
        distmat = distmat.detach().cpu().numpy()
    distmat = np.asarray(distmat)
    if distmat.ndim != 2:
        raise ValueError(f"distmat must be 2-D [num_query, num_gallery], got shape {distmat.shape}")
    if distmat.dtype.kind not in "fiu":
        raise ValueError(f"distmat must hold real numbers, got dtype {distmat.dtype}")
    if distmat.dtype.kind in "iu" or distmat.dtype == np.float16:
        distmat = distmat.astype(np.float64 if distmat.dtype.kind in "iu" else np.float32)
    nq, ng = distmat.shape
    qp, gp = _as_labels(q_pids, "q_pids", nq), _as_labels(g_pids, "g_pids", ng)
    qc, gc = _as_labels(q_camids, "q_camids", nq), _as_labels(g_camids, "g_camids", ng)
    plan = _plan(qp, gp, qc, gc, junk_pids)

    def chunks(order: np.ndarray) -> Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        # workers copy their rows (fancy indexing): the caller's matrix is never modified
        yield order, distmat, order

    return _run(chunks, plan, gp, qp, ng, int(max_rank), ap, single_gallery_shot,
                int(num_repeats), seed, num_threads)


def evaluate_features(
    qf: np.ndarray | torch.Tensor,
    gf: np.ndarray | torch.Tensor,
    q_pids: Sequence[int] | np.ndarray | torch.Tensor,
    g_pids: Sequence[int] | np.ndarray | torch.Tensor,
    q_camids: Sequence[int] | np.ndarray | torch.Tensor,
    g_camids: Sequence[int] | np.ndarray | torch.Tensor,
    metric: str = "euclidean",
    normalize: bool = False,
    max_rank: int = 50,
    ap: str = "standard",
    junk_pids: Iterable[int] = (),
    single_gallery_shot: bool = False,
    num_repeats: int = 10,
    seed: int = 0,
    chunk_size: int | None = None,
    num_threads: int | None = None,
) -> RankResult:
    """Like :func:`evaluate_rank` from features ``[Q, D]`` and ``[G, D]``: distances are
    computed ``chunk_size`` query rows at a time (float32, see
    :mod:`vidreid.metrics.distance`) and never held as a full ``[Q, G]`` matrix. Peak extra
    memory is a few times ``chunk_size * G * 4`` bytes. Results equal
    ``evaluate_rank(pairwise_distance(qf, gf, metric, normalize), ...)``.
    """
    _check_options(max_rank, ap, num_repeats)
    nq, ng = len(qf), len(gf)
    qp, gp = _as_labels(q_pids, "q_pids", nq), _as_labels(g_pids, "g_pids", ng)
    qc, gc = _as_labels(q_camids, "q_camids", nq), _as_labels(g_camids, "g_camids", ng)
    plan = _plan(qp, gp, qc, gc, junk_pids)

    def chunks(order: np.ndarray) -> Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for idx, block in iter_distance_chunks(qf, gf, metric, normalize, chunk_size, order):
            yield idx, block.numpy(), np.arange(len(idx))

    return _run(chunks, plan, gp, qp, ng, int(max_rank), ap, single_gallery_shot,
                int(num_repeats), seed, num_threads)
