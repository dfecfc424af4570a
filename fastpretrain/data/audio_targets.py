"""HuBERT-style discrete targets (Hsu et al. 2021): k-means cluster ids of acoustic features, which
the masked model predicts at masked positions. HuBERT's first iteration clusters MFCCs (k = 100);
we cluster log-mel features instead (our substitute: MFCC is a DCT of the same log-mel bands, and no
DCT step is needed for k-means to separate sounds).

The unit is one group: a frame span's ``span x n_mels`` values, so there is one id per masked group
(span 2 at a 10 ms hop is HuBERT's 50 Hz label rate), rather than ids per frame and a vote per
span. Each feature is standardised by the fitting set's mean and std first, so quiet high bands
and loud low ones weigh alike in the distances."""

from __future__ import annotations

import torch
from torch import nn

from fastpretrain.checks import check_int
from fastpretrain.data.kmeans import kmeans, nearest


def _flat(values: torch.Tensor) -> torch.Tensor:
    if not isinstance(values, torch.Tensor) or values.dim() < 2 or not values.is_floating_point():
        got = f"{values.dtype} {tuple(values.shape)}" if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(f"values: expected float group values [..., G], got {got}")
    return values.reshape(-1, values.shape[-1]).float()


class ClusterTargets(nn.Module):
    """``targets(values)``: int64 [...] cluster ids of group values [..., G]: the nearest of the
    ``centres`` [k, G] after standardising with ``mean`` and ``std`` [G]. Buffers, so the targets
    travel with a checkpoint and follow ``.to(device)``."""

    def __init__(self, centres: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        if centres.dim() != 2 or mean.shape != (centres.shape[1],) or std.shape != mean.shape:
            raise ValueError(f"centres, mean, std: expected [k, G], [G], [G], got {tuple(centres.shape)}, "
                             f"{tuple(mean.shape)}, {tuple(std.shape)}")  # fmt: skip
        self.register_buffer("centres", centres.float())
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())

    @property
    def k(self) -> int:
        return len(self.centres)

    @classmethod
    def fit(cls, values: torch.Tensor, k: int, *, max_points: int = 100_000, iters: int = 30,
            seed: int = 0) -> ClusterTargets:  # fmt: skip
        """k-means (:func:`~fastpretrain.data.kmeans.kmeans`, on ``values``' device) of at most
        ``max_points`` groups drawn at random from ``values`` [..., G]."""
        check_int("max_points", max_points, 1)
        x = _flat(values)
        if len(x) > max_points:
            g = torch.Generator().manual_seed(seed)
            x = x[torch.randperm(len(x), generator=g)[:max_points].to(x.device)]
        mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
        result = kmeans((x - mean) / std, k, iters=iters, seed=seed)
        return cls(result.centres, mean, std)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        x = _flat(values)
        if x.shape[1] != self.centres.shape[1]:
            raise ValueError(f"values: expected groups of {self.centres.shape[1]} values, got {x.shape[1]}")
        return nearest((x - self.mean.to(x.device)) / self.std.to(x.device), self.centres).view(values.shape[:-1])


__all__ = ["ClusterTargets"]
