"""Rotary position embeddings (RoPE, Su et al. 2021) for causal language models: queries and keys
are rotated by their position before attention, so the scores depend on relative offsets only.

Pairs are the two halves of a head (GPT-NeoX's and Hugging Face Llama's ``rotate_half`` layout).
Packed batches get each token's position in its own sequence, from ``cu_seqlens``, so positions
restart at every document."""

from __future__ import annotations

import torch

from fastpretrain.checks import check_float, check_int
from fastpretrain.nn.attention import MultiheadSelfAttention
from fastpretrain.ops import attention, attention_varlen


def positions_in_sequences(cu_seqlens: torch.Tensor, total: int) -> torch.Tensor:
    """int64 [total]: each packed token's position in its sequence (0 at every start in ``cu_seqlens``)."""
    starts, lengths = cu_seqlens[:-1].long(), cu_seqlens.diff().long()
    return torch.arange(total, device=cu_seqlens.device) - torch.repeat_interleave(starts, lengths, output_size=total)


def rope_tables(head_dim: int, length: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin), float32 [length, head_dim / 2]: angle ``p * theta ** (-2i / head_dim)`` of position p, pair i."""
    check_int("head_dim", head_dim, 2)
    check_int("length", length, 1)
    check_float("theta", theta, 1.0)
    if head_dim % 2:
        raise ValueError(f"head_dim: rotary embeddings need an even head width, got {head_dim}")
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.arange(length, dtype=torch.float64)[:, None] * inv_freq
    return angles.cos().float(), angles.sin().float()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x`` [..., n, H, D] rotated by the tables' rows [n, D / 2] (one per token), in float32, in x's dtype."""
    x1, x2 = x.float().chunk(2, -1)
    cos, sin = cos[:, None], sin[:, None]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1).to(x.dtype)


class RotarySelfAttention(MultiheadSelfAttention):
    """:class:`MultiheadSelfAttention` with queries and keys rotated by position (same weights and
    names: ``qkv``, ``proj``). Dense [B, S, E] inputs are at positions 0 .. S - 1; packed ones at
    their positions in their sequences. ``max_positions``: the table length (the longest sequence)."""

    def __init__(self, dim: int, num_heads: int, max_positions: int, theta: float = 10000.0, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, device=None, dtype=None) -> None:  # fmt: skip
        super().__init__(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop, device=device,
                         dtype=dtype)  # fmt: skip
        cos, sin = rope_tables(self.head_dim, max_positions, theta)
        self.register_buffer("cos", cos.to(device), persistent=False)
        self.register_buffer("sin", sin.to(device), persistent=False)

    def rotate(self, t: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """``t`` [..., n, H, D] rotated to ``positions`` [n]."""
        return apply_rotary(t, self.cos[positions], self.sin[positions])

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None, causal: bool = False,
                cu_seqlens: torch.Tensor | None = None, max_seqlen: int | None = None) -> torch.Tensor:  # fmt: skip
        dropout_p = self.attn_drop if self.training else 0.0
        if cu_seqlens is not None:
            if max_seqlen is None:
                raise ValueError("max_seqlen: required with cu_seqlens")
            q, k, v = self.qkv(x).view(x.shape[0], 3, self.num_heads, self.head_dim).unbind(1)
            positions = positions_in_sequences(cu_seqlens, x.shape[0])
            q, k = self.rotate(q, positions), self.rotate(k, positions)
            out = attention_varlen(q, k, v, cu_seqlens, max_seqlen, causal=causal, dropout_p=dropout_p)
            return self.proj_drop(self.proj(out.reshape(x.shape)))
        b, s, e = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.num_heads, self.head_dim).unbind(2)
        positions = torch.arange(s, device=x.device)
        q, k = self.rotate(q, positions), self.rotate(k, positions)
        out = attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=causal,
                        key_padding_mask=key_padding_mask, dropout_p=dropout_p)  # fmt: skip
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, s, e)))
