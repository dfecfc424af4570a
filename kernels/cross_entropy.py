"""Linear + cross-entropy fused as Triton kernels: loss_n = logsumexp_v(z_nv) - z_n,t_n with
z = hidden @ weight.T + bias, without ever holding the [N, V] logits, in the manner of
Cut Cross-Entropy (Wijmans et al. 2024).

Forward: program (row block, vocabulary split) walks its part of V in BLOCK_V chunks, each chunk's
logits a tl.dot over D, keeping an online max / sum of exp and picking the target's logit; the
splits (enough programs to fill the GPU when N is small, as for MLM positions) are merged by a
logsumexp in torch. Backward: program (row block, vocabulary block) recomputes its logits tile
once, forms dz = g (softmax - onehot), and adds dz @ W into d hidden and dz^T @ h into d weight
with fp32 atomics, D chunk by D chunk, so the logits are computed once per pass.
"""

import torch
import triton
import triton.language as tl

from . import target

INTERPRETER_CONFIG = {"BLOCK_N": 16, "BLOCK_V": 16, "BLOCK_D": 16, "num_warps": 4}
GPU_CONFIG = {"BLOCK_N": 64, "BLOCK_V": 128, "BLOCK_D": 64, "num_warps": 8}


@triton.jit
def _logits(H, W, B, rows, cols, mask_n, mask_v, D, shn, swv,
            HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr,
            BLOCK_D: tl.constexpr):  # fmt: skip
    """z [BLOCK_N, BLOCK_V] in fp32, -inf past V."""
    acc = tl.zeros((BLOCK_N, BLOCK_V), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        dims = d0 + tl.arange(0, BLOCK_D)
        mask_d = dims < D
        h = tl.load(H + rows[:, None].to(tl.int64) * shn + dims[None, :], mask=mask_n[:, None] & mask_d[None, :],
                    other=0.0)  # fmt: skip
        w = tl.load(W + cols[None, :].to(tl.int64) * swv + dims[:, None], mask=mask_d[:, None] & mask_v[None, :],
                    other=0.0)  # fmt: skip
        acc = tl.dot(h, w, acc, input_precision=PRECISION)
    if HAS_BIAS:
        acc += tl.load(B + cols, mask=mask_v, other=0.0).to(tl.float32)[None, :]
    return tl.where(mask_v[None, :], acc, float("-inf"))


@triton.jit
def _forward_kernel(H, W, B, T, M, S, ZT, N, V, D, shn, swv, v_per_split,
                    HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr, BLOCK_N: tl.constexpr,
                    BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr):  # fmt: skip
    """Per (row, split): max M, sum of exp(z - M) S, and the target logit ZT (0 if not in the split)."""
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    split = tl.program_id(1)
    mask_n = rows < N
    tgt = tl.load(T + rows, mask=mask_n, other=-1)
    m = tl.full((BLOCK_N,), float("-inf"), dtype=tl.float32)
    s = tl.zeros((BLOCK_N,), dtype=tl.float32)
    z_t = tl.zeros((BLOCK_N,), dtype=tl.float32)
    v_start = split * v_per_split
    v_end = tl.minimum(V, v_start + v_per_split)
    for v0 in range(v_start, v_end, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V)
        mask_v = cols < v_end
        z = _logits(H, W, B, rows, cols, mask_n, mask_v, D, shn, swv, HAS_BIAS, PRECISION, BLOCK_N, BLOCK_V, BLOCK_D)
        m_new = tl.maximum(m, tl.max(z, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        s = s * tl.exp(m - m_safe) + tl.sum(tl.exp(z - m_safe[:, None]), axis=1)
        m = m_new
        z_t += tl.sum(tl.where(cols[None, :] == tgt[:, None], z, 0.0), axis=1)
    out = rows.to(tl.int64) * tl.num_programs(1) + split
    tl.store(M + out, m, mask=mask_n)
    tl.store(S + out, s, mask=mask_n)
    tl.store(ZT + out, z_t, mask=mask_n)


@triton.jit
def _backward_kernel(H, W, B, T, LSE, G, DH, DW, DB, N, V, D, shn, swv,
                     HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr, BLOCK_N: tl.constexpr,
                     BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr):  # fmt: skip
    """One (row block, vocabulary block) tile: dz = g (p - onehot); DH += dz W, DW += dz^T h, DB += sum dz.
    DH [N, D] and DW [V, D] are contiguous fp32 accumulators."""
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.program_id(1) * BLOCK_V + tl.arange(0, BLOCK_V)
    mask_n = rows < N
    mask_v = cols < V
    g = tl.load(G + rows, mask=mask_n, other=0.0)
    tgt = tl.load(T + rows, mask=mask_n, other=-1)
    lse = tl.load(LSE + rows, mask=mask_n, other=0.0)
    z = _logits(H, W, B, rows, cols, mask_n, mask_v, D, shn, swv, HAS_BIAS, PRECISION, BLOCK_N, BLOCK_V, BLOCK_D)
    dz = tl.exp(z - lse[:, None]) - tl.where(cols[None, :] == tgt[:, None], 1.0, 0.0)
    dz = tl.where(mask_n[:, None] & mask_v[None, :], dz * g[:, None], 0.0)
    if HAS_BIAS:
        tl.atomic_add(DB + cols, tl.sum(dz, axis=0), mask=mask_v)
    for d0 in range(0, D, BLOCK_D):
        dims = d0 + tl.arange(0, BLOCK_D)
        mask_d = dims < D
        tile_h = mask_n[:, None] & mask_d[None, :]
        tile_w = mask_v[:, None] & mask_d[None, :]
        h = tl.load(H + rows[:, None].to(tl.int64) * shn + dims[None, :], mask=tile_h, other=0.0)
        w = tl.load(W + cols[:, None].to(tl.int64) * swv + dims[None, :], mask=tile_w, other=0.0)
        dh = tl.dot(dz.to(w.dtype), w, input_precision=PRECISION)
        tl.atomic_add(DH + rows[:, None].to(tl.int64) * D + dims[None, :], dh, mask=tile_h)
        dw = tl.dot(tl.trans(dz.to(h.dtype)), h, input_precision=PRECISION)
        tl.atomic_add(DW + cols[:, None].to(tl.int64) * D + dims[None, :], dw, mask=tile_w)


def _config(hidden: torch.Tensor) -> dict:
    """Blocks: tiny in the interpreter, GPU_CONFIG on a GPU; fp32 stays fp32 (no tf32), as the reference."""
    cfg = dict(GPU_CONFIG if target.on_gpu(hidden) else INTERPRETER_CONFIG)
    cfg["PRECISION"] = "ieee" if hidden.dtype == torch.float32 else "tf32"
    return cfg


def _inputs(hidden, weight, bias, targets):
    """Row strides are passed; the feature dim, bias and targets must be unit-stride."""
    hidden = hidden if hidden.stride(-1) == 1 else hidden.contiguous()
    weight = weight if weight.stride(-1) == 1 else weight.contiguous()
    return hidden, weight, None if bias is None else bias.contiguous(), targets.contiguous()


def _splits(n: int, v: int, cfg: dict, hidden: torch.Tensor) -> int:
    """Vocabulary splits so that row blocks x splits fill the GPU (about 4 programs per SM)."""
    if not target.on_gpu(hidden):
        return 2 if v > cfg["BLOCK_V"] else 1  # the interpreter still exercises the merge
    programs = 4 * target.sm_count(hidden.device)
    return max(1, min(triton.cdiv(v, cfg["BLOCK_V"]), triton.cdiv(programs, triton.cdiv(n, cfg["BLOCK_N"]))))


def linear_cross_entropy_forward(hidden, weight, bias, targets):
    """(loss [N] fp32, lse [N] fp32); ignored rows (targets outside [0, V)) get lse as their loss."""
    hidden, weight, bias, targets = _inputs(hidden, weight, bias, targets)
    cfg = _config(hidden)
    (n, d), v = hidden.shape, weight.shape[0]
    splits = _splits(n, v, cfg, hidden)
    v_per_split = triton.cdiv(triton.cdiv(v, splits), cfg["BLOCK_V"]) * cfg["BLOCK_V"]
    splits = triton.cdiv(v, v_per_split)
    m, s, z_t = (torch.empty(n, splits, device=hidden.device, dtype=torch.float32) for _ in range(3))
    bias_arg = bias if bias is not None else hidden
    _forward_kernel[(triton.cdiv(n, cfg["BLOCK_N"]), splits)](
        hidden, weight, bias_arg, targets, m, s, z_t, n, v, d, hidden.stride(0), weight.stride(0), v_per_split,
        HAS_BIAS=bias is not None, **cfg)  # fmt: skip
    m_all = m.amax(1)
    lse = m_all + torch.log((s * torch.exp(m - m_all[:, None])).sum(1))
    return lse - z_t.sum(1), lse


def linear_cross_entropy_backward(grad_rows, hidden, weight, bias, targets, lse):
    """(d hidden, d weight, d bias or None) for per-row loss gradients ``grad_rows`` (0 on ignored rows)."""
    hidden, weight, bias, targets = _inputs(hidden, weight, bias, targets)
    cfg = _config(hidden)
    (n, d), v = hidden.shape, weight.shape[0]
    dh = torch.zeros(n, d, device=hidden.device, dtype=torch.float32)
    dw = torch.zeros(v, d, device=hidden.device, dtype=torch.float32)
    db = torch.zeros(v, device=hidden.device, dtype=torch.float32) if bias is not None else dh
    bias_arg = bias if bias is not None else hidden
    _backward_kernel[(triton.cdiv(n, cfg["BLOCK_N"]), triton.cdiv(v, cfg["BLOCK_V"]))](
        hidden, weight, bias_arg, targets, lse.contiguous(), grad_rows.float().contiguous(), dh, dw, db, n, v, d,
        hidden.stride(0), weight.stride(0), HAS_BIAS=bias is not None, **cfg)  # fmt: skip
    return dh, dw, db if bias is not None else None
