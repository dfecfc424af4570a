"""SimCLR's augmentation pair in plain torch (no torchvision), on float32 [C, H, W] images in [0, 1],
called as ``transform(img, generator=None)`` like :mod:`fastpretrain.data.image_transforms`:
random resized crop + flip, colour jitter (brightness and contrast on any image; saturation, hue
and random greyscale only where there are three channels), Gaussian blur, then normalisation.
:class:`TwoViews` draws two independent views of one image, [2, C, H, W], for a contrastive batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fastpretrain.data.image_transforms import Normalize, RandomResizedCropFlip

_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as torchvision's rgb_to_grayscale


def _grey(img: torch.Tensor) -> torch.Tensor:
    """[1, H, W] luma of an RGB image (the image itself when grey)."""
    if img.shape[0] == 1:
        return img
    return (img * torch.tensor(_LUMA, dtype=img.dtype).view(3, 1, 1)).sum(0, keepdim=True)


def _rotate_hue(img: torch.Tensor, turn: float) -> torch.Tensor:
    """RGB hue rotated by ``turn`` of a full circle, as a rotation about the grey axis (keeps luma close)."""
    angle = 2 * math.pi * turn
    c, s = math.cos(angle), math.sin(angle)
    k = 1 / 3
    sq = math.sqrt(k)
    m = torch.tensor([[c + (1 - c) * k, k * (1 - c) - sq * s, k * (1 - c) + sq * s],
                      [k * (1 - c) + sq * s, c + (1 - c) * k, k * (1 - c) - sq * s],
                      [k * (1 - c) - sq * s, k * (1 - c) + sq * s, c + (1 - c) * k]], dtype=img.dtype)  # fmt: skip
    return torch.einsum("ij,jhw->ihw", m, img)


@dataclass
class ColorJitter:
    """SimCLR's colour distortion with probability ``p``: brightness, contrast, saturation and hue
    factors drawn uniformly (strength s = 1: 0.8, 0.8, 0.8, 0.2) and applied in a random order;
    saturation and hue act on three-channel images only."""

    brightness: float = 0.8
    contrast: float = 0.8
    saturation: float = 0.8
    hue: float = 0.2
    p: float = 0.8

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if torch.rand(1, generator=generator).item() >= self.p:
            return img
        ops = ["brightness", "contrast"] + (["saturation", "hue"] if img.shape[0] == 3 else [])
        for i in torch.randperm(len(ops), generator=generator).tolist():
            op, u = ops[i], torch.rand(1, generator=generator).item()
            if op == "hue":
                img = _rotate_hue(img, (2 * u - 1) * self.hue)
            else:
                factor = 1 + (2 * u - 1) * getattr(self, op)
                if op == "brightness":
                    img = img * factor
                elif op == "contrast":
                    img = _grey(img).mean() + factor * (img - _grey(img).mean())
                else:
                    img = _grey(img) + factor * (img - _grey(img))
            img = img.clamp(0, 1)
        return img


@dataclass
class RandomGrayscale:
    """All channels set to the luma with probability ``p`` (three-channel images; others pass)."""

    p: float = 0.2

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if img.shape[0] != 3 or torch.rand(1, generator=generator).item() >= self.p:
            return img
        return _grey(img).expand(3, -1, -1).clone()


@dataclass
class GaussianBlur:
    """SimCLR's blur with probability ``p``: a Gaussian of sigma in ``sigma`` (pixels), kernel
    about a tenth of the image side (odd), reflect-padded, separable."""

    sigma: tuple[float, float] = (0.1, 2.0)
    p: float = 0.5

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if torch.rand(1, generator=generator).item() >= self.p:
            return img
        u = torch.rand(1, generator=generator).item()
        sigma = self.sigma[0] + u * (self.sigma[1] - self.sigma[0])
        size = max(3, (min(img.shape[-2:]) // 10) | 1)
        x = torch.arange(size, dtype=img.dtype) - size // 2
        k = torch.exp(-(x**2) / (2 * sigma**2))
        k = (k / k.sum()).view(1, 1, -1).repeat(img.shape[0], 1, 1)
        pad = size // 2
        out = _blur_1d(F.pad(img[None], (pad, pad, 0, 0), mode="reflect"), k, dim=-1)
        out = _blur_1d(F.pad(out, (0, 0, pad, pad), mode="reflect"), k, dim=-2)
        return out[0]


def _blur_1d(x: torch.Tensor, k: torch.Tensor, dim: int) -> torch.Tensor:
    """x [1, C, H, W] (padded along ``dim``) convolved with the per-channel kernel k [C, 1, K] along ``dim``."""
    c = x.shape[1]
    w = k[:, :, None, :] if dim == -1 else k[:, :, :, None]
    return F.conv2d(x, w, groups=c)


class SimCLRAugment:
    """One SimCLR view (Chen et al. 2020, appendix A): random resized crop (area ``scale``) with a
    flip, colour jitter (p 0.8), random greyscale (p 0.2), Gaussian blur (p 0.5), then normalisation."""

    def __init__(self, size: int, scale: tuple[float, float] = (0.08, 1.0), strength: float = 1.0,
                 blur: float = 0.5, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> None:  # fmt: skip
        if not strength >= 0:
            raise ValueError(f"strength: expected a float >= 0, got {strength!r}")
        if not 0 <= blur <= 1:
            raise ValueError(f"blur: expected a probability in [0, 1], got {blur!r}")
        self.crop = RandomResizedCropFlip(size, scale=scale)
        self.jitter = ColorJitter(0.8 * strength, 0.8 * strength, 0.8 * strength, 0.2 * strength)
        self.grey, self.blur = RandomGrayscale(), GaussianBlur(p=blur)
        self.normalize = Normalize(mean, std) if mean is not None else None

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for step in (self.crop, self.jitter, self.grey, self.blur):
            img = step(img, generator)
        return self.normalize(img) if self.normalize else img


class TwoViews:
    """Two independent draws of ``augment`` of one image, stacked: [2, C, H, W]."""

    def __init__(self, augment) -> None:
        self.augment = augment

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.stack([self.augment(img, generator), self.augment(img, generator)])
