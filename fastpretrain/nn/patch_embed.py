"""Images to patch tokens (ViT): non-overlapping patches through one Conv2d; images to and from
their flattened patches (MAE's ``patchify`` / ``unpatchify``, the pixel targets of MAE and SimMIM)."""

from __future__ import annotations

import math

import torch
from torch import nn


def patchify(imgs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, L, p*p*C], row-major patches, each as (row, column, channel), as MAE."""
    p = patch_size
    if imgs.dim() != 4 or imgs.shape[2] % p or imgs.shape[3] % p:
        raise ValueError(f"imgs: expected [B, C, H, W] with H and W multiples of {p}, got {tuple(imgs.shape)}")
    b, c, h, w = imgs.shape
    x = imgs.reshape(b, c, h // p, p, w // p, p)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(x: torch.Tensor, patch_size: int, in_chans: int) -> torch.Tensor:
    """[B, L, p*p*C] -> [B, C, H, W] for a square grid of L patches (inverse of :func:`patchify`)."""
    p, c = patch_size, in_chans
    h = math.isqrt(x.shape[1]) if x.dim() == 3 else 0
    if x.dim() != 3 or h * h != x.shape[1] or x.shape[2] != p * p * c:
        raise ValueError(f"x: expected [B, L, {p * p * c}] with L a square, got {tuple(x.shape)}")
    x = x.reshape(x.shape[0], h, h, p, p, c)
    return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], c, h * p, h * p)


class PatchEmbed(nn.Module):
    """[B, C, H, W] -> [B, L, D] with L = (img_size / patch_size)^2, row-major patches: a Conv2d
    with stride = kernel = patch_size (timm's ``patch_embed.proj``)."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int, device=None, dtype=None) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size: {img_size} is not divisible by patch_size {patch_size}")
        self.img_size, self.patch_size, self.in_chans = img_size, patch_size, in_chans
        self.grid_size = img_size // patch_size
        self.num_patches = self.grid_size**2
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_chans or tuple(x.shape[2:]) != (self.img_size, self.img_size):
            raise ValueError(f"x: expected images [B, {self.in_chans}, {self.img_size}, {self.img_size}], "
                             f"got shape {tuple(x.shape)}")  # fmt: skip
        return self.proj(x).flatten(2).transpose(1, 2)
