"""Contrastive loss modules over the fused InfoNCE / SigLIP ops, single process or across ranks.

Across ranks (torch.distributed initialised, world size > 1) each rank scores its own rows against
every rank's columns, gathered with their gradient (open_clip's ``local_loss`` + ``gather_with_grad``):
the gather's backward sums what every rank's loss sends to this rank's rows. With the gradients then
averaged over ranks (DDP does that), the loss and every gradient equal one process on the whole
batch: tests/test_contrastive_distributed.py checks it on two gloo ranks. Every rank must hold the
same number of rows (the all_gather needs equal shapes).
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn

from fastpretrain.ops import infonce_loss, siglip_loss, simclr_targets


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows, ctx.rank = x.shape[0], dist.get_rank()
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def distributed() -> tuple[int, int]:
    """(rank, world size): (0, 1) without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Every rank's ``x`` [n, ...] concatenated in rank order [world * n, ...]; gradients flow back to
    each rank's own rows, summed over the ranks' losses. ``x`` itself in a single process."""
    return _GatherWithGrad.apply(x) if distributed()[1] > 1 else x


def _offset(n: int) -> tuple[int, bool]:
    """(first global row of this rank's n rows, whether to gather)."""
    rank, world = distributed()
    return rank * n, world > 1


class ClipLoss(nn.Module):
    """CLIP's symmetric InfoNCE between paired image and text features (row i of each is a pair), with
    CLIP's learnable temperature: logits = exp(logit_scale) * cos(image, text), logit_scale initialised
    to log(1 / temperature) and the scale capped at ``max_scale`` (CLIP's 100)."""

    def __init__(self, temperature: float = 0.07, max_scale: float = 100.0, learn_temperature: bool = True) -> None:
        super().__init__()
        if not 0 < temperature:
            raise ValueError(f"temperature: expected a float > 0, got {temperature!r}")
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)), requires_grad=learn_temperature)
        self.max_scale = max_scale

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=self.max_scale)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        scale = self.scale()
        start, gather = _offset(image.shape[0])
        if not gather:
            return infonce_loss(image, text, scale, symmetric=True)
        targets = start + torch.arange(image.shape[0], device=image.device)
        to_text = infonce_loss(image, gather_with_grad(text), scale, targets=targets)
        to_image = infonce_loss(text, gather_with_grad(image), scale, targets=targets)
        return (to_text + to_image) / 2


class NTXentLoss(nn.Module):
    """SimCLR's NT-Xent: each of the 2N views against the other 2N - 1, its own view pair the positive,
    cosine similarities over ``temperature`` (SimCLR's 0.5 for small batches, 0.1 for large)."""

    def __init__(self, temperature: float = 0.5) -> None:
        super().__init__()
        if not 0 < temperature:
            raise ValueError(f"temperature: expected a float > 0, got {temperature!r}")
        self.temperature = temperature

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        if z1.shape != z2.shape:
            raise ValueError(f"z2: expected the shape of z1 {tuple(z1.shape)}, got {tuple(z2.shape)}")
        z = torch.cat([z1, z2])
        start, gather = _offset(z.shape[0])
        targets, exclude = simclr_targets(z1.shape[0], z.device, offset=start)
        keys = gather_with_grad(z) if gather else z
        return infonce_loss(z, keys, 1 / self.temperature, targets=targets, exclude=exclude)


class SigLipLoss(nn.Module):
    """SigLIP's pairwise sigmoid loss with its learnable scale and bias (initialised to log 10 and -10)."""

    def __init__(self, scale: float = 10.0, bias: float = -10.0) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(scale)))
        self.logit_bias = nn.Parameter(torch.tensor(float(bias)))

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        start, gather = _offset(image.shape[0])
        targets = start + torch.arange(image.shape[0], device=image.device)
        keys = gather_with_grad(text) if gather else text
        return siglip_loss(image, keys, self.logit_scale.exp(), self.logit_bias, targets=targets)
