"""One process's part of an in-memory split, for data-parallel training (`trainer.devices > 1`).

Training: every process draws the same permutation of (seed, epoch), pads it to a multiple of the number of
processes with its first samples (as torch's `DistributedSampler` does, so every process trains the same number
of equal batches) and takes every `world`-th sample from its rank on. Its batches are slices of
`batch_size / world` of that share, so the processes' batches k together are exactly the samples of a
single process's batch k: the global batch, and so the gradient DDP averages, is the one a single process
would compute. Augmentation draws from a generator of (seed, epoch, rank): each process its own crops.

Evaluation: the split's batches in order, batch i to process i % world, none padded, so after the sums are
reduced across processes every sample counted exactly once, as in a single process.
"""

from __future__ import annotations

from typing import Iterator

import torch

from trainctl.data.splits import AUGMENT_STREAM, Batch, Split, Transform, ceil_div, epoch_generator, epoch_order
from trainctl.errors import UserError


class Shard:
    """A split as process `rank` of `world` sees it. `len()` is the whole split's, so batch counts computed
    with the global `trainer.batch_size` stay right: ceil(ceil(n / world) / (batch / world)) = ceil(n / batch)."""

    def __init__(self, split: Split, rank: int, world: int) -> None:
        if not isinstance(split, Split):
            raise UserError(f"trainer.devices > 1 shards datasets held in memory, and this one is streamed from "
                            f"disk ({type(split).__name__}): set dataset.in_memory=true if it fits, or "
                            "trainer.devices=1.")
        self.split, self.rank, self.world = split, rank, world

    def __len__(self) -> int:
        return len(self.split)

    def indices(self, seed: int, epoch: int) -> torch.Tensor:
        """This process's samples of the epoch, in the order it trains them."""
        n = len(self.split)
        order = epoch_order(n, seed, epoch, self.split.device)
        padded = ceil_div(n, self.world) * self.world
        if padded > n:
            order = torch.cat([order, order.repeat(ceil_div(padded - n, n))[: padded - n]])
        return order[self.rank :: self.world]

    def shuffled(self, batch_size: int, transform: Transform, seed: int, epoch: int, start_step: int = 0
                 ) -> Iterator[Batch]:
        """This process's part of each global batch of `batch_size`; `start_step` skips batches already trained."""
        mine, local = self.indices(seed, epoch), batch_size // self.world
        augment_rng = epoch_generator(seed, epoch, self.split.device, AUGMENT_STREAM, self.rank)
        for start in range(0, len(mine), local):
            idx = mine[start : start + local]
            x = transform(self.split.x[idx], augment_rng)  # drawn for skipped batches too: a resume sees the same
            if start >= start_step * local:
                yield x, self.split.y[idx]

    def ordered(self, batch_size: int, transform: Transform, max_batches: int | None = None) -> Iterator[Batch]:
        """This process's batches of the split's first `max_batches` (all when None), in order, as views."""
        n = len(self.split)
        total = ceil_div(n, batch_size) if max_batches is None else min(ceil_div(n, batch_size), max_batches)
        for i in range(self.rank, total, self.world):
            start = i * batch_size
            yield (transform(self.split.x[start : start + batch_size], None),
                   self.split.y[start : start + batch_size])

    def subset(self, indices: torch.Tensor) -> "Shard":
        return Shard(self.split.subset(indices), self.rank, self.world)
