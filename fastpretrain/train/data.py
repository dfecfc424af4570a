"""Rank-sharded, resumable batches from a map-style Dataset.

Epoch e visits the items in the order of a permutation seeded by ``seed + e``; global batch i is
``perm[i*B*W : (i+1)*B*W]`` and rank r takes its r-th slice of B (B per-rank batch, W ranks; the
ragged end of an epoch is dropped). The position is (epoch, items of the epoch consumed), so a
resumed run recomputes the permutation and continues where it stopped, and W ranks with batch B
see exactly what one process with batch W*B sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset


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
            # its own generator: the loader's worker seed must not draw from the global RNG (dropout's)
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            for batch in DataLoader(self.dataset, batch_sampler=indices, generator=generator, **self.loader_kwargs):
                self.offset += step
                yield batch
            self.epoch, self.offset = self.epoch + 1, 0
