"""Epoch definitions of the training sampler (data.epoch): identities, tracklets, shuffle,
iterations, and the iterations per epoch the authors' loaders give."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from vidreid.data.samplers import (
    FixedIterationsSampler,
    ShuffleSampler,
    TrackletPKSampler,
    build_train_sampler,
    iterations_per_epoch,
)
from vidreid.engine.config import load_config, sampler_options

# 11 identities with 1..5 tracklets each (identities 3 and 7 have fewer than K=4).
PIDS = [pid for pid in range(11) for _ in range(1 + (pid * 3) % 5)]


def mars_like_pids(num_ids: int = 625, num_tracklets: int = 8298, seed: int = 0) -> list[int]:
    """A MARS-sized training split: 625 identities, 8298 tracklets, 1 to ~60 per identity,
    skewed like MARS (many identities with few tracklets)."""
    rng = np.random.default_rng(seed)
    weights = rng.pareto(1.5, num_ids) + 0.2
    counts = np.maximum(1, np.floor(weights / weights.sum() * num_tracklets)).astype(int)
    while counts.sum() < num_tracklets:  # hand out the rounding remainder
        counts[rng.integers(num_ids)] += 1
    while counts.sum() > num_tracklets:
        i = int(np.argmax(counts))
        counts[i] -= 1
    assert counts.sum() == num_tracklets and counts.min() >= 1
    return [pid for pid, n in enumerate(counts) for _ in range(n)]


def tkp_sampler_length(pids, k):
    """guxinqian/TKP utils/samplers.py:31-38, written out from the formula."""
    total = 0
    for n in Counter(pids).values():
        n = max(n, k)
        total += n - n % k
    return total


def test_mars_sized_iterations_match_the_authors_loaders():
    pids = mars_like_pids()
    # COSAM: RandomIdentitySampler length #ids x K, DataLoader(batch 32, drop_last=True).
    assert iterations_per_epoch(pids, epoch="identities", batch_size=32, num_instances=4,
                                fill_last=False) == 625 * 4 // 32
    # Ours completes the last batch instead of dropping it.
    assert iterations_per_epoch(pids, epoch="identities", batch_size=32,
                                num_instances=4) == -(-625 // 8)
    # TKP: every tracklet in groups of K=4, batch 16, drop_last=True.
    tkp = iterations_per_epoch(pids, epoch="tracklets", batch_size=16, num_instances=4)
    assert tkp == tkp_sampler_length(pids, 4) // 16
    assert tkp > 2 * (625 * 4 // 16)  # well above one visit per identity
    # GLTR: shuffle=True over the 8298 tracklets, batch 10, no drop_last.
    assert iterations_per_epoch(pids, epoch="shuffle", batch_size=10, num_instances=1,
                                drop_last=False) == 830
    assert iterations_per_epoch(pids, epoch="iterations", batch_size=32, num_instances=4,
                                iterations=500) == 500


def test_tracklets_epoch_visits_every_tracklet_in_single_identity_groups():
    sampler = TrackletPKSampler(PIDS, num_instances=2, batch_size=4, drop_last=False)
    flat = list(sampler)
    assert len(flat) == len(sampler) == tkp_sampler_length(PIDS, 2)
    groups = [flat[i : i + 2] for i in range(0, len(flat), 2)]
    assert all(len({PIDS[i] for i in g}) == 1 for g in groups)
    covered = Counter(flat)
    for pid, n in Counter(PIDS).items():
        idx = [i for i, p in enumerate(PIDS) if p == pid]
        used = sum(covered[i] for i in idx)
        assert used == max(n, 2) - max(n, 2) % 2  # TKP drops an identity's odd tracklet
        if n >= 2:
            assert all(covered[i] <= 1 for i in idx)  # without replacement


def test_tracklets_epoch_drop_last_keeps_only_full_batches_and_reshuffles():
    sampler = TrackletPKSampler(PIDS, num_instances=2, batch_size=6, seed=5)
    assert len(sampler) == tkp_sampler_length(PIDS, 2) // 6 * 6
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first


@pytest.mark.parametrize("epoch", ["tracklets", "shuffle", "identities"])
def test_ranks_get_disjoint_equal_shares_of_one_shuffle(epoch):
    shards = [
        list(build_train_sampler(PIDS, epoch=epoch, batch_size=4, num_instances=2, seed=1,
                                 rank=r, world_size=2, drop_last=True))
        for r in range(2)
    ]
    assert len(shards[0]) == len(shards[1]) > 0
    if epoch == "shuffle":  # every tracklet at most once over all ranks
        assert not set(shards[0]) & set(shards[1])


def test_shuffle_epoch_is_a_permutation_with_a_short_last_batch():
    sampler = ShuffleSampler(len(PIDS), batch_size=10, seed=2)
    flat = list(sampler)
    assert sorted(flat) == list(range(len(PIDS)))
    assert iterations_per_epoch(PIDS, epoch="shuffle", batch_size=10, num_instances=1,
                                drop_last=False) == -(-len(PIDS) // 10)


def test_iterations_epoch_yields_exactly_n_full_pk_batches():
    sampler = build_train_sampler(PIDS, epoch="iterations", batch_size=6, num_instances=2,
                                  iterations=9)
    assert isinstance(sampler, FixedIterationsSampler)
    flat = list(sampler)
    assert len(flat) == len(sampler) == 9 * 6  # more than one pass over the 11 identities
    for b in range(9):
        batch = flat[b * 6 : (b + 1) * 6]
        ids = [PIDS[batch[j]] for j in range(0, 6, 2)]
        assert len(set(ids)) == 3
        assert all(PIDS[batch[j]] == PIDS[batch[j + 1]] for j in range(0, 6, 2))


def test_bad_epoch_options_are_explained():
    with pytest.raises(ValueError, match="unknown data.epoch 'epochs'"):
        build_train_sampler(PIDS, epoch="epochs", batch_size=4, num_instances=2)
    with pytest.raises(ValueError, match="needs data.iterations"):
        build_train_sampler(PIDS, epoch="iterations", batch_size=4, num_instances=2)
    with pytest.raises(ValueError, match="only used with data.epoch=iterations"):
        build_train_sampler(PIDS, epoch="tracklets", batch_size=4, num_instances=2,
                            iterations=3)


CONFIGS = Path(__file__).resolve().parents[2] / "vidreid" / "configs"


@pytest.mark.parametrize(
    ("config", "authors"),
    [
        # COSAM: RandomIdentitySampler (#ids x K) + DataLoader(batch 32, drop_last=True)
        ("cosam/mars.yaml", lambda pids: len(set(pids)) * 4 // 32),
        # GLTR (paper stage 2 and the code's one stage): shuffle=True, batch 10, no drop_last
        ("gltr/mars.yaml", lambda pids: -(-len(pids) // 10)),
        ("gltr/mars_e2e.yaml", lambda pids: -(-len(pids) // 10)),
        # TKP: RandomIdentitySampler over every tracklet, batch 16, drop_last=True
        ("tkp/mars.yaml", lambda pids: tkp_sampler_length(pids, 4) // 16),
    ],
)
def test_paper_configs_give_the_authors_iterations_per_epoch(config, authors):
    pids = mars_like_pids()
    cfg = load_config(CONFIGS / config)
    assert iterations_per_epoch(pids, **sampler_options(cfg)) == authors(pids)
