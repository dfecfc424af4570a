"""Fused attention as Triton kernels: a FlashAttention-2 style forward (online softmax over key
blocks, never storing the [Sq, Sk] scores) and a backward that recomputes the probabilities from
the saved log-sum-exp, in two atomic-free kernels (dK/dV per key block, dQ per query block).

Key blocks wholly inside the sequence and (if causal) below the diagonal skip the mask; only the
edge blocks compute it. One set of kernels serves both layouts, told apart by strides: dense q [B, H, Sq, D] and packed
variable-length q [total, H, D] whose sequence b spans rows cu_seqlens[b]:cu_seqlens[b+1].
Masks: causal (top-left aligned: query i sees keys j <= i), key padding (uint8 [B, Sk], nonzero
for real keys), and dropout, whose keep mask is Philox(seed; i, j, b * H + h, 0) so the backward
regenerates exactly the forward's mask. A query row that sees no key gets a zero output and zero
gradients. GQA: query head h reads key/value head h // GROUP.

An additive bias (dense layout only; BEiT's relative position bias) is read as a float [B, H, Sq, Sk]
with unit stride over keys and batch stride 0 when one [H, Sq, Sk] bias serves every sequence; it
is added to the scaled scores before the softmax. Its gradient is the score gradient dS, written
by the dQ kernel (accumulated atomically over the batch for a broadcast bias).

The softmax runs in base 2: scores are scaled by scale * log2(e) and the saved lse is in log2
units (+inf for rows that see no key, so their recomputed probabilities are 0).
"""

import torch
import triton
import triton.language as tl

from . import contract, target

LOG2E = 1.4426950408889634
DROPOUT_BITS = tl.constexpr(contract.DROPOUT_BITS)

# Interpreter blocks are the smallest tl.dot takes, so tests cover many blocks cheaply.
INTERPRETER_CONFIG = {"BLOCK_M": 16, "BLOCK_N": 16, "num_warps": 4, "num_stages": 1}


@triton.jit
def _keep(seed, rows, cols, bh, DROP_THRESHOLD):
    """Dropout keep mask [BLOCK_M, BLOCK_N]: Philox of (query row, key col, batch * H + head, 0)."""
    zero = rows[:, None] * 0 + cols[None, :] * 0
    r, _, _, _ = tl.philox(seed, rows[:, None] + zero, cols[None, :] + zero, zero + bh, zero)
    return (r >> (32 - DROPOUT_BITS)).to(tl.int32) >= DROP_THRESHOLD


@triton.jit
def _allowed(rows, cols, seqlen_k, kpm_row, CAUSAL: tl.constexpr, HAS_KPM: tl.constexpr):
    """Which (query, key) pairs of a tile take part: keys inside the sequence, causal, key padding."""
    ok = (cols[None, :] < seqlen_k) & (rows[:, None] >= 0)
    if CAUSAL:
        ok = ok & (cols[None, :] <= rows[:, None])
    if HAS_KPM:
        ok = ok & (tl.load(kpm_row + cols, mask=cols < seqlen_k, other=0) != 0)[None, :]
    return ok


@triton.jit
def _bias_tile(bias_base, rows, cols, seqlen_q, seqlen_k, sbq):
    """The bias [BLOCK_M, BLOCK_N] of a tile times log2(e) (base-2 softmax), 0 outside the sequence."""
    ok = (rows[:, None] < seqlen_q) & (cols[None, :] < seqlen_k)
    off = rows[:, None].to(tl.int64) * sbq + cols[None, :]
    return tl.load(bias_base + off, mask=ok, other=0.0).to(tl.float32) * 1.4426950408889634


@triton.jit
def _sequence(CU, b, Sq, Sk, VARLEN: tl.constexpr):
    """(first row, query length, key length) of batch entry b: a packed sequence's bounds from
    cu_seqlens, or row 0 and the dense lengths."""
    start = b.to(tl.int64) * 0
    seqlen_q = Sq
    seqlen_k = Sk
    if VARLEN:
        start = tl.load(CU + b).to(tl.int64)
        seqlen_q = tl.load(CU + b + 1) - start
        seqlen_k = seqlen_q
    return start, seqlen_q, seqlen_k


@triton.jit
def _unmasked_end(start_m, seqlen_k, CAUSAL: tl.constexpr, HAS_KPM: tl.constexpr, BLOCK_N: tl.constexpr):
    """Key blocks [0, end) need no mask for the query rows >= start_m: whole blocks inside the
    sequence and, if causal, at or below the diagonal. The blocks after it are masked."""
    end = (seqlen_k // BLOCK_N) * BLOCK_N
    if CAUSAL:
        end = tl.minimum(end, ((start_m + 1) // BLOCK_N) * BLOCK_N)
    if HAS_KPM:
        end = end * 0
    return end


@triton.jit
def _forward_block(acc, m_i, l_i, q, k_base, v_base, rows, start_n, seqlen_k, kpm_row, seed, bh, sks, svs, dims,
                   mask_d, scale_log2, DROP_THRESHOLD, drop_scale, bias_base, seqlen_q, sbq, MASKED: tl.constexpr,
                   CAUSAL: tl.constexpr, HAS_KPM: tl.constexpr, DROPOUT: tl.constexpr, HAS_BIAS: tl.constexpr,
                   PRECISION: tl.constexpr, BLOCK_N: tl.constexpr):  # fmt: skip
    """One key block of the online softmax: the updated (acc, m_i, l_i)."""
    cols = start_n + tl.arange(0, BLOCK_N)
    mask_n = cols < seqlen_k
    kt = tl.load(k_base + cols[None, :].to(tl.int64) * sks + dims[:, None],
                 mask=mask_d[:, None] & mask_n[None, :], other=0.0)  # fmt: skip
    s = tl.dot(q, kt, input_precision=PRECISION) * scale_log2
    if HAS_BIAS:
        s += _bias_tile(bias_base, rows, cols, seqlen_q, seqlen_k, sbq)
    if MASKED:
        s = tl.where(_allowed(rows, cols, seqlen_k, kpm_row, CAUSAL, HAS_KPM), s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, axis=1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    p = tl.exp2(s - m_safe[:, None])
    alpha = tl.exp2(m_i - m_safe)
    l_i = l_i * alpha + tl.sum(p, axis=1)
    if DROPOUT:
        p = tl.where(_keep(seed, rows, cols, bh, DROP_THRESHOLD), p * drop_scale, 0.0)
    v = tl.load(v_base + cols[:, None].to(tl.int64) * svs + dims[None, :],
                mask=mask_n[:, None] & mask_d[None, :], other=0.0)  # fmt: skip
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
    return acc, m_new, l_i


@triton.jit
def _grad_q_block(dq, q, do, lse, delta, k_base, v_base, rows, start_n, seqlen_k, kpm_row, seed, bh, sks, svs, dims,
                  mask_d, scale_log2, DROP_THRESHOLD, drop_scale, bias_base, dbias_base, seqlen_q, sbq, sdbq,
                  MASKED: tl.constexpr, CAUSAL: tl.constexpr, HAS_KPM: tl.constexpr, DROPOUT: tl.constexpr,
                  HAS_BIAS: tl.constexpr, BIAS_GRAD: tl.constexpr, BIAS_ATOMIC: tl.constexpr, PRECISION: tl.constexpr,
                  BLOCK_N: tl.constexpr):  # fmt: skip
    """dq accumulated over one key block (and the block's dS written as the bias gradient)."""
    cols = start_n + tl.arange(0, BLOCK_N)
    tile_n = (cols < seqlen_k)[:, None] & mask_d[None, :]
    k = tl.load(k_base + cols[:, None].to(tl.int64) * sks + dims[None, :], mask=tile_n, other=0.0)
    v = tl.load(v_base + cols[:, None].to(tl.int64) * svs + dims[None, :], mask=tile_n, other=0.0)
    s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale_log2
    if HAS_BIAS:
        s += _bias_tile(bias_base, rows, cols, seqlen_q, seqlen_k, sbq)
    p = tl.exp2(s - lse[:, None])
    if MASKED:
        p = tl.where(_allowed(rows, cols, seqlen_k, kpm_row, CAUSAL, HAS_KPM), p, 0.0)
    dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
    if DROPOUT:
        dp = tl.where(_keep(seed, rows, cols, bh, DROP_THRESHOLD), dp * drop_scale, 0.0)
    ds = p * (dp - delta[:, None])
    if BIAS_GRAD:
        ok = (rows[:, None] < seqlen_q) & (cols[None, :] < seqlen_k)
        off = rows[:, None].to(tl.int64) * sdbq + cols[None, :]
        if BIAS_ATOMIC:
            tl.atomic_add(dbias_base + off, ds, mask=ok)
        else:
            tl.store(dbias_base + off, ds, mask=ok)
    return dq + tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)


@triton.jit
def _forward_kernel(Q, K, V, O, LSE, KPM, CU, SEED, BIAS,
                    sqb, sqh, sqs, skb, skh, sks, svb, svh, svs, sob, soh, sos, slb, slh, sbb, sbh, sbq,
                    H, GROUP, Sq, Sk, scale_log2, DROP_THRESHOLD, drop_scale,
                    D: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                    CAUSAL: tl.constexpr, HAS_KPM: tl.constexpr, VARLEN: tl.constexpr, DROPOUT: tl.constexpr,
                    HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr):  # fmt: skip
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    b64 = b.to(tl.int64)
    start, seqlen_q, seqlen_k = _sequence(CU, b, Sq, Sk, VARLEN)
    if start_m >= seqlen_q:
        return
    hk = h // GROUP
    rows = start_m + tl.arange(0, BLOCK_M)
    dims = tl.arange(0, BLOCK_D)
    mask_d = dims < D
    mask_m = rows < seqlen_q
    q_rows = (start + rows).to(tl.int64)
    q = tl.load(Q + b64 * sqb + h * sqh + q_rows[:, None] * sqs + dims[None, :],
                mask=mask_m[:, None] & mask_d[None, :], other=0.0)  # fmt: skip
    k_base = K + b64 * skb + hk * skh + start * sks
    v_base = V + b64 * svb + hk * svh + start * svs
    kpm_row = KPM + b64 * Sk
    bias_base = BIAS + b64 * sbb + h * sbh
    seed = 0
    if DROPOUT:
        seed = tl.load(SEED)

    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    end_n = seqlen_k
    if CAUSAL:
        end_n = tl.minimum(seqlen_k, start_m + BLOCK_M)
    mid = _unmasked_end(start_m, seqlen_k, CAUSAL, HAS_KPM, BLOCK_N)
    for start_n in range(0, mid, BLOCK_N):
        acc, m_i, l_i = _forward_block(acc, m_i, l_i, q, k_base, v_base, rows, start_n, seqlen_k, kpm_row, seed, bh,
                                       sks, svs, dims, mask_d, scale_log2, DROP_THRESHOLD, drop_scale, bias_base,
                                       seqlen_q, sbq, False, CAUSAL, HAS_KPM, DROPOUT, HAS_BIAS, PRECISION,
                                       BLOCK_N)  # fmt: skip
    for start_n in range(mid, end_n, BLOCK_N):
        acc, m_i, l_i = _forward_block(acc, m_i, l_i, q, k_base, v_base, rows, start_n, seqlen_k, kpm_row, seed, bh,
                                       sks, svs, dims, mask_d, scale_log2, DROP_THRESHOLD, drop_scale, bias_base,
                                       seqlen_q, sbq, True, CAUSAL, HAS_KPM, DROPOUT, HAS_BIAS, PRECISION,
                                       BLOCK_N)  # fmt: skip
    empty = l_i == 0.0
    l_safe = tl.where(empty, 1.0, l_i)
    out = acc / l_safe[:, None]
    tl.store(O + b64 * sob + h * soh + q_rows[:, None] * sos + dims[None, :], out.to(O.dtype.element_ty),
             mask=mask_m[:, None] & mask_d[None, :])  # fmt: skip
    lse = tl.where(empty, float("inf"), m_i + tl.log2(l_safe))
    tl.store(LSE + b64 * slb + h * slh + start + rows, lse, mask=mask_m)


@triton.jit
def _grad_kv_kernel(Q, K, V, DO, LSE, DELTA, DK, DV, KPM, CU, SEED, BIAS,
                    sqb, sqh, sqs, skb, skh, sks, svb, svh, svs, sgb, sgh, sgs,
                    sdkb, sdkh, sdks, sdvb, sdvh, sdvs, slb, slh, sbb, sbh, sbq,
                    H, GROUP, Sq, Sk, scale, scale_log2, DROP_THRESHOLD, drop_scale,
                    D: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                    CAUSAL: tl.constexpr, HAS_KPM: tl.constexpr, VARLEN: tl.constexpr, DROPOUT: tl.constexpr,
                    HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr):  # fmt: skip
    """dK, dV of one key block of key/value head hk, summed over the GROUP query heads that read it.
    LSE and DELTA share one layout."""
    start_n = tl.program_id(0) * BLOCK_N
    bhk = tl.program_id(1)
    Hk = H // GROUP
    b = bhk // Hk
    hk = bhk % Hk
    b64 = b.to(tl.int64)
    start, seqlen_q, seqlen_k = _sequence(CU, b, Sq, Sk, VARLEN)
    if start_n >= seqlen_k:
        return
    cols = start_n + tl.arange(0, BLOCK_N)
    dims = tl.arange(0, BLOCK_D)
    mask_d = dims < D
    tile_n = (cols < seqlen_k)[:, None] & mask_d[None, :]
    k_rows = (start + cols).to(tl.int64)
    k = tl.load(K + b64 * skb + hk * skh + k_rows[:, None] * sks + dims[None, :], mask=tile_n, other=0.0)
    v = tl.load(V + b64 * svb + hk * svh + k_rows[:, None] * svs + dims[None, :], mask=tile_n, other=0.0)
    kpm_row = KPM + b64 * Sk
    seed = 0
    if DROPOUT:
        seed = tl.load(SEED)

    dk = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    dv = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    start_m0 = 0
    if CAUSAL:
        start_m0 = (start_n // BLOCK_M) * BLOCK_M
    for g in range(0, GROUP):
        h = hk * GROUP + g
        q_base = Q + b64 * sqb + h * sqh
        do_base = DO + b64 * sgb + h * sgh
        l_base = b64 * slb + h * slh + start
        bias_base = BIAS + b64 * sbb + h * sbh
        for start_m in range(start_m0, seqlen_q, BLOCK_M):
            rows = start_m + tl.arange(0, BLOCK_M)
            mask_m = rows < seqlen_q
            q_rows = (start + rows).to(tl.int64)
            tile_m = mask_m[:, None] & mask_d[None, :]
            q = tl.load(q_base + q_rows[:, None] * sqs + dims[None, :], mask=tile_m, other=0.0)
            do = tl.load(do_base + q_rows[:, None] * sgs + dims[None, :], mask=tile_m, other=0.0)
            lse = tl.load(LSE + l_base + rows, mask=mask_m, other=float("inf"))
            delta = tl.load(DELTA + l_base + rows, mask=mask_m, other=0.0)
            s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale_log2
            if HAS_BIAS:
                s += _bias_tile(bias_base, rows, cols, seqlen_q, seqlen_k, sbq)
            allowed = _allowed(rows, cols, seqlen_k, kpm_row, CAUSAL, HAS_KPM)
            p = tl.where(allowed, tl.exp2(s - lse[:, None]), 0.0)
            dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
            if DROPOUT:
                keep = _keep(seed, rows, cols, b * H + h, DROP_THRESHOLD)
                p_drop = tl.where(keep, p * drop_scale, 0.0)
                dp = tl.where(keep, dp * drop_scale, 0.0)
            else:
                p_drop = p
            dv += tl.dot(tl.trans(p_drop.to(do.dtype)), do, input_precision=PRECISION)
            ds = p * (dp - delta[:, None])
            dk += tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision=PRECISION)
    dk_off = b64 * sdkb + hk * sdkh + k_rows[:, None] * sdks + dims[None, :]
    dv_off = b64 * sdvb + hk * sdvh + k_rows[:, None] * sdvs + dims[None, :]
    tl.store(DK + dk_off, (dk * scale).to(DK.dtype.element_ty), mask=tile_n)
    tl.store(DV + dv_off, dv.to(DV.dtype.element_ty), mask=tile_n)


@triton.jit
def _grad_q_kernel(Q, K, V, DO, LSE, DELTA, DQ, KPM, CU, SEED, BIAS, DBIAS,
                   sqb, sqh, sqs, skb, skh, sks, svb, svh, svs, sgb, sgh, sgs, sdqb, sdqh, sdqs, slb, slh,
                   sbb, sbh, sbq, sdbb, sdbh, sdbq,
                   H, GROUP, Sq, Sk, scale, scale_log2, DROP_THRESHOLD, drop_scale,
                   D: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                   CAUSAL: tl.constexpr, HAS_KPM: tl.constexpr, VARLEN: tl.constexpr, DROPOUT: tl.constexpr,
                   HAS_BIAS: tl.constexpr, BIAS_GRAD: tl.constexpr, BIAS_ATOMIC: tl.constexpr,
                   PRECISION: tl.constexpr):  # fmt: skip
    """dQ of one query block, and with BIAS_GRAD its rows of dS into DBIAS (float32)."""
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    b64 = b.to(tl.int64)
    start, seqlen_q, seqlen_k = _sequence(CU, b, Sq, Sk, VARLEN)
    if start_m >= seqlen_q:
        return
    hk = h // GROUP
    rows = start_m + tl.arange(0, BLOCK_M)
    dims = tl.arange(0, BLOCK_D)
    mask_d = dims < D
    mask_m = rows < seqlen_q
    q_rows = (start + rows).to(tl.int64)
    tile_m = mask_m[:, None] & mask_d[None, :]
    q = tl.load(Q + b64 * sqb + h * sqh + q_rows[:, None] * sqs + dims[None, :], mask=tile_m, other=0.0)
    do = tl.load(DO + b64 * sgb + h * sgh + q_rows[:, None] * sgs + dims[None, :], mask=tile_m, other=0.0)
    l_off = b64 * slb + h * slh + start + rows
    lse = tl.load(LSE + l_off, mask=mask_m, other=float("inf"))
    delta = tl.load(DELTA + l_off, mask=mask_m, other=0.0)
    k_base = K + b64 * skb + hk * skh + start * sks
    v_base = V + b64 * svb + hk * svh + start * svs
    kpm_row = KPM + b64 * Sk
    bias_base = BIAS + b64 * sbb + h * sbh
    dbias_base = DBIAS + b64 * sdbb + h * sdbh
    seed = 0
    if DROPOUT:
        seed = tl.load(SEED)

    dq = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    end_n = seqlen_k
    if CAUSAL:
        end_n = tl.minimum(seqlen_k, start_m + BLOCK_M)
    mid = _unmasked_end(start_m, seqlen_k, CAUSAL, HAS_KPM, BLOCK_N)
    for start_n in range(0, mid, BLOCK_N):
        dq = _grad_q_block(dq, q, do, lse, delta, k_base, v_base, rows, start_n, seqlen_k, kpm_row, seed, bh, sks, svs,
                           dims, mask_d, scale_log2, DROP_THRESHOLD, drop_scale, bias_base, dbias_base, seqlen_q, sbq,
                           sdbq, False, CAUSAL, HAS_KPM, DROPOUT, HAS_BIAS, BIAS_GRAD, BIAS_ATOMIC, PRECISION,
                           BLOCK_N)  # fmt: skip
    for start_n in range(mid, end_n, BLOCK_N):
        dq = _grad_q_block(dq, q, do, lse, delta, k_base, v_base, rows, start_n, seqlen_k, kpm_row, seed, bh, sks, svs,
                           dims, mask_d, scale_log2, DROP_THRESHOLD, drop_scale, bias_base, dbias_base, seqlen_q, sbq,
                           sdbq, True, CAUSAL, HAS_KPM, DROPOUT, HAS_BIAS, BIAS_GRAD, BIAS_ATOMIC, PRECISION,
                           BLOCK_N)  # fmt: skip
    dq_off = b64 * sdqb + h * sdqh + q_rows[:, None] * sdqs + dims[None, :]
    tl.store(DQ + dq_off, (dq * scale).to(DQ.dtype.element_ty), mask=tile_m)


KERNELS = ("forward", "grad_kv", "grad_q")


def _blocks(block_m: int, block_n: int, num_warps: int, num_stages: int = 3) -> dict:
    return {"BLOCK_M": block_m, "BLOCK_N": block_n, "num_warps": num_warps, "num_stages": num_stages}


def _config(q: torch.Tensor, max_seqlen: int, dropout: bool) -> dict[str, dict]:
    """Block sizes of each kernel: tiny in the interpreter; on the GPU, configs that the Hopper
    compile gate finds free of register spills on every shape of the benchmark table
    (benchmarks/results/attention_configs.md; Philox dropout costs ~60 registers, so it gets
    narrower key blocks), their speed still to be tuned on a GPU (benchmarks/tune_attention.py).
    float32 runs its tl.dot as FMA loops ('ieee'): small tiles, 4 warps, no pipelining (its dK/dV
    kernel spills with any num_stages > 1)."""
    if not target.on_gpu(q):
        return {name: dict(INTERPRETER_CONFIG) for name in KERNELS}
    if q.dtype == torch.float32:
        return {name: _blocks(32, 32, 4, 1) for name in KERNELS}
    short = max_seqlen <= 64  # MAE's visible tokens: one 64-row query block holds the sequence
    if short:
        forward = _blocks(64, 32 if dropout else 64, 4)
    else:
        forward = _blocks(128, 32 if dropout else 64, 8)
    return {"forward": forward, "grad_kv": _blocks(32, 64, 8), "grad_q": _blocks(64, 32, 4) if short else _blocks(128, 32, 8)}


def _last_dim_contiguous(t: torch.Tensor) -> torch.Tensor:
    """Kernels take any row strides but need unit stride in the head dim (expanded grads have 0)."""
    return t if t.stride(-1) == 1 else t.contiguous()


def _bias_strides(bias: torch.Tensor | None) -> tuple[int, int, int]:
    """(batch, head, query row) strides of a [H, Sq, Sk] (batch stride 0) or [B, H, Sq, Sk] bias."""
    if bias is None:
        return (0, 0, 0)
    bias = _last_dim_contiguous(bias)
    return (0, *bias.stride()[:2]) if bias.dim() == 3 else tuple(bias.stride()[:3])


class _Problem:
    """Shapes, strides and constexprs shared by the three kernels of one attention call."""

    def __init__(self, q, k, cu_seqlens, max_seqlen, key_padding_mask, causal, scale, dropout_p, seed, configs,
                 bias=None):  # fmt: skip
        self.varlen = cu_seqlens is not None
        if self.varlen:
            self.batch, self.sq, self.sk = cu_seqlens.numel() - 1, max_seqlen, max_seqlen
            self.heads, self.kv_heads, self.dim = q.shape[1], k.shape[1], q.shape[2]
        else:
            self.batch, self.heads, self.sq, self.dim = q.shape
            self.kv_heads, self.sk = k.shape[1], k.shape[2]
        self.scale = scale
        block_d = max(16, triton.next_power_of_2(self.dim))
        self.meta = dict(D=self.dim, BLOCK_D=block_d, CAUSAL=causal, HAS_KPM=key_padding_mask is not None,
                         VARLEN=self.varlen, DROPOUT=dropout_p > 0.0, HAS_BIAS=bias is not None,
                         PRECISION="ieee" if q.dtype == torch.float32 else "tf32")  # fmt: skip
        self.configs = _config(q, max(self.sq, self.sk), dropout_p > 0.0)
        self.configs.update({name: cfg for name, cfg in configs.items() if cfg is not None})
        self.threshold = contract.dropout_threshold(dropout_p)
        self.drop_scale = 1.0 / (1.0 - dropout_p)
        dummy = q.new_empty(1, dtype=torch.uint8)
        self.kpm = key_padding_mask.contiguous().view(torch.uint8) if key_padding_mask is not None else dummy
        self.cu = cu_seqlens.contiguous() if self.varlen else dummy
        self.seed = seed if seed is not None else dummy
        self.bias = _last_dim_contiguous(bias) if bias is not None else dummy
        self.bias_strides = _bias_strides(bias)

    def strides(self, t: torch.Tensor) -> tuple[int, int, int]:
        """(batch, head, row) strides; packed tensors have no batch stride (rows carry the offset)."""
        return (0, t.stride(1), t.stride(0)) if self.varlen else (t.stride(0), t.stride(1), t.stride(2))

    def lse_empty(self, q: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """lse buffer ([H, total] packed, [B, H, Sq] dense) and its (batch, head) strides."""
        if self.varlen:
            return torch.empty(self.heads, q.shape[0], device=q.device, dtype=torch.float32), (0, q.shape[0])
        lse = torch.empty(self.batch, self.heads, self.sq, device=q.device, dtype=torch.float32)
        return lse, (self.heads * self.sq, self.sq)

    def grid(self, rows: int, block: int, heads: int) -> tuple[int, int]:
        return triton.cdiv(rows, block), self.batch * heads

    @property
    def shared(self) -> tuple:
        return (self.heads, self.heads // self.kv_heads, self.sq, self.sk)


def attention_forward(q, k, v, cu_seqlens, max_seqlen, key_padding_mask, causal, scale, dropout_p, seed,
                      bias=None, config=None):  # fmt: skip
    """(out, lse float32 in log2 units); see the module docstring for layouts, masks and ``bias``.
    ``config`` (BLOCK_M, BLOCK_N, num_warps, num_stages) overrides the default blocks, for tuning."""
    q, k, v = (_last_dim_contiguous(t) for t in (q, k, v))
    pb = _Problem(q, k, cu_seqlens, max_seqlen, key_padding_mask, causal, scale, dropout_p, seed, {"forward": config},
                  bias)  # fmt: skip
    cfg = pb.configs["forward"]
    out = contract.attention_out_like(q)
    lse, lse_strides = pb.lse_empty(q)
    _forward_kernel[pb.grid(pb.sq, cfg["BLOCK_M"], pb.heads)](
        q, k, v, out, lse, pb.kpm, pb.cu, pb.seed, pb.bias, *pb.strides(q), *pb.strides(k), *pb.strides(v),
        *pb.strides(out), *lse_strides, *pb.bias_strides, *pb.shared, scale * LOG2E, pb.threshold, pb.drop_scale,
        **pb.meta, **cfg)  # fmt: skip
    return out, lse


def attention_backward(grad_out, q, k, v, out, lse, cu_seqlens, max_seqlen, key_padding_mask, causal, scale,
                       dropout_p, seed, bias=None, bias_grad=False, kv_config=None, q_config=None):  # fmt: skip
    """(dq, dk, dv, dbias) of the forward above, recomputing probabilities from ``lse``; dbias is a
    float32 tensor of the bias's shape when ``bias_grad``, else None. ``kv_config`` and ``q_config``
    override the blocks of the dK/dV and the dQ kernel, for tuning."""
    q, k, v, grad_out = (_last_dim_contiguous(t) for t in (q, k, v, grad_out.to(q.dtype)))
    pb = _Problem(q, k, cu_seqlens, max_seqlen, key_padding_mask, causal, scale, dropout_p, seed,
                  {"grad_kv": kv_config, "grad_q": q_config}, bias)  # fmt: skip
    bias_grad = bias_grad and bias is not None
    dbias = torch.zeros(bias.shape, device=q.device, dtype=torch.float32) if bias_grad else pb.bias
    delta = (grad_out.float() * out.float()).sum(-1)  # rowsum(dO * O) = rowsum(P * dP)
    delta = (delta.T if pb.varlen else delta).contiguous()
    lse = lse.contiguous()
    lse_strides = (0, lse.shape[1]) if pb.varlen else (pb.heads * pb.sq, pb.sq)
    dq, dk, dv = contract.attention_out_like(q), contract.attention_out_like(k), contract.attention_out_like(v)
    inputs = (*pb.strides(q), *pb.strides(k), *pb.strides(v), *pb.strides(grad_out))
    tail = (*pb.shared, scale, scale * LOG2E, pb.threshold, pb.drop_scale)
    kv_cfg, q_cfg = pb.configs["grad_kv"], pb.configs["grad_q"]
    _grad_kv_kernel[pb.grid(pb.sk, kv_cfg["BLOCK_N"], pb.kv_heads)](
        q, k, v, grad_out, lse, delta, dk, dv, pb.kpm, pb.cu, pb.seed, pb.bias, *inputs, *pb.strides(dk),
        *pb.strides(dv), *lse_strides, *pb.bias_strides, *tail, **pb.meta, **kv_cfg)  # fmt: skip
    atomic = bias_grad and bias.dim() == 3 and pb.batch > 1  # one [H, Sq, Sk] gradient summed over the batch
    _grad_q_kernel[pb.grid(pb.sq, q_cfg["BLOCK_M"], pb.heads)](
        q, k, v, grad_out, lse, delta, dq, pb.kpm, pb.cu, pb.seed, pb.bias, dbias, *inputs, *pb.strides(dq),
        *lse_strides, *pb.bias_strides, *(_bias_strides(dbias) if bias_grad else (0, 0, 0)), *tail, **pb.meta,
        BIAS_GRAD=bias_grad, BIAS_ATOMIC=atomic, **q_cfg)  # fmt: skip
    return dq, dk, dv, dbias if bias_grad else None
