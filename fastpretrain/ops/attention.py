"""Fused scaled-dot-product attention as torch ops: ``attention`` on dense [B, H, S, D] tensors
and ``attention_varlen`` on packed [total, H, D] variable-length batches.

Semantics, shared by the Triton kernels and the pure-torch references below:
- ``causal`` is top-left aligned: query i sees keys j <= i (as in ``F.scaled_dot_product_attention``).
- ``key_padding_mask`` is bool [B, Sk], True where the key is a real token (the SDPA / Hugging Face
  ``attention_mask`` convention; ``nn.MultiheadAttention``'s ``key_padding_mask`` means the opposite).
- A query row that sees no key at all gets a zero output (SDPA gives NaN there) and zero gradients.
- Dropout keeps key j for query i of (sequence b, head h) when the top 24 bits of
  Philox4x32-10(seed; i, j, b * H + h, 0) are >= p * 2**24, and scales kept weights by 1 / (1 - p);
  the backward regenerates the same mask, and the reference draws the same bits in plain torch.
- GQA: k and v may have fewer heads than q (a divisor); query head h reads head h // (H / Hk).
- ``attn_bias`` (dense only): a finite float [H, Sq, Sk] (shared by the batch) or [B, H, Sq, Sk] added to
  the scaled scores, softmax(q k^T * scale + bias); its gradient is the score gradient dS (summed
  over the batch for the shared form). Unlike SDPA's float ``attn_mask``, it is differentiable.
"""

from __future__ import annotations

import math

import torch

from fastpretrain.kernels.contract import DROPOUT_BITS, HEAD_DIMS, attention_out_like, dropout_threshold
from fastpretrain.ops import checks
from fastpretrain.ops.dispatch import use_kernel

_PHILOX_ROUND = (0xD2511F53, 0xCD9E8D57)
_PHILOX_KEY = (0x9E3779B9, 0xBB67AE85)
_LOW32 = 0xFFFFFFFF


def _mul32(a: int, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(high, low) 32-bit halves of a * b for a uint32 constant and uint32 values held in int64."""
    lo_part, hi_part = (a & 0xFFFF) * b, (a >> 16) * b  # each < 2**48
    mid = ((hi_part & 0xFFFF) << 16) + lo_part
    return (hi_part >> 16) + (mid >> 32), mid & _LOW32


def philox(seed: int, c0: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor, c3: torch.Tensor) -> torch.Tensor:
    """First output word of Philox4x32-10 with key ``seed`` (as ``tl.philox`` computes it), int64."""
    k0, k1 = seed & _LOW32, (seed >> 32) & _LOW32
    c0, c1, c2, c3 = (c.to(torch.int64) & _LOW32 for c in torch.broadcast_tensors(c0, c1, c2, c3))
    for _ in range(10):
        hi_b, lo_b = _mul32(_PHILOX_ROUND[1], c2)
        hi_a, lo_a = _mul32(_PHILOX_ROUND[0], c0)
        c0, c1, c2, c3 = hi_b ^ c1 ^ k0, lo_b, hi_a ^ c3 ^ k1, lo_a
        k0, k1 = (k0 + _PHILOX_KEY[0]) & _LOW32, (k1 + _PHILOX_KEY[1]) & _LOW32
    return c0


def dropout_keep_mask(seed: int, dropout_p: float, batch: int, heads: int, sq: int, sk: int,
                      device=None) -> torch.Tensor:  # fmt: skip
    """Bool [batch, heads, sq, sk]: the keys the kernels keep for this seed (the module docstring's rule)."""
    dev = torch.device("cpu") if device is None else device
    i = torch.arange(sq, device=dev).view(1, sq, 1)
    j = torch.arange(sk, device=dev).view(1, 1, sk)
    bh = torch.arange(batch * heads, device=dev).view(-1, 1, 1)
    bits = philox(seed, i, j, bh, torch.zeros((), dtype=torch.int64, device=dev)) >> (32 - DROPOUT_BITS)
    return (bits >= dropout_threshold(dropout_p)).view(batch, heads, sq, sk)


def _attend(q, k, v, allowed, keep, scale, dropout_p, grad_out=None, bias=None):
    """Attention of [B, H, Sq, D] on [B, Hk, Sk, D] given the bool [.., Sq, Sk] pairs that take part,
    the dropout keep mask (or None) and the additive bias (or None). Forward: (out in q's dtype, lse
    float32 in log2 units); given ``grad_out``, the backward instead: (dq, dk, dv, dS float32
    [B, H, Sq, Sk]), computed in float32."""
    group = q.shape[1] // k.shape[1]
    kr, vr = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    s = (q @ kr.transpose(-1, -2)).float() * scale
    if bias is not None:
        s = s + bias.float()
    s = s.masked_fill(~allowed, float("-inf"))
    any_key = allowed.any(-1, keepdim=True)
    s = s.masked_fill(~any_key, 0.0)  # rows that see nothing: a finite softmax, zeroed below
    p = torch.softmax(s, -1) * any_key
    p_drop = p if keep is None else p * keep / (1.0 - dropout_p)
    if grad_out is None:
        lse = torch.where(any_key[..., 0], torch.logsumexp(s, -1) * (1 / math.log(2)), float("inf"))
        return (p_drop.to(q.dtype) @ vr).to(q.dtype), lse
    g = grad_out.float()
    dv = p_drop.transpose(-1, -2) @ g
    dp = g @ vr.float().transpose(-1, -2)
    if keep is not None:
        dp = dp * keep / (1.0 - dropout_p)
    ds = p * (dp - (p * dp).sum(-1, keepdim=True))
    dq = ds @ kr.float() * scale
    dk = ds.transpose(-1, -2) @ q.float() * scale
    b, hk, sk, d = k.shape
    fold = lambda t: t.view(b, hk, group, sk, d).sum(2)  # noqa: E731 - GQA: sum the heads sharing k, v
    return dq.to(q.dtype), fold(dk).to(k.dtype), fold(dv).to(v.dtype), ds


def _causal(sq: int, sk: int, device) -> torch.Tensor:
    return torch.ones(sq, sk, dtype=torch.bool, device=device).tril()


def _dense_reference(q, k, v, key_padding_mask, causal, scale, dropout_p, seed, grad_out=None, bias=None):
    b, h, sq, _ = q.shape
    sk = k.shape[2]
    allowed = torch.ones(b, 1, sq, sk, dtype=torch.bool, device=q.device)
    if causal:
        allowed = allowed & _causal(sq, sk, q.device)
    if key_padding_mask is not None:
        allowed = allowed & key_padding_mask[:, None, None, :]
    keep = dropout_keep_mask(seed, dropout_p, b, h, sq, sk, q.device) if dropout_p > 0 else None
    return _attend(q, k, v, allowed, keep, scale, dropout_p, grad_out, bias)


def _varlen_reference(q, k, v, cu_seqlens, causal, scale, dropout_p, seed, grad_out=None):
    """Each packed sequence on its own as a batch of one, dropout drawn as for batch row b."""
    parts = []
    bounds = cu_seqlens.tolist()
    h = q.shape[1]
    for b, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        n = hi - lo
        views = [t[lo:hi].transpose(0, 1)[None] for t in (q, k, v, grad_out) if t is not None]
        allowed = _causal(n, n, q.device) if causal else torch.ones(n, n, dtype=torch.bool, device=q.device)
        keep = dropout_keep_mask(seed, dropout_p, b + 1, h, n, n, q.device)[b:] if dropout_p > 0 else None
        parts.append(_attend(*views[:3], allowed, keep, scale, dropout_p, *views[3:]))
    if grad_out is None:
        return torch.cat([o[0].transpose(0, 1) for o, _ in parts]), torch.cat([lse[0] for _, lse in parts], 1)
    return (*(torch.cat([g[i][0].transpose(0, 1) for g in parts]) for i in range(3)), None)


def attention_reference(q, k, v, *, causal=False, key_padding_mask=None, dropout_p=0.0, scale=None,
                        dropout_seed=0, attn_bias=None):  # fmt: skip
    """Pure-torch ``attention`` (the spec and the CPU path), in q's dtype with a float32 softmax;
    differentiable by torch autograd (``attn_bias`` included). Dropout uses ``dropout_seed``
    exactly as the kernels do."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    return _dense_reference(q, k, v, key_padding_mask, causal, scale, dropout_p, dropout_seed, bias=attn_bias)[0]


def attention_varlen_reference(q, k, v, cu_seqlens, max_seqlen, *, causal=False, dropout_p=0.0, scale=None,
                               dropout_seed=0):  # fmt: skip
    """Pure-torch ``attention_varlen``: each packed sequence attends only to itself."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    return _varlen_reference(q, k, v, cu_seqlens, causal, scale, dropout_p, dropout_seed)[0]


def _forward_reference(q, k, v, cu_seqlens, key_padding_mask, causal, scale, dropout_p, seed, bias=None):
    """What the forward op computes, in plain torch: (out, lse float32 in log2 units)."""
    if cu_seqlens is not None:
        return _varlen_reference(q, k, v, cu_seqlens, causal, scale, dropout_p, seed)
    return _dense_reference(q, k, v, key_padding_mask, causal, scale, dropout_p, seed, bias=bias)


def attention_backward_reference(grad_out, q, k, v, cu_seqlens, key_padding_mask, causal, scale, dropout_p, seed,
                                 bias=None):  # fmt: skip
    """The explicit backward in plain torch (the CPU path's): (dq, dk, dv, dbias) of the dense
    (``cu_seqlens`` None) or packed attention, recomputing the probabilities; ``seed`` is the int
    dropout key; dbias is float32 in the bias's shape (None without a bias)."""
    if cu_seqlens is not None:
        return _varlen_reference(q, k, v, cu_seqlens, causal, scale, dropout_p, seed, grad_out)
    dq, dk, dv, ds = _dense_reference(q, k, v, key_padding_mask, causal, scale, dropout_p, seed, grad_out, bias)
    return dq, dk, dv, None if bias is None else (ds.sum(0) if bias.dim() == 3 else ds)


def _seed_value(seed: torch.Tensor | None) -> int:
    return int(seed.item()) if seed is not None else 0


@torch.library.custom_op("fastpretrain::attention_forward", mutates_args=())
def _forward_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor | None,
                max_seqlen: int, key_padding_mask: torch.Tensor | None, causal: bool, scale: float,
                dropout_p: float, seed: torch.Tensor | None,
                bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(out, lse): lse is float32 in log2 units, [B, H, Sq] dense or [H, total] packed."""
    if use_kernel(q):
        from fastpretrain.kernels.attention import attention_forward

        return attention_forward(q, k, v, cu_seqlens, max_seqlen, key_padding_mask, causal, scale, dropout_p, seed,
                                 bias)  # fmt: skip
    out, lse = _forward_reference(q, k, v, cu_seqlens, key_padding_mask, causal, scale, dropout_p, _seed_value(seed),
                                  bias)  # fmt: skip
    return attention_out_like(q).copy_(out), lse.contiguous()


@_forward_op.register_fake
def _(q, k, v, cu_seqlens, max_seqlen, key_padding_mask, causal, scale, dropout_p, seed, bias):
    if cu_seqlens is not None:
        lse = q.new_empty(q.shape[1], q.shape[0], dtype=torch.float32)
    else:
        lse = q.new_empty(q.shape[:3], dtype=torch.float32)
    return attention_out_like(q), lse


@torch.library.custom_op("fastpretrain::attention_backward", mutates_args=())
def _backward_op(grad_out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
                 lse: torch.Tensor, cu_seqlens: torch.Tensor | None, max_seqlen: int,
                 key_padding_mask: torch.Tensor | None, causal: bool, scale: float, dropout_p: float,
                 seed: torch.Tensor | None, bias: torch.Tensor | None,
                 bias_grad: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """(dq, dk, dv, dbias), recomputing the probabilities (from lse in the kernels); dbias has the
    bias's shape and dtype when ``bias_grad``, else it is an empty tensor."""
    if use_kernel(q):
        from fastpretrain.kernels.attention import attention_backward

        *grads, dbias = attention_backward(grad_out, q, k, v, out, lse, cu_seqlens, max_seqlen, key_padding_mask,
                                           causal, scale, dropout_p, seed, bias, bias_grad)  # fmt: skip
    else:
        *grads, dbias = attention_backward_reference(grad_out, q, k, v, cu_seqlens, key_padding_mask, causal, scale,
                                                     dropout_p, _seed_value(seed), bias)  # fmt: skip
        grads = [attention_out_like(t).copy_(g) for t, g in zip((q, k, v), grads)]
    dbias = dbias.to(bias.dtype) if bias_grad and bias is not None else q.new_empty(0)
    return (*grads, dbias)


@_backward_op.register_fake
def _(grad_out, q, k, v, out, lse, cu_seqlens, max_seqlen, key_padding_mask, causal, scale, dropout_p, seed, bias,
      bias_grad):  # fmt: skip
    dbias = bias.new_empty(bias.shape) if bias_grad and bias is not None else q.new_empty(0)
    return attention_out_like(q), attention_out_like(k), attention_out_like(v), dbias


def _setup_context(ctx, inputs, output):
    q, k, v, cu_seqlens, max_seqlen, key_padding_mask, causal, scale, dropout_p, seed, bias = inputs
    ctx.save_for_backward(q, k, v, output[0], output[1], cu_seqlens, key_padding_mask, seed, bias)
    ctx.args = (max_seqlen, causal, scale, dropout_p)


def _backward(ctx, grad_out, grad_lse):
    q, k, v, out, lse, cu_seqlens, key_padding_mask, seed, bias = ctx.saved_tensors
    max_seqlen, causal, scale, dropout_p = ctx.args
    bias_grad = bias is not None and ctx.needs_input_grad[10]
    dq, dk, dv, dbias = _backward_op(grad_out, q, k, v, out, lse, cu_seqlens, max_seqlen, key_padding_mask, causal,
                                     scale, dropout_p, seed, bias, bias_grad)  # fmt: skip
    return dq, dk, dv, None, None, None, None, None, None, None, dbias if bias_grad else None


_forward_op.register_autograd(_backward, setup_context=_setup_context)


def _check_qkv(q, k, v, ndim: int, layout: str) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        checks.tensor(name, t, checks.FLOAT, layout)
        checks.dims(name, t, ndim, layout)
        checks.dtype_like(name, t, "q", q)
        checks.device_like(name, t, "q", q)
    d = q.shape[-1]
    if d not in HEAD_DIMS:
        raise ValueError(f"q: head dim {d} is not supported; expected one of {HEAD_DIMS}")
    if k.shape[-1] != d or v.shape != k.shape:
        raise ValueError(f"k, v: expected equal shapes with head dim {d}, got {tuple(k.shape)} and {tuple(v.shape)}")
    heads, kv_heads = q.shape[-2 if ndim == 3 else 1], k.shape[-2 if ndim == 3 else 1]
    if kv_heads == 0 or heads % kv_heads:
        raise ValueError(f"k: its {kv_heads} heads must divide q's {heads} heads")


def _check_common(q, dropout_p, scale, dropout_seed) -> tuple[float, float]:
    """(dropout_p, scale) as floats, the scale defaulting to 1 / sqrt(D)."""
    dropout_p = checks.real("dropout_p", dropout_p, "a float in [0, 1)", lambda p: 0.0 <= p < 1.0)
    if scale is not None:
        scale = checks.real("scale", scale, "a finite float > 0 or None", lambda x: x > 0 and math.isfinite(x))
    if dropout_seed is not None:
        checks.integer("dropout_seed", dropout_seed, 0)
    return dropout_p, q.shape[-1] ** -0.5 if scale is None else scale


def _seed(dropout_p: float, dropout_seed: int | None, device) -> torch.Tensor | None:
    """The Philox key as a 1-element int64 tensor: drawn from torch's RNG unless given."""
    if dropout_p == 0.0:
        return None
    if dropout_seed is not None:
        return torch.tensor([dropout_seed], dtype=torch.int64, device=device)
    return torch.randint(0, 2**62, (1,), dtype=torch.int64, device=device)


def attention(q, k, v, *, causal=False, key_padding_mask=None, dropout_p=0.0, scale=None, dropout_seed=None,
              attn_bias=None):  # fmt: skip
    """Softmax(q k^T * scale) v on [B, H, S, D] tensors, like ``F.scaled_dot_product_attention``.

    Args:
        q: [B, H, Sq, D]; k, v: [B, Hk, Sk, D] with Hk dividing H (GQA). float16 / bfloat16 on the
            GPU (float32 too, slowly); D in {16, 32, 64, 96, 128}; any Sq, Sk >= 1.
        causal: query i sees keys j <= i (top-left aligned).
        key_padding_mask: bool [B, Sk], True for real keys (SDPA / HF ``attention_mask`` convention).
        dropout_p: attention dropout; pass 0.0 in eval mode. dropout_seed: the Philox key (default:
            drawn from torch's RNG, so ``torch.manual_seed`` makes runs repeatable).
        scale: defaults to 1 / sqrt(D).
        attn_bias: float [H, Sq, Sk] (every sequence) or [B, H, Sq, Sk], added to the scaled scores
            (BEiT's relative position bias); differentiable, its gradient in its own dtype.
    Returns [B, H, Sq, D] in q's dtype; rows that see no key are 0.
    """
    _check_qkv(q, k, v, 4, "[B, H, S, D]")
    dropout_p, scale = _check_common(q, dropout_p, scale, dropout_seed)
    if k.shape[0] != q.shape[0]:
        raise ValueError(f"k: expected batch {q.shape[0]} like q, got shape {tuple(k.shape)}")
    if key_padding_mask is not None:
        checks.tensor("key_padding_mask", key_padding_mask, (torch.bool,), "[B, Sk] (True = real key)")
        checks.shape("key_padding_mask", key_padding_mask, (q.shape[0], k.shape[2]))
        checks.device_like("key_padding_mask", key_padding_mask, "q", q)
    if attn_bias is not None:
        _check_bias(attn_bias, q, k)
    seed = _seed(dropout_p, dropout_seed, q.device)
    return _forward_op(q, k, v, None, 0, key_padding_mask, bool(causal), scale, dropout_p, seed, attn_bias)[0]


def _check_bias(bias, q, k) -> None:
    b, h, sq, sk = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
    checks.tensor("attn_bias", bias, checks.FLOAT, f"[{h}, {sq}, {sk}] or [{b}, {h}, {sq}, {sk}]")
    if tuple(bias.shape) not in ((h, sq, sk), (b, h, sq, sk)):
        raise ValueError(f"attn_bias: expected shape {(h, sq, sk)} or {(b, h, sq, sk)} (heads, queries, keys), "
                         f"got {tuple(bias.shape)}")  # fmt: skip
    checks.device_like("attn_bias", bias, "q", q)


def attention_varlen(q, k, v, cu_seqlens, max_seqlen, *, causal=False, dropout_p=0.0, scale=None, dropout_seed=None):
    """Attention on a packed batch of variable-length sequences: no work is spent on padding.

    Args:
        q: [total, H, D]; k, v: [total, Hk, D]; sequence b is rows cu_seqlens[b]:cu_seqlens[b+1]
            and attends only to itself.
        cu_seqlens: int32 [B + 1], starting at 0, non-decreasing, ending at total (checked on CPU
            tensors in eager mode only, to keep the GPU path free of host syncs).
        max_seqlen: the longest sequence (an upper bound is fine; it sizes the launch grid).
        causal, dropout_p, scale, dropout_seed: as in :func:`attention`.
    Returns [total, H, D] in q's dtype. See :func:`fastpretrain.nn.unpad` to build the inputs.
    """
    _check_qkv(q, k, v, 3, "[total, H, D]")
    dropout_p, scale = _check_common(q, dropout_p, scale, dropout_seed)
    if k.shape[0] != q.shape[0]:
        raise ValueError(f"k: expected {q.shape[0]} packed rows like q, got shape {tuple(k.shape)}")
    checks.tensor("cu_seqlens", cu_seqlens, (torch.int32,), "[B + 1] of cumulative sequence lengths")
    if cu_seqlens.dim() != 1 or cu_seqlens.numel() < 2:
        raise ValueError(f"cu_seqlens: expected a 1-d [B + 1] tensor with B >= 1, got shape {tuple(cu_seqlens.shape)}")
    checks.device_like("cu_seqlens", cu_seqlens, "q", q)
    max_seqlen = checks.integer("max_seqlen", max_seqlen, 1)
    if checks.host_sync_free(cu_seqlens):
        lengths = cu_seqlens.diff()
        if cu_seqlens[0] != 0 or cu_seqlens[-1] != q.shape[0] or (lengths < 0).any():
            raise ValueError(f"cu_seqlens: expected 0 = cu[0] <= cu[1] <= ... <= cu[-1] = {q.shape[0]}, "
                             f"got {cu_seqlens.tolist()}")  # fmt: skip
        if lengths.max() > max_seqlen:
            raise ValueError(f"max_seqlen: {max_seqlen} is below the longest sequence ({int(lengths.max())})")
    seed = _seed(dropout_p, dropout_seed, q.device)
    return _forward_op(q, k, v, cu_seqlens, max_seqlen, None, bool(causal), scale, dropout_p, seed, None)[0]
