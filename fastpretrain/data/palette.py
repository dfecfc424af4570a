"""Colour palettes for image GPT (Chen et al. 2020): pixels clustered by the shared k-means
(:mod:`fastpretrain.data.kmeans`, on the pixels' device, so on the GPU when there is one), and
images as sequences of palette ids in raster order. image-gpt uses 512 clusters (9 bits) of RGB; a
greyscale image needs far fewer levels."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastpretrain.checks import check_int
from fastpretrain.data.kmeans import kmeans, nearest


def kmeans_palette(pixels: torch.Tensor, k: int, *, iters: int = 30, seed: int = 0) -> torch.Tensor:
    """[k, C] cluster centres of ``pixels`` [N, C] (floats, e.g. in [0, 1]) by the shared
    :func:`~fastpretrain.data.kmeans.kmeans` (k-means++ seeds, Lloyd steps), sorted by brightness
    (mean over channels), so nearby ids look alike."""
    check_int("k", k, 1)
    if pixels.dim() != 2 or not pixels.is_floating_point():
        raise ValueError(f"pixels: expected float [N, C], got {pixels.dtype} {tuple(pixels.shape)}")
    if len(pixels) < k:
        raise ValueError(f"k: {k} clusters need at least {k} pixels, got {len(pixels)}")
    centres = kmeans(pixels, k, iters=iters, seed=seed).centres
    return centres[centres.mean(1).argsort()]


def quantize(images: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """int64 [B, H * W]: each pixel of ``images`` [B, C, H, W] (floats in the palette's range) as
    the id of its nearest palette colour, in raster order."""
    if images.dim() != 4 or images.shape[1] != palette.shape[1]:
        raise ValueError(f"images: expected [B, {palette.shape[1]}, H, W] for a palette of {palette.shape[1]} "
                         f"channels, got {tuple(images.shape)}")  # fmt: skip
    flat = images.permute(0, 2, 3, 1).reshape(-1, images.shape[1]).float()
    return nearest(flat, palette).view(images.shape[0], -1)


def dequantize(ids: torch.Tensor, palette: torch.Tensor, size: int) -> torch.Tensor:
    """float [B, C, size, size] images from palette ids [B, size * size]."""
    b = ids.shape[0]
    return palette.to(ids.device)[ids].view(b, size, size, palette.shape[1]).permute(0, 3, 1, 2)


def to_unit(images: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """uint8 or float images [B, C, H, W] as floats in [0, 1], area-resized to ``size`` x ``size`` if given."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    if size is not None and x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="area")
    return x


class PaletteImages(torch.utils.data.Dataset):
    """Images as palette ids, quantized once: ``{"tokens": int64 [L]}`` items (what
    :class:`~fastpretrain.models.ImageGPT` takes), labels kept for the probe."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, palette: torch.Tensor, size: int,
                 batch: int = 4096) -> None:  # fmt: skip
        self.palette, self.size, self.labels = palette, size, labels.long()
        chunks = [quantize(to_unit(images[i : i + batch], size), palette).to(torch.int16)
                  for i in range(0, len(images), batch)]  # fmt: skip
        self.tokens = torch.cat(chunks)

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> dict:
        return {"tokens": self.tokens[i].long()}


def sample_pixels(images: torch.Tensor, size: int, n: int, seed: int = 0) -> torch.Tensor:
    """[n, C] pixels of ``images`` [N, C, H, W] (resized to ``size``) drawn at random, for :func:`kmeans_palette`."""
    g = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(images), (min(n, len(images) * size * size) // (size * size) + 1,), generator=g)
    pixels = to_unit(images[picks], size).permute(0, 2, 3, 1).reshape(-1, images.shape[1])
    return pixels[torch.randperm(len(pixels), generator=g)[:n]]
