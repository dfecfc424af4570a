"""MAE's per-sample random masking, masked-token gather and decoder unshuffle as Triton kernels:
memory-bound row copies with the positional-embedding add fused, and backwards that write every
gradient in one pass over the incoming gradient, reducing over the batch without atomics
(fixed-order partial sums).

- gather (encoder): out[b, i] = x[b, ids_keep[b, i]] + pos[ids_keep[b, i]], out [B, K, D].
  Backward in gather form over all B x L positions through the inverse map inv[b, l] (the slot i
  with ids_keep[b, i] = l, or -1): dx[b, l] = dout[b, inv[b, l]] or 0, so the zeros of removed
  positions are written by the same pass (no memset), and dpos[l] = sum_b dx[b, l] is accumulated
  from the same loads.
- unshuffle (decoder): out[b, 0] = x[b, 0] + pos[0]; out[b, 1 + j] = (x[b, 1 + r] if r < K else
  mask_token) + pos[1 + j] with r = ids_restore[b, j], out [B, 1 + L, Dd]. Backward reads dout
  once: dx by scattering kept rows back (ids_restore is a permutation, so each dx row is written
  exactly once, no atomics), dpos[j] = sum_b dout[b, j], dmask_token = sum of masked rows.
- masking: one program per sample (rows up to contract.MAX_SORT) sorts its noise row in registers
  (keys = a total order on the float bits << 32 | position, so the order is a stable argsort's for
  any float, NaN included) and writes ids_keep, ids_restore (a scatter: no second argsort) and the
  mask directly: no [B, L] round trips between sorts.

Arithmetic: every value is loaded, converted to float32, added once and rounded once to the output
dtype; batch reductions accumulate in float32 into per-split partial buffers summed by torch.
All pointer offsets are int64. Launchers take any row strides; the feature dim must be unit-stride
(else it is made contiguous: the stride-0 gradient of ``out.sum()`` lands here).
"""

import torch
import triton
import triton.language as tl

from . import contract, target

# Interpreter blocks are tiny so that tests on small shapes still span several row, feature and
# batch blocks (and more than one batch split of the reductions).
INTERPRETER_CONFIG = {"BLOCK_R": 4, "BLOCK_L": 4, "BLOCK_B": 2, "MAX_D": 32, "num_warps": 4}
GPU_CONFIG = {"BLOCK_R": 8, "BLOCK_L": 2, "BLOCK_B": 4, "MAX_D": 256, "num_warps": 4}
PROGRAMS_PER_SM = 4  # batch splits of a reduction are added until about this many programs per SM


@triton.jit
def _masking_kernel(NOISE, IDS_KEEP, IDS_RESTORE, MASK, L, K, BLOCK: tl.constexpr):
    """Row b of noise -> its ascending order as a stable torch.argsort gives it, for any float: the
    first K kept, the rest masked. Keys are the float bits made monotone as int32 (a negative
    float's low 31 bits flipped), -0.0 as +0.0 and every NaN as one key above +inf (torch sorts
    NaN last); padding past L takes the int32 maximum, so it sorts after every real position."""
    b = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    inside = offs < L
    bits = tl.load(NOISE + b * L + offs, mask=inside, other=0.0).to(tl.int32, bitcast=True)
    magnitude = bits & 0x7FFFFFFF
    key = tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    key = tl.where(magnitude > 0x7F800000, 0x7FC00000, key)  # NaN
    key = tl.where(magnitude == 0, 0, key)  # -0.0
    key = tl.where(inside, key, 0x7FFFFFFF)
    order = tl.sort((key.to(tl.int64) << 32) | offs.to(tl.int64)) & 0xFFFFFFFF  # ids_shuffle[b]; ties by position
    rank = offs.to(tl.int64)
    tl.store(IDS_KEEP + b * K + rank, order, mask=rank < K)
    tl.store(IDS_RESTORE + b * L + order, rank, mask=inside)  # rank < L exactly for the real positions
    tl.store(MASK + b * L + order, (rank >= K).to(tl.float32), mask=inside)


@triton.jit
def _gather_forward_kernel(X, POS, IDS, OUT, n_rows, K, D, sxb, sxl, spl, sib,
                           BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr):  # fmt: skip
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)  # flattened b * K + i
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_r = rows < n_rows
    mask = mask_r[:, None] & (cols < D)[None, :]
    b = rows // K
    pos = tl.load(IDS + b * sib + rows % K, mask=mask_r, other=0).to(tl.int64)
    xv = tl.load(X + (b * sxb + pos * sxl)[:, None] + cols[None, :], mask=mask, other=0.0)
    pv = tl.load(POS + (pos * spl)[:, None] + cols[None, :], mask=mask, other=0.0)
    out = xv.to(tl.float32) + pv.to(tl.float32)
    tl.store(OUT + (rows * D)[:, None] + cols[None, :], out.to(OUT.dtype.element_ty), mask=mask)


@triton.jit
def _inverse_kernel(IDS, INV, L, K, sib, BLOCK: tl.constexpr):
    """inv[b, l] = i where ids_keep[b, i] = l, else -1 (int32), one program per batch row."""
    b = tl.program_id(0).to(tl.int64)
    for l0 in range(0, L, BLOCK):
        offs = l0 + tl.arange(0, BLOCK)
        tl.store(INV + b * L + offs, tl.full((BLOCK,), -1, tl.int32), mask=offs < L)
    tl.debug_barrier()  # the fill above before the scatter below (same addresses, other threads)
    for k0 in range(0, K, BLOCK):
        slots = k0 + tl.arange(0, BLOCK)
        pos = tl.load(IDS + b * sib + slots, mask=slots < K, other=0).to(tl.int64)
        tl.store(INV + b * L + pos, slots.to(tl.int32), mask=slots < K)


@triton.jit
def _gather_backward_kernel(DO, INV, DX, DPOS, B, L, K, D, sgb, sgk, B_PER_SPLIT,
                            NEED_DX: tl.constexpr, NEED_DPOS: tl.constexpr, BLOCK_B: tl.constexpr,
                            BLOCK_L: tl.constexpr, BLOCK_D: tl.constexpr):  # fmt: skip
    """Program (l block, d block, batch split): dx rows of its batches, dpos partial of the split."""
    ls = tl.program_id(0) * BLOCK_L + tl.arange(0, BLOCK_L)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    split = tl.program_id(2)
    mask_l = ls < L
    mask_d = cols < D
    b_start = split * B_PER_SPLIT
    b_end = tl.minimum(b_start + B_PER_SPLIT, B)
    acc = tl.zeros((BLOCK_L, BLOCK_D), dtype=tl.float32)
    for b0 in range(b_start, b_end, BLOCK_B):
        bs = (b0 + tl.arange(0, BLOCK_B)).to(tl.int64)
        inside = (bs < b_end)[:, None] & mask_l[None, :]  # [BLOCK_B, BLOCK_L]
        slot = tl.load(INV + bs[:, None] * L + ls[None, :], mask=inside, other=-1).to(tl.int64)
        src = bs[:, None] * sgb + slot * sgk
        g = tl.load(DO + src[:, :, None] + cols[None, None, :], mask=(slot >= 0)[:, :, None] & mask_d[None, None, :],
                    other=0.0)  # fmt: skip
        if NEED_DX:
            dst = (bs[:, None] * L + ls[None, :]) * D
            tl.store(DX + dst[:, :, None] + cols[None, None, :], g, mask=inside[:, :, None] & mask_d[None, None, :])
        if NEED_DPOS:
            acc += tl.sum(g.to(tl.float32), axis=0)
    if NEED_DPOS:
        out = (split.to(tl.int64) * L + ls) * D
        tl.store(DPOS + out[:, None] + cols[None, :], acc, mask=mask_l[:, None] & mask_d[None, :])


@triton.jit
def _unshuffle_forward_kernel(X, TOKEN, POS, IDS, OUT, n_rows, L, K, D, sxb, sxl, spl, sib,
                              BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr):  # fmt: skip
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)  # flattened b * (1 + L) + j
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_r = rows < n_rows
    mask_d = cols < D
    mask = mask_r[:, None] & mask_d[None, :]
    b = rows // (L + 1)
    j = rows % (L + 1)
    r = tl.load(IDS + b * sib + j - 1, mask=mask_r & (j > 0), other=0).to(tl.int64)
    from_x = (j == 0) | (r < K)
    src = tl.where(j == 0, 0, r + 1)
    xv = tl.load(X + (b * sxb + src * sxl)[:, None] + cols[None, :], mask=mask & from_x[:, None], other=0.0)
    token = tl.load(TOKEN + cols, mask=mask_d, other=0.0).to(tl.float32)
    v = tl.where(from_x[:, None], xv.to(tl.float32), token[None, :])
    pv = tl.load(POS + (j * spl)[:, None] + cols[None, :], mask=mask, other=0.0)
    out = v + pv.to(tl.float32)
    tl.store(OUT + (rows * D)[:, None] + cols[None, :], out.to(OUT.dtype.element_ty), mask=mask)


@triton.jit
def _unshuffle_backward_kernel(DO, IDS, DX, DTOKEN, DPOS, B, L, K, D, sgb, sgl, sib, B_PER_SPLIT,
                               NEED_DX: tl.constexpr, NEED_DTOKEN: tl.constexpr, NEED_DPOS: tl.constexpr,
                               BLOCK_B: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_D: tl.constexpr):  # fmt: skip
    """Program (row block of the 1 + L output rows, d block, batch split)."""
    js = tl.program_id(0) * BLOCK_L + tl.arange(0, BLOCK_L)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    split = tl.program_id(2)
    mask_j = js < L + 1
    mask_d = cols < D
    b_start = split * B_PER_SPLIT
    b_end = tl.minimum(b_start + B_PER_SPLIT, B)
    acc_pos = tl.zeros((BLOCK_L, BLOCK_D), dtype=tl.float32)
    acc_token = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for b0 in range(b_start, b_end, BLOCK_B):
        bs = (b0 + tl.arange(0, BLOCK_B)).to(tl.int64)
        inside = (bs < b_end)[:, None] & mask_j[None, :]  # [BLOCK_B, BLOCK_L]
        tile = inside[:, :, None] & mask_d[None, None, :]
        src = bs[:, None] * sgb + js[None, :] * sgl
        g = tl.load(DO + src[:, :, None] + cols[None, None, :], mask=tile, other=0.0)
        r = tl.load(IDS + bs[:, None] * sib + js[None, :] - 1, mask=inside & (js > 0)[None, :], other=0).to(tl.int64)
        from_x = (js == 0)[None, :] | (r < K)
        if NEED_DX:
            dst = (bs[:, None] * (K + 1) + tl.where(js[None, :] == 0, 0, r + 1)) * D
            tl.store(DX + dst[:, :, None] + cols[None, None, :], g, mask=tile & from_x[:, :, None])
        if NEED_DPOS:
            acc_pos += tl.sum(g.to(tl.float32), axis=0)
        if NEED_DTOKEN:
            masked = tl.where(from_x[:, :, None], 0.0, g.to(tl.float32))
            acc_token += tl.sum(tl.sum(masked, axis=0), axis=0)
    split64 = split.to(tl.int64)
    if NEED_DPOS:
        out = (split64 * (L + 1) + js) * D
        tl.store(DPOS + out[:, None] + cols[None, :], acc_pos, mask=mask_j[:, None] & mask_d[None, :])
    if NEED_DTOKEN:
        out = (split64 * tl.num_programs(0) + tl.program_id(0)) * D
        tl.store(DTOKEN + out + cols, acc_token, mask=mask_d)


def _config(t: torch.Tensor, dim: int) -> dict:
    """Block sizes: tiny in the interpreter; on the GPU BLOCK_D = next_power_of_2(D) capped at 256."""
    base = GPU_CONFIG if target.on_gpu(t) else INTERPRETER_CONFIG
    cfg = dict(base)
    cfg["BLOCK_D"] = min(cfg.pop("MAX_D"), triton.next_power_of_2(dim))
    return cfg


def _splits(t: torch.Tensor, batch: int, row_blocks: int, d_blocks: int, block_b: int, reduce: bool) -> int:
    """Batch elements per program of a backward: without a reduction one batch block each (the most
    parallel); with one, the fewest splits that give ~PROGRAMS_PER_SM programs per SM, since each
    split costs a float32 partial [rows, D] (a 2-way split in the interpreter, to be tested)."""
    b_blocks = triton.cdiv(batch, block_b)
    if not reduce:
        return block_b
    if target.on_gpu(t):
        programs = PROGRAMS_PER_SM * target.sm_count(t.device)
        splits = min(b_blocks, max(1, triton.cdiv(programs, row_blocks * d_blocks)))
    else:
        splits = min(b_blocks, 2)
    return block_b * triton.cdiv(b_blocks, splits)


def _rows(t: torch.Tensor) -> torch.Tensor:
    """Any row strides; the feature dim must be unit-stride (expanded grads have stride 0 there)."""
    return t if t.stride(-1) == 1 else t.contiguous()


def _reduce(partial: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Sum the float32 per-split partials (fixed order, deterministic) and round once."""
    total = partial[0] if partial.shape[0] == 1 else partial.sum(0)
    return total.to(dtype)


def masking_from_noise(noise: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """noise float32 [B, L], L <= contract.MAX_SORT -> (ids_keep int64 [B, keep], ids_restore int64
    [B, L], mask float32 [B, L]) of a stable ascending argsort of each row."""
    noise = noise.contiguous()
    b, length = noise.shape
    if length > contract.MAX_SORT:
        raise ValueError(f"noise: rows of {length} exceed the {contract.MAX_SORT} the masking kernel sorts")
    ids_keep = torch.empty(b, keep, dtype=torch.int64, device=noise.device)
    ids_restore = torch.empty(b, length, dtype=torch.int64, device=noise.device)
    mask = torch.empty(b, length, dtype=torch.float32, device=noise.device)
    block = triton.next_power_of_2(length)  # the whole row in registers, on any target
    _masking_kernel[(b,)](noise, ids_keep, ids_restore, mask, length, keep, BLOCK=block,
                          num_warps=4 if block <= 1024 else 8)  # fmt: skip
    return ids_keep, ids_restore, mask


def gather_forward(x: torch.Tensor, pos: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
    """x [B, L, D], pos [L, D], ids_keep [B, K] int -> out [B, K, D] contiguous in x's dtype."""
    x, pos, ids_keep = _rows(x), _rows(pos), ids_keep.contiguous()
    b, _, d = x.shape
    k = ids_keep.shape[1]
    out = torch.empty(b, k, d, dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out
    cfg = _config(x, d)
    grid = (triton.cdiv(b * k, cfg["BLOCK_R"]), triton.cdiv(d, cfg["BLOCK_D"]))
    _gather_forward_kernel[grid](x, pos, ids_keep, out, b * k, k, d, x.stride(0), x.stride(1), pos.stride(0),
                                 ids_keep.stride(0), BLOCK_R=cfg["BLOCK_R"], BLOCK_D=cfg["BLOCK_D"],
                                 num_warps=cfg["num_warps"])  # fmt: skip
    return out


def gather_backward(grad_out: torch.Tensor, ids_keep: torch.Tensor, length: int, need_dx: bool,
                    pos_dtype: torch.dtype | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:  # fmt: skip
    """(dx [B, L, D] in grad_out's dtype or None, dpos [L, D] in pos_dtype or None)."""
    grad_out, ids_keep = _rows(grad_out), ids_keep.contiguous()
    b, k, d = grad_out.shape
    need_dpos = pos_dtype is not None
    if b == 0 or d == 0:
        dx = grad_out.new_zeros(b, length, d) if need_dx else None
        return dx, grad_out.new_zeros(length, d, dtype=pos_dtype) if need_dpos else None
    cfg = _config(grad_out, d)
    inv = torch.empty(b, length, dtype=torch.int32, device=grad_out.device)
    _inverse_kernel[(b,)](ids_keep, inv, length, k, ids_keep.stride(0), BLOCK=min(1024, triton.next_power_of_2(length)))
    dx = torch.empty(b, length, d, dtype=grad_out.dtype, device=grad_out.device) if need_dx else None
    grid_l, grid_d = triton.cdiv(length, cfg["BLOCK_L"]), triton.cdiv(d, cfg["BLOCK_D"])
    per_split = _splits(grad_out, b, grid_l, grid_d, cfg["BLOCK_B"], need_dpos)
    n_splits = triton.cdiv(b, per_split)
    partial = torch.empty(n_splits, length, d, dtype=torch.float32, device=grad_out.device) if need_dpos else None
    dummy = grad_out.new_empty(1)
    _gather_backward_kernel[(grid_l, grid_d, n_splits)](
        grad_out, inv, dx if need_dx else dummy, partial if need_dpos else dummy, b, length, k, d,
        grad_out.stride(0), grad_out.stride(1), per_split, NEED_DX=need_dx, NEED_DPOS=need_dpos,
        BLOCK_B=cfg["BLOCK_B"], BLOCK_L=cfg["BLOCK_L"], BLOCK_D=cfg["BLOCK_D"], num_warps=cfg["num_warps"])  # fmt: skip
    return dx, _reduce(partial, pos_dtype) if need_dpos else None


def unshuffle_forward(x: torch.Tensor, token: torch.Tensor, pos: torch.Tensor,
                      ids_restore: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """x [B, 1 + K, D], token [D], pos [1 + L, D], ids_restore [B, L] -> out [B, 1 + L, D] in x's dtype."""
    x, pos, token, ids_restore = _rows(x), _rows(pos), token.contiguous(), ids_restore.contiguous()
    b, k1, d = x.shape
    length = ids_restore.shape[1]
    out = torch.empty(b, length + 1, d, dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out
    cfg = _config(x, d)
    n_rows = b * (length + 1)
    grid = (triton.cdiv(n_rows, cfg["BLOCK_R"]), triton.cdiv(d, cfg["BLOCK_D"]))
    _unshuffle_forward_kernel[grid](x, token, pos, ids_restore, out, n_rows, length, k1 - 1, d, x.stride(0),
                                    x.stride(1), pos.stride(0), ids_restore.stride(0), BLOCK_R=cfg["BLOCK_R"],
                                    BLOCK_D=cfg["BLOCK_D"], num_warps=cfg["num_warps"])  # fmt: skip
    return out


def unshuffle_backward(grad_out: torch.Tensor, ids_restore: torch.Tensor, keep: int, need_dx: bool,
                       token_dtype: torch.dtype | None, pos_dtype: torch.dtype | None):  # fmt: skip
    """(dx [B, 1 + K, D] or None, dtoken [D] or None, dpos [1 + L, D] or None) in one pass over dout."""
    grad_out, ids_restore = _rows(grad_out), ids_restore.contiguous()
    b, l1, d = grad_out.shape
    need_token, need_pos = token_dtype is not None, pos_dtype is not None
    if b == 0 or d == 0:
        return (grad_out.new_zeros(b, keep + 1, d) if need_dx else None,
                grad_out.new_zeros(d, dtype=token_dtype) if need_token else None,
                grad_out.new_zeros(l1, d, dtype=pos_dtype) if need_pos else None)  # fmt: skip
    cfg = _config(grad_out, d)
    grid_l, grid_d = triton.cdiv(l1, cfg["BLOCK_L"]), triton.cdiv(d, cfg["BLOCK_D"])
    per_split = _splits(grad_out, b, grid_l, grid_d, cfg["BLOCK_B"], need_token or need_pos)
    n_splits = triton.cdiv(b, per_split)
    dev = grad_out.device
    dx = torch.empty(b, keep + 1, d, dtype=grad_out.dtype, device=dev) if need_dx else None
    token_part = torch.empty(n_splits, grid_l, d, dtype=torch.float32, device=dev) if need_token else None
    pos_part = torch.empty(n_splits, l1, d, dtype=torch.float32, device=dev) if need_pos else None
    dummy = grad_out.new_empty(1)
    _unshuffle_backward_kernel[(grid_l, grid_d, n_splits)](
        grad_out, ids_restore, dx if need_dx else dummy, token_part if need_token else dummy,
        pos_part if need_pos else dummy, b, l1 - 1, keep, d, grad_out.stride(0), grad_out.stride(1),
        ids_restore.stride(0), per_split, NEED_DX=need_dx, NEED_DTOKEN=need_token, NEED_DPOS=need_pos,
        BLOCK_B=cfg["BLOCK_B"], BLOCK_L=cfg["BLOCK_L"], BLOCK_D=cfg["BLOCK_D"], num_warps=cfg["num_warps"])  # fmt: skip
    dtoken = token_part.view(-1, d).sum(0).to(token_dtype) if need_token else None
    return dx, dtoken, _reduce(pos_part, pos_dtype) if need_pos else None
