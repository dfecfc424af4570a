"""Negative sampling on the training device: draws from the unigram^0.75 noise distribution
through the same alias table the C++ engine uses, so negatives never cross the PCIe bus."""

from __future__ import annotations

import numpy as np
import torch

from fastpretrain import _C


class AliasSampler:
    """Draws ids with probability ``weights / weights.sum()`` in O(1) each, on ``device``."""

    def __init__(self, weights: np.ndarray, device: torch.device | str, seed: int = 0) -> None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 1 or len(weights) == 0 or not np.isfinite(weights).all() or (weights < 0).any():
            raise ValueError("weights: expected a non-empty 1-D array of finite numbers >= 0")
        thresholds, aliases = _C.alias_table(weights)
        self.device = torch.device(device)
        self.thresholds = torch.from_numpy(thresholds.astype(np.int64)).to(self.device)
        self.aliases = torch.from_numpy(aliases.astype(np.int64)).to(self.device)
        self.generator = torch.Generator(self.device).manual_seed(seed)

    def __call__(self, *shape: int) -> torch.Tensor:
        """int32 ids of the given shape: a uniform column, kept or swapped for its alias by a coin."""
        n = len(self.thresholds)
        column = torch.randint(0, n, shape, device=self.device, generator=self.generator)
        coin = torch.randint(0, 2**32, shape, device=self.device, generator=self.generator)
        return torch.where(coin < self.thresholds[column], column, self.aliases[column]).int()
