"""Point-cloud kernels for Point-MAE-style tokenizers and losses: farthest-point sampling, k nearest
neighbours and the nearest-neighbour pairs of the Chamfer distance, with its backward.

Every squared distance is formed as ``dx * dx + dy * dy + dz * dz`` in float32 (x, y, z loaded in
the input dtype and converted) with fp-fusion off, the three products rounded before the two adds
in that order, so a kernel's distances equal the torch reference's bit for bit and so do the
choices made on them (which point is farthest, which are nearest), ties included.

- FPS: one program per cloud holds the whole cloud and its running min-distance in registers
  (clouds up to contract.MAX_FPS_POINTS), starts at point 0 and picks the farthest point M - 1
  times; ties go to the lowest index (tl.argmax's left tie-break, as torch.argmax).
- kNN: program (query block, cloud) walks the points in BLOCK_N chunks; keys (distance bits << 32 |
  index) order by distance, then index; the best BLOCK_N keys so far (ascending) and the chunk's
  (sorted descending) are merged by an elementwise minimum, which keeps the BLOCK_N smallest of
  both (a bitonic merge), then sorted again: exact top-k for k <= BLOCK_N, ties to the lower index.
- nearest (Chamfer forward, each direction): running minimum over chunks, the first minimum kept.
- Chamfer backward: d a_i += 2 g_i (a_i - b_j), d b_j -= the same, j = a_i's nearest; float32
  atomics into zeroed buffers (the scatter onto b has repeated j).
"""

import torch
import triton
import triton.language as tl

from . import contract, target

INTERPRETER_CONFIG = {"BLOCK_M": 4, "KNN_BLOCK_M": 4, "BLOCK_N": 8, "num_warps": 4}
# kNN's two int64 key tiles and their sorts take ~3x the registers of nearest's float tile: half the rows.
GPU_CONFIG = {"BLOCK_M": 32, "KNN_BLOCK_M": 16, "BLOCK_N": 64, "num_warps": 4}
INT64_MAX = tl.constexpr(0x7FFFFFFFFFFFFFFF)  # the key of a padding slot: after every real one


@triton.jit
def _squared(ax, ay, az, bx, by, bz):
    dx = ax - bx
    dy = ay - by
    dz = az - bz
    return dx * dx + dy * dy + dz * dz


@triton.jit
def _fps_kernel(P, OUT, N, M, spb, spn, BLOCK: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    inside = offs < N
    base = P + b * spb + offs.to(tl.int64) * spn
    x = tl.load(base, mask=inside, other=0.0).to(tl.float32)
    y = tl.load(base + 1, mask=inside, other=0.0).to(tl.float32)
    z = tl.load(base + 2, mask=inside, other=0.0).to(tl.float32)
    dist = tl.where(inside, float("inf"), float("-inf"))  # padding is never the farthest
    cur = tl.zeros((), dtype=tl.int32)
    tl.store(OUT + b * M, cur.to(tl.int64))
    for i in range(1, M):
        c = P + b * spb + cur.to(tl.int64) * spn
        cx = tl.load(c).to(tl.float32)
        cy = tl.load(c + 1).to(tl.float32)
        cz = tl.load(c + 2).to(tl.float32)
        dist = tl.minimum(dist, _squared(x, y, z, cx, cy, cz))
        cur = tl.argmax(dist, axis=0, tie_break_left=True).to(tl.int32)
        tl.store(OUT + b * M + i, cur.to(tl.int64))


@triton.jit
def _load_xyz(T, rows, mask, sb, sn, b):
    base = T + b * sb + rows.to(tl.int64) * sn
    x = tl.load(base, mask=mask, other=0.0).to(tl.float32)
    y = tl.load(base + 1, mask=mask, other=0.0).to(tl.float32)
    z = tl.load(base + 2, mask=mask, other=0.0).to(tl.float32)
    return x, y, z


@triton.jit
def _knn_kernel(Q, P, IDX, DIST, M, N, K, sqb, sqm, spb, spn,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):  # fmt: skip
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    b = tl.program_id(1).to(tl.int64)
    mask_m = rows < M
    qx, qy, qz = _load_xyz(Q, rows, mask_m, sqb, sqm, b)
    best = tl.full((BLOCK_M, BLOCK_N), INT64_MAX, dtype=tl.int64)
    for n0 in range(0, N, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        mask_n = cols < N
        px, py, pz = _load_xyz(P, cols, mask_n, spb, spn, b)
        d = _squared(qx[:, None], qy[:, None], qz[:, None], px[None, :], py[None, :], pz[None, :])
        key = (d.to(tl.int32, bitcast=True).to(tl.int64) << 32) | cols[None, :].to(tl.int64)
        key = tl.where(mask_n[None, :], key, INT64_MAX)
        best = tl.sort(tl.minimum(best, tl.sort(key, dim=1, descending=True)), dim=1)
    slots = tl.arange(0, BLOCK_N)
    out = (b * M + rows.to(tl.int64))[:, None] * K + slots[None, :]
    keep = mask_m[:, None] & (slots < K)[None, :]
    tl.store(IDX + out, best & 0xFFFFFFFF, mask=keep)
    tl.store(DIST + out, (best >> 32).to(tl.int32).to(tl.float32, bitcast=True), mask=keep)


@triton.jit
def _nearest_kernel(A, B, DIST, IDX, NA, NB, sab, san, sbb, sbn, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    b = tl.program_id(1).to(tl.int64)
    mask_m = rows < NA
    ax, ay, az = _load_xyz(A, rows, mask_m, sab, san, b)
    best_d = tl.full((BLOCK_M,), float("inf"), dtype=tl.float32)
    best_i = tl.zeros((BLOCK_M,), dtype=tl.int32)
    for n0 in range(0, NB, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        mask_n = cols < NB
        bx, by, bz = _load_xyz(B, cols, mask_n, sbb, sbn, b)
        d = _squared(ax[:, None], ay[:, None], az[:, None], bx[None, :], by[None, :], bz[None, :])
        d = tl.where(mask_n[None, :], d, float("inf"))
        m, i = tl.min(d, axis=1, return_indices=True, return_indices_tie_break_left=True)
        better = m < best_d  # strict: an earlier chunk's equal minimum stays
        best_i = tl.where(better, n0 + i, best_i)
        best_d = tl.where(better, m, best_d)
    out = b * NA + rows
    tl.store(DIST + out, best_d, mask=mask_m)
    tl.store(IDX + out, best_i.to(tl.int64), mask=mask_m)


@triton.jit
def _chamfer_backward_kernel(A, B, IDX, G, GA, GB, NA, NB, sab, san, sbb, sbn, BLOCK: tl.constexpr):
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    b = tl.program_id(1).to(tl.int64)
    mask = rows < NA
    flat = b * NA + rows
    j = tl.load(IDX + flat, mask=mask, other=0)
    g = tl.load(G + flat, mask=mask, other=0.0).to(tl.float32)
    for c in tl.static_range(3):
        a = tl.load(A + b * sab + rows.to(tl.int64) * san + c, mask=mask, other=0.0).to(tl.float32)
        o = tl.load(B + b * sbb + j * sbn + c, mask=mask, other=0.0).to(tl.float32)
        v = 2.0 * g * (a - o)
        tl.atomic_add(GA + flat * 3 + c, v, mask=mask)
        tl.atomic_add(GB + (b * NB + j) * 3 + c, -v, mask=mask)


def _config(t: torch.Tensor) -> dict:
    return dict(GPU_CONFIG if target.on_gpu(t) else INTERPRETER_CONFIG)


def _xyz(t: torch.Tensor) -> torch.Tensor:
    """Any batch and point strides; the xyz dim must be unit-stride."""
    return t if t.stride(-1) == 1 else t.contiguous()


def farthest_point_sample(points: torch.Tensor, m: int) -> torch.Tensor:
    """points [B, N, 3], N <= contract.MAX_FPS_POINTS, 1 <= m <= N -> int64 [B, m], each row from 0."""
    points = _xyz(points)
    b, n, _ = points.shape
    if n > contract.MAX_FPS_POINTS:
        raise ValueError(f"points: clouds of {n} exceed the {contract.MAX_FPS_POINTS} the FPS kernel holds")
    out = torch.empty(b, m, dtype=torch.int64, device=points.device)
    if b == 0:
        return out
    block = triton.next_power_of_2(n)
    warps = 4 if block <= 1024 else (8 if block <= 4096 else 16)
    _fps_kernel[(b,)](points, out, n, m, points.stride(0), points.stride(1), BLOCK=block, num_warps=warps,
                      enable_fp_fusion=False)  # fmt: skip
    return out


def knn(queries: torch.Tensor, points: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """queries [B, M, 3], points [B, N, 3], k <= min(N, contract.MAX_KNN_K) -> (indices int64
    [B, M, k], squared distances float32 [B, M, k]), ascending by (distance, index)."""
    queries, points = _xyz(queries), _xyz(points)
    b, m, _ = queries.shape
    n = points.shape[1]
    idx = torch.empty(b, m, k, dtype=torch.int64, device=queries.device)
    dist = torch.empty(b, m, k, dtype=torch.float32, device=queries.device)
    if idx.numel() == 0:
        return idx, dist
    cfg = _config(queries)
    block_n = max(cfg["BLOCK_N"], triton.next_power_of_2(k))
    _knn_kernel[(triton.cdiv(m, cfg["KNN_BLOCK_M"]), b)](
        queries, points, idx, dist, m, n, k, queries.stride(0), queries.stride(1), points.stride(0), points.stride(1),
        BLOCK_M=cfg["KNN_BLOCK_M"], BLOCK_N=block_n, num_warps=cfg["num_warps"], enable_fp_fusion=False)  # fmt: skip
    return idx, dist


def nearest(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """a [B, NA, 3], b [B, NB, 3], NB >= 1 -> (squared distance float32 [B, NA], index int64 [B, NA])
    of each a point's nearest b point, the first such on ties."""
    a, b = _xyz(a), _xyz(b)
    batch, na, _ = a.shape
    nb = b.shape[1]
    dist = torch.empty(batch, na, dtype=torch.float32, device=a.device)
    idx = torch.empty(batch, na, dtype=torch.int64, device=a.device)
    if dist.numel() == 0:
        return dist, idx
    cfg = _config(a)
    _nearest_kernel[(triton.cdiv(na, cfg["BLOCK_M"]), batch)](
        a, b, dist, idx, na, nb, a.stride(0), a.stride(1), b.stride(0), b.stride(1), BLOCK_M=cfg["BLOCK_M"],
        BLOCK_N=cfg["BLOCK_N"], num_warps=cfg["num_warps"], enable_fp_fusion=False)  # fmt: skip
    return dist, idx


def chamfer_backward(grad_ab, grad_ba, a, b, idx_ab, idx_ba) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 (d a [B, NA, 3], d b [B, NB, 3]) for the gradients of both directions' distances."""
    a, b = _xyz(a), _xyz(b)
    batch, na, _ = a.shape
    nb = b.shape[1]
    ga = torch.zeros(batch, na, 3, dtype=torch.float32, device=a.device)
    gb = torch.zeros(batch, nb, 3, dtype=torch.float32, device=a.device)
    block = 2 * _config(a)["BLOCK_N"]
    for src, dst, g, idx, gs, gd in ((a, b, grad_ab, idx_ab, ga, gb), (b, a, grad_ba, idx_ba, gb, ga)):
        ns, nd = src.shape[1], dst.shape[1]
        if batch * ns == 0:
            continue
        _chamfer_backward_kernel[(triton.cdiv(ns, block), batch)](
            src, dst, idx.contiguous(), g.contiguous(), gs, gd, ns, nd, src.stride(0), src.stride(1), dst.stride(0),
            dst.stride(1), BLOCK=block, num_warps=4)  # fmt: skip
    return ga, gb
