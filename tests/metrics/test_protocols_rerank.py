"""eval.rerank: protocols ranked by k-reciprocal re-ranked distances."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidreid.metrics.protocols import FeatureSet, evaluate_protocols
from vidreid.metrics.rank import evaluate_rank
from vidreid.metrics.rerank import re_ranking

NUM_IDS, PER_ID, DIM = 12, 4, 16
OPTS = {"k1": 6, "k2": 3, "lambda_value": 0.3}


def _sets() -> tuple[FeatureSet, FeatureSet]:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(NUM_IDS, DIM, generator=g)
    pids = np.repeat(np.arange(NUM_IDS), PER_ID)
    feats = centres[pids] + 0.9 * torch.randn(len(pids), DIM, generator=g)
    cams = np.tile(np.arange(PER_ID), NUM_IDS)
    q = cams == 0
    return (FeatureSet(video=feats[q], image=None, pids=pids[q], camids=cams[q]),
            FeatureSet(video=feats[~q], image=None, pids=pids[~q], camids=cams[~q]))


def test_rerank_ranks_by_the_reranked_distances() -> None:
    query, gallery = _sets()
    got = evaluate_protocols(query, gallery, ("v2v",), rerank=OPTS)["v2v"]
    dist = re_ranking(query.video, gallery.video, **OPTS)
    want = evaluate_rank(dist, query.pids, gallery.pids, query.camids, gallery.camids)
    assert got.mAP == pytest.approx(want.mAP) and np.allclose(got.cmc, want.cmc)
    plain = evaluate_protocols(query, gallery, ("v2v",))["v2v"]
    assert got.mAP != pytest.approx(plain.mAP)  # the option really changes the ranking


def test_unknown_rerank_option_is_named() -> None:
    query, gallery = _sets()
    with pytest.raises(ValueError, match="rerank_opts.*kk"):
        evaluate_protocols(query, gallery, ("v2v",), rerank={"kk": 3})


def test_memory_estimate_of_a_small_set_is_small() -> None:
    from vidreid.metrics.rerank import rerank_memory_bytes

    # the default chunk (sized for large sets) must not be charged beyond the rows there are
    assert rerank_memory_bytes(8, 9) < rerank_memory_bytes(800, 900) < 4 * 1024**3
