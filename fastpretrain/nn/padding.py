"""Between padded [B, S, ...] batches and packed [total, ...] variable-length ones, so attention
and everything around it skips pad tokens (the ``attention_varlen`` layout)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class Packed(NamedTuple):
    """A packed batch: rows of the real tokens, where they came from, and the sequence bounds."""

    x: torch.Tensor  # [total, ...]
    indices: torch.Tensor  # [total] int64 positions in the flattened [B * S] batch
    cu_seqlens: torch.Tensor  # [B + 1] int32
    max_seqlen: int


def unpad(x: torch.Tensor, mask: torch.Tensor) -> Packed:
    """Pack the tokens of ``x`` [B, S, ...] where the bool ``mask`` [B, S] is True (real tokens),
    keeping their order; row b becomes sequence b (empty if it has no real token)."""
    if mask.dtype != torch.bool or mask.dim() != 2 or tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(f"mask: expected a bool tensor of shape {tuple(x.shape[:2])} (True = real token), "
                         f"got {mask.dtype} {tuple(mask.shape)}")  # fmt: skip
    lengths = mask.sum(1, dtype=torch.int32)
    indices = mask.flatten().nonzero().flatten()
    cu_seqlens = F.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
    return Packed(x.flatten(0, 1)[indices], indices, cu_seqlens, max(int(lengths.max()), 1))


def repad(x: torch.Tensor, indices: torch.Tensor, batch: int, seqlen: int) -> torch.Tensor:
    """The inverse of :func:`unpad`: [total, ...] back to [batch, seqlen, ...], zeros at pad tokens."""
    out = x.new_zeros(batch * seqlen, *x.shape[1:])
    return out.index_put((indices,), x).view(batch, seqlen, *x.shape[1:])
