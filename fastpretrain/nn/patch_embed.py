"""Images to patch tokens (ViT): non-overlapping patches through one Conv2d."""

from __future__ import annotations

import torch
from torch import nn


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
