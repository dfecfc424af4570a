"""Contrastive losses over a similarity matrix as Triton kernels, the [N, M] logits
z = scale * x @ y.T never whole: InfoNCE (softmax over each row's M candidates, CLIP and SimCLR)
and SigLIP's pairwise sigmoid loss.

InfoNCE forward: program (row block) walks the columns in BLOCK_M chunks, each chunk's logits a
tl.dot over D, keeping an online max / sum of exp (one column per row may be excluded: SimCLR's
self-similarity) and picking the target's logit; it saves the row's log-sum-exp. SigLIP forward: the same
walk summing -log sigmoid(+-(z + bias)) per row, no log-sum-exp. The column direction (CLIP's
text -> image) walks the rows for each column block, over the very same tiles.

Backward, for both losses: program (row block, column block) recomputes its logits tile once,
forms dz (softmax - onehot from the saved row log-sum-exp, plus the column direction's term from
the saved column log-sum-exp when symmetric; or SigLIP's sigmoid gradient), and adds dz @ y and
dz^T @ x into fp32 accumulators with atomics, D chunk by D chunk, so the logits are computed once
per pass. The accumulators hold the gradients before the scale: the launcher multiplies by it and
reads the scale's own gradient off them (sum of x * (dz @ y)), so no extra pass over the tiles.
"""

import torch
import triton
import triton.language as tl

from . import target

INTERPRETER_CONFIG = {"BLOCK_N": 16, "BLOCK_M": 16, "BLOCK_D": 16, "num_warps": 4}
GPU_CONFIG = {"BLOCK_N": 64, "BLOCK_M": 128, "BLOCK_D": 64, "num_warps": 8}


@triton.jit
def _logits(X, Y, rows, cols, mask_n, mask_m, D, sxn, sym, scale,
            PRECISION: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):  # fmt: skip
    """scale * x @ y.T for one [BLOCK_N, BLOCK_M] tile in fp32 (0 outside the matrix)."""
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        dims = d0 + tl.arange(0, BLOCK_D)
        mask_d = dims < D
        x = tl.load(X + rows[:, None].to(tl.int64) * sxn + dims[None, :], mask=mask_n[:, None] & mask_d[None, :],
                    other=0.0)  # fmt: skip
        y = tl.load(Y + cols[None, :].to(tl.int64) * sym + dims[:, None], mask=mask_d[:, None] & mask_m[None, :],
                    other=0.0)  # fmt: skip
        acc = tl.dot(x, y, acc, input_precision=PRECISION)
    return acc * scale


@triton.jit
def _lse_kernel(X, Y, SCALE, T, E, LSE, ZT, N, M, D, sxn, sym,
                HAS_EXCLUDE: tl.constexpr, PRECISION: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
                BLOCK_D: tl.constexpr):  # fmt: skip
    """Per row: LSE, the log-sum-exp of its logits (column E skipped), and ZT, its target's logit."""
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = rows < N
    scale = tl.load(SCALE).to(tl.float32)
    tgt = tl.load(T + rows, mask=mask_n, other=-1)
    excl = tgt
    if HAS_EXCLUDE:
        excl = tl.load(E + rows, mask=mask_n, other=-1)
    m = tl.full((BLOCK_N,), float("-inf"), dtype=tl.float32)
    s = tl.zeros((BLOCK_N,), dtype=tl.float32)
    z_t = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for c0 in range(0, M, BLOCK_M):
        cols = c0 + tl.arange(0, BLOCK_M)
        mask_m = cols < M
        z = _logits(X, Y, rows, cols, mask_n, mask_m, D, sxn, sym, scale, PRECISION, BLOCK_N, BLOCK_M, BLOCK_D)
        z_t += tl.sum(tl.where(cols[None, :] == tgt[:, None], z, 0.0), axis=1)
        keep = mask_m[None, :]
        if HAS_EXCLUDE:
            keep = keep & (cols[None, :] != excl[:, None])
        z = tl.where(keep, z, float("-inf"))
        m_new = tl.maximum(m, tl.max(z, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        s = s * tl.exp(m - m_safe) + tl.sum(tl.exp(z - m_safe[:, None]), axis=1)
        m = m_new
    tl.store(LSE + rows, m + tl.log(s), mask=mask_n)
    tl.store(ZT + rows, z_t, mask=mask_n)


@triton.jit
def _col_lse_kernel(X, Y, SCALE, T, LSE, ZT, N, M, D, sxn, sym,
                    PRECISION: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
                    BLOCK_D: tl.constexpr):  # fmt: skip
    """Per column of the same logits: LSE over the rows and ZT, the logit of row T. The tiles are the
    row kernel's and the backward's (x @ y.T, same blocks), so all three see bit-identical logits:
    a softmax near one turns any difference into a gradient error."""
    cols = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = cols < M
    scale = tl.load(SCALE).to(tl.float32)
    tgt = tl.load(T + cols, mask=mask_m, other=-1)
    m = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    s = tl.zeros((BLOCK_M,), dtype=tl.float32)
    z_t = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for r0 in range(0, N, BLOCK_N):
        rows = r0 + tl.arange(0, BLOCK_N)
        mask_n = rows < N
        z = _logits(X, Y, rows, cols, mask_n, mask_m, D, sxn, sym, scale, PRECISION, BLOCK_N, BLOCK_M, BLOCK_D)
        z_t += tl.sum(tl.where(rows[:, None] == tgt[None, :], z, 0.0), axis=0)
        z = tl.where(mask_n[:, None], z, float("-inf"))
        m_new = tl.maximum(m, tl.max(z, axis=0))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        s = s * tl.exp(m - m_safe) + tl.sum(tl.exp(z - m_safe[None, :]), axis=0)
        m = m_new
    tl.store(LSE + cols, m + tl.log(s), mask=mask_m)
    tl.store(ZT + cols, z_t, mask=mask_m)


@triton.jit
def _sigmoid_kernel(X, Y, SCALE, BIAS, T, LOSS, N, M, D, sxn, sym,
                    PRECISION: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
                    BLOCK_D: tl.constexpr):  # fmt: skip
    """Per row: sum over columns of -log sigmoid(sign * (z + bias)), sign +1 at the target column, else -1."""
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = rows < N
    scale = tl.load(SCALE).to(tl.float32)
    bias = tl.load(BIAS).to(tl.float32)
    tgt = tl.load(T + rows, mask=mask_n, other=-1)
    acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for c0 in range(0, M, BLOCK_M):
        cols = c0 + tl.arange(0, BLOCK_M)
        mask_m = cols < M
        z = _logits(X, Y, rows, cols, mask_n, mask_m, D, sxn, sym, scale, PRECISION, BLOCK_N, BLOCK_M, BLOCK_D)
        u = tl.where(cols[None, :] == tgt[:, None], -1.0, 1.0) * (z + bias)  # loss = softplus(u)
        loss = tl.maximum(u, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(u)))
        acc += tl.sum(tl.where(mask_m[None, :], loss, 0.0), axis=1)
    tl.store(LOSS + rows, acc, mask=mask_n)


@triton.jit
def _backward_kernel(X, Y, SCALE, BIAS, TX, EX, LSEX, GX, TY, LSEY, GY, DX, DY, DB, N, M, D, sxn, sym,
                     SIGMOID: tl.constexpr, HAS_EXCLUDE: tl.constexpr, SYMMETRIC: tl.constexpr,
                     PRECISION: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
                     BLOCK_D: tl.constexpr):  # fmt: skip
    """One (row block, column block) tile: dz, the loss gradient w.r.t. the logits; DX += dz @ y,
    DY += dz^T @ x (contiguous fp32 [N, D], [M, D]), and for SigLIP DB += sum dz.

    InfoNCE: dz = gx_i (softmax_row - onehot(TX_i)), plus gy_j (softmax_col - onehot(TY_j)) when
    SYMMETRIC. SigLIP: dz = gx_i * d softplus(u) / dz."""
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_n = rows < N
    mask_m = cols < M
    scale = tl.load(SCALE).to(tl.float32)
    g_x = tl.load(GX + rows, mask=mask_n, other=0.0)
    t_x = tl.load(TX + rows, mask=mask_n, other=-1)
    z = _logits(X, Y, rows, cols, mask_n, mask_m, D, sxn, sym, scale, PRECISION, BLOCK_N, BLOCK_M, BLOCK_D)
    hit = cols[None, :] == t_x[:, None]
    if SIGMOID:
        sign = tl.where(hit, -1.0, 1.0)
        u = sign * (z + tl.load(BIAS).to(tl.float32))
        dz = g_x[:, None] * sign / (1.0 + tl.exp(-u))
    else:
        p = tl.exp(z - tl.load(LSEX + rows, mask=mask_n, other=0.0)[:, None])
        if HAS_EXCLUDE:
            p = tl.where(cols[None, :] == tl.load(EX + rows, mask=mask_n, other=-1)[:, None], 0.0, p)
        dz = g_x[:, None] * (p - tl.where(hit, 1.0, 0.0))
        if SYMMETRIC:
            lse_y = tl.load(LSEY + cols, mask=mask_m, other=0.0)
            t_y = tl.load(TY + cols, mask=mask_m, other=-1)
            g_y = tl.load(GY + cols, mask=mask_m, other=0.0)
            dz += g_y[None, :] * (tl.exp(z - lse_y[None, :]) - tl.where(rows[:, None] == t_y[None, :], 1.0, 0.0))
    dz = tl.where(mask_n[:, None] & mask_m[None, :], dz, 0.0)
    if SIGMOID:
        tl.atomic_add(DB, tl.sum(tl.sum(dz, axis=1), axis=0))
    for d0 in range(0, D, BLOCK_D):
        dims = d0 + tl.arange(0, BLOCK_D)
        mask_d = dims < D
        tile_x = mask_n[:, None] & mask_d[None, :]
        tile_y = mask_m[:, None] & mask_d[None, :]
        x = tl.load(X + rows[:, None].to(tl.int64) * sxn + dims[None, :], mask=tile_x, other=0.0)
        y = tl.load(Y + cols[:, None].to(tl.int64) * sym + dims[None, :], mask=tile_y, other=0.0)
        dx = tl.dot(dz.to(y.dtype), y, input_precision=PRECISION)
        tl.atomic_add(DX + rows[:, None].to(tl.int64) * D + dims[None, :], dx, mask=tile_x)
        dy = tl.dot(tl.trans(dz.to(x.dtype)), x, input_precision=PRECISION)
        tl.atomic_add(DY + cols[:, None].to(tl.int64) * D + dims[None, :], dy, mask=tile_y)


def _config(x: torch.Tensor) -> dict:
    """Blocks: tiny in the interpreter, GPU_CONFIG on a GPU; fp32 stays fp32 (no tf32), as the reference."""
    cfg = dict(GPU_CONFIG if target.on_gpu(x) else INTERPRETER_CONFIG)
    cfg["PRECISION"] = "ieee" if x.dtype == torch.float32 else "tf32"
    return cfg


def _rows(t: torch.Tensor) -> torch.Tensor:
    """Row strides are passed; the feature dim must be unit-stride."""
    return t if t.stride(-1) == 1 else t.contiguous()


def infonce_lse(x, y, scale, targets, exclude):
    """(loss [N] fp32, lse [N] fp32) of each row of x against every row of y: lse - z[target]."""
    x, y = _rows(x), _rows(y)
    cfg = _config(x)
    (n, d), m = x.shape, y.shape[0]
    lse, z_t = (torch.empty(n, device=x.device, dtype=torch.float32) for _ in range(2))
    targets = targets.contiguous()
    exclude = targets if exclude is None else exclude.contiguous()
    _lse_kernel[(triton.cdiv(n, cfg["BLOCK_N"]),)](
        x, y, scale, targets, exclude, lse, z_t, n, m, d, x.stride(0), y.stride(0),
        HAS_EXCLUDE=exclude is not targets, **cfg)  # fmt: skip
    return lse - z_t, lse


def infonce_col_lse(x, y, scale, col_targets):
    """(loss [M] fp32, lse [M] fp32) of each row of y against every row of x (the column direction)."""
    x, y = _rows(x), _rows(y)
    cfg = _config(x)
    (n, d), m = x.shape, y.shape[0]
    lse, z_t = (torch.empty(m, device=x.device, dtype=torch.float32) for _ in range(2))
    _col_lse_kernel[(triton.cdiv(m, cfg["BLOCK_M"]),)](
        x, y, scale, col_targets.contiguous(), lse, z_t, n, m, d, x.stride(0), y.stride(0), **cfg)  # fmt: skip
    return lse - z_t, lse


def siglip_rows(x, y, scale, bias, targets):
    """Per-row SigLIP loss [N] fp32: sum over the columns of -log sigmoid(+-(scale x.y + bias))."""
    x, y = _rows(x), _rows(y)
    cfg = _config(x)
    (n, d), m = x.shape, y.shape[0]
    loss = torch.empty(n, device=x.device, dtype=torch.float32)
    _sigmoid_kernel[(triton.cdiv(n, cfg["BLOCK_N"]),)](
        x, y, scale, bias, targets.contiguous(), loss, n, m, d, x.stride(0), y.stride(0), **cfg)  # fmt: skip
    return loss


def contrastive_backward(x, y, scale, grad_rows, targets, *, exclude=None, lse=None, col_targets=None, col_lse=None,
                         grad_cols=None, bias=None):  # fmt: skip
    """(dx fp32, dy fp32, d scale fp32 [], d bias fp32 [] or None) of an InfoNCE loss (``lse`` given;
    symmetric when ``col_targets`` / ``col_lse`` / ``grad_cols`` are) or a SigLIP loss (``bias`` given),
    for per-row loss gradients ``grad_rows``."""
    x, y = _rows(x), _rows(y)
    cfg = _config(x)
    (n, d), m = x.shape, y.shape[0]
    gx = torch.zeros(n, d, device=x.device, dtype=torch.float32)
    gy = torch.zeros(m, d, device=x.device, dtype=torch.float32)
    db = torch.zeros((), device=x.device, dtype=torch.float32)
    sigmoid, symmetric = bias is not None, col_targets is not None
    grad_rows = grad_rows.float().contiguous()
    targets = targets.contiguous()
    filler = grad_rows  # any tensor, for pointers a variant does not read
    _backward_kernel[(triton.cdiv(n, cfg["BLOCK_N"]), triton.cdiv(m, cfg["BLOCK_M"]))](
        x, y, scale, bias if sigmoid else scale, targets, filler if exclude is None else exclude.contiguous(),
        filler if lse is None else lse.contiguous(), grad_rows,
        col_targets.contiguous() if symmetric else targets, col_lse.contiguous() if symmetric else filler,
        grad_cols.float().contiguous() if symmetric else filler, gx, gy, db, n, m, d, x.stride(0), y.stride(0),
        SIGMOID=sigmoid, HAS_EXCLUDE=exclude is not None, SYMMETRIC=symmetric, **cfg)  # fmt: skip
    s = scale.float()
    d_scale = (x.float() * gx).sum()
    return gx * s, gy * s, d_scale, db if sigmoid else None
