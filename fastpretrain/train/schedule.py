"""Learning-rate schedule: linear warm-up, then cosine or linear decay to min_lr (or constant)."""

from __future__ import annotations

import math


def lr_at(step: int, *, lr: float, min_lr: float, warmup_steps: int, steps: int, schedule: str) -> float:
    """The learning rate of optimizer step ``step`` (0-based). A plain function of the step, so
    resuming needs no scheduler state beyond the step itself."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    progress = min(1.0, (step - warmup_steps) / max(1, steps - warmup_steps))
    decay = 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1 - progress
    return min_lr + decay * (lr - min_lr)
