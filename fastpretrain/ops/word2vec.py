"""word2vec's in-place sampled-softmax updates as torch ops: negative sampling and hierarchical
softmax, for skip-gram (one input row per example) and CBOW (a window of context rows).

word2vec.c semantics: ``l1`` is the input row (skip-gram; word2vec.c feeds the context word's
row to predict the center) or the mean (``cbow_mean``) / sum of the context rows (CBOW); each
target's logit is clamped at |f| > 6; a negative equal to the positive is skipped; hierarchical
softmax skips saturated nodes; every input row receives the full error (sum-mode CBOW divides
it by the window size, as gensim does). The references step all examples of a batch together,
target slot by target slot, as word2vec.c steps one pair; the kernels do the same inside one
program and race Hogwild-style across programs, as word2vec.c's threads do.
"""

from __future__ import annotations

import math

import torch

from fastpretrain.kernels.contract import MAX_EXP
from fastpretrain.ops import checks
from fastpretrain.ops.dispatch import use_kernel


def _check(syn0, syn1, alpha, inputs_name, inputs, per_example, tables) -> float:
    """Checks shared by the three updates: the tables, the [N, C] inputs, the [N] ``per_example``
    and the other index ``tables`` ((name, tensor) pairs); returns alpha as a float."""
    for name, t in (("syn0", syn0), ("syn1", syn1)):
        checks.tensor(name, t, (torch.float32,), "[V, D]")
        if t.dim() != 2 or not t.is_contiguous():
            raise ValueError(f"{name}: expected a contiguous 2-d [V, D] tensor (updated in place), "
                             f"got shape {tuple(t.shape)} strides {t.stride()}")  # fmt: skip
    if syn0.shape[1] != syn1.shape[1]:
        raise ValueError(f"syn1: expected {syn0.shape[1]} columns like syn0, got {syn1.shape[1]}")
    checks.tensor(inputs_name, inputs, checks.INDEX, "[N, C]")
    if inputs.dim() != 2:
        raise ValueError(f"{inputs_name}: expected [N, C] (C = 1 for skip-gram), got shape {tuple(inputs.shape)}")
    for name, t in per_example:
        checks.tensor(name, t, checks.INDEX, "[N]")
        checks.shape(name, t, (inputs.shape[0],))
    for name, t in tables:
        checks.tensor(name, t, checks.INDEX)
    for name, t in [("syn1", syn1), (inputs_name, inputs), *per_example, *tables]:
        checks.device_like(name, t, "syn0", syn0)
    return checks.real("alpha", alpha, "a learning rate >= 0", lambda a: math.isfinite(a) and a >= 0)


def _check_negatives(negatives, n: int, least: int) -> None:
    if negatives.dim() != 2 or negatives.shape[0] != n or negatives.shape[1] < least:
        raise ValueError(f"negatives: expected shape ({n}, K >= {least}), got {tuple(negatives.shape)}")


def _input_rows(syn0, inputs, lengths, cbow_mean):
    """l1 [N, D] and the (example, row) pairs that receive the error."""
    valid = inputs >= 0
    rows = syn0[inputs.clamp(min=0).long()] * valid.unsqueeze(-1)
    l1 = rows.sum(1)
    count = valid.sum(1).clamp(min=1).unsqueeze(-1).float()
    if inputs.shape[1] > 1 and cbow_mean:
        l1 = l1 / count
    return l1, valid, count


def _apply_input_error(syn0, inputs, valid, count, neu1e, cbow_mean):
    if inputs.shape[1] > 1 and not cbow_mean:
        neu1e = neu1e / count
    example, slot = valid.nonzero(as_tuple=True)
    syn0.index_add_(0, inputs[example, slot].long(), neu1e[example])


def _log_sigmoid_loss(signed):
    return torch.nn.functional.softplus(-signed)


def ns_update_reference(syn0, syn1, inputs, lengths, targets, negatives, alpha, cbow_mean=True):
    """Pure-torch negative-sampling update (the spec and the CPU path); returns loss [N]."""
    l1, valid, count = _input_rows(syn0, inputs, lengths, cbow_mean)
    neu1e = torch.zeros_like(l1)
    loss = torch.zeros(len(l1), dtype=torch.float32, device=syn0.device)
    slots = [(targets, 1.0)] + [(negatives[:, k], 0.0) for k in range(negatives.shape[1])]
    for t, label in slots:
        live = torch.ones_like(targets, dtype=torch.bool) if label else t != targets
        w = syn1[t.long()]
        f = (l1 * w).sum(1)
        p = torch.where(f > MAX_EXP, 1.0, torch.where(f < -MAX_EXP, 0.0, torch.sigmoid(f)))
        g = (label - p) * alpha * live
        loss += _log_sigmoid_loss(f * (2 * label - 1)) * live
        neu1e += g.unsqueeze(1) * w
        syn1.index_add_(0, t.long(), g.unsqueeze(1) * l1)
    _apply_input_error(syn0, inputs, valid, count, neu1e, cbow_mean)
    return loss


def hs_update_reference(syn0, syn1, inputs, lengths, targets, codes, points, code_lengths, alpha, cbow_mean=True):
    """Pure-torch hierarchical-softmax update (the spec and the CPU path); returns loss [N]."""
    l1, valid, count = _input_rows(syn0, inputs, lengths, cbow_mean)
    neu1e = torch.zeros_like(l1)
    loss = torch.zeros(len(l1), dtype=torch.float32, device=syn0.device)
    t = targets.long()
    depth = code_lengths[t]
    for i in range(codes.shape[1]):
        on_path = i < depth
        node = points[t, i].clamp(min=0).long()
        code = codes[t, i].float()
        w = syn1[node] * on_path.unsqueeze(1)
        f = (l1 * w).sum(1)
        loss += _log_sigmoid_loss(f * (1 - 2 * code)) * on_path
        live = on_path & (f > -MAX_EXP) & (f < MAX_EXP)
        g = (1 - code - torch.sigmoid(f)) * alpha * live
        neu1e += g.unsqueeze(1) * w
        syn1.index_add_(0, node, g.unsqueeze(1) * l1)
    _apply_input_error(syn0, inputs, valid, count, neu1e, cbow_mean)
    return loss


def shared_ns_update_reference(syn0, syn1, contexts, centers, negatives, alpha):
    """Pure-torch HogBatch skip-gram update: every context row of a center is scored against
    the center and the same K negatives; each example reads the rows before writing any."""
    valid = contexts >= 0
    rows_c = syn0[contexts.clamp(min=0).long()] * valid.unsqueeze(-1)  # [N, C, D]
    targets = torch.cat([centers.unsqueeze(1), negatives], 1).long()  # [N, K+1]
    live_t = torch.ones_like(targets, dtype=torch.bool)
    live_t[:, 1:] = negatives != centers.unsqueeze(1)
    rows_t = syn1[targets]  # [N, K+1, D]
    f = torch.einsum("ncd,nkd->nck", rows_c, rows_t)
    label = torch.zeros_like(f)
    label[:, :, 0] = 1
    live = valid.unsqueeze(2) & live_t.unsqueeze(1)
    p = torch.where(f > MAX_EXP, 1.0, torch.where(f < -MAX_EXP, 0.0, torch.sigmoid(f)))
    g = (label - p) * alpha * live
    loss = (_log_sigmoid_loss(f * (2 * label - 1)) * live).sum((1, 2))
    syn1.index_add_(0, targets.flatten(), torch.einsum("nck,ncd->nkd", g, rows_c).flatten(0, 1))
    example, slot = valid.nonzero(as_tuple=True)
    syn0.index_add_(0, contexts[example, slot].long(), torch.einsum("nck,nkd->ncd", g, rows_t)[example, slot])
    return loss


@torch.library.custom_op("fastpretrain::word2vec_ns_update", mutates_args=("syn0", "syn1"))
def _ns_update_op(syn0: torch.Tensor, syn1: torch.Tensor, inputs: torch.Tensor, lengths: torch.Tensor,
                  targets: torch.Tensor, negatives: torch.Tensor, alpha: float, cbow_mean: bool) -> torch.Tensor:  # fmt: skip
    if not use_kernel(syn0):
        return ns_update_reference(syn0, syn1, inputs, lengths, targets, negatives, alpha, cbow_mean)
    from fastpretrain.kernels.word2vec import ns_update

    return ns_update(syn0, syn1, inputs, lengths, targets, negatives, alpha, cbow_mean)


@_ns_update_op.register_fake
def _(syn0, syn1, inputs, lengths, targets, negatives, alpha, cbow_mean):
    return syn0.new_empty(inputs.shape[0])


@torch.library.custom_op("fastpretrain::word2vec_hs_update", mutates_args=("syn0", "syn1"))
def _hs_update_op(syn0: torch.Tensor, syn1: torch.Tensor, inputs: torch.Tensor, lengths: torch.Tensor,
                  targets: torch.Tensor, codes: torch.Tensor, points: torch.Tensor, code_lengths: torch.Tensor,
                  alpha: float, cbow_mean: bool) -> torch.Tensor:  # fmt: skip
    if not use_kernel(syn0):
        return hs_update_reference(syn0, syn1, inputs, lengths, targets, codes, points, code_lengths, alpha, cbow_mean)
    from fastpretrain.kernels.word2vec import hs_update

    return hs_update(syn0, syn1, inputs, lengths, targets, codes, points, code_lengths, alpha, cbow_mean)


@_hs_update_op.register_fake
def _(syn0, syn1, inputs, lengths, targets, codes, points, code_lengths, alpha, cbow_mean):
    return syn0.new_empty(inputs.shape[0])


def word2vec_ns_update_(syn0, syn1, inputs, targets, negatives, alpha, *, lengths=None, cbow_mean=True):
    """Apply one batch of negative-sampling SGD to ``syn0`` (input) and ``syn1`` (output) rows
    in place and return the per-example loss -log s(f+) - sum log s(-f-).

    Args:
        syn0, syn1: [V, D] float32 embedding tables, updated in place.
        inputs: [N, C] input rows: C = 1 for skip-gram, the -1 padded window for CBOW.
        targets: [N] positive output rows; negatives: [N, K] (K may be 0).
        alpha: learning rate. lengths: [N] context counts (CBOW).
    Indices must lie in [0, V); they are not range-checked.
    """
    alpha = _check(syn0, syn1, alpha, "inputs", inputs, _per_example(targets, lengths), [("negatives", negatives)])
    _check_negatives(negatives, inputs.shape[0], 0)
    lengths = _lengths(inputs, targets, lengths)
    return _ns_update_op(syn0, syn1, inputs, lengths, targets, negatives, alpha, bool(cbow_mean))


def _per_example(targets, lengths) -> list:
    return [("targets", targets), *([("lengths", lengths)] if lengths is not None else [])]


def _lengths(inputs, targets, lengths):
    """The context counts the kernels divide CBOW windows by: as given, else counted from the -1
    padding (as the references count them); skip-gram reads none, so targets stand in."""
    if lengths is not None:
        return lengths
    return (inputs >= 0).sum(1, dtype=torch.int32) if inputs.shape[1] > 1 else targets


def word2vec_hs_update_(syn0, syn1, inputs, targets, codes, points, code_lengths, alpha, *, lengths=None,
                        cbow_mean=True):  # fmt: skip
    """Apply one batch of hierarchical-softmax SGD in place; returns the per-example loss.

    ``codes`` [V, L] int8, ``points`` [V, L] int32 and ``code_lengths`` [V] are the Huffman
    tables (``Vocab.huffman()``); ``syn1`` has one row per inner node (V - 1 rows suffice).
    """
    tables = [("points", points), ("code_lengths", code_lengths)]
    alpha = _check(syn0, syn1, alpha, "inputs", inputs, _per_example(targets, lengths), tables)
    checks.tensor("codes", codes, (torch.int8, *checks.INDEX), "[V, L]")
    checks.shape("codes", codes, points.shape)
    checks.device_like("codes", codes, "syn0", syn0)
    lengths = _lengths(inputs, targets, lengths)
    return _hs_update_op(syn0, syn1, inputs, lengths, targets, codes, points, code_lengths, alpha, bool(cbow_mean))


@torch.library.custom_op("fastpretrain::word2vec_shared_ns_update", mutates_args=("syn0", "syn1"))
def _shared_update_op(syn0: torch.Tensor, syn1: torch.Tensor, contexts: torch.Tensor, centers: torch.Tensor,
                      negatives: torch.Tensor, alpha: float) -> torch.Tensor:  # fmt: skip
    if not use_kernel(syn0):
        return shared_ns_update_reference(syn0, syn1, contexts, centers, negatives, alpha)
    from fastpretrain.kernels.word2vec import shared_update

    return shared_update(syn0, syn1, contexts, centers, negatives, alpha)


@_shared_update_op.register_fake
def _(syn0, syn1, contexts, centers, negatives, alpha):
    return syn0.new_empty(contexts.shape[0])


def word2vec_shared_ns_update_(syn0, syn1, contexts, centers, negatives, alpha):
    """HogBatch (Ji et al. 2016) skip-gram with negative sampling, in place: the context window
    ``contexts`` [N, C] (-1 padded) of each center shares one set of targets, the center and
    ``negatives`` [N, K], so the scores and updates are matrix products (tensor cores on a
    GPU). A speed mode: word2vec.c draws K negatives per (context, center) pair instead.
    Returns the per-center loss summed over its context rows."""
    alpha = _check(syn0, syn1, alpha, "contexts", contexts, [("centers", centers)], [("negatives", negatives)])
    _check_negatives(negatives, contexts.shape[0], 1)
    return _shared_update_op(syn0, syn1, contexts, centers, negatives, alpha)
