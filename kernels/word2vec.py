"""word2vec's sampled-softmax updates as fused Triton kernels: gather the rows, score, take the
log-sigmoid loss and apply word2vec.c's SGD update to the rows in place (no dense gradients).

The batch is cut into groups of BLOCK_N examples (skip-gram: one input row; CBOW: the mean or
sum of up to C context rows). A group walks its targets slot by slot, as word2vec.c walks them
for one pair: the positive then each negative (negative sampling) or each inner node of the
Huffman path (hierarchical softmax). Each of PROGRAMS programs takes its groups one after the
other, like one word2vec.c thread; rows shared across programs are updated Hogwild-style with
atomics. Few examples in flight matter for learning: thousands of concurrent updates computed
from the same stale row of a frequent word make training diverge (seen with one group per program).

Configs: BLOCK_N is the same on every target (it shapes learning, not speed); the programs are
PROGRAMS when set, else a few per SM on a GPU and one per group in the interpreter (``_grid``).
"""

import torch
import triton
import triton.language as tl

from . import contract, target

MAX_EXP = tl.constexpr(contract.MAX_EXP)
BLOCK_N = 4  # examples updated together (a power of two)
PROGRAMS = None  # concurrent programs; None: _grid's choice. Tests set 1 to pin the update order.


@triton.jit
def _load_input(syn0, inputs, lengths, rows, mask_n, cols, mask_d, D, C: tl.constexpr, CBOW_MEAN: tl.constexpr):
    """l1: the input row (C == 1) or the mean/sum of the context rows."""
    l1 = tl.zeros((rows.shape[0], cols.shape[0]), dtype=tl.float32)
    for c in tl.static_range(C):
        idx = tl.load(inputs + rows * C + c, mask=mask_n, other=-1).to(tl.int64)
        ok = (idx >= 0)[:, None] & mask_d[None, :]
        l1 += tl.load(syn0 + idx[:, None] * D + cols[None, :], mask=ok, other=0.0).to(tl.float32)
    if C > 1:
        count = tl.maximum(tl.load(lengths + rows, mask=mask_n, other=1), 1).to(tl.float32)
        if CBOW_MEAN:
            l1 = l1 / count[:, None]
    return l1


@triton.jit
def _store_input_error(syn0, inputs, lengths, rows, mask_n, cols, mask_d, neu1e, D, C: tl.constexpr,
                       CBOW_MEAN: tl.constexpr):  # fmt: skip
    """syn0[input] += neu1e for every input row (the full error; sum-mode CBOW divides it)."""
    if C > 1:
        if not CBOW_MEAN:
            count = tl.maximum(tl.load(lengths + rows, mask=mask_n, other=1), 1).to(tl.float32)
            neu1e = neu1e / count[:, None]
    for c in tl.static_range(C):
        idx = tl.load(inputs + rows * C + c, mask=mask_n, other=-1).to(tl.int64)
        ok = (idx >= 0)[:, None] & mask_d[None, :]
        tl.atomic_add(syn0 + idx[:, None] * D + cols[None, :], neu1e, mask=ok, sem="relaxed")
    tl.debug_barrier()  # the program's next group reads these rows


@triton.jit(do_not_specialize=["N"])  # one compile for every batch size (an epoch ends on an odd one)
def _ns_kernel(syn0, syn1, inputs, lengths, targets, negatives, loss, alpha, N, D,
               C: tl.constexpr, K: tl.constexpr, CBOW_MEAN: tl.constexpr,
               BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):  # fmt: skip
    for group in range(tl.program_id(0), tl.cdiv(N, BLOCK_N), tl.num_programs(0)):
        _ns_group(syn0, syn1, inputs, lengths, targets, negatives, loss, alpha, N, D, group * BLOCK_N,
                  C, K, CBOW_MEAN, BLOCK_N, BLOCK_D)  # fmt: skip


@triton.jit
def _ns_group(syn0, syn1, inputs, lengths, targets, negatives, loss, alpha, N, D, start,
              C: tl.constexpr, K: tl.constexpr, CBOW_MEAN: tl.constexpr,
              BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):  # fmt: skip
    rows = start + tl.arange(0, BLOCK_N)
    cols = tl.arange(0, BLOCK_D)
    mask_n, mask_d = rows < N, cols < D
    l1 = _load_input(syn0, inputs, lengths, rows, mask_n, cols, mask_d, D, C, CBOW_MEAN)
    target = tl.load(targets + rows, mask=mask_n, other=0)
    neu1e = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    total = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for k in tl.static_range(K + 1):
        if k == 0:
            t = target
            label = 1.0
            live = mask_n
        else:
            t = tl.load(negatives + rows * K + (k - 1), mask=mask_n, other=0)
            label = 0.0
            live = mask_n & (t != target)  # word2vec.c skips a negative equal to the target
        ptrs = syn1 + t.to(tl.int64)[:, None] * D + cols[None, :]
        ok = live[:, None] & mask_d[None, :]
        w = tl.load(ptrs, mask=ok, other=0.0).to(tl.float32)
        f = tl.sum(l1 * w, axis=1)
        g = (label - tl.where(f > MAX_EXP, 1.0, tl.where(f < -MAX_EXP, 0.0, tl.sigmoid(f)))) * alpha
        g = tl.where(live, g, 0.0)
        signed = f * (2.0 * label - 1.0)  # -log sigmoid(+f) for the positive, (-f) for negatives
        total += tl.where(live, tl.maximum(-signed, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(signed))), 0.0)
        neu1e += g[:, None] * w
        tl.atomic_add(ptrs, g[:, None] * l1, mask=ok, sem="relaxed")
        tl.debug_barrier()  # the next slot's loads see this slot's updates, as in word2vec.c
    _store_input_error(syn0, inputs, lengths, rows, mask_n, cols, mask_d, neu1e, D, C, CBOW_MEAN)
    tl.store(loss + rows, total, mask=mask_n)


@triton.jit(do_not_specialize=["N"])  # one compile for every batch size (an epoch ends on an odd one)
def _hs_kernel(syn0, syn1, inputs, lengths, targets, codes, points, code_lengths, loss, alpha, N, D, L,
               C: tl.constexpr, CBOW_MEAN: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):  # fmt: skip
    for group in range(tl.program_id(0), tl.cdiv(N, BLOCK_N), tl.num_programs(0)):
        _hs_group(syn0, syn1, inputs, lengths, targets, codes, points, code_lengths, loss, alpha, N, D, L,
                  group * BLOCK_N, C, CBOW_MEAN, BLOCK_N, BLOCK_D)  # fmt: skip


@triton.jit
def _hs_group(syn0, syn1, inputs, lengths, targets, codes, points, code_lengths, loss, alpha, N, D, L, start,
              C: tl.constexpr, CBOW_MEAN: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):  # fmt: skip
    rows = start + tl.arange(0, BLOCK_N)
    cols = tl.arange(0, BLOCK_D)
    mask_n, mask_d = rows < N, cols < D
    l1 = _load_input(syn0, inputs, lengths, rows, mask_n, cols, mask_d, D, C, CBOW_MEAN)
    target = tl.load(targets + rows, mask=mask_n, other=0).to(tl.int64)
    depth = tl.load(code_lengths + target, mask=mask_n, other=0)
    neu1e = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    total = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for i in range(0, L):
        on_path = mask_n & (i < depth)
        node = tl.load(points + target * L + i, mask=on_path, other=0).to(tl.int64)
        code = tl.load(codes + target * L + i, mask=on_path, other=0).to(tl.float32)
        ptrs = syn1 + node[:, None] * D + cols[None, :]
        w = tl.load(ptrs, mask=on_path[:, None] & mask_d[None, :], other=0.0).to(tl.float32)
        f = tl.sum(l1 * w, axis=1)
        signed = f * (1.0 - 2.0 * code)  # branch 0 scores sigmoid(f), branch 1 sigmoid(-f)
        total += tl.where(on_path, tl.maximum(-signed, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(signed))), 0.0)
        live = on_path & (f > -MAX_EXP) & (f < MAX_EXP)  # word2vec.c skips saturated nodes
        g = tl.where(live, (1.0 - code - tl.sigmoid(f)) * alpha, 0.0)
        neu1e += g[:, None] * w
        tl.atomic_add(ptrs, g[:, None] * l1, mask=live[:, None] & mask_d[None, :], sem="relaxed")
        tl.debug_barrier()
    _store_input_error(syn0, inputs, lengths, rows, mask_n, cols, mask_d, neu1e, D, C, CBOW_MEAN)
    tl.store(loss + rows, total, mask=mask_n)


@triton.jit(do_not_specialize=["N"])  # one compile for every batch size (an epoch ends on an odd one)
def _shared_kernel(syn0, syn1, contexts, centers, negatives, loss, alpha, N, D,
                   C: tl.constexpr, K: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr,
                   BLOCK_D: tl.constexpr):  # fmt: skip
    """HogBatch skip-gram: the context rows of one center share its targets (the center and K
    negatives), so the scores and both updates are three small matrix products."""
    ci, ki, cols = tl.arange(0, BLOCK_C), tl.arange(0, BLOCK_K), tl.arange(0, BLOCK_D)
    mask_d = cols < D
    for n in range(tl.program_id(0), N, tl.num_programs(0)):
        ctx = tl.load(contexts + n * C + ci, mask=ci < C, other=-1).to(tl.int64)
        ok_c = ctx >= 0
        center = tl.load(centers + n).to(tl.int64)
        neg = tl.load(negatives + n * K + ki - 1, mask=(ki >= 1) & (ki <= K), other=0).to(tl.int64)
        target = tl.where(ki == 0, center, neg)
        ok_k = (ki == 0) | ((ki <= K) & (neg != center))  # a negative equal to the center is skipped
        c_ptrs = syn0 + ctx[:, None] * D + cols[None, :]
        t_ptrs = syn1 + target[:, None] * D + cols[None, :]
        c_mask = ok_c[:, None] & mask_d[None, :]
        t_mask = ok_k[:, None] & mask_d[None, :]
        rows_c = tl.load(c_ptrs, mask=c_mask, other=0.0)
        rows_t = tl.load(t_ptrs, mask=t_mask, other=0.0)
        f = tl.dot(rows_c, tl.trans(rows_t))  # [BLOCK_C, BLOCK_K]
        label = tl.where(ki == 0, 1.0, 0.0)[None, :]
        live = ok_c[:, None] & ok_k[None, :]
        p = tl.where(f > MAX_EXP, 1.0, tl.where(f < -MAX_EXP, 0.0, tl.sigmoid(f)))
        g = tl.where(live, (label - p) * alpha, 0.0)
        signed = f * (2.0 * label - 1.0)
        nll = tl.where(live, tl.maximum(-signed, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(signed))), 0.0)
        tl.store(loss + n, tl.sum(tl.sum(nll, axis=1), axis=0))
        tl.atomic_add(t_ptrs, tl.dot(tl.trans(g), rows_c), mask=t_mask, sem="relaxed")
        tl.atomic_add(c_ptrs, tl.dot(g, rows_t), mask=c_mask, sem="relaxed")
        tl.debug_barrier()  # the program's next center reads these rows


def _grid(work, syn0, per_sm=2):
    """Programs for `work` units walked in turn: PROGRAMS, else `per_sm` per SM on a GPU (few
    examples in flight, as word2vec.c's threads), else one per unit in the interpreter."""
    programs = PROGRAMS
    if programs is None:
        programs = per_sm * target.sm_count(syn0.device) if target.on_gpu(syn0) else work
    return (max(1, min(work, programs)),)


def _loss(syn0: torch.Tensor, n: int) -> torch.Tensor:
    return torch.empty(n, dtype=torch.float32, device=syn0.device)


def ns_update(syn0, syn1, inputs, lengths, targets, negatives, alpha, cbow_mean):
    """Negative-sampling update of the contiguous ``syn0``/``syn1`` in place; returns the per-example loss.

    inputs [N, C] int (-1 padded), lengths [N] (CBOW), targets [N], negatives [N, K]; on one device.
    """
    inputs, lengths, targets, negatives = (t.contiguous() for t in (inputs, lengths, targets, negatives))
    n, c = inputs.shape
    k = negatives.shape[1]
    d = syn0.shape[1]
    loss = _loss(syn0, n)
    block_d = triton.next_power_of_2(d)
    grid = _grid(triton.cdiv(n, BLOCK_N), syn0)
    # 8 warps from 256 dims: on 4, d 200 with 10 negatives spills (the Hopper compile gate).
    _ns_kernel[grid](syn0, syn1, inputs, lengths, targets, negatives, loss, float(alpha), n, d,
                     C=c, K=k, CBOW_MEAN=bool(cbow_mean), BLOCK_N=BLOCK_N, BLOCK_D=block_d,
                     num_warps=8 if block_d >= 256 else 4)  # fmt: skip
    return loss


def hs_update(syn0, syn1, inputs, lengths, targets, codes, points, code_lengths, alpha, cbow_mean):
    """Hierarchical-softmax update of ``syn0``/``syn1`` in place; returns the per-example loss.

    codes int8 / points int32 [V, L] and code_lengths [V] are the Huffman tables of the vocab.
    """
    tensors = (inputs, lengths, targets, codes, points, code_lengths)
    inputs, lengths, targets, codes, points, code_lengths = (t.contiguous() for t in tensors)
    n, c = inputs.shape
    d = syn0.shape[1]
    loss = _loss(syn0, n)
    grid = _grid(triton.cdiv(n, BLOCK_N), syn0)
    _hs_kernel[grid](syn0, syn1, inputs, lengths, targets, codes, points, code_lengths, loss, float(alpha), n, d,
                     codes.shape[1], C=c, CBOW_MEAN=bool(cbow_mean), BLOCK_N=BLOCK_N,
                     BLOCK_D=triton.next_power_of_2(d))  # fmt: skip
    return loss


def shared_update(syn0, syn1, contexts, centers, negatives, alpha):
    """HogBatch skip-gram update in place: contexts [N, C] (-1 padded) share the targets
    (centers [N], negatives [N, K]) of their center; returns the per-center loss. The scores run
    on tensor cores (tf32 on a GPU); one center per program step, programs as in ``ns_update``."""
    contexts, centers, negatives = (t.contiguous() for t in (contexts, centers, negatives))
    n, c = contexts.shape
    k = negatives.shape[1]
    d = syn0.shape[1]
    loss = _loss(syn0, n)
    block_c, block_k = max(16, triton.next_power_of_2(c)), max(16, triton.next_power_of_2(k + 1))
    _shared_kernel[_grid(n, syn0, per_sm=4)](syn0, syn1, contexts, centers, negatives, loss, float(alpha), n, d,
                                             C=c, K=k, BLOCK_C=block_c, BLOCK_K=block_k,
                                             BLOCK_D=triton.next_power_of_2(d))  # fmt: skip
    return loss
