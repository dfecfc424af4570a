"""Colorization as classification (Zhang et al. 2016), recast for greyscale images.

Fashion-MNIST has one channel: there is no colour to predict from lightness, nor a held-out
channel. What carries over is Zhang et al.'s loss: the missing value of each pixel as a class among
quantised bins (their 313 ab bins), multinomial cross-entropy with class rebalancing, and the
annealed mean to turn a predicted distribution back into a value. What is missing here is each
pixel's intensity inside hidden regions (random blocks by default,
:func:`~fastpretrain.data.image_masking.region_masker`): the input shows the image with the regions
filled with 0 (the normalised mean), and the network classifies every hidden pixel into one of
``num_bins`` intensity bins. So the task keeps colorization's classification-with-rebalancing
objective and differs from :mod:`~fastpretrain.models.inpainting` (same encoder-decoder and masks)
in that loss: regression to the mean intensity is what Zhang et al. replaced by classification.

- Bins: k-means centres of training pixels (the shared :func:`~fastpretrain.data.palette.kmeans_palette`,
  sorted by intensity), in the model's input space (normalised pixels), set with :meth:`fit_bins`
  before training; kept as a buffer, so they travel with the weights. Until fitted they are the
  standard normal's quantiles. A pixel's class is its nearest bin.
- Rebalancing: class q weighs w_q proportional to 1 / ((1 - lambda) p_q + lambda / Q), p the bins'
  pixel frequencies, scaled so that sum_q p_q w_q = 1 (Zhang's lambda 0.5; ``rebalance=1`` turns
  it off). Fashion-MNIST's background is half the pixels: unweighted, the loss would favour it as
  Zhang's favours desaturated colours. (Zhang also smooths p with a Gaussian over the ab plane; not
  done on these few 1-D bins.)
- Loss: sum over hidden pixels of w_target * cross-entropy, over the number of hidden pixels.

Size: ``create_model("colorize_cnn_fashion_mnist")``: 16 bins, blocks covering 40% of the image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fastpretrain.checks import check_int
from fastpretrain.models.registry import Pretrained, register_model
from fastpretrain.nn.conv import (
    ChannelwiseFC,
    ConvDecoder,
    ConvEncoder,
    cell_mask_to_pixels,
    check_widths,
    stage_sizes,
)


@dataclass
class ColorizeConfig:
    img_size: int = 28
    in_chans: int = 1
    widths: tuple[int, ...] = (32, 64, 128)
    channel_fc: bool = True
    num_bins: int = 16
    rebalance: float = 0.5  # Zhang's lambda: weights 1 / ((1 - lambda) p + lambda / Q); 1 = no rebalancing
    temperature: float = 0.38  # annealed mean when decoding predicted bins to intensities (Zhang's T)
    mask: str = "block"
    mask_ratio: float = 0.4
    mask_cell: int = 2

    def __post_init__(self) -> None:
        from fastpretrain.data.image_masking import region_masker

        check_int("img_size", self.img_size, 4)
        check_int("in_chans", self.in_chans, 1)
        self.widths = check_widths("widths", self.widths)
        check_int("num_bins", self.num_bins, 2)
        r, t = self.rebalance, self.temperature
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r <= 1:
            raise ValueError(f"rebalance: expected a float in (0, 1], got {r!r}")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0:
            raise ValueError(f"temperature: expected a float > 0, got {t!r}")
        check_int("mask_cell", self.mask_cell, 1)
        if self.img_size % self.mask_cell:
            raise ValueError(f"mask_cell: {self.mask_cell} does not divide img_size {self.img_size}")
        region_masker(self.mask, self.grid, self.mask_ratio)

    @property
    def grid(self) -> int:
        return self.img_size // self.mask_cell

    def masker(self):
        from fastpretrain.data.image_masking import region_masker

        return region_masker(self.mask, self.grid, self.mask_ratio)


def rebalance_weights(counts: torch.Tensor, rebalance: float) -> torch.Tensor:
    """float [Q]: Zhang et al.'s class weights from the bins' pixel counts [Q]."""
    p = counts.double() / counts.sum()
    w = 1.0 / ((1 - rebalance) * p + rebalance / len(p))
    return (w / (p * w).sum()).float()


class IntensityColorizer(Pretrained, nn.Module):
    """``IntensityColorizer(ColorizeConfig(...))``; ``model(imgs, labels, mask)`` -> ``{"loss", "acc"}``
    (acc: the hidden pixels' bin accuracy); labels are ignored, ``mask`` bool [B, grid * grid] (True =
    hidden) is drawn here when None. ``return_outputs=True`` adds the logits [B, num_bins, H, W], the
    targets [B, H, W] and the hidden pixels [B, H, W]."""

    model_type, config_class = "colorize", ColorizeConfig

    def __init__(self, config: ColorizeConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = ColorizeConfig(**{**(asdict(config) if config else {}), **overrides})
        self.encoder = ConvEncoder(c.in_chans, c.widths)
        side = stage_sizes(c.img_size, len(c.widths))[-1]
        self.bottleneck = ChannelwiseFC(c.widths[-1], side) if c.channel_fc else nn.Identity()
        self.decoder = ConvDecoder(c.img_size, c.num_bins, c.widths)
        quantiles = torch.special.ndtri((torch.arange(c.num_bins) + 0.5) / c.num_bins)
        self.register_buffer("bins", quantiles[:, None].repeat(1, c.in_chans))
        self.register_buffer("class_weights", torch.ones(c.num_bins))
        self._masker = c.masker()

    def random_mask(self, batch: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """bool [batch, grid * grid]: hidden regions per image, drawn on the CPU (from ``generator`` if given)."""
        return torch.stack([self._masker(generator) for _ in range(batch)]).to(device)

    @torch.no_grad()
    def fit_bins(self, pixels: torch.Tensor, *, iters: int = 30, seed: int = 0) -> IntensityColorizer:
        """Set the bins to the k-means centres of ``pixels`` [N, C] (normalised like the model's
        input) and the class weights from their frequencies; returns the model."""
        from fastpretrain.data.palette import kmeans_palette

        c = self.config
        if pixels.dim() != 2 or pixels.shape[1] != c.in_chans or not pixels.is_floating_point():
            raise ValueError(f"pixels: expected float [N, {c.in_chans}] (in_chans), got {pixels.dtype} {tuple(pixels.shape)}")
        bins = kmeans_palette(pixels.float(), c.num_bins, iters=iters, seed=seed)
        self.bins.copy_(bins)
        counts = torch.bincount(self.pixel_targets(pixels.float().to(self.bins.device)), minlength=c.num_bins)
        self.class_weights.copy_(rebalance_weights(counts, c.rebalance))
        return self

    def fit_bins_to(self, dataset, images: int = 2000, *, seed: int = 0) -> IntensityColorizer:
        """:meth:`fit_bins` on the pixels of the first ``images`` items (image, ...) of ``dataset``."""
        check_int("images", images, 1)
        batch = torch.stack([dataset[i][0] for i in range(min(images, len(dataset)))])
        return self.fit_bins(batch.permute(0, 2, 3, 1).reshape(-1, batch.shape[1]).to(self.bins.device), seed=seed)

    def pixel_targets(self, pixels: torch.Tensor) -> torch.Tensor:
        """int64 [N]: each pixel's [N, C] nearest bin."""
        return torch.cdist(pixels.float(), self.bins).argmin(1)

    def targets(self, imgs: torch.Tensor) -> torch.Tensor:
        """int64 [B, H, W]: each pixel's bin."""
        b, ch, h, w = imgs.shape
        return self.pixel_targets(imgs.permute(0, 2, 3, 1).reshape(-1, ch)).view(b, h, w)

    def decode(self, logits: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """[B, C, H, W] intensities from logits [B, Q, H, W]: the annealed mean (softmax(logits / T) over the bins)."""
        t = self.config.temperature if temperature is None else temperature
        return torch.einsum("bqhw,qc->bchw", (logits.float() / t).softmax(1), self.bins)

    def check_inputs(self, imgs: torch.Tensor, mask: torch.Tensor) -> None:
        c = self.config
        if imgs.dim() != 4 or tuple(imgs.shape[1:]) != (c.in_chans, c.img_size, c.img_size):
            raise ValueError(f"imgs: expected [B, {c.in_chans}, {c.img_size}, {c.img_size}], got {tuple(imgs.shape)}")
        if mask.shape != (imgs.shape[0], c.grid * c.grid) or mask.dtype != torch.bool:
            raise ValueError(f"mask: expected bool [{imgs.shape[0]}, {c.grid * c.grid}] (a {c.grid} x {c.grid} grid of "
                             f"{c.mask_cell}-pixel cells), got {mask.dtype} {tuple(mask.shape)}")  # fmt: skip

    def forward_loss(self, logits: torch.Tensor, targets: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Rebalanced cross-entropy over the hidden pixels: sum(w_t * CE * hidden) / sum(hidden)."""
        ce = F.cross_entropy(logits.float(), targets, reduction="none")
        return (self.class_weights[targets] * ce * hidden).sum() / hidden.sum().clamp_min(1)

    def forward(self, imgs: torch.Tensor, labels=None, mask: torch.Tensor | None = None, *,
                generator: torch.Generator | None = None, return_outputs: bool = False) -> dict[str, torch.Tensor]:  # fmt: skip
        if mask is None:
            mask = self.random_mask(imgs.shape[0], generator, imgs.device)
        self.check_inputs(imgs, mask)
        hidden = cell_mask_to_pixels(mask, self.config.mask_cell)
        logits = self.decoder(self.bottleneck(self.encoder.forward_features(imgs.masked_fill(hidden, 0.0))))
        hidden, targets = hidden[:, 0], self.targets(imgs)
        loss = self.forward_loss(logits, targets, hidden)
        correct = ((logits.argmax(1) == targets) & hidden).sum() / hidden.sum().clamp_min(1)
        out = {"loss": loss, "acc": correct.detach()}
        if return_outputs:
            out.update(logits=logits, targets=targets, hidden=hidden)
        return out


register_model("colorize_cnn_fashion_mnist", IntensityColorizer)
