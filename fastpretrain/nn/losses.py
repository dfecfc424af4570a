"""Loss modules over the fused ops: the output layer and its cross-entropy in one step, so the
[N, V] logits of a large vocabulary are never materialised."""

from __future__ import annotations

import torch
from torch import nn

from fastpretrain.ops import linear_cross_entropy, sampled_softmax_loss


def _autocast_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype autocast would run a matmul of ``t`` in (``t``'s own outside autocast)."""
    device = t.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else t.dtype


class LinearCrossEntropyLoss(nn.Module):
    """``F.cross_entropy(hidden @ weight.T + bias, targets)`` fused (Liger's
    ``FusedLinearCrossEntropyLoss``): the weight is an argument, so a head tied to the input
    embeddings passes them. Under autocast the inputs are cast to its dtype, as autocast would for
    the matmul (a LayerNorm before the head hands over float32). Returns float32."""

    def __init__(self, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__()
        self.ignore_index, self.reduction = ignore_index, reduction

    def forward(self, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                bias: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        dtype = _autocast_dtype(hidden)
        bias = None if bias is None else bias.to(dtype)
        return linear_cross_entropy(hidden.to(dtype), weight.to(dtype), targets, bias, ignore_index=self.ignore_index,
                                    reduction=self.reduction)  # fmt: skip


class SampledSoftmaxLoss(nn.Module):
    """Sampled softmax with log-Q correction (Jean et al. 2015) over an output layer ``weight``
    [V, D] (+ ``bias``): each row against its target and S sampled classes shared by the batch,
    with their log sampling probabilities. ``reduction``: "mean", "sum" or "none" ([N])."""

    def __init__(self, remove_accidental_hits: bool = True, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction: expected 'mean', 'sum' or 'none', got {reduction!r}")
        self.remove_accidental_hits, self.reduction = remove_accidental_hits, reduction

    def forward(self, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, sampled: torch.Tensor,
                log_q_targets: torch.Tensor, log_q_sampled: torch.Tensor,
                bias: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        dtype = _autocast_dtype(hidden)
        bias = None if bias is None else bias.to(dtype)
        loss = sampled_softmax_loss(hidden.to(dtype), weight.to(dtype), targets, sampled, log_q_targets, log_q_sampled,
                                    bias, remove_accidental_hits=self.remove_accidental_hits)  # fmt: skip
        return loss if self.reduction == "none" else loss.mean() if self.reduction == "mean" else loss.sum()


class SampledSoftmax(nn.Module):
    """A [V, D] output layer (+ bias) trained by sampled softmax as TensorFlow's
    ``sampled_softmax_loss``, scored in full for evaluation.

    Training (``self.training``, ``num_sampled`` > 0 and a ``sampler``): ``num_sampled`` candidates shared by the
    batch from ``sampler`` (any of :mod:`fastpretrain.data.samplers`: ``candidates`` and ``to``),
    distinct when ``unique``; the log of each id's expected count subtracted from its logit (log Q
    plus a constant, or TF's 1 - (1 - Q)^num_tries when unique); a candidate equal to a row's
    target dropped from that row when ``remove_accidental_hits``. Otherwise the full softmax over
    V, fused (the [N, V] logits never in memory). ``forward`` returns the per-row loss [N] float32.
    """

    def __init__(self, dim: int, num_classes: int, num_sampled: int, sampler, unique: bool = True,
                 remove_accidental_hits: bool = True, bias: bool = True) -> None:  # fmt: skip
        super().__init__()
        if num_sampled < 0:
            raise ValueError(f"num_sampled: expected an int >= 0 (0: full softmax), got {num_sampled!r}")
        if sampler is not None and sampler.num_classes != num_classes:
            raise ValueError(f"sampler: draws from {sampler.num_classes} classes, expected {num_classes}")
        self.weight = nn.Parameter(torch.empty(num_classes, dim))
        self.bias = nn.Parameter(torch.zeros(num_classes)) if bias else None
        nn.init.normal_(self.weight, std=dim**-0.5)
        self.num_sampled, self.sampler, self.unique = num_sampled, sampler, unique
        self.sampled_loss = SampledSoftmaxLoss(remove_accidental_hits, reduction="none")
        self.full_loss = LinearCrossEntropyLoss(reduction="none")

    def sampling(self) -> bool:
        """Whether ``forward`` uses the sampled softmax now."""
        return self.training and self.num_sampled > 0 and self.sampler is not None

    def forward(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if not self.sampling():
            return self.full_loss(hidden, self.weight, targets, self.bias)
        self.sampler = self.sampler.to(hidden.device)
        sampled, true_count, sampled_count, _ = self.sampler.candidates(self.num_sampled, targets, self.unique)
        log_true, log_sampled = true_count.log(), sampled_count.log()
        return self.sampled_loss(hidden, self.weight, targets, sampled, log_true, log_sampled, self.bias)
