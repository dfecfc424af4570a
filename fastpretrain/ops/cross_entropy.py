"""Cross-entropy of a linear layer's logits without materialising them: the MLM / LM head loss
``F.cross_entropy(hidden @ weight.T + bias, targets)`` for vocabularies where the [N, V] logits
would dominate memory (BERT's 30k x every masked token, GPT's 50k x every token).

The logits are formed in float32 from the inputs' dtype (as a bf16 matmul with fp32 accumulation
and an fp32 softmax would); the Triton kernels compute them tile by tile, twice in all (once for
the log-sum-exp, once in the backward), never more than a [BLOCK_N, BLOCK_V] tile at a time.
"""

from __future__ import annotations

import torch

from fastpretrain.ops import checks
from fastpretrain.ops.dispatch import use_kernel

_REDUCTIONS = ("mean", "sum", "none")


def _logits(hidden, weight, bias):
    z = (hidden @ weight.T).float()
    return z + bias.float() if bias is not None else z


def linear_cross_entropy_reference(hidden, weight, targets, bias=None, *, ignore_index=-100, reduction="mean"):
    """Pure torch, the spec: F.cross_entropy on the float32 logits of ``hidden @ weight.T + bias``."""
    return torch.nn.functional.cross_entropy(_logits(hidden, weight, bias), targets.long(), ignore_index=ignore_index,
                                             reduction=reduction)  # fmt: skip


def linear_cross_entropy_backward_reference(grad_rows, hidden, weight, bias, targets, lse):
    """The explicit backward in plain torch (the CPU path's): (d hidden, d weight, d bias) in float32
    for per-row loss gradients ``grad_rows`` (zero on ignored rows), from the saved float32 ``lse``."""
    dz = torch.exp(_logits(hidden, weight, bias) - lse[:, None])
    rows = torch.arange(len(targets), device=targets.device)
    valid = grad_rows != 0
    dz[rows[valid], targets[valid].long()] -= 1.0
    dz *= grad_rows.float()[:, None]
    return dz @ weight.float(), dz.T @ hidden.float(), dz.sum(0)


@torch.library.custom_op("fastpretrain::linear_cross_entropy", mutates_args=())
def _loss_op(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
             targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(loss [N] float32, lse [N] float32) per row, ignoring nothing (the wrapper masks rows)."""
    if use_kernel(hidden):
        from fastpretrain.kernels.cross_entropy import linear_cross_entropy_forward

        return linear_cross_entropy_forward(hidden, weight, bias, targets)
    z = _logits(hidden, weight, bias)
    lse = torch.logsumexp(z, 1)
    z_t = z.gather(1, targets.clamp(0, z.shape[1] - 1)[:, None])[:, 0]
    return lse - z_t, lse


@_loss_op.register_fake
def _(hidden, weight, bias, targets):
    loss = hidden.new_empty(hidden.shape[0], dtype=torch.float32)
    return loss, torch.empty_like(loss)


@torch.library.custom_op("fastpretrain::linear_cross_entropy_backward", mutates_args=())
def _backward_op(
    grad_rows: torch.Tensor,
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    lse: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(d hidden, d weight, d bias) for per-row gradients (zero on ignored rows); d bias is empty without a bias."""
    if use_kernel(hidden):
        from fastpretrain.kernels.cross_entropy import linear_cross_entropy_backward

        dh, dw, db = linear_cross_entropy_backward(grad_rows, hidden, weight, bias, targets, lse)
    else:
        dh, dw, db = linear_cross_entropy_backward_reference(grad_rows, hidden, weight, bias, targets, lse)
    db = db.to(bias.dtype) if bias is not None else weight.new_empty(0)
    return dh.to(hidden.dtype), dw.to(weight.dtype), db


@_backward_op.register_fake
def _(grad_rows, hidden, weight, bias, targets, lse):
    db = bias.new_empty(bias.shape) if bias is not None else weight.new_empty(0)
    return torch.empty_like(hidden), torch.empty_like(weight), db


def _setup_context(ctx, inputs, output):
    hidden, weight, bias, targets = inputs
    ctx.save_for_backward(hidden, weight, bias, targets, output[1])


def _backward(ctx, grad_loss, grad_lse):
    hidden, weight, bias, targets, lse = ctx.saved_tensors
    dh, dw, db = _backward_op(grad_loss, hidden, weight, bias, targets, lse)
    return dh, dw, db if bias is not None else None, None


_loss_op.register_autograd(_backward, setup_context=_setup_context)


def _check(hidden, weight, targets, bias, reduction):
    checks.tensor("hidden", hidden, checks.FLOAT, "[N, D]")
    checks.dims("hidden", hidden, 2, "[N, D]")
    n, d = hidden.shape
    checks.tensor("weight", weight, checks.FLOAT, "[V, D]")
    checks.dtype_like("weight", weight, "hidden", hidden)
    if weight.dim() != 2 or weight.shape[1] != d or weight.shape[0] == 0:
        raise ValueError(f"weight: expected a non-empty [V, {d}] tensor, got shape {tuple(weight.shape)}")
    checks.tensor("targets", targets, checks.INDEX, "[N]")
    checks.shape("targets", targets, (n,))
    if bias is not None:
        checks.tensor("bias", bias, checks.FLOAT, "[V]")
        checks.dtype_like("bias", bias, "weight", weight)
        checks.shape("bias", bias, weight.shape[:1])
    for name, t in (("weight", weight), ("targets", targets), ("bias", bias)):
        if t is not None:
            checks.device_like(name, t, "hidden", hidden)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: expected one of {_REDUCTIONS}, got {reduction!r}")


def linear_cross_entropy(hidden, weight, targets, bias=None, *, ignore_index=-100, reduction="mean"):
    """``F.cross_entropy(hidden @ weight.T + bias, targets, ignore_index=, reduction=)`` without the
    [N, V] logits in memory.

    Args:
        hidden: [N, D] float32 / float16 / bfloat16 (e.g. the MLM transform's output at masked positions).
        weight: [V, D] in hidden's dtype (e.g. the tied word embeddings); bias: [V] or None.
        targets: [N] int64/int32 class ids in [0, V), or ``ignore_index`` (no loss, no gradient).
            Ids are range-checked on CPU tensors in eager mode only (no host syncs on the GPU path).
        reduction: "mean" over the rows not ignored (as F.cross_entropy; NaN if all are), "sum", or "none" ([N]).
    Returns the loss in float32. Gradients reach hidden, weight and bias.
    """
    _check(hidden, weight, targets, bias, reduction)
    checks.ids_in_range("targets", targets, weight.shape[0], ignore=ignore_index)
    valid = targets != ignore_index
    rows = _loss_op(hidden, weight, bias, torch.where(valid, targets, 0))[0] * valid
    if reduction == "none":
        return rows
    return rows.sum() if reduction == "sum" else rows.sum() / valid.sum()
