"""Incremental decoding through :class:`~fastpretrain.nn.TransformerBlock`'s own modules: each new
token's keys and values are kept in a :class:`KVCache`, so generating n tokens costs n single-token
steps instead of n forward passes over the whole prefix."""

from __future__ import annotations

import torch

from fastpretrain.nn.block import TransformerBlock
from fastpretrain.nn.functional import scaled_dot_product_attention
from fastpretrain.nn.rotary import RotarySelfAttention


class KVCache:
    """Keys and values of ``num_layers`` layers, room for ``max_len`` tokens: [B, H, max_len, D]
    buffers per layer, allocated on the first append in the keys' dtype and device, filled in order."""

    def __init__(self, num_layers: int, max_len: int) -> None:
        self.max_len = max_len
        self.k: list[torch.Tensor | None] = [None] * num_layers
        self.v: list[torch.Tensor | None] = [None] * num_layers
        self.lengths = [0] * num_layers

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add ``k``, ``v`` [B, H, s, D] after layer ``layer``'s cached tokens; all of its keys and values so far."""
        start, end = self.lengths[layer], self.lengths[layer] + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"k: {end} tokens overflow the cache of {self.max_len}")
        if self.k[layer] is None:
            b, h, _, d = k.shape
            self.k[layer] = k.new_zeros(b, h, self.max_len, d)
            self.v[layer] = v.new_zeros(b, h, self.max_len, d)
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        self.lengths[layer] = end
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


def cached_block(block: TransformerBlock, x: torch.Tensor, cache: KVCache, layer: int) -> torch.Tensor:
    """A pre-norm causal block in eval mode on new tokens ``x`` [B, s, E] that follow the ones in
    ``cache`` (layer ``layer``): several tokens on the first call (the prompt), one at a time after."""
    if not (block.pre_norm and block.causal):
        raise ValueError("block: cached decoding needs a pre-norm causal TransformerBlock")
    attn = block.attn
    h = block.norm1(x)
    b, s, e = h.shape
    start = cache.lengths[layer]
    if start and s > 1:
        raise ValueError(f"x: {s} new tokens after {start} cached ones; only the first call takes several")
    q, k, v = attn.qkv(h).view(b, s, 3, attn.num_heads, attn.head_dim).unbind(2)
    if isinstance(attn, RotarySelfAttention):
        positions = torch.arange(start, start + s, device=x.device)
        q, k = attn.rotate(q, positions), attn.rotate(k, positions)
    keys, values = cache.append(layer, k.transpose(1, 2), v.transpose(1, 2))
    out = scaled_dot_product_attention(q.transpose(1, 2), keys, values, is_causal=s > 1)
    x = x + block.ls1(attn.proj(out.transpose(1, 2).reshape(b, s, e)))
    return x + block.ls2(block.mlp(block.norm2(x)))
