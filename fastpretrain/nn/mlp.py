"""The transformer MLP: Linear -> GELU -> Linear, with dropout (timm's ``Mlp`` names: fc1, fc2)."""

from __future__ import annotations

import torch
from torch import nn


class Mlp(nn.Module):
    """``drop`` follows fc2; ``hidden_drop`` (default ``drop``, as timm) follows the activation.
    BERT's feed-forward has dropout after fc2 only: ``hidden_drop=0``."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0, hidden_drop: float | None = None, device=None,
                 dtype=None) -> None:  # fmt: skip
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim, device=device, dtype=dtype)
        self.act = nn.GELU()
        self.hidden_drop = nn.Dropout(drop if hidden_drop is None else hidden_drop)
        self.fc2 = nn.Linear(hidden_dim, dim, device=device, dtype=dtype)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.hidden_drop(self.act(self.fc1(x)))))
