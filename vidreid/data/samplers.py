"""Training samplers, and what an *epoch* is: the authors of the paper recipes disagree.

``epoch`` (see :func:`build_train_sampler`, config key ``data.epoch``):

- ``"identities"`` (:class:`PKSampler`): each training identity is visited once per epoch, in
  a shuffled order, with K of its tracklets (drawn without replacement, or with replacement
  when it has fewer than K); ``batch_size // K`` identities per batch. This is the
  open-reid ``RandomIdentitySampler`` that COSAM's code uses (InnovArul/vidreid_cosegmentation
  ``src/samplers.py:7-39``: length ``#ids x K``, loader ``drop_last=True``,
  ``src/main_video_person_reid.py:141-148``), so a MARS epoch is ``floor(625 x 4 / 32) = 78``
  batches.
- ``"tracklets"`` (:class:`TrackletPKSampler`): every tracklet of every identity, cut into
  groups of K (an identity with fewer than K tracklets is filled to K with replacement, the
  last incomplete group of an identity is dropped), groups shuffled and concatenated. This is
  TKP's ``RandomIdentitySampler`` (guxinqian/TKP ``utils/samplers.py:13-64``: length
  ``sum over ids of max(n, K) - max(n, K) mod K``; loader ``drop_last=True``,
  ``train.py:121-126``). As in TKP's code, a batch may hold two groups of one identity.
- ``"shuffle"`` (:class:`ShuffleSampler`): a plain shuffled pass over every training
  tracklet, no identity structure: GLTR's loader (kanei1024/GLTR ``train.py:25``,
  ``shuffle=True``, batch 10, no ``drop_last``: ``ceil(8298 / 10) = 830`` batches on MARS).
- ``"iterations"`` (:class:`FixedIterationsSampler`): PK batches as ``"identities"``, but an
  epoch is a fixed number of iterations (``data.iterations``), identities drawn afresh each
  time the previous shuffle is used up.

All samplers are per rank under DDP: ``batch_size`` is per rank, the ranks take disjoint
shares of one shared shuffle (same ``seed``, same ``set_epoch``) and yield the same number of
indices, so collective operations stay in step.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
import torch.utils.data

#: The epoch definitions :func:`build_train_sampler` knows.
EPOCH_MODES = ("identities", "tracklets", "shuffle", "iterations")


def _check_common(batch_size: int, rank: int, world_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(
            f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}"
        )


def _check_pk(num_instances: int, batch_size: int) -> None:
    if num_instances < 1:
        raise ValueError(f"num_instances (K) must be >= 1, got {num_instances}")
    if batch_size < num_instances or batch_size % num_instances:
        nearest = max(1, batch_size // num_instances) * num_instances
        raise ValueError(
            f"batch_size {batch_size} (per rank) must be a positive multiple of "
            f"num_instances {num_instances}; e.g. use {nearest}"
        )


def _group_by_pid(pids: Sequence[int]) -> list[np.ndarray]:
    by_pid: dict[int, list[int]] = defaultdict(list)
    for index, pid in enumerate(pids):
        by_pid[int(pid)].append(index)
    return [np.asarray(by_pid[p], dtype=np.int64) for p in sorted(by_pid)]


def _shard_groups(
    groups: list[np.ndarray], per_rank: int, rank: int, world_size: int
) -> list[np.ndarray]:
    """Rank ``rank``'s share: global batch b is ``groups[b*P*W : (b+1)*P*W]`` and the rank
    takes its r-th block of P; a shorter last global batch is split the same way."""
    mine: list[np.ndarray] = []
    step = per_rank * world_size
    for start in range(0, len(groups), step):
        chunk = groups[start : start + step]
        share = len(chunk) // world_size
        mine.extend(chunk[rank * share : (rank + 1) * share])
    return mine


class _EpochSampler(torch.utils.data.Sampler[int]):
    """What every training sampler shares: this rank's place under DDP, the epoch (the
    order is a function of (seed, epoch) only) and whether a short last batch is dropped."""

    def __init__(self, batch_size: int, seed: int, rank: int, world_size: int,
                 drop_last: bool) -> None:
        _check_common(batch_size, rank, world_size)
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for ``epoch``; the order is a function of (seed, epoch) only."""
        self.epoch = epoch


class _PKBase(_EpochSampler):
    """Batches of ``batch_size // num_instances`` identities x K tracklets."""

    def __init__(self, pids: Sequence[int], num_instances: int, batch_size: int, seed: int,
                 rank: int, world_size: int, drop_last: bool) -> None:
        _check_pk(num_instances, batch_size)
        super().__init__(batch_size, seed, rank, world_size, drop_last)
        self.num_instances = num_instances
        self.num_pids_per_batch = batch_size // num_instances  # P (per rank)
        self._index_by_pid = _group_by_pid(pids)


class PKSampler(_PKBase):
    """``epoch="identities"``: groups of K per identity, P identities per batch, each
    identity once per epoch (COSAM's / open-reid's ``RandomIdentitySampler``).

    Use it as ``DataLoader(ds, batch_size=batch_size, sampler=sampler)`` with the *same*
    ``batch_size``. ``batch_size`` is per rank (as in torchreid / fastreid): each rank's
    batch is ``P = batch_size // num_instances`` distinct identities x K tracklets, and the
    global batch is ``world_size`` times larger. Ranks get disjoint identity groups of
    equal length, all drawn from one shared shuffle, so every rank must use the same
    ``seed`` and call ``set_epoch`` with the same epoch.

    ``drop_last=True``: every batch is full. With ``fill_last=True`` (ours) identities
    left over after the last full global batch are completed with identities drawn at
    random from the rest of the epoch (never ones already in that batch), so no identity is
    skipped; with ``fill_last=False`` they are dropped, as the authors' ``DataLoader(...,
    drop_last=True)`` does (COSAM ``src/main_video_person_reid.py:147``): at most
    ``P x world_size - 1`` identities miss that epoch, and the epoch has
    ``floor(#ids / (P x world_size))`` batches. ``drop_last=False``: the leftover identities
    form a shorter last batch on each rank (padded only so ranks stay equal in length).
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
        fill_last: bool = True,
    ) -> None:
        super().__init__(pids, num_instances, batch_size, seed, rank, world_size, drop_last)
        num_ids = len(self._index_by_pid)
        needed = self.num_pids_per_batch * world_size
        if num_ids < needed:
            raise ValueError(
                f"PK sampling needs at least P x world_size = {self.num_pids_per_batch} x "
                f"{world_size} = {needed} identities, the dataset has {num_ids}; "
                "lower batch_size or raise num_instances"
            )
        if drop_last and not fill_last:
            self._ids_per_epoch = num_ids // needed * needed  # the tail is dropped
        else:
            group = needed if drop_last else world_size
            self._ids_per_epoch = math.ceil(num_ids / group) * group  # after padding
        self._ids_per_rank = self._ids_per_epoch // world_size

    def __len__(self) -> int:
        return self._ids_per_rank * self.num_instances

    def _epoch_identity_order(self, rng: np.random.Generator) -> np.ndarray:
        """Positions into the identity list: a shuffle, padded so global batches fill."""
        num_ids = len(self._index_by_pid)
        order = rng.permutation(num_ids)[: self._ids_per_epoch]
        num_pad = self._ids_per_epoch - num_ids
        if num_pad:
            # The padding joins the last (partial) global batch: draw it from identities
            # outside that batch so identities stay distinct within every batch.
            global_batch = self.num_pids_per_batch * self.world_size
            tail = num_ids % global_batch
            pool = order[: num_ids - tail]
            order = np.concatenate([order, rng.choice(pool, size=num_pad, replace=False)])
        return order

    def _indices(self, key: Sequence[int]) -> np.ndarray:
        """This rank's indices for the shuffle seeded by ``key``."""
        rng = np.random.default_rng(list(key))
        order = self._epoch_identity_order(rng)
        k = self.num_instances
        groups = []
        for pos in order:
            candidates = self._index_by_pid[pos]
            groups.append(rng.choice(candidates, size=k, replace=len(candidates) < k))
        mine = _shard_groups(groups, self.num_pids_per_batch, self.rank, self.world_size)
        return np.concatenate(mine)

    def __iter__(self) -> Iterator[int]:
        yield from (int(i) for i in self._indices([self.seed, self.epoch]))


class TrackletPKSampler(_PKBase):
    """``epoch="tracklets"``: every tracklet of every identity once per epoch, in groups of
    K of one identity, ``batch_size // K`` groups per batch (TKP's sampler, see the module
    docstring).

    Per epoch each identity's tracklets are shuffled (an identity with fewer than K is
    drawn up to K with replacement) and cut into groups of K; the incomplete last group of
    an identity is dropped, as in TKP. All groups are then shuffled together, so a batch may
    contain two groups of one identity, as in TKP's code. ``drop_last=True``: the groups
    that do not fill a last global batch are dropped (TKP's loader ``drop_last=True``);
    ``drop_last=False``: they form a shorter last batch, padded with random groups only so
    the ranks stay equal in length.
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
        super().__init__(pids, num_instances, batch_size, seed, rank, world_size, drop_last)
        self.groups_per_batch = self.num_pids_per_batch  # P groups of K (per rank)
        k = num_instances
        self.num_groups = sum(max(len(ix), k) // k for ix in self._index_by_pid)
        global_batch = self.groups_per_batch * world_size
        if drop_last:
            self._groups_per_epoch = self.num_groups // global_batch * global_batch
        else:
            self._groups_per_epoch = math.ceil(self.num_groups / world_size) * world_size
        if self._groups_per_epoch == 0:
            raise ValueError(
                f"'tracklets' epochs need at least {global_batch} groups of K={k} tracklets "
                f"(P x world_size) for one full batch, the dataset gives {self.num_groups}; "
                "lower batch_size or set data.drop_last=false"
            )

    def __len__(self) -> int:
        return self._groups_per_epoch // self.world_size * self.num_instances

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        k = self.num_instances
        groups: list[np.ndarray] = []
        for ix in self._index_by_pid:
            ix = rng.choice(ix, size=k, replace=True) if len(ix) < k else rng.permutation(ix)
            groups.extend(ix[j * k : (j + 1) * k] for j in range(len(ix) // k))
        groups = [groups[i] for i in rng.permutation(len(groups))]
        if self._groups_per_epoch <= len(groups):
            groups = groups[: self._groups_per_epoch]
        else:
            extra = rng.choice(len(groups), size=self._groups_per_epoch - len(groups))
            groups += [groups[i] for i in extra]
        mine = _shard_groups(groups, self.groups_per_batch, self.rank, self.world_size)
        yield from (int(i) for i in np.concatenate(mine))


class ShuffleSampler(_EpochSampler):
    """``epoch="shuffle"``: every training tracklet once per epoch in a random order, no
    identity structure (GLTR's ``DataLoader(shuffle=True)``).

    Under DDP the shared permutation is dealt round-robin to the ranks; ``drop_last=False``
    pads it (with its own first indices, as ``DistributedSampler`` does) to a multiple of
    ``world_size``, ``drop_last=True`` truncates it to whole global batches.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        super().__init__(batch_size, seed, rank, world_size, drop_last)
        self.num_samples = num_samples
        if drop_last:
            global_batch = batch_size * world_size
            self._total = num_samples // global_batch * global_batch
        else:
            self._total = math.ceil(num_samples / world_size) * world_size
        if self._total == 0:
            raise ValueError(
                f"{num_samples} training tracklets do not fill one batch of {batch_size} x "
                f"{world_size} ranks; lower batch_size or set data.drop_last=false"
            )

    def __len__(self) -> int:
        return self._total // self.world_size

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.num_samples)
        if self._total > len(order):
            order = np.resize(order, self._total)  # repeats the first indices
        order = order[: self._total]
        yield from (int(i) for i in order[self.rank :: self.world_size])


class FixedIterationsSampler(torch.utils.data.Sampler[int]):
    """``epoch="iterations"``: ``iterations`` PK batches per epoch (every batch full).

    Draws from successive :class:`PKSampler` shuffles (keyed by seed, epoch and a running
    counter) until ``iterations x batch_size`` indices are yielded, so identity visits stay
    balanced whatever the epoch length.
    """

    def __init__(self, base: PKSampler, iterations: int) -> None:
        if iterations < 1:
            raise ValueError(f"data.iterations must be >= 1, got {iterations}")
        if not base.drop_last:
            raise ValueError("'iterations' epochs need full PK batches (drop_last=True)")
        self.base = base
        self.iterations = iterations
        self.drop_last = True  # every batch is full
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.iterations * self.base.batch_size

    def __iter__(self) -> Iterator[int]:
        needed = len(self)
        draw = 0
        while needed > 0:
            chunk = self.base._indices([self.base.seed, self.epoch, draw])[:needed]
            needed -= len(chunk)
            draw += 1
            yield from (int(i) for i in chunk)


def build_train_sampler(
    pids: Sequence[int],
    *,
    epoch: str = "identities",
    batch_size: int,
    num_instances: int,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = True,
    fill_last: bool = True,
    iterations: int | None = None,
) -> torch.utils.data.Sampler[int]:
    """The training sampler for an epoch definition (``EPOCH_MODES``, module docstring).

    ``pids``: the training tracklets' identity labels, in dataset order. The returned
    sampler has ``set_epoch`` and a ``drop_last`` attribute the ``DataLoader`` must copy
    (with the same ``batch_size``). ``num_instances`` (K) is ignored by ``"shuffle"``;
    ``fill_last`` is used only by ``"identities"`` (see :class:`PKSampler`); ``iterations``
    is used (and required) only by ``"iterations"``.
    """
    if epoch not in EPOCH_MODES:
        raise ValueError(f"unknown data.epoch {epoch!r}; use one of {', '.join(EPOCH_MODES)}")
    if epoch != "iterations" and iterations is not None:
        raise ValueError(
            f"data.iterations={iterations} is only used with data.epoch=iterations "
            f"(got data.epoch={epoch}); set it to null or change data.epoch"
        )
    common = dict(seed=seed, rank=rank, world_size=world_size, drop_last=drop_last)
    if epoch == "shuffle":
        return ShuffleSampler(len(pids), batch_size, **common)
    if epoch == "tracklets":
        return TrackletPKSampler(pids, num_instances, batch_size, **common)
    if epoch == "identities":
        return PKSampler(pids, num_instances, batch_size, fill_last=fill_last, **common)
    base = PKSampler(pids, num_instances, batch_size, **common)
    if iterations is None:
        raise ValueError("data.epoch=iterations needs data.iterations (batches per epoch)")
    return FixedIterationsSampler(base, iterations)


def iterations_per_epoch(
    pids: Sequence[int],
    *,
    epoch: str = "identities",
    batch_size: int,
    num_instances: int,
    world_size: int = 1,
    drop_last: bool = True,
    fill_last: bool = True,
    iterations: int | None = None,
) -> int:
    """Optimizer steps per epoch on each rank for this epoch definition and training set.

    Equal to ``len(DataLoader(..., sampler=build_train_sampler(...), drop_last=drop_last))``.
    """
    sampler = build_train_sampler(
        pids, epoch=epoch, batch_size=batch_size, num_instances=num_instances,
        world_size=world_size, drop_last=drop_last, fill_last=fill_last, iterations=iterations,
    )
    n = len(sampler)
    return n // batch_size if drop_last else math.ceil(n / batch_size)
