"""Sampled softmax with log-Q correction (Jean et al. 2015) as Triton kernels, forward and backward.

Row n scores its true class t and the S sampled classes shared by the batch:
z_t = h.w_t + b_t - log q_t, z_s = h.w_s + b_s - log q_s (-inf for an accidental hit s == t when
asked), loss = logsumexp(z_t, z_s...) - z_t. The [N, S] logits are never stored: the forward keeps
an online logsumexp over chunks of BLOCK_S sampled rows, and the backward recomputes each chunk's
probabilities p = exp(z - lse) from the saved lse, as FlashAttention does. The scatter of the
per-sample weight gradient into the [V, D] table is left to the caller (index_add_), so repeated
sampled ids need no atomics here.
"""

import torch
import triton
import triton.language as tl

from . import target

# Interpreter blocks: small (the interpreter is slow) but >= 16, as tl.dot requires.
INTERPRETER_CONFIG = {"BLOCK_N": 16, "BLOCK_S": 16, "BLOCK_D": 32, "num_warps": 4}
GPU_CONFIG = {"BLOCK_N": 64, "BLOCK_S": 64, "BLOCK_D": 64, "num_warps": 8}  # 4 warps spill (the Hopper compile gate)
MAX_BLOCK_OUT = 128  # width of the D slice of a gradient one program writes


@triton.jit
def _true_logit(hidden, weight, bias, targets, log_q_targets, rows, mask_n, D,
                HAS_BIAS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):  # fmt: skip
    """z_t [BLOCK_N] (a gathered row-wise dot product) and the target ids."""
    tgt = tl.load(targets + rows, mask=mask_n, other=0).to(tl.int64)
    z = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        ok = mask_n[:, None] & (cols < D)[None, :]
        h = tl.load(hidden + rows[:, None].to(tl.int64) * D + cols[None, :], mask=ok, other=0.0)
        w = tl.load(weight + tgt[:, None] * D + cols[None, :], mask=ok, other=0.0)
        z += tl.sum(h.to(tl.float32) * w.to(tl.float32), axis=1)
    if HAS_BIAS:
        z += tl.load(bias + tgt, mask=mask_n, other=0.0).to(tl.float32)
    return z - tl.load(log_q_targets + rows, mask=mask_n, other=0.0), tgt


@triton.jit
def _sampled_logits(hidden, weight, bias, sampled, log_q_sampled, rows, mask_n, tgt, s0, S, D,
                    HAS_BIAS: tl.constexpr, REMOVE_HITS: tl.constexpr, PRECISION: tl.constexpr,
                    BLOCK_N: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr):  # fmt: skip
    """z [BLOCK_N, BLOCK_S] for sampled positions s0.. (-inf past S and on removed hits), and their ids."""
    sid = s0 + tl.arange(0, BLOCK_S)
    mask_s = sid < S
    ids = tl.load(sampled + sid, mask=mask_s, other=0).to(tl.int64)
    acc = tl.zeros((BLOCK_N, BLOCK_S), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        mask_d = cols < D
        h = tl.load(hidden + rows[:, None].to(tl.int64) * D + cols[None, :],
                    mask=mask_n[:, None] & mask_d[None, :], other=0.0)  # fmt: skip
        w = tl.load(weight + ids[None, :] * D + cols[:, None], mask=mask_d[:, None] & mask_s[None, :], other=0.0)
        acc = tl.dot(h, w, acc, input_precision=PRECISION)
    if HAS_BIAS:
        acc += tl.load(bias + ids, mask=mask_s, other=0.0).to(tl.float32)[None, :]
    z = acc - tl.load(log_q_sampled + sid, mask=mask_s, other=0.0)[None, :]
    dead = ~mask_s[None, :]
    if REMOVE_HITS:
        dead = dead | (ids[None, :] == tgt[:, None])
    return tl.where(dead, float("-inf"), z), ids, sid, mask_s


@triton.jit
def _forward_kernel(hidden, weight, bias, targets, sampled, log_q_targets, log_q_sampled, loss, lse, N, S, D,
                    HAS_BIAS: tl.constexpr, REMOVE_HITS: tl.constexpr, PRECISION: tl.constexpr,
                    BLOCK_N: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr):  # fmt: skip
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = rows < N
    z_t, tgt = _true_logit(hidden, weight, bias, targets, log_q_targets, rows, mask_n, D, HAS_BIAS, BLOCK_N, BLOCK_D)
    m = z_t  # running max and sum of exp(z - m), started with the true logit (always finite)
    total = tl.full((BLOCK_N,), 1.0, dtype=tl.float32)
    for s0 in range(0, S, BLOCK_S):
        z, _, _, _ = _sampled_logits(hidden, weight, bias, sampled, log_q_sampled, rows, mask_n, tgt, s0, S, D,
                                     HAS_BIAS, REMOVE_HITS, PRECISION, BLOCK_N, BLOCK_S, BLOCK_D)  # fmt: skip
        m_new = tl.maximum(m, tl.max(z, axis=1))
        total = total * tl.exp(m - m_new) + tl.sum(tl.exp(z - m_new[:, None]), axis=1)
        m = m_new
    row_lse = m + tl.log(total)
    tl.store(lse + rows, row_lse, mask=mask_n)
    tl.store(loss + rows, row_lse - z_t, mask=mask_n)


@triton.jit
def _grad_hidden_kernel(grad, hidden, weight, bias, targets, sampled, log_q_targets, log_q_sampled, lse,
                        grad_hidden, coef_t, N, S, D,
                        HAS_BIAS: tl.constexpr, REMOVE_HITS: tl.constexpr, PRECISION: tl.constexpr,
                        BLOCK_N: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr,
                        BLOCK_OUT: tl.constexpr):  # fmt: skip
    """d_h = g (p_t - 1) w_t + sum_s g p_s w_s for a [BLOCK_N, BLOCK_OUT] tile; also g (p_t - 1) per row."""
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    out = tl.program_id(1) * BLOCK_OUT + tl.arange(0, BLOCK_OUT)
    mask_n, mask_o = rows < N, out < D
    g = tl.load(grad + rows, mask=mask_n, other=0.0)
    row_lse = tl.load(lse + rows, mask=mask_n, other=0.0)
    z_t, tgt = _true_logit(hidden, weight, bias, targets, log_q_targets, rows, mask_n, D, HAS_BIAS, BLOCK_N, BLOCK_D)
    c_t = tl.where(mask_n, g * (tl.exp(z_t - row_lse) - 1.0), 0.0)
    w_t = tl.load(weight + tgt[:, None] * D + out[None, :], mask=mask_n[:, None] & mask_o[None, :], other=0.0)
    acc = c_t[:, None] * w_t.to(tl.float32)
    for s0 in range(0, S, BLOCK_S):
        z, ids, _, mask_s = _sampled_logits(hidden, weight, bias, sampled, log_q_sampled, rows, mask_n, tgt, s0, S,
                                            D, HAS_BIAS, REMOVE_HITS, PRECISION, BLOCK_N, BLOCK_S, BLOCK_D)  # fmt: skip
        p = tl.where(mask_n[:, None], tl.exp(z - row_lse[:, None]) * g[:, None], 0.0)
        w = tl.load(weight + ids[:, None] * D + out[None, :], mask=mask_s[:, None] & mask_o[None, :], other=0.0)
        acc = tl.dot(p.to(w.dtype), w, acc, input_precision=PRECISION)
    tile = mask_n[:, None] & mask_o[None, :]
    tl.store(grad_hidden + rows[:, None].to(tl.int64) * D + out[None, :], acc, mask=tile)
    if tl.program_id(1) == 0:
        tl.store(coef_t + rows, c_t, mask=mask_n)


@triton.jit
def _grad_sampled_kernel(grad, hidden, weight, bias, targets, sampled, log_q_targets, log_q_sampled, lse,
                         grad_w_sampled, grad_b_sampled, N, S, D,
                         HAS_BIAS: tl.constexpr, REMOVE_HITS: tl.constexpr, PRECISION: tl.constexpr,
                         BLOCK_N: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr,
                         BLOCK_OUT: tl.constexpr):  # fmt: skip
    """d w_s = sum_n g p_s h_n (a [BLOCK_S, BLOCK_OUT] tile) and d b_s = sum_n g p_s, per sampled position."""
    s0 = tl.program_id(0) * BLOCK_S
    out = tl.program_id(1) * BLOCK_OUT + tl.arange(0, BLOCK_OUT)
    mask_o = out < D
    acc = tl.zeros((BLOCK_S, BLOCK_OUT), dtype=tl.float32)
    acc_b = tl.zeros((BLOCK_S,), dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        rows = n0 + tl.arange(0, BLOCK_N)
        mask_n = rows < N
        g = tl.load(grad + rows, mask=mask_n, other=0.0)
        row_lse = tl.load(lse + rows, mask=mask_n, other=0.0)
        tgt = tl.load(targets + rows, mask=mask_n, other=0).to(tl.int64)
        z, _, _, _ = _sampled_logits(hidden, weight, bias, sampled, log_q_sampled, rows, mask_n, tgt, s0, S, D,
                                     HAS_BIAS, REMOVE_HITS, PRECISION, BLOCK_N, BLOCK_S, BLOCK_D)  # fmt: skip
        p = tl.where(mask_n[:, None], tl.exp(z - row_lse[:, None]) * g[:, None], 0.0)
        h = tl.load(hidden + rows[:, None].to(tl.int64) * D + out[None, :],
                    mask=mask_n[:, None] & mask_o[None, :], other=0.0)  # fmt: skip
        acc = tl.dot(tl.trans(p).to(h.dtype), h, acc, input_precision=PRECISION)
        acc_b += tl.sum(p, axis=0)
    sid = s0 + tl.arange(0, BLOCK_S)
    mask_s = sid < S
    tl.store(grad_w_sampled + sid[:, None].to(tl.int64) * D + out[None, :], acc,
             mask=mask_s[:, None] & mask_o[None, :])  # fmt: skip
    if tl.program_id(1) == 0:
        tl.store(grad_b_sampled + sid, acc_b, mask=mask_s)


def _config(hidden: torch.Tensor) -> dict:
    """Blocks: tiny in the interpreter, GPU_CONFIG on a GPU; BLOCK_OUT from D."""
    blocks = dict(GPU_CONFIG if target.on_gpu(hidden) else INTERPRETER_CONFIG)
    d = hidden.shape[1]
    blocks["BLOCK_OUT"] = min(MAX_BLOCK_OUT, max(16, triton.next_power_of_2(d)))
    # fp32 stays fp32 (no tf32) so the kernel agrees with the float32 reference.
    blocks["PRECISION"] = "ieee" if hidden.dtype == torch.float32 else "tf32"
    return blocks


def _args(hidden, weight, bias, targets, sampled, log_q_targets, log_q_sampled):
    hidden, weight = hidden.contiguous(), weight.contiguous()
    bias = weight if bias is None else bias.contiguous()  # any pointer; never read without HAS_BIAS
    rest = (targets, sampled, log_q_targets, log_q_sampled)
    return hidden, weight, bias, *(t.contiguous() for t in rest)


def sampled_softmax_forward(hidden, weight, bias, targets, sampled, log_q_targets, log_q_sampled, remove_hits):
    """Per-row loss and logsumexp, both [N] float32. hidden [N, D], weight [V, D], bias [V] or None,
    targets [N], sampled [S], log_q_* float32 [N] / [S]; all on one device."""
    args = _args(hidden, weight, bias, targets, sampled, log_q_targets, log_q_sampled)
    (n, d), s = hidden.shape, sampled.shape[0]
    loss = torch.empty(n, dtype=torch.float32, device=hidden.device)
    lse = torch.empty_like(loss)
    cfg = _config(hidden)
    cfg.pop("BLOCK_OUT")
    grid = (triton.cdiv(n, cfg["BLOCK_N"]),)
    _forward_kernel[grid](*args, loss, lse, n, s, d, HAS_BIAS=bias is not None, REMOVE_HITS=bool(remove_hits), **cfg)
    return loss, lse


def sampled_softmax_backward(grad, hidden, weight, bias, targets, sampled, log_q_targets, log_q_sampled, lse,
                             remove_hits):  # fmt: skip
    """Gradients from the saved lse: d_hidden [N, D] (hidden's dtype), d_w_sampled [S, D] and d_b_sampled [S]
    (float32, one row per sampled position, to scatter into the table), and g (p_t - 1) [N] float32, the
    coefficient of the target rows (d w_t = coef h, d b_t = coef)."""
    args = _args(hidden, weight, bias, targets, sampled, log_q_targets, log_q_sampled)
    (n, d), s = hidden.shape, sampled.shape[0]
    grad, lse = grad.contiguous().float(), lse.contiguous()
    cfg = _config(hidden)
    flags = dict(HAS_BIAS=bias is not None, REMOVE_HITS=bool(remove_hits), **cfg)
    out_blocks = triton.cdiv(d, cfg["BLOCK_OUT"])
    grad_hidden = torch.empty_like(args[0])
    coef_t = torch.empty(n, dtype=torch.float32, device=hidden.device)
    _grad_hidden_kernel[(triton.cdiv(n, cfg["BLOCK_N"]), out_blocks)](grad, *args, lse, grad_hidden, coef_t, n, s, d,
                                                                      **flags)  # fmt: skip
    grad_w = torch.empty(s, d, dtype=torch.float32, device=hidden.device)
    grad_b = torch.empty(s, dtype=torch.float32, device=hidden.device)
    _grad_sampled_kernel[(triton.cdiv(s, cfg["BLOCK_S"]), out_blocks)](grad, *args, lse, grad_w, grad_b, n, s, d,
                                                                       **flags)  # fmt: skip
    return grad_hidden, grad_w, grad_b, coef_t
