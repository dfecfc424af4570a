"""LayerScale (Touvron et al. 2021, CaiT): a learned per-channel scale on a residual branch."""

from __future__ import annotations

import torch
from torch import nn


class LayerScale(nn.Module):
    """``x * gamma`` with ``gamma`` [dim] starting at ``init_values`` (timm's name, so timm weights load)."""

    def __init__(self, dim: int, init_values: float = 1e-5, device=None, dtype=None) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values), device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma
