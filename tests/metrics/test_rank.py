import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vidreid.metrics.distance import pairwise_distance
from vidreid.metrics.rank import evaluate_features, evaluate_rank


def brute_force(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, ap="standard",
                junk_pids=()):
    """Plain per-query loop: stable argsort, drop same pid+cam and junk, AP/INP/CMC."""
    cmcs, aps, inps = [], [], []
    for i in range(len(q_pids)):
        order = np.argsort(distmat[i], kind="stable")
        keep = ~(((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
                 | np.isin(g_pids[order], junk_pids))
        match = (g_pids[order][keep] == q_pids[i]).astype(float)
        if q_pids[i] in junk_pids or match.sum() == 0:
            continue
        cum = np.cumsum(match)
        cmc = np.minimum(cum, 1.0)
        cmc = np.concatenate([cmc, np.ones(max(0, max_rank - len(cmc)))])[:max_rank]
        cmcs.append(cmc)
        prec = cum / np.arange(1, len(match) + 1)
        if ap == "standard":
            aps.append((prec * match).sum() / match.sum())
        else:  # the MATLAB loop, literally
            total, old_r, old_p, hits = 0.0, 0.0, 1.0, 0
            for n, m in enumerate(match):
                hits += int(m)
                r, p = hits / match.sum(), hits / (n + 1)
                total += (r - old_r) * (old_p + p) / 2
                old_r, old_p = r, p
            aps.append(total)
        last = np.flatnonzero(match)[-1]
        inps.append(cum[last] / (last + 1))
    return np.mean(cmcs, axis=0), np.mean(aps), np.mean(inps), len(aps)


def random_problem(rng, nq, ng, n_ids, n_cams, int_dist):
    q_pids = rng.integers(-1, n_ids, nq)
    q_pids[0] = n_ids + 1  # an identity absent from the gallery
    g_pids = rng.integers(-1, n_ids, ng)
    q_camids, g_camids = rng.integers(0, n_cams, nq), rng.integers(0, n_cams, ng)
    if int_dist:  # many ties
        d = rng.integers(0, 6, (nq, ng)).astype(np.float32)
    else:
        d = rng.random((nq, ng)).astype(np.float32)
    return d, q_pids, g_pids, q_camids, g_camids


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ap", ["standard", "trapezoid"])
def test_matches_brute_force_with_ties_junk_and_unmatched(seed, ap):
    rng = np.random.default_rng(seed)
    d, qp, gp, qc, gc = random_problem(rng, 40, 70, 12, 3, int_dist=seed % 2 == 0)
    junk = (-1,) if seed % 3 else ()
    res = evaluate_rank(d, qp, gp, qc, gc, max_rank=10, ap=ap, junk_pids=junk)
    cmc, m_ap, m_inp, n = brute_force(d, qp, gp, qc, gc, 10, ap, junk)
    assert res.num_valid_queries == n < 40  # some queries have no match
    np.testing.assert_allclose(res.cmc, cmc, atol=1e-12)
    assert res.mAP == pytest.approx(m_ap, abs=1e-12)
    assert res.mINP == pytest.approx(m_inp, abs=1e-12)


def test_hand_worked_example():
    # Gallery (pid, cam): g0 (1,0) same pid+cam -> dropped; g1 (2,1); g2 (1,1); g3 (3,1);
    # g4 (1,2); g5 (-1,1) junk. Query pid 1, cam 0; distances sort as g0,g1,g2,g5,g3,g4.
    # Kept order: g1(neg) g2(hit) g3(neg) g4(hit)  [g5 junk is skipped]
    # standard AP = (1/2 + 2/4) / 2 = 0.5; INP = 2/4 = 0.5; CMC = [0, 1, 1, ...]
    # trapezoid: rank1 miss (p 0), rank2 hit r .5 p .5 -> .5*(0+.5)/2 = .125;
    #   rank3 p 1/3; rank4 hit r 1 p .5 -> .5*(1/3+.5)/2 = 5/24; AP = 1/8 + 5/24 = 1/3
    d = np.array([[0.0, 0.1, 0.2, 0.4, 0.5, 0.3]])
    args = ([1], [1, 2, 1, 3, 1, -1], [0], [0, 1, 1, 1, 2, 1])
    res = evaluate_rank(d, *args, max_rank=4, junk_pids=(-1,))
    np.testing.assert_allclose(res.cmc, [0, 1, 1, 1])
    assert res.mAP == pytest.approx(0.5) and res.mINP == pytest.approx(0.5)
    assert res.first_match_rank.tolist() == [1]
    res_t = evaluate_rank(d, *args, max_rank=4, ap="trapezoid", junk_pids=(-1,))
    assert res_t.mAP == pytest.approx(1 / 3)
    # without junk, g5 is a negative at rank 3: AP = (1/2 + 2/5) / 2 = 0.45
    assert evaluate_rank(d, *args, max_rank=4).mAP == pytest.approx(0.45)


def test_ties_follow_gallery_index():
    # all distances equal: the stable order is the gallery order
    d = np.zeros((1, 4), dtype=np.float32)
    res = evaluate_rank(d, [7], [3, 7, 3, 7], [0], [1, 1, 1, 1], max_rank=4)
    # kept order: neg, hit, neg, hit -> AP = (1/2 + 2/4)/2
    assert res.first_match_rank.tolist() == [1]
    assert res.mAP == pytest.approx(0.5)


def test_no_valid_query_and_bad_input_raise():
    with pytest.raises(ValueError, match="no query has a match"):
        evaluate_rank(np.zeros((1, 2)), [1], [2, 3], [0], [0, 0])
    with pytest.raises(ValueError, match="g_pids has 1 entries"):
        evaluate_rank(np.zeros((1, 2)), [1], [1], [0], [0, 0])
    with pytest.raises(ValueError, match="unknown ap"):
        evaluate_rank(np.zeros((1, 1)), [1], [1], [0], [1], ap="interp")
    with pytest.raises(ValueError, match="NaN"):
        evaluate_rank(np.array([[np.nan, 1.0]]), [1], [1, 2], [0], [1, 1])


def test_single_gallery_shot_is_deterministic_by_seed():
    rng = np.random.default_rng(3)
    d, qp, gp, qc, gc = random_problem(rng, 30, 90, 6, 3, int_dist=False)
    a = evaluate_rank(d, qp, gp, qc, gc, max_rank=5, single_gallery_shot=True, seed=1)
    b = evaluate_rank(d, qp, gp, qc, gc, max_rank=5, single_gallery_shot=True, seed=1)
    c = evaluate_rank(d, qp, gp, qc, gc, max_rank=5, single_gallery_shot=True, seed=2)
    full = evaluate_rank(d, qp, gp, qc, gc, max_rank=5)
    np.testing.assert_array_equal(a.cmc, b.cmc)
    assert not np.array_equal(a.cmc, c.cmc)
    assert a.mAP == full.mAP  # AP uses the whole gallery
    assert np.all(a.cmc >= full.cmc - 1e-12)  # fewer negatives per identity: easier


def test_single_gallery_shot_one_entry_per_id_equals_plain():
    # with one gallery entry per identity the sampling has no choice
    rng = np.random.default_rng(0)
    d = rng.random((5, 8)).astype(np.float32)
    qp, gp = np.arange(5), np.arange(8)
    qc, gc = np.zeros(5, int), np.ones(8, int)
    a = evaluate_rank(d, qp, gp, qc, gc, max_rank=8, single_gallery_shot=True)
    np.testing.assert_allclose(a.cmc, evaluate_rank(d, qp, gp, qc, gc, max_rank=8).cmc)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_evaluate_features_equals_distmat_path(metric):
    rng = np.random.default_rng(1)
    qf, gf = torch.randn(23, 8), torch.randn(57, 8)
    qp, gp = rng.integers(0, 5, 23), rng.integers(0, 5, 57)
    qc, gc = rng.integers(0, 2, 23), rng.integers(0, 2, 57)
    d = pairwise_distance(qf, gf, metric)
    a = evaluate_rank(d, qp, gp, qc, gc, max_rank=20, junk_pids=(0,))
    b = evaluate_features(qf, gf, qp, gp, qc, gc, metric=metric, max_rank=20,
                          junk_pids=(0,), chunk_size=4)
    np.testing.assert_array_equal(a.cmc, b.cmc)
    assert a.mAP == b.mAP and a.mINP == b.mINP
    np.testing.assert_array_equal(a.valid_queries, b.valid_queries)


problems = st.integers(0, 2**32 - 1).map(np.random.default_rng)


@settings(max_examples=30, deadline=None)
@given(rng=problems)
def test_gallery_permutation_invariance_when_tie_free(rng):
    d, qp, gp, qc, gc = random_problem(rng, 8, 25, 4, 2, int_dist=False)
    if not np.any((qp[:, None] == gp[None]) & (qc[:, None] != gc[None])):
        return
    perm = rng.permutation(25)
    a = evaluate_rank(d, qp, gp, qc, gc, max_rank=10)
    b = evaluate_rank(d[:, perm], qp, gp[perm], qc, gc[perm], max_rank=10)
    np.testing.assert_allclose(a.cmc, b.cmc)
    assert a.mAP == pytest.approx(b.mAP) and a.mINP == pytest.approx(b.mINP)


@settings(max_examples=30, deadline=None)
@given(rng=problems, where=st.floats(0, 2))
def test_adding_a_junk_entry_changes_nothing(rng, where):
    d, qp, gp, qc, gc = random_problem(rng, 8, 25, 4, 2, int_dist=True)
    qp, gp = np.abs(qp), np.abs(gp)  # no -1 except the added entry
    if not np.any((qp[:, None] == gp[None]) & (qc[:, None] != gc[None])):
        return
    a = evaluate_rank(d, qp, gp, qc, gc, max_rank=10, junk_pids=(-1,))
    d2 = np.concatenate([np.full((8, 1), where, dtype=np.float32), d], axis=1)
    b = evaluate_rank(d2, qp, np.r_[-1, gp], qc, np.r_[0, gc], max_rank=10, junk_pids=(-1,))
    np.testing.assert_array_equal(a.cmc, b.cmc)
    assert a.mAP == b.mAP and a.mINP == b.mINP


@settings(max_examples=30, deadline=None)
@given(rng=problems)
def test_cmc_monotone_in_unit_interval(rng):
    d, qp, gp, qc, gc = random_problem(rng, 10, 20, 3, 2, int_dist=True)
    qp, gp = np.abs(qp), np.abs(gp)
    if not np.any((qp[:, None] == gp[None]) & (qc[:, None] != gc[None])):
        return
    res = evaluate_rank(d, qp, gp, qc, gc, max_rank=30)
    assert np.all(np.diff(res.cmc) >= 0) and 0 <= res.cmc[0] and res.cmc[-1] == 1.0
    assert 0 < res.mINP <= 1 and 0 < res.mAP <= 1
