"""The small convolutional encoder-decoder of the CNN pretext tasks (context-encoder inpainting,
colorization-style bin prediction) and its discriminator's body.

:class:`ConvEncoder`: stages of (3 x 3 conv, stride 2) then (3 x 3 conv, stride 1), each followed
by GroupNorm and LeakyReLU(0.2) (DCGAN's activation, as Pathak et al.'s encoder). GroupNorm, not
the paper's BatchNorm: the same function in training and evaluation, so a probe reads the features
the pre-training shaped even though it shows whole images where training showed holes.
``forward_features`` gives the last feature map [B, C, h, w] (timm's CNN convention);
:func:`fastpretrain.eval.probe.extract_features` mean-pools it.

:class:`ChannelwiseFC`: Pathak et al.'s channel-wise fully connected bottleneck: each channel's
h x w map through its own dense layer, so every output position sees the whole image (a 3 x 3
conv stack alone would leave the middle of a large hole out of reach), then a 1 x 1 conv mixing
channels, at a fraction of a full fully connected layer's parameters.

:class:`ConvDecoder`: per stage, nearest upsampling to the encoder's matching size, 3 x 3 conv,
GroupNorm, ReLU; a last 3 x 3 conv to ``out_chans`` (pixels, or logits per pixel).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fastpretrain.checks import check_int


def check_widths(name: str, widths) -> tuple[int, ...]:
    """``widths`` as a non-empty tuple of ints >= 1, or ValueError naming ``name``."""
    values = tuple(widths) if isinstance(widths, (list, tuple)) else None
    if not values or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in values):
        raise ValueError(f"{name}: expected a non-empty sequence of ints >= 1, got {widths!r}")
    return values


def stage_sizes(img_size: int, stages: int) -> list[int]:
    """Feature map sides after each stride-2 stage (3 x 3, padding 1): ceil(side / 2) each time."""
    sizes, side = [], img_size
    for _ in range(stages):
        side = (side + 1) // 2
        sizes.append(side)
    return sizes


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


class ConvEncoder(nn.Module):
    """``ConvEncoder(in_chans, widths)``: one stride-2 stage per width; ``forward_features`` -> [B, widths[-1], h, w]."""

    def __init__(self, in_chans: int, widths: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__()
        check_int("in_chans", in_chans, 1)
        widths = check_widths("widths", widths)
        stages, prev = [], in_chans
        for w in widths:
            stages.append(nn.Sequential(nn.Conv2d(prev, w, 3, 2, 1), _norm(w), nn.LeakyReLU(0.2),
                                        nn.Conv2d(w, w, 3, 1, 1), _norm(w), nn.LeakyReLU(0.2)))  # fmt: skip
            prev = w
        self.stages = nn.ModuleList(stages)
        self.in_chans, self.widths, self.out_dim = in_chans, widths, widths[-1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"x: expected images [B, {self.in_chans}, H, W], got {tuple(x.shape)}")
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, out_dim]: the last feature map, mean-pooled (the representation a probe reads)."""
        return self.forward_features(x).mean((2, 3))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


class ChannelwiseFC(nn.Module):
    """[B, C, h, w] -> [B, C, h, w]: a dense layer over the h * w positions per channel, then a 1 x 1 conv."""

    def __init__(self, channels: int, side: int) -> None:
        super().__init__()
        n = side * side
        bound = 1 / math.sqrt(n)
        self.weight = nn.Parameter(torch.empty(channels, n, n).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(channels, n))
        self.mix = nn.Sequential(nn.Conv2d(channels, channels, 1), _norm(channels), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = torch.einsum("bcp,cpq->bcq", x.flatten(2), self.weight) + self.bias
        return self.mix(y.view(b, c, h, w))


class ConvDecoder(nn.Module):
    """Decodes a [B, widths[-1], h, w] map back to [B, out_chans, img_size, img_size] through the
    encoder's stage sizes in reverse."""

    def __init__(self, img_size: int, out_chans: int, widths: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__()
        widths = check_widths("widths", widths)
        check_int("out_chans", out_chans, 1)
        self.sizes = [*stage_sizes(img_size, len(widths))[::-1][1:], img_size]
        outs = [*widths[::-1][1:], widths[0]]
        self.stages = nn.ModuleList(nn.Sequential(nn.Conv2d(c_in, c_out, 3, 1, 1), _norm(c_out), nn.ReLU())
                                    for c_in, c_out in zip(widths[::-1], outs))  # fmt: skip
        self.head = nn.Conv2d(widths[0], out_chans, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for size, stage in zip(self.sizes, self.stages):
            x = stage(F.interpolate(x, size=(size, size), mode="nearest"))
        return self.head(x)


def cell_mask_to_pixels(mask: torch.Tensor, cell: int) -> torch.Tensor:
    """bool [B, 1, g * cell, g * cell] from a row-major grid mask [B, g * g] of ``cell`` x ``cell`` pixel cells."""
    b, cells = mask.shape
    g = math.isqrt(cells)
    if g * g != cells:
        raise ValueError(f"mask: expected a square grid of cells [B, g * g], got {tuple(mask.shape)}")
    return mask.view(b, 1, g, g).repeat_interleave(cell, 2).repeat_interleave(cell, 3)


def erode(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """bool [B, 1, H, W]: the pixels of ``mask`` whose whole (2 radius + 1)^2 neighbourhood inside the image is masked."""
    if radius == 0:
        return mask
    outside = F.max_pool2d((~mask).float(), 2 * radius + 1, 1, radius)
    return outside == 0


__all__ = ["ChannelwiseFC", "ConvDecoder", "ConvEncoder", "cell_mask_to_pixels", "check_widths", "erode", "stage_sizes"]
