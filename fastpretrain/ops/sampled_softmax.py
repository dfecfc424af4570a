"""Sampled softmax loss with log-Q correction (Jean et al. 2015), for the large output
vocabularies of NNLM and ELMo: each row is scored against its target and one set of S sampled
classes shared by the batch, as TensorFlow's ``sampled_softmax_loss`` does, instead of all V.

Row n: z_t = h.w_t + b_t - log q_t, z_s = h.w_s + b_s - log q_s for each sampled s (-inf where
sampled[s] == targets[n] when accidental hits are removed), loss_n = logsumexp(z_t, z_s...) - z_t.
The log-Q terms make the sampled loss an unbiased-in-the-limit estimate of the full softmax.

Ids: targets and sampled ids must lie in [0, V). They are checked (ValueError naming the argument)
on CPU tensors in eager mode, where that costs no host sync. On the GPU, and under torch.compile,
they are not: an id outside [0, V) there reads outside the weight table (a wrong loss, or an
illegal memory access), so validate ids on the host when they come from untrusted data.
"""

from __future__ import annotations

import torch

from fastpretrain.ops import checks
from fastpretrain.ops.dispatch import use_kernel


def _check(hidden, weight, targets, sampled, log_q_targets, log_q_sampled, bias):
    checks.tensor("hidden", hidden, checks.FLOAT, "[N, D]")
    if hidden.dim() != 2 or hidden.numel() == 0:
        raise ValueError(f"hidden: expected a non-empty [N, D] tensor, got shape {tuple(hidden.shape)}")
    n, d = hidden.shape
    checks.tensor("weight", weight, checks.FLOAT, "[V, D]")
    checks.dtype_like("weight", weight, "hidden", hidden)
    if weight.dim() != 2 or weight.shape[0] == 0 or weight.shape[1] != d:
        raise ValueError(f"weight: expected a non-empty [V, {d}] tensor, got shape {tuple(weight.shape)}")
    named = [("weight", weight)]
    if bias is not None:
        checks.tensor("bias", bias, checks.FLOAT, "[V]")
        checks.dtype_like("bias", bias, "weight", weight)
        checks.shape("bias", bias, weight.shape[:1])
        named.append(("bias", bias))
    checks.tensor("targets", targets, checks.INDEX, "[N]")
    checks.shape("targets", targets, (n,))
    checks.tensor("sampled", sampled, checks.INDEX, "[S]")
    if sampled.dim() != 1 or sampled.numel() == 0:
        raise ValueError(f"sampled: expected a non-empty [S] tensor, got shape {tuple(sampled.shape)}")
    for name, t, size, layout in (("log_q_targets", log_q_targets, n, "[N]"),
                                  ("log_q_sampled", log_q_sampled, sampled.shape[0], "[S]")):  # fmt: skip
        checks.tensor(name, t, (torch.float32,), layout)
        checks.shape(name, t, (size,))
        named.append((name, t))
    for name, t in [*named, ("targets", targets), ("sampled", sampled)]:
        checks.device_like(name, t, "hidden", hidden)
    checks.ids_in_range("targets", targets, weight.shape[0])
    checks.ids_in_range("sampled", sampled, weight.shape[0])


def _logits(hidden, weight, bias, targets, sampled, log_q_targets, log_q_sampled, remove_accidental_hits):
    """z_t [N] and z_s [N, S] in float32."""
    h, t, s = hidden.float(), targets.long(), sampled.long()
    w_t, w_s = weight[t].float(), weight[s].float()
    z_t = (h * w_t).sum(1) - log_q_targets
    z_s = h @ w_s.T - log_q_sampled
    if bias is not None:
        z_t = z_t + bias[t].float()
        z_s = z_s + bias[s].float()
    if remove_accidental_hits:
        z_s = z_s.masked_fill(s[None, :] == t[:, None], float("-inf"))
    return z_t, z_s


def sampled_softmax_loss_reference(hidden, weight, targets, sampled, log_q_targets, log_q_sampled, bias=None,
                                   remove_accidental_hits=True):  # fmt: skip
    """Pure-torch sampled softmax loss (the spec; differentiable by torch autograd); returns loss [N] float32."""
    z_t, z_s = _logits(hidden, weight, bias, targets, sampled, log_q_targets, log_q_sampled, remove_accidental_hits)
    return torch.logsumexp(torch.cat([z_t[:, None], z_s], 1), 1) - z_t


def sampled_softmax_loss_backward_reference(grad, hidden, weight, bias, targets, sampled, log_q_targets,
                                            log_q_sampled, lse, remove_accidental_hits):  # fmt: skip
    """The kernels' backward in plain torch (the CPU path's), from the saved lse: d loss/d z_t = p_t - 1,
    d loss/d z_s = p_s with p = exp(z - lse); (d hidden, d w per sampled position, d b per sampled
    position, g (p_t - 1) per row), as ``fastpretrain.kernels.sampled_softmax.sampled_softmax_backward``."""
    z_t, z_s = _logits(hidden, weight, bias, targets, sampled, log_q_targets, log_q_sampled, remove_accidental_hits)
    grad = grad.float()
    coef_t = grad * (torch.exp(z_t - lse) - 1)
    p = torch.exp(z_s - lse[:, None]) * grad[:, None]
    t, s = targets.long(), sampled.long()
    grad_hidden = coef_t[:, None] * weight[t].float() + p @ weight[s].float()
    return grad_hidden, p.T @ hidden.float(), p.sum(0), coef_t


@torch.library.custom_op("fastpretrain::sampled_softmax_loss", mutates_args=())
def _loss_op(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor,
             sampled: torch.Tensor, log_q_targets: torch.Tensor, log_q_sampled: torch.Tensor,
             remove_accidental_hits: bool) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(loss [N], lse [N]); the backward needs only lse, not the [N, S] probabilities."""
    args = (hidden, weight, bias, targets, sampled, log_q_targets, log_q_sampled, remove_accidental_hits)
    if use_kernel(hidden):
        from fastpretrain.kernels.sampled_softmax import sampled_softmax_forward

        return sampled_softmax_forward(*args)
    z_t, z_s = _logits(*args)
    lse = torch.logsumexp(torch.cat([z_t[:, None], z_s], 1), 1)
    return lse - z_t, lse


@_loss_op.register_fake
def _(hidden, weight, bias, targets, sampled, log_q_targets, log_q_sampled, remove_accidental_hits):
    loss = hidden.new_empty(hidden.shape[0], dtype=torch.float32)
    return loss, torch.empty_like(loss)


@torch.library.custom_op("fastpretrain::sampled_softmax_loss_backward", mutates_args=())
def _backward_op(grad: torch.Tensor, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 targets: torch.Tensor, sampled: torch.Tensor, log_q_targets: torch.Tensor, log_q_sampled: torch.Tensor,
                 lse: torch.Tensor, remove_accidental_hits: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """(d hidden, d weight, d bias): only the target and sampled rows of d weight / d bias are
    nonzero; repeated ids accumulate (index_add_)."""
    args = (grad, hidden, weight, bias, targets, sampled, log_q_targets, log_q_sampled, lse, remove_accidental_hits)
    if use_kernel(hidden):
        from fastpretrain.kernels.sampled_softmax import sampled_softmax_backward

        grad_hidden, grad_w_s, grad_b_s, coef_t = sampled_softmax_backward(*args)
    else:
        grad_hidden, grad_w_s, grad_b_s, coef_t = sampled_softmax_loss_backward_reference(*args)
    t, s = targets.long(), sampled.long()
    grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
    grad_weight.index_add_(0, s, grad_w_s).index_add_(0, t, coef_t[:, None] * hidden.float())
    grad_bias = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device)
    grad_bias.index_add_(0, s, grad_b_s).index_add_(0, t, coef_t)
    return grad_hidden.to(hidden.dtype), grad_weight.to(weight.dtype), grad_bias.to(weight.dtype)


@_backward_op.register_fake
def _(grad, hidden, weight, bias, targets, sampled, log_q_targets, log_q_sampled, lse, remove_accidental_hits):
    return torch.empty_like(hidden), torch.empty_like(weight), weight.new_empty(weight.shape[0])


def _setup_context(ctx, inputs, output):
    hidden, weight, bias, targets, sampled, log_q_targets, log_q_sampled, remove_accidental_hits = inputs
    ctx.save_for_backward(hidden, weight, bias, targets, sampled, log_q_targets, log_q_sampled, output[1])
    ctx.remove_accidental_hits = remove_accidental_hits


def _backward(ctx, grad_loss, grad_lse):
    hidden, weight, bias, targets, sampled, log_q_targets, log_q_sampled, lse = ctx.saved_tensors
    grad_hidden, grad_weight, grad_bias = _backward_op(grad_loss, hidden, weight, bias, targets, sampled,
                                                       log_q_targets, log_q_sampled, lse, ctx.remove_accidental_hits)  # fmt: skip
    return grad_hidden, grad_weight, grad_bias if bias is not None else None, None, None, None, None, None


_loss_op.register_autograd(_backward, setup_context=_setup_context)


def sampled_softmax_loss(hidden, weight, targets, sampled, log_q_targets, log_q_sampled, bias=None,
                         remove_accidental_hits=True):  # fmt: skip
    """Sampled softmax loss with log-Q correction; returns the per-row loss [N] float32 (reduce it yourself).

    Args:
        hidden: [N, D] float32 / float16 / bfloat16 inputs to the output layer.
        weight: [V, D] output embedding (hidden's dtype); bias: [V] or None.
        targets: [N] int32/int64 true classes; sampled: [S] int32/int64 candidates shared by the batch
            (repeats allowed: each occurrence is one column).
        log_q_targets, log_q_sampled: [N] / [S] float32 log sampling probabilities of those ids.
        remove_accidental_hits: drop (score -inf) a sampled column equal to the row's target.
    Gradients reach hidden, weight (target and sampled rows only) and bias, not log_q_* or the ids.
    Ids must lie in [0, V): checked on CPU tensors in eager mode, not on the GPU (module docstring).
    """
    _check(hidden, weight, targets, sampled, log_q_targets, log_q_sampled, bias)
    return _loss_op(hidden, weight, bias, targets, sampled, log_q_targets, log_q_sampled,
                    bool(remove_accidental_hits))[0]  # fmt: skip
