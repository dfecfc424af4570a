"""Stochastic depth (Huang et al. 2016): a residual branch dropped per sample, for dense and packed batches."""

from __future__ import annotations

import torch
from torch import nn


class DropPath(nn.Module):
    """Zero the whole branch of a sample with probability ``p`` and scale the others by 1 / (1 - p)
    (training mode only). A packed [total, ...] input with ``cu_seqlens`` drops per sequence."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"p: expected a probability in [0, 1), got {p!r}")
        self.p = p

    def forward(self, x: torch.Tensor, cu_seqlens: torch.Tensor | None = None) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        samples = x.shape[0] if cu_seqlens is None else cu_seqlens.numel() - 1
        keep = x.new_empty(samples).bernoulli_(1 - self.p)
        if cu_seqlens is not None:
            keep = keep.repeat_interleave(cu_seqlens.diff().long(), output_size=x.shape[0])
        return x * keep.view(-1, *(1,) * (x.dim() - 1)) / (1 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
