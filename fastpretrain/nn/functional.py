"""``scaled_dot_product_attention`` with PyTorch's signature, on fastpretrain's fused attention
for the subset it supports, and on PyTorch's own for the rest (the reason is logged once)."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from fastpretrain.nn.attention import HEAD_DIMS
from fastpretrain.ops import attention

log = logging.getLogger(__name__)
_FLOAT = (torch.float32, torch.float16, torch.bfloat16)
_logged: set[str] = set()


def _key_padding(attn_mask: torch.Tensor | None, batch: int, sk: int) -> torch.Tensor | None:
    """A bool mask that only ever depends on (batch, key) as [B, Sk]; otherwise ValueError."""
    if attn_mask is None:
        return None
    if attn_mask.dtype != torch.bool:
        raise ValueError("attn_mask is not bool")
    shape = (1,) * (4 - attn_mask.dim()) + tuple(attn_mask.shape)
    if attn_mask.dim() > 4 or shape[1:3] != (1, 1) or shape[0] not in (1, batch) or shape[3] != sk:
        raise ValueError(f"attn_mask of shape {tuple(attn_mask.shape)} is not a (B, 1, 1, Sk) key padding mask")
    return attn_mask.reshape(shape[0], sk).expand(batch, sk)


def _unsupported(query, key, value, is_causal, attn_mask, enable_gqa) -> str | None:
    """Why the fused path cannot take these arguments, or None if it can."""
    if any(t.dim() != 4 for t in (query, key, value)):
        return "inputs are not 4-d [B, H, S, D]"
    if query.dtype not in _FLOAT or not query.dtype == key.dtype == value.dtype:
        return f"dtypes {query.dtype}, {key.dtype}, {value.dtype}"
    if query.shape[-1] not in HEAD_DIMS or key.shape != value.shape or key.shape[-1] != query.shape[-1]:
        return f"head dim {query.shape[-1]} or differing k/v shapes"
    if query.shape[0] != key.shape[0]:
        return "broadcast batch dims"
    if key.shape[1] != query.shape[1] and not (enable_gqa and query.shape[1] % key.shape[1] == 0):
        return "differing head counts without enable_gqa"
    if is_causal and attn_mask is not None:
        return "is_causal with attn_mask"
    try:
        _key_padding(attn_mask, query.shape[0], key.shape[2])
    except ValueError as e:
        return str(e)
    return None


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):  # fmt: skip
    """``F.scaled_dot_product_attention`` on the fused kernels where supported: 4-d inputs, head
    dims 16-128, no mask, ``is_causal`` (top-left), or a bool ``attn_mask`` that broadcasts as
    (B, 1, 1, Sk) key padding (True = attend). Anything else (float masks, per-query masks, ...)
    runs PyTorch's own. One difference: a query with no visible key gets 0 here, NaN in PyTorch."""
    reason = _unsupported(query, key, value, is_causal, attn_mask, enable_gqa)
    if reason is not None:
        if reason not in _logged:
            _logged.add(reason)
            log.debug("fastpretrain attention falls back to torch SDPA: %s", reason)
        kwargs = {"enable_gqa": enable_gqa} if enable_gqa else {}
        return F.scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale=scale,
                                              **kwargs)  # fmt: skip
    key_padding_mask = _key_padding(attn_mask, query.shape[0], key.shape[2])
    return attention(query, key, value, causal=is_causal, key_padding_mask=key_padding_mask, dropout_p=dropout_p,
                     scale=scale)  # fmt: skip


__all__ = ["scaled_dot_product_attention"]
