"""Image transforms in plain torch (no torchvision), called as ``transform(img, generator=None)``
on float32 [C, H, W] images in [0, 1]: normalisation, MAE's pre-training augmentation (random
resized crop and flip) and the evaluation resize."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


class Normalize:
    """(x - mean) / std per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f"mean, std: expected equal lengths and std > 0, got {mean}, {std}")
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return (img - self.mean) / self.std


class RandomResizedCropFlip:
    """MAE's pre-training augmentation: ``RandomResizedCrop(size, scale, ratio=(3/4, 4/3))`` with
    bilinear resizing (torchvision's sampling of the box: 10 tries, then the central crop), a
    horizontal flip with probability 1/2, then normalisation. Draws from ``generator`` if given,
    else torch's global RNG (seeded per rank by the Trainer), so runs repeat under a seed."""

    def __init__(self, size: int, scale: tuple[float, float] = (0.2, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 flip: bool = True, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:  # fmt: skip
        if not (isinstance(size, int) and size >= 1):
            raise ValueError(f"size: expected an int >= 1, got {size!r}")
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale: expected 0 < low <= high <= 1, got {scale}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio: expected 0 < low <= high, got {ratio}")
        self.size, self.scale, self.ratio, self.flip = size, scale, ratio, flip
        self.normalize = Normalize(mean, std) if mean is not None else None

    def box(self, height: int, width: int, generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
        """(top, left, h, w) of the crop, as torchvision's ``RandomResizedCrop.get_params``."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            u = torch.rand(4, generator=generator).tolist()
            target = area * (self.scale[0] + u[0] * (self.scale[1] - self.scale[0]))
            aspect = math.exp(log_ratio[0] + u[1] * (log_ratio[1] - log_ratio[0]))
            w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                return int(u[2] * (height - h + 1)), int(u[3] * (width - w + 1)), h, w
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, round(width / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            h, w = height, round(height * self.ratio[1])
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        top, left, h, w = self.box(img.shape[-2], img.shape[-1], generator)
        crop = img[None, :, top : top + h, left : left + w]
        out = F.interpolate(crop, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)[0]
        if self.flip and torch.rand(1, generator=generator).item() < 0.5:
            out = out.flip(-1)
        out = out.clamp(0, 1)  # antialiased resizing can overshoot slightly
        return self.normalize(out) if self.normalize else out


class Resize:
    """Evaluation transform: bilinear resize to ``size`` x ``size`` (when needed), then normalise."""

    def __init__(self, size: int, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        self.size = size
        self.normalize = Normalize(mean, std) if mean is not None else None

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if tuple(img.shape[-2:]) != (self.size, self.size):
            img = F.interpolate(img[None], size=(self.size, self.size), mode="bilinear", align_corners=False,
                                antialias=True)[0].clamp(0, 1)  # fmt: skip
        return self.normalize(img) if self.normalize else img
