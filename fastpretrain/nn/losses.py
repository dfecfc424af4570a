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
