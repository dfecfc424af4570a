"""ELMo's scalar mix (Peters et al. 2018, eq. 1): a task's contextual vector as gamma times a
softmax-normalised weighted sum of the model's layers, so the task learns which layers it uses."""

from __future__ import annotations

import torch
from torch import nn


class ScalarMix(nn.Module):
    """``gamma * sum_k softmax(s)_k * layers[k]`` over ``num_layers`` tensors of one shape; with
    ``layer_norm`` each layer is first normalised over its last dimension (AllenNLP's
    ``do_layer_norm``, without learned affine parameters). ``initial`` sets s (default all 0:
    the plain mean)."""

    def __init__(self, num_layers: int, layer_norm: bool = False, initial: list[float] | None = None) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers: expected an int >= 1, got {num_layers!r}")
        initial = [0.0] * num_layers if initial is None else list(initial)
        if len(initial) != num_layers:
            raise ValueError(f"initial: expected {num_layers} values, got {len(initial)}")
        self.scalars = nn.Parameter(torch.tensor(initial, dtype=torch.float32))
        self.gamma = nn.Parameter(torch.ones(()))
        self.layer_norm = layer_norm

    def forward(self, layers: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """``layers``: a list of [..., D] tensors or one [K, ..., D] tensor."""
        if len(layers) != len(self.scalars):
            raise ValueError(f"layers: expected {len(self.scalars)} layers, got {len(layers)}")
        weights = torch.softmax(self.scalars, 0)
        mixed = 0
        for w, layer in zip(weights, layers):
            mixed = mixed + w * (nn.functional.layer_norm(layer, layer.shape[-1:]) if self.layer_norm else layer)
        return self.gamma * mixed
