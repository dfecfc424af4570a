"""Weight initialisations shared by the models."""

from __future__ import annotations

from torch import nn


def init_linear_and_norms(module: nn.Module) -> None:
    """MAE's rule over every submodule of ``module``: Xavier-uniform Linear weights, zero biases,
    unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
