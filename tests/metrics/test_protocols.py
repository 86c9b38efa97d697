import numpy as np
import pytest
import torch

from vidreid.metrics.protocols import (
    FeatureSet,
    aggregate_splits,
    evaluate_protocols,
    frame_index,
    mars_protocol,
)
from vidreid.metrics.rank import evaluate_features


def sets(seed=0, nq=12, ng=30, dim=8):
    g = torch.Generator().manual_seed(seed)
    ids = 6
    q = FeatureSet(torch.randn(nq, dim, generator=g), torch.randn(nq, dim, generator=g),
                   np.arange(nq) % ids, np.zeros(nq, int))
    gal = FeatureSet(torch.randn(ng, dim, generator=g), torch.randn(ng, dim, generator=g),
                     np.arange(ng) % ids, np.ones(ng, int))
    return q, gal


def test_four_protocols_use_the_right_features():
    q, g = sets()
    res = evaluate_protocols(q, g, protocols=("v2v", "i2v", "v2i", "i2i"), max_rank=5)
    for name, qf, gf in [("v2v", q.video, g.video), ("i2v", q.image, g.video),
                         ("v2i", q.video, g.image), ("i2i", q.image, g.image)]:
        ref = evaluate_features(qf, gf, q.pids, g.pids, q.camids, g.camids, max_rank=5)
        assert res[name].mAP == ref.mAP
        np.testing.assert_array_equal(res[name].cmc, ref.cmc)
    assert res["v2v"].mAP != res["i2i"].mAP


def test_missing_modality_is_a_clear_error():
    q, g = sets()
    q_video_only = FeatureSet(q.video, None, q.pids, q.camids)
    with pytest.raises(ValueError, match="needs image features for the query"):
        evaluate_protocols(q_video_only, g, protocols=("i2v",))
    with pytest.raises(ValueError, match="unknown protocol"):
        evaluate_protocols(q, g, protocols=("v2x",))
    with pytest.raises(ValueError, match="one feature per tracklet"):
        FeatureSet(torch.randn(3, 2), None, [1, 2], [0, 0])


def test_aggregate_splits_mean_and_std():
    runs = [evaluate_protocols(*sets(seed), max_rank=5) for seed in range(3)]
    agg = aggregate_splits(runs)["v2v"]
    maps = [r["v2v"].mAP for r in runs]
    assert agg.mAP == pytest.approx(np.mean(maps))
    assert agg.extra["std"]["mAP"] == pytest.approx(np.std(maps))
    assert agg.extra["num_splits"] == 3
    np.testing.assert_allclose(agg.cmc, np.mean([r["v2v"].cmc for r in runs], axis=0))
    with pytest.raises(ValueError, match="at least one"):
        aggregate_splits([])


def test_mars_galleries():
    q = FeatureSet(torch.randn(2, 3), None, np.array([1, 2]), np.array([0, 0]))
    g = FeatureSet(torch.randn(4, 3), None, np.array([1, -1, 2, 0]), np.array([1, 0, 2, 3]))
    tr, junk, ap = mars_protocol(q, g, "torchreid")
    assert list(tr.pids) == [1, 2, 0] and junk == () and ap == "standard"
    off, junk, ap = mars_protocol(q, g, "official")
    assert list(off.pids) == [1, 2, 1, -1, 2, 0] and junk == (-1,) and ap == "trapezoid"
    tkp, junk, ap = mars_protocol(q, g, "tkp")
    assert list(tkp.pids) == [1, 2, 1, 2, 0]
    with pytest.raises(ValueError, match="unknown MARS protocol"):
        mars_protocol(q, g, "matlab")


def test_frame_index():
    assert frame_index(9, "first") == 0 and frame_index(9, "middle") == 4
    assert frame_index(9, "random", np.random.default_rng(0)) == frame_index(
        9, "random", np.random.default_rng(0))
    with pytest.raises(ValueError, match="needs an rng"):
        frame_index(9, "random")
