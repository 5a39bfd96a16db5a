"""Duration-bucketed batches: a frame budget per batch, deterministic by (seed, epoch), split by rank.

`plan_batches` is the pure function: it returns the *global* batches of one epoch (lists of
item indices, the same on every rank), and `rank_share` cuts one global batch into the part a
rank trains on. Because every rank computes the same plan, a run on W processes with a budget
of F frames each sees exactly the batches of one process with W x F frames (the DDP test
relies on it), and resuming needs only (epoch, batch index).

Decisions:

* Budget = padded frames: `max(length) x items <= max_frames x world` (padding is what costs).
  A batch always holds at least `world` items so that no rank is idle; one item longer than
  the budget still forms a batch of its own (with world - 1 neighbours), it is never dropped.
* Fixed-count mode (`max_frames = 0`): consecutive chunks of `batch_size x world` items of a
  seeded permutation. An epoch tail with fewer than `world` items waits for the next epoch's
  permutation (each epoch reshuffles, so no item is left out for good).
* Bucketing: the permutation is cut into pools of `pool` items, each pool sorted by length and
  packed greedily, then the batch order is shuffled: similar lengths share a batch (little
  padding) while an epoch still mixes lengths over time.
* Within a global batch, items are sorted by length and dealt round-robin to ranks, so every
  rank gets a similar share of frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np


def plan_batches(lengths: Sequence[int], seed: int, epoch: int, world: int = 1, batch_size: int = 8,
                 max_frames: int = 0, pool: int = 1000) -> list[list[int]]:
    """The global batches of epoch `epoch` (see the module docstring)."""
    n = len(lengths)
    if n == 0:
        raise ValueError("no items to batch")
    if n < world:
        raise ValueError(f"{n} items cannot feed {world} ranks")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch)])
    perm = rng.permutation(n)
    lens = np.asarray(lengths, dtype=np.int64)
    if max_frames <= 0:
        size = batch_size * world
        return [perm[i:i + size].tolist() for i in range(0, n, size) if len(perm[i:i + size]) >= world]
    budget = max_frames * world
    batches: list[list[int]] = []
    for s in range(0, n, pool):
        chunk = perm[s:s + pool]
        chunk = chunk[np.argsort(lens[chunk], kind="stable")]
        cur: list[int] = []
        longest = 0
        for i in chunk.tolist():
            m = max(longest, int(lens[i]))
            if cur and len(cur) >= world and m * (len(cur) + 1) > budget:
                batches.append(cur)
                cur, m = [], int(lens[i])
            cur.append(i)
            longest = m
        if cur:
            if len(cur) < world and batches:
                batches[-1].extend(cur)  # too few for every rank: join the previous batch of this pool
            elif len(cur) >= world:
                batches.append(cur)
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def rank_share(batch: Sequence[int], lengths: Sequence[int], rank: int, world: int) -> list[int]:
    """The items of a global batch that `rank` trains on (length-sorted, dealt round-robin)."""
    srt = sorted(batch, key=lambda i: (int(lengths[i]), i))
    return srt[rank::world]


@dataclass
class DurationBatchSampler:
    """An endless stream of this rank's micro-batches from (epoch, index) on.

    Yields lists of `(item, n_global)` pairs: the item index and the number of items in the
    whole global batch (all ranks), which the loop needs to weight each rank's loss.
    """

    lengths: Sequence[int]
    seed: int = 0
    batch_size: int = 8
    max_frames: int = 0
    rank: int = 0
    world: int = 1
    pool: int = 1000
    epoch: int = 0
    index: int = 0  # the next global batch of `epoch`

    def plan(self, epoch: int) -> list[list[int]]:
        return plan_batches(self.lengths, self.seed, epoch, self.world, self.batch_size, self.max_frames, self.pool)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, index = self.epoch, self.index
        while True:
            batches = self.plan(epoch)
            if not batches:
                raise ValueError("the batch plan is empty (fewer items than ranks?)")
            for b in batches[index:]:
                yield [(i, len(b)) for i in rank_share(b, self.lengths, self.rank, self.world)]
            epoch, index = epoch + 1, 0


def position_after(lengths: Sequence[int], seed: int, world: int, batch_size: int, max_frames: int,
                   epoch: int, index: int, consumed: int, pool: int = 1000) -> tuple[int, int]:
    """(epoch, index) after `consumed` more global batches from (epoch, index)."""
    while consumed > 0:
        n = len(plan_batches(lengths, seed, epoch, world, batch_size, max_frames, pool))
        take = min(consumed, n - index)
        consumed -= take
        index += take
        if index >= n:
            epoch, index = epoch + 1, 0
    return epoch, index


__all__ = ["plan_batches", "rank_share", "DurationBatchSampler", "position_after"]
