"""Rank-sharded, resumable batches from a map-style Dataset.

Epoch e visits the items in the order of a permutation seeded by ``seed + e``; global batch i is
``perm[i*B*W : (i+1)*B*W]`` and rank r takes its r-th slice of B (B per-rank batch, W ranks; the
ragged end of an epoch is dropped). The position is (epoch, items of the epoch consumed), so a
resumed run recomputes the permutation and continues where it stopped, and W ranks with batch B
see exactly what one process with batch W*B sees.

Random augmentations repeat on resume too. Without workers they draw from the main process's RNGs,
which the Trainer checkpoints. With DataLoader workers each batch is fetched under torch's, NumPy's
and Python's RNGs seeded from (seed, epoch, batch, rank), so a batch's draws depend on neither which
worker fetched it nor where the run was resumed (nor on ``num_workers``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


def batch_seed(seed: int, epoch: int, batch: int, rank: int) -> int:
    """A 63-bit seed for one batch of one rank, from a torch Generator so nearby inputs give unrelated seeds."""
    g = torch.Generator().manual_seed((((seed * 1_000_003 + epoch) * 1_000_003 + batch) * 65_537 + rank) % 2**63)
    return int(torch.randint(2**62, (), generator=g))


class _BatchSeeded(Dataset):
    """``dataset`` fetched a batch at a time (DataLoader's ``__getitems__``) under RNGs seeded for
    that batch: keys are (seed, index) pairs, the seed the same for every key of a batch."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, keys: list[tuple[int, int]]) -> list:
        seed = keys[0][0]
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        return [self.dataset[i] for _, i in keys]


class ShardedBatches:
    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        collate_fn: Callable | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        if dataset is None or not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise ValueError(
                f"data: expected a map-style Dataset (with __len__ and __getitem__), got {type(dataset).__name__}"
            )
        if len(dataset) == 0:
            raise ValueError("data: the dataset is empty")
        if len(dataset) < batch_size * world_size:
            raise ValueError(f"data: {len(dataset)} items are fewer than one global batch of "
                             f"{batch_size * world_size} (batch_size {batch_size} x {world_size} ranks)")  # fmt: skip
        self.dataset, self.batch_size, self.rank, self.world_size, self.seed = (
            dataset,
            batch_size,
            rank,
            world_size,
            seed,
        )
        self.loader_kwargs = dict(collate_fn=collate_fn, num_workers=num_workers, pin_memory=pin_memory)
        self.epoch, self.offset = 0, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.offset = state["epoch"], state["offset"]

    def __iter__(self) -> Iterator:
        """Batches forever; the position advances as each batch is handed out."""
        step = self.batch_size * self.world_size
        while True:
            perm = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(self.seed + self.epoch))
            starts = range(self.offset, len(perm) - step + 1, step)
            indices = [perm[s + self.rank * self.batch_size :][: self.batch_size].tolist() for s in starts]
            dataset = self.dataset
            if self.loader_kwargs["num_workers"] > 0:
                dataset = _BatchSeeded(self.dataset)
                seeds = [batch_seed(self.seed, self.epoch, s // step, self.rank) for s in starts]
                indices = [[(seed, i) for i in batch] for seed, batch in zip(seeds, indices)]
            # its own generator: the loader's worker seed must not draw from the global RNG (dropout's)
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            for batch in DataLoader(dataset, batch_sampler=indices, generator=generator, **self.loader_kwargs):
                self.offset += step
                yield batch
            self.epoch, self.offset = self.epoch + 1, 0
