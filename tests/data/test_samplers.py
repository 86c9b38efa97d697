from collections import Counter

import pytest

from vidreid.data.samplers import PKSampler

# 11 identities with 1..5 tracklets each (identities 3 and 7 have fewer than K=4).
PIDS = [pid for pid in range(11) for _ in range(1 + (pid * 3) % 5)]


def batches(sampler: PKSampler, batch_size: int) -> list[list[int]]:
    flat = list(sampler)
    return [flat[i : i + batch_size] for i in range(0, len(flat), batch_size)]


def pid_groups(batch: list[int], k: int) -> list[int]:
    """The identity of each K-group in a batch, checking each group is one identity."""
    groups = [batch[i : i + k] for i in range(0, len(batch), k)]
    pids = []
    for group in groups:
        assert len({PIDS[i] for i in group}) == 1
        pids.append(PIDS[group[0]])
    return pids


def test_batches_are_p_distinct_ids_by_k_and_cover_every_id():
    sampler = PKSampler(PIDS, num_instances=4, batch_size=12)
    out = batches(sampler, 12)
    assert len(list(sampler)) == len(sampler) == 4 * 3 * 4  # ceil(11 / 3) = 4 batches
    seen = set()
    for batch in out:
        assert len(batch) == 12
        ids = pid_groups(batch, 4)
        assert len(ids) == 3 and len(set(ids)) == 3
        seen.update(ids)
    assert seen == set(range(11))


def test_identities_with_few_tracklets_are_sampled_with_replacement():
    sampler = PKSampler(PIDS, num_instances=4, batch_size=8)
    counts = Counter(PIDS[i] for i in sampler)
    assert counts[0] >= 4 and PIDS.count(0) == 1  # one tracklet, used K times
    for pid in range(11):  # identities with >= K tracklets never repeat one within a group
        idx = [i for i in sampler if PIDS[i] == pid]
        if PIDS.count(pid) >= 4:
            assert len(set(idx[:4])) == 4


def test_set_epoch_reshuffles_deterministically():
    a = PKSampler(PIDS, num_instances=2, batch_size=4, seed=3)
    b = PKSampler(PIDS, num_instances=2, batch_size=4, seed=3)
    first = list(a)
    assert first == list(b) == list(a)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b) != first
    c = PKSampler(PIDS, num_instances=2, batch_size=4, seed=4)
    assert list(c) != first


def rank_outputs(pids, k, batch_size, world, drop_last=True, epoch=5):
    samplers = [
        PKSampler(pids, k, batch_size, seed=1, rank=r, world_size=world, drop_last=drop_last)
        for r in range(world)
    ]
    for s in samplers:
        s.set_epoch(epoch)
    outs = [list(s) for s in samplers]
    assert all(len(out) == len(samplers[0]) for out in outs)  # equal length on every rank
    return outs


def test_ranks_are_disjoint_equal_and_together_cover_every_identity_once():
    pids12 = PIDS + [11, 11]  # 12 identities: P=2 x 2 ranks divides evenly, no padding
    outs = rank_outputs(pids12, 2, 4, world=2)
    ids = [[pids12[out[i]] for i in range(0, len(out), 2)] for out in outs]
    assert not set(ids[0]) & set(ids[1])
    assert not set(outs[0]) & set(outs[1])
    assert sorted(ids[0] + ids[1]) == list(range(12))
    # each rank's local batch is still P=2 distinct identities x K=2
    for out in outs:
        for b in range(0, len(out), 4):
            group_ids = [pids12[out[b]], pids12[out[b + 2]]]
            assert pids12[out[b + 1]] == group_ids[0] and pids12[out[b + 3]] == group_ids[1]
            assert group_ids[0] != group_ids[1]


@pytest.mark.parametrize(
    ("drop_last", "batch_lens", "total_ids"),
    [
        (True, [8, 8], 16),  # 11 ids padded to 2 full global batches of P x W = 4 x 2
        (False, [8, 4], 12),  # 11 ids padded only to a multiple of W = 2; short last batch
    ],
)
def test_ranks_pad_the_tail_only_as_needed_and_cover_every_identity(
    drop_last, batch_lens, total_ids
):
    outs = rank_outputs(PIDS, 2, 8, world=2, drop_last=drop_last)
    seen = Counter()
    for out in outs:
        local = [out[i : i + 8] for i in range(0, len(out), 8)]
        assert [len(b) for b in local] == batch_lens
        for batch in local:
            ids = pid_groups(batch, 2)
            assert len(set(ids)) == len(ids)
            seen.update(ids)
    assert set(seen) == set(range(11))
    assert sum(seen.values()) == total_ids and max(seen.values()) == 2


def test_drop_last_false_keeps_a_short_last_batch_without_padding_on_one_rank():
    sampler = PKSampler(PIDS, num_instances=2, batch_size=6, drop_last=False)
    out = batches(sampler, 6)
    assert [len(b) for b in out] == [6, 6, 6, 4]  # 11 ids = 3 + 3 + 3 + 2
    assert sorted(pid for b in out for pid in pid_groups(b, 2)) == list(range(11))


def test_invalid_arguments_are_explained():
    with pytest.raises(ValueError, match="multiple of num_instances 4"):
        PKSampler(PIDS, num_instances=4, batch_size=10)
    with pytest.raises(ValueError, match="at least P x world_size = 4 x 3 = 12 identities"):
        PKSampler(PIDS, num_instances=2, batch_size=8, world_size=3)
    with pytest.raises(ValueError, match="rank"):
        PKSampler(PIDS, num_instances=2, batch_size=4, rank=2, world_size=2)
    with pytest.raises(ValueError, match="num_instances"):
        PKSampler(PIDS, num_instances=0, batch_size=4)
