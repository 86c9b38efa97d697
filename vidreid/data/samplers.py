"""PK identity sampling: batches of P identities x K tracklets, for triplet-style losses.

Follows the video re-ID papers' ``RandomIdentitySampler`` (Video-Person-ReID, COSAM, TKP):
an epoch visits every identity once, in a shuffled order, and each visit contributes K
tracklets of that identity (drawn without replacement, or with replacement when the
identity has fewer than K). So an epoch is ``ceil(#ids / P)`` batches, not a pass over
every tracklet.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
import torch.utils.data


class PKSampler(torch.utils.data.Sampler[int]):
    """Yields dataset indices in groups of K per identity, P identities per batch.

    Use it as ``DataLoader(ds, batch_size=batch_size, sampler=sampler)`` with the *same*
    ``batch_size``. ``batch_size`` is per rank (as in torchreid / fastreid): each rank's
    batch is ``P = batch_size // num_instances`` distinct identities x K tracklets, and the
    global batch is ``world_size`` times larger. Ranks get disjoint identity groups of
    equal length, all drawn from one shared shuffle, so every rank must use the same
    ``seed`` and call ``set_epoch`` with the same epoch.

    ``drop_last=True``: every batch is full. Identities left over after the last full
    global batch are completed with identities drawn at random from the rest of the epoch
    (never ones already in that batch), so no identity is skipped. ``drop_last=False``: the
    leftover identities form a shorter last batch on each rank (padded only so ranks stay
    equal in length). Either way every identity appears at least once per epoch.
    """

    def __init__(
        self,
        pids: Sequence[int],
        num_instances: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ) -> None:
        if num_instances < 1:
            raise ValueError(f"num_instances (K) must be >= 1, got {num_instances}")
        if batch_size < num_instances or batch_size % num_instances:
            nearest = max(1, batch_size // num_instances) * num_instances
            raise ValueError(
                f"batch_size {batch_size} (per rank) must be a positive multiple of "
                f"num_instances {num_instances}; e.g. use {nearest}"
            )
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}"
            )
        by_pid: dict[int, list[int]] = defaultdict(list)
        for index, pid in enumerate(pids):
            by_pid[int(pid)].append(index)
        self.num_instances = num_instances
        self.batch_size = batch_size
        self.num_pids_per_batch = batch_size // num_instances  # P (per rank)
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.epoch = 0
        self._pids = sorted(by_pid)
        self._index_by_pid = [np.asarray(by_pid[p], dtype=np.int64) for p in self._pids]
        needed = self.num_pids_per_batch * world_size
        if len(self._pids) < needed:
            raise ValueError(
                f"PK sampling needs at least P x world_size = {self.num_pids_per_batch} x "
                f"{world_size} = {needed} identities, the dataset has {len(self._pids)}; "
                "lower batch_size or raise num_instances"
            )
        num_ids = len(self._pids)
        group = needed if drop_last else world_size
        self._ids_per_epoch = math.ceil(num_ids / group) * group  # after padding
        self._ids_per_rank = self._ids_per_epoch // world_size

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for ``epoch``; the order is a function of (seed, epoch) only."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self._ids_per_rank * self.num_instances

    def _epoch_identity_order(self, rng: np.random.Generator) -> np.ndarray:
        """Positions into ``self._pids``: a shuffle, padded so global batches fill evenly."""
        num_ids = len(self._pids)
        order = rng.permutation(num_ids)
        num_pad = self._ids_per_epoch - num_ids
        if num_pad:
            # The padding joins the last (partial) global batch: draw it from identities
            # outside that batch so identities stay distinct within every batch.
            global_batch = self.num_pids_per_batch * self.world_size
            tail = num_ids % global_batch
            pool = order[: num_ids - tail]
            order = np.concatenate([order, rng.choice(pool, size=num_pad, replace=False)])
        return order

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = self._epoch_identity_order(rng)
        groups = []
        k = self.num_instances
        for pos in order:
            candidates = self._index_by_pid[pos]
            groups.append(rng.choice(candidates, size=k, replace=len(candidates) < k))
        # Global batch b holds identities order[b*P*W : (b+1)*P*W]; rank r takes its r-th
        # block of P. The (shorter) last global batch is split the same way.
        p, w = self.num_pids_per_batch, self.world_size
        mine: list[np.ndarray] = []
        for start in range(0, len(order), p * w):
            chunk = groups[start : start + p * w]
            share = len(chunk) // w
            mine.extend(chunk[self.rank * share : (self.rank + 1) * share])
        yield from (int(i) for i in np.concatenate(mine))
