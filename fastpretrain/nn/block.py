"""The transformer block every model here is built from (ViT, MAE's encoder and decoder, BERT)."""

from __future__ import annotations

import torch
from torch import nn

from fastpretrain.nn.attention import MultiheadSelfAttention
from fastpretrain.nn.drop import DropPath
from fastpretrain.nn.layer_scale import LayerScale
from fastpretrain.nn.mlp import Mlp


class TransformerBlock(nn.Module):
    """Self-attention then an MLP, each a residual branch.

    Pre-norm (ViT, GPT): ``x + drop_path(ls1(attn(norm1(x))))``, then the same with ``mlp``/``norm2``.
    Post-norm (original BERT): ``norm1(x + drop_path(ls1(attn(x))))``, then the same with ``mlp``/``norm2``.

    Args:
        dim, num_heads: width and heads (dim / num_heads a head width the attention op takes).
        mlp_dim: the MLP's hidden width. qkv_bias: bias on the fused QKV projection.
        pre_norm: False for post-norm. causal: each token attends to itself and earlier ones only.
        proj_drop: dropout after the attention and MLP output projections; mlp_hidden_drop: after the
            MLP activation (default ``proj_drop``, as timm; BERT uses 0). attn_drop: attention dropout.
        drop_path: stochastic depth of both branches. init_values: LayerScale's initial value
            (None: no LayerScale, ``ls1``/``ls2`` are identities). eps: the LayerNorms' epsilon.

    ``forward(x)`` takes a dense [B, S, E] batch (optional bool ``key_padding_mask`` [B, S], True =
    real token; optional additive ``attn_bias`` [H, S, S] or [B, H, S, S], BEiT's relative position
    bias) or a packed [total, E] one with ``cu_seqlens`` and ``max_seqlen``.
    """

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, *, qkv_bias: bool = True, pre_norm: bool = True,
                 causal: bool = False, proj_drop: float = 0.0, mlp_hidden_drop: float | None = None,
                 attn_drop: float = 0.0, drop_path: float = 0.0, init_values: float | None = None,
                 eps: float = 1e-6, device=None, dtype=None) -> None:  # fmt: skip
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.pre_norm, self.causal = pre_norm, causal
        self.norm1 = nn.LayerNorm(dim, eps=eps, **kw)
        self.attn = MultiheadSelfAttention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop,
                                           **kw)  # fmt: skip
        self.ls1 = nn.Identity() if init_values is None else LayerScale(dim, init_values, **kw)
        self.norm2 = nn.LayerNorm(dim, eps=eps, **kw)
        self.mlp = Mlp(dim, mlp_dim, drop=proj_drop, hidden_drop=mlp_hidden_drop, **kw)
        self.ls2 = nn.Identity() if init_values is None else LayerScale(dim, init_values, **kw)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None,
                cu_seqlens: torch.Tensor | None = None, max_seqlen: int | None = None,
                attn_bias: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        bias = {} if attn_bias is None else {"attn_bias": attn_bias}  # only MultiheadSelfAttention takes one

        def attn(y):
            y = self.attn(y, key_padding_mask, self.causal, cu_seqlens, max_seqlen, **bias)
            return self.drop_path(self.ls1(y), cu_seqlens)

        def mlp(y):
            return self.drop_path(self.ls2(self.mlp(y)), cu_seqlens)

        if self.pre_norm:
            x = x + attn(self.norm1(x))
            return x + mlp(self.norm2(x))
        x = self.norm1(x + attn(x))
        return self.norm2(x + mlp(x))

    def flops(self, seq_len: int) -> float:
        """Forward FLOPs of one sequence of ``seq_len`` tokens: 2 x the block's weights x tokens,
        plus attention's two S x S x E matmuls (4 S^2 E; full, not halved when causal); norms,
        GELU and softmax not counted. Training is about 3x this."""
        weights = sum(m.weight.numel() for m in (self.attn.qkv, self.attn.proj, self.mlp.fc1, self.mlp.fc2))
        return 2.0 * weights * seq_len + 4.0 * seq_len**2 * self.attn.qkv.in_features
