"""Evaluation protocols: TKP's four query/gallery modalities, MARS galleries, split averages.

TKP (Gu et al., ICCV 2019) evaluates a video model in four settings, by whether the query and
the gallery are represented by a whole tracklet (video feature) or by a single frame of it
(image feature):

- ``v2v``: video query vs video gallery (the usual video re-ID setting);
- ``i2v``: image query (one frame of the query tracklet) vs video gallery;
- ``v2i``: video query vs image gallery;
- ``i2i``: image query vs image gallery.

The engine extracts both features per tracklet (image: the frame chosen by
:func:`frame_index`) and passes them here as :class:`FeatureSet`.

MARS galleries (MARS's own evaluation code, Zheng et al. ECCV 2016, and torchreid's):
``"torchreid"`` (gallery without the query tracklets and without pid -1, standard AP), ``"official"`` (the MATLAB protocol:
gallery = all test tracklets including the queries, pid -1 junk, trapezoidal AP) and
``"tkp"`` (query + torchreid gallery, trapezoidal AP as TKP's ``utils/eval_metrics.py:21-28``). :func:`mars_protocol` builds them from the
torchreid-style query and gallery sets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from .rank import RankResult, evaluate_features

PROTOCOLS = ("v2v", "i2v", "v2i", "i2i")
FRAME_CHOICES = ("first", "middle", "random")
MARS_PROTOCOLS = ("torchreid", "official", "tkp")
MARS_JUNK_PID = -1


@dataclass(frozen=True)
class FeatureSet:
    """Features of a set of tracklets: ``video [N, D]`` (whole tracklet) and/or
    ``image [N, D]`` (one frame of it), with ``pids [N]`` and 0-based ``camids [N]``."""

    video: torch.Tensor | None
    image: torch.Tensor | None
    pids: np.ndarray | Sequence[int]
    camids: np.ndarray | Sequence[int]

    def __post_init__(self) -> None:
        n = len(self.pids)
        if len(self.camids) != n:
            raise ValueError(f"FeatureSet has {n} pids but {len(self.camids)} camids")
        for name in ("video", "image"):
            feats = getattr(self, name)
            if feats is not None and len(feats) != n:
                raise ValueError(f"FeatureSet.{name} has {len(feats)} rows but there are {n} "
                                 "pids: one feature per tracklet is expected")

    def select(self, index: np.ndarray) -> FeatureSet:
        """The subset of tracklets at ``index`` (a boolean mask or integer indices)."""
        idx = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index)
        t = torch.from_numpy(idx.astype(np.int64))
        return FeatureSet(
            video=None if self.video is None else torch.as_tensor(self.video)[t],
            image=None if self.image is None else torch.as_tensor(self.image)[t],
            pids=np.asarray(self.pids)[idx], camids=np.asarray(self.camids)[idx])


def concat(a: FeatureSet, b: FeatureSet) -> FeatureSet:
    """``a`` followed by ``b`` (a modality is kept only if both sets have it)."""
    def cat(x, y):
        return None if x is None or y is None else torch.cat([torch.as_tensor(x),
                                                              torch.as_tensor(y)])
    return FeatureSet(video=cat(a.video, b.video), image=cat(a.image, b.image),
                      pids=np.concatenate([np.asarray(a.pids), np.asarray(b.pids)]),
                      camids=np.concatenate([np.asarray(a.camids), np.asarray(b.camids)]))


def frame_index(num_frames: int, choice: str = "middle",
                rng: np.random.Generator | None = None) -> int:
    """Which frame of a tracklet represents it as an image query/gallery entry."""
    if num_frames < 1:
        raise ValueError(f"a tracklet needs at least one frame, got {num_frames}")
    if choice == "first":
        return 0
    if choice == "middle":
        return num_frames // 2
    if choice == "random":
        if rng is None:
            raise ValueError("frame choice 'random' needs an rng (numpy Generator) for "
                             "reproducibility")
        return int(rng.integers(num_frames))
    raise ValueError(f"unknown frame choice {choice!r}; use one of {', '.join(FRAME_CHOICES)}")


def mars_protocol(query: FeatureSet, gallery: FeatureSet,
                  protocol: str = "torchreid") -> tuple[FeatureSet, tuple[int, ...], str]:
    """MARS gallery for ``protocol``: returns ``(gallery, junk_pids, ap)``.

    ``query``/``gallery`` are the torchreid-style sets (gallery = test tracklets that are not
    queries; it may still contain the pid -1 junk tracklets, which are handled per protocol).
    """
    g_pids = np.asarray(gallery.pids)
    not_junk = g_pids != MARS_JUNK_PID
    if protocol == "torchreid":
        return gallery.select(not_junk), (), "standard"
    if protocol == "official":
        return concat(query, gallery), (MARS_JUNK_PID,), "trapezoid"
    if protocol == "tkp":
        return concat(query, gallery.select(not_junk)), (), "trapezoid"
    raise ValueError(f"unknown MARS protocol {protocol!r}; use one of "
                     f"{', '.join(MARS_PROTOCOLS)}")


def _features(fs: FeatureSet, kind: str, side: str, protocol: str) -> torch.Tensor:
    feats = fs.video if kind == "v" else fs.image
    if feats is None:
        name = "video" if kind == "v" else "image"
        raise ValueError(f"protocol {protocol!r} needs {name} features for the {side}, but "
                         f"FeatureSet.{name} is None; extract them or drop {protocol!r}")
    return torch.as_tensor(feats)


RERANK_OPTIONS = {"k1", "k2", "lambda_value", "max_memory_gb", "chunk_size"}


def evaluate_protocols(
    query: FeatureSet,
    gallery: FeatureSet,
    protocols: Iterable[str] = ("v2v",),
    metric: str = "euclidean",
    junk_pids: Iterable[int] = (),
    ap: str = "standard",
    normalize: bool = False,
    max_rank: int = 50,
    rerank: dict[str, Any] | None = None,
) -> dict[str, RankResult]:
    """Rank metrics for each of ``protocols`` (any of ``v2v``, ``i2v``, ``v2i``, ``i2i``).

    ``rerank`` (e.g. ``{"k1": 20, "k2": 6, "lambda_value": 0.3}``) ranks by k-reciprocal
    re-ranked distances (:func:`vidreid.metrics.rerank.re_ranking`, a full ``[Q, G]`` matrix)
    instead of the plain chunked ones."""
    junk = tuple(junk_pids)
    if rerank is not None:
        unknown = set(rerank) - RERANK_OPTIONS
        if unknown:
            raise ValueError(f"eval.rerank_opts: unknown {sorted(unknown)}; use any of "
                             f"{sorted(RERANK_OPTIONS)}")
    results: dict[str, RankResult] = {}
    for name in protocols:
        if name not in PROTOCOLS:
            raise ValueError(f"unknown protocol {name!r}; use any of {', '.join(PROTOCOLS)}")
        qf = _features(query, name[0], "query", name)
        gf = _features(gallery, name[2], "gallery", name)
        if rerank is not None:
            from vidreid.metrics.rank import evaluate_rank
            from vidreid.metrics.rerank import re_ranking

            dist = re_ranking(qf, gf, metric=metric, normalize=normalize, **rerank)
            results[name] = evaluate_rank(dist, query.pids, gallery.pids, query.camids,
                                          gallery.camids, max_rank=max_rank, ap=ap,
                                          junk_pids=junk)
            continue
        results[name] = evaluate_features(
            qf, gf, query.pids, gallery.pids, query.camids, gallery.camids, metric=metric,
            normalize=normalize, max_rank=max_rank, ap=ap, junk_pids=junk)
    return results


def aggregate_splits(results: Sequence[dict[str, RankResult]]) -> dict[str, RankResult]:
    """Mean over splits (iLIDS-VID, PRID: 10 each) per protocol.

    Each returned :class:`RankResult` holds the mean CMC/mAP/mINP, the total number of valid
    queries, per-query arrays concatenated over splits, and
    ``extra = {"num_splits": n, "std": {"cmc": ..., "mAP": ..., "mINP": ...}}`` with the
    population standard deviation (ddof=0) across splits.
    """
    if not results:
        raise ValueError("aggregate_splits needs at least one split's results")
    names = list(results[0])
    for i, r in enumerate(results):
        if list(r) != names:
            raise ValueError(f"split {i} has protocols {list(r)} but split 0 has {names}")
    out: dict[str, RankResult] = {}
    for name in names:
        runs = [r[name] for r in results]
        lengths = {len(r.cmc) for r in runs}
        if len(lengths) != 1:
            raise ValueError(f"protocol {name!r}: splits have different max_rank {lengths}")
        cmc = np.stack([r.cmc for r in runs])
        m_ap = np.array([r.mAP for r in runs])
        m_inp = np.array([r.mINP for r in runs])
        base = runs[0]
        out[name] = replace(
            base, cmc=cmc.mean(0), mAP=float(m_ap.mean()), mINP=float(m_inp.mean()),
            num_valid_queries=int(sum(r.num_valid_queries for r in runs)),
            ap=np.concatenate([r.ap for r in runs]), inp=np.concatenate([r.inp for r in runs]),
            valid_queries=np.concatenate([r.valid_queries for r in runs]),
            first_match_rank=np.concatenate([r.first_match_rank for r in runs]),
            extra={"num_splits": len(runs),
                   "std": {"cmc": cmc.std(0), "mAP": float(m_ap.std()),
                           "mINP": float(m_inp.std())}})
    return out
