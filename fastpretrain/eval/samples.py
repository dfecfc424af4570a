"""A PNG grid of images (a generative model's samples), written atomically with PIL."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from fastpretrain.atomic import atomic_path


def save_image_grid(images: torch.Tensor, path: str | os.PathLike, *, columns: int | None = None,
                    scale: int | None = None) -> Path:  # fmt: skip
    """``images`` [N, C, H, W] in [0, 1] (C = 1 grey or 3 RGB) as a grid of ``columns`` (default
    about sqrt(N)) with a 2-pixel white border, each cell enlarged ``scale`` times (default: to >= 64 pixels)."""
    from PIL import Image

    if images.dim() != 4 or images.shape[1] not in (1, 3) or len(images) == 0:
        raise ValueError(f"images: expected [N, 1 or 3, H, W] with N >= 1, got shape {tuple(images.shape)}")
    n, c, h, w = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows, scale, pad = math.ceil(n / columns), scale or max(1, math.ceil(64 / max(h, w))), 2
    pixels = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    canvas = torch.full((c, rows * (h * scale + pad) + pad, columns * (w * scale + pad) + pad), 255, dtype=torch.uint8)
    for i in range(n):
        y, x = pad + (i // columns) * (h * scale + pad), pad + (i % columns) * (w * scale + pad)
        canvas[:, y : y + h * scale, x : x + w * scale] = (
            pixels[i].repeat_interleave(scale, 1).repeat_interleave(scale, 2)
        )
    array = canvas.permute(1, 2, 0).numpy()
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(array[..., 0] if c == 1 else array).save(tmp, format="PNG")
    return path
