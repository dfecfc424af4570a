"""The language-model head's loss on the fused linear cross-entropy, with label smoothing and
PaLM's z-loss, still without the [N, V] logits in memory.

Both options are exact rewrites of the materialised formulas in terms the op already has. With z_t
the target's logit, mean_z the mean logit and ce = lse - z_t the op's per-row loss:

- label smoothing ``eps`` (as ``F.cross_entropy(label_smoothing=eps)``): (1 - eps) ce + eps (lse - mean_z)
  = ce + eps (z_t - mean_z), where mean_z = hidden . mean(weight) + mean(bias) needs no logits;
- z-loss ``c``: c lse^2, with lse = ce + z_t.

z_t and mean_z are plain torch (one [N, D] gather, one [D] vector), so autograd gives their
gradients, and the op's own backward gives ce's: the gradient of lse is softmax(z), as it must be.
"""

from __future__ import annotations

import torch
from torch import nn

from fastpretrain.checks import check_float
from fastpretrain.nn.losses import LinearCrossEntropyLoss, _autocast_dtype


class LMHeadLoss(nn.Module):
    """Mean over the rows not ``ignore_index`` of ``cross_entropy(hidden @ weight.T + bias, targets,
    label_smoothing)`` + ``z_loss`` * logsumexp(logits)^2, fused. ``forward`` returns a dict: "loss"
    (what to minimise), "nll" (the plain cross-entropy, detached: its exp is the perplexity) and
    "z_loss" (the z term before its coefficient, detached; absent when ``z_loss`` is 0)."""

    def __init__(self, label_smoothing: float = 0.0, z_loss: float = 0.0, ignore_index: int = -100) -> None:
        super().__init__()
        self.label_smoothing = check_float("label_smoothing", label_smoothing, 0.0)
        if self.label_smoothing >= 1.0:
            raise ValueError(f"label_smoothing: expected a float in [0, 1), got {label_smoothing!r}")
        self.z_loss = check_float("z_loss", z_loss, 0.0)
        self.ignore_index = ignore_index
        self.rows = LinearCrossEntropyLoss(ignore_index=ignore_index, reduction="none")

    def forward(self, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                bias: torch.Tensor | None = None) -> dict[str, torch.Tensor]:  # fmt: skip
        ce = self.rows(hidden, weight, targets, bias)
        valid = targets != self.ignore_index
        count = valid.sum()
        out = {"nll": ce.detach().sum() / count}
        loss = ce
        if self.label_smoothing or self.z_loss:
            z_t = self._target_logits(hidden, weight, bias, targets, valid)
        if self.label_smoothing:
            dtype = _autocast_dtype(hidden)
            mean_z = hidden.to(dtype).float() @ weight.to(dtype).mean(0, dtype=torch.float32)
            if bias is not None:
                mean_z = mean_z + bias.to(dtype).mean(dtype=torch.float32)
            loss = loss + self.label_smoothing * (z_t - mean_z) * valid
        if self.z_loss:
            z_rows = (ce + z_t).square() * valid
            out["z_loss"] = z_rows.detach().sum() / count
            loss = loss + self.z_loss * z_rows
        out["loss"] = loss.sum() / count
        return out

    def _target_logits(self, hidden, weight, bias, targets, valid) -> torch.Tensor:
        """float32 [N]: each row's logit of its target (0 on ignored rows), from the inputs in the op's dtype."""
        dtype = _autocast_dtype(hidden)
        safe = torch.where(valid, targets, 0).long()
        z_t = (hidden.to(dtype).float() * weight.to(dtype)[safe].float()).sum(-1)
        if bias is not None:
            z_t = z_t + bias.to(dtype)[safe].float()
        return z_t * valid
