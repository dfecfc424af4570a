"""Multi-head self-attention with a fused QKV projection, on fastpretrain's attention op, for
padded batches (optional key padding mask, causal) and packed variable-length ones."""

from __future__ import annotations

import torch
from torch import nn

from fastpretrain.kernels.contract import HEAD_DIMS
from fastpretrain.ops import attention, attention_varlen


def check_heads(name: str, dim: int, heads: int) -> None:
    """``heads`` must split ``dim`` into heads of a width the attention op supports (ValueError naming ``name``)."""
    if dim % heads or dim // heads not in HEAD_DIMS:
        raise ValueError(f"{name}: {heads} heads split width {dim} into heads of {dim / heads:g}; "
                         f"the attention op needs a head width in {HEAD_DIMS}")  # fmt: skip


class MultiheadSelfAttention(nn.Module):
    """timm-style attention block: x -> qkv Linear -> attention -> proj Linear.

    Args:
        dim: model width E; num_heads: H, with E / H in ``HEAD_DIMS``.
        qkv_bias: bias on the QKV projection. attn_drop: attention dropout (training mode only).
        proj_drop: dropout after the output projection.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, device=None, dtype=None):  # fmt: skip
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"num_heads: {num_heads} does not divide dim {dim}")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias, device=device, dtype=dtype)
        self.proj = nn.Linear(dim, dim, device=device, dtype=dtype)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None, causal: bool = False,
                cu_seqlens: torch.Tensor | None = None, max_seqlen: int | None = None,
                attn_bias: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """x: [B, S, E] with an optional bool [B, S] ``key_padding_mask`` (True = real token) and an
        additive ``attn_bias`` [H, S, S] or [B, H, S, S] (BEiT's relative positions), or a packed
        [total, E] with ``cu_seqlens`` and ``max_seqlen`` (see :func:`fastpretrain.nn.unpad`)."""
        dropout_p = self.attn_drop if self.training else 0.0
        if cu_seqlens is not None:
            if attn_bias is not None:
                raise ValueError("attn_bias: not supported on packed (cu_seqlens) batches")
            if max_seqlen is None:
                raise ValueError("max_seqlen: required with cu_seqlens")
            q, k, v = self.qkv(x).view(x.shape[0], 3, self.num_heads, self.head_dim).unbind(1)
            out = attention_varlen(q, k, v, cu_seqlens, max_seqlen, causal=causal, dropout_p=dropout_p)
            return self.proj_drop(self.proj(out.reshape(x.shape)))
        b, s, e = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = attention(q, k, v, causal=causal, key_padding_mask=key_padding_mask, dropout_p=dropout_p,
                        attn_bias=attn_bias)  # fmt: skip
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, s, e)))
