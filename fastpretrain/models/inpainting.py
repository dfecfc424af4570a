"""Context encoders (Pathak et al. 2016): a convolutional encoder-decoder fills a region removed
from the image, trained with L2 on that region and, optionally, an adversarial term.

- ``forward_input``: the region (drawn on the data side, :func:`~fastpretrain.data.image_masking.region_masker`:
  the central square, random blocks or random cells, on a grid of ``mask_cell``-pixel cells) is
  filled with 0, the dataset mean after normalisation (the paper fills the mean pixel). With
  ``overlap`` > 0 the input hides only the region shrunk by ``overlap`` pixels and the prediction
  covers the whole region, its visible border band weighted ``overlap_weight`` (the paper: 7 px
  of 128 and 10x), so the fill joins its context.
- ``forward_loss``: sum over the region of w * (prediction - image)^2 / (sum of w * channels); w
  is 1 inside the hole, ``overlap_weight`` on the band, 0 elsewhere: no other pixel counts.
- adversarial (``adversarial=True``): a discriminator (:class:`~fastpretrain.nn.conv.ConvEncoder`
  body, mean pool, linear) tells real images from the input with the region pasted in; the
  encoder-decoder minimises ``rec_weight`` * L2 + ``adv_weight`` * (-log D(fill)), the paper's
  0.999 / 0.001, and the discriminator its binary cross-entropy. Both in one backward pass, so one
  Trainer and one optimizer train them (simultaneous updates, not the paper's alternating ones):
  the discriminator's loss sees the fill detached, and the generator's adversarial term runs the
  discriminator on detached weights, so each part gets only its own objective's gradient.

The representation a probe reads is the encoder's last feature map, mean-pooled, on whole images.
Size: ``create_model("inpaint_cnn_fashion_mnist")`` (central square, L2), ``"inpaint_cnn_adv_fashion_mnist"``
(with the adversarial term) and ``"inpaint_cnn_block_fashion_mnist"`` (random blocks).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from fastpretrain.checks import check_int
from fastpretrain.models.registry import Pretrained, register_model
from fastpretrain.nn.conv import (
    ChannelwiseFC,
    ConvDecoder,
    ConvEncoder,
    cell_mask_to_pixels,
    check_widths,
    erode,
    stage_sizes,
)


def _positive(name: str, value, zero: bool = False) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and (value >= 0 if zero else value > 0)
    if not ok:
        raise ValueError(f"{name}: expected a float {'>= 0' if zero else '> 0'}, got {value!r}")


@dataclass
class InpaintConfig:
    img_size: int = 28
    in_chans: int = 1
    widths: tuple[int, ...] = (32, 64, 128)  # encoder stages (stride 2 each); the decoder mirrors them
    channel_fc: bool = True  # the paper's channel-wise fully connected bottleneck
    mask: str = "center"  # the region: center, block or random (cells)
    mask_ratio: float = 0.25  # of the image's area (center: a square of half the side)
    mask_cell: int = 2  # pixels per side of a mask cell
    overlap: int = 0  # pixels of the region's border left visible and predicted (weighted overlap_weight)
    overlap_weight: float = 10.0
    adversarial: bool = False
    rec_weight: float = 0.999  # lambda_rec
    adv_weight: float = 0.001  # lambda_adv
    disc_widths: tuple[int, ...] = (32, 64, 128)

    def __post_init__(self) -> None:
        from fastpretrain.data.image_masking import region_masker

        check_int("img_size", self.img_size, 4)
        check_int("in_chans", self.in_chans, 1)
        self.widths, self.disc_widths = check_widths("widths", self.widths), check_widths("disc_widths", self.disc_widths)
        check_int("mask_cell", self.mask_cell, 1)
        if self.img_size % self.mask_cell:
            raise ValueError(f"mask_cell: {self.mask_cell} does not divide img_size {self.img_size}")
        check_int("overlap", self.overlap, 0)
        for name in ("overlap_weight", "rec_weight"):
            _positive(name, getattr(self, name))
        _positive("adv_weight", self.adv_weight, zero=True)
        region_masker(self.mask, self.grid, self.mask_ratio)  # checks mask and mask_ratio

    @property
    def grid(self) -> int:
        """Mask cells per side."""
        return self.img_size // self.mask_cell

    def masker(self):
        """The data-side mask generator: bool [grid * grid] per image."""
        from fastpretrain.data.image_masking import region_masker

        return region_masker(self.mask, self.grid, self.mask_ratio)


class Discriminator(nn.Module):
    """Real image or filled-in one: a conv stack, mean pool, one logit."""

    def __init__(self, in_chans: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.body = ConvEncoder(in_chans, widths)
        self.head = nn.Linear(widths[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).squeeze(1)


class ContextEncoder(Pretrained, nn.Module):
    """``ContextEncoder(InpaintConfig(...))``; ``model(imgs, labels, mask)`` -> ``{"loss", "rec"}``
    (+ ``"adv"``, ``"disc"`` when adversarial) for the Trainer; labels are ignored and ``mask``
    (bool [B, grid * grid], True = removed) is drawn here when None. ``return_outputs=True`` adds
    the prediction [B, C, H, W] and the pixel weights [B, 1, H, W]."""

    model_type, config_class = "inpaint", InpaintConfig

    def __init__(self, config: InpaintConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = InpaintConfig(**{**(asdict(config) if config else {}), **overrides})
        self.encoder = ConvEncoder(c.in_chans, c.widths)
        side = stage_sizes(c.img_size, len(c.widths))[-1]
        self.bottleneck = ChannelwiseFC(c.widths[-1], side) if c.channel_fc else nn.Identity()
        self.decoder = ConvDecoder(c.img_size, c.in_chans, c.widths)
        self.discriminator = Discriminator(c.in_chans, c.disc_widths) if c.adversarial else None
        self._masker = c.masker()

    def random_mask(self, batch: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """bool [batch, grid * grid]: a region per image, drawn on the CPU (from ``generator`` if given)."""
        return torch.stack([self._masker(generator) for _ in range(batch)]).to(device)

    def pixel_weights(self, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(hole bool [B, 1, H, W]: the pixels the input hides, weights float [B, 1, H, W]: each pixel's
        weight in the loss: 1 in the hole, ``overlap_weight`` on the region's visible border band, 0 elsewhere)."""
        c = self.config
        region = cell_mask_to_pixels(mask.bool(), c.mask_cell)
        hole = erode(region, c.overlap)
        weights = hole.float() + (region & ~hole).float() * c.overlap_weight
        return hole, weights

    def check_inputs(self, imgs: torch.Tensor, mask: torch.Tensor) -> None:
        c = self.config
        if imgs.dim() != 4 or tuple(imgs.shape[1:]) != (c.in_chans, c.img_size, c.img_size):
            raise ValueError(f"imgs: expected [B, {c.in_chans}, {c.img_size}, {c.img_size}], got {tuple(imgs.shape)}")
        if mask.shape != (imgs.shape[0], c.grid * c.grid) or mask.dtype != torch.bool:
            raise ValueError(f"mask: expected bool [{imgs.shape[0]}, {c.grid * c.grid}] (a {c.grid} x {c.grid} grid of "
                             f"{c.mask_cell}-pixel cells), got {mask.dtype} {tuple(mask.shape)}")  # fmt: skip

    def forward_input(self, imgs: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """The images with the hole set to 0 (the normalised mean)."""
        return imgs.masked_fill(hole, 0.0)

    def predict(self, imgs: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W]: the decoder's image from the holed input."""
        return self.decoder(self.bottleneck(self.encoder.forward_features(self.forward_input(imgs, hole))))

    @staticmethod
    def forward_loss(imgs: torch.Tensor, pred: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Weighted L2 over the region: sum(w * (pred - imgs)^2) / (sum(w) * channels)."""
        return (weights * (pred - imgs).square()).sum() / (weights.sum() * imgs.shape[1]).clamp_min(1e-12)

    def adversarial_losses(self, imgs: torch.Tensor, filled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(generator term -log D(filled) on frozen discriminator weights, discriminator BCE on real vs detached filled)."""
        frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()}
        fake_logits = functional_call(self.discriminator, frozen, (filled,))
        adv = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        real, fake = self.discriminator(imgs), self.discriminator(filled.detach())
        disc = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))  # fmt: skip
        return adv, disc

    def forward(self, imgs: torch.Tensor, labels=None, mask: torch.Tensor | None = None, *,
                generator: torch.Generator | None = None, return_outputs: bool = False) -> dict[str, torch.Tensor]:  # fmt: skip
        if mask is None:
            mask = self.random_mask(imgs.shape[0], generator, imgs.device)
        self.check_inputs(imgs, mask)
        c = self.config
        hole, weights = self.pixel_weights(mask)
        pred = self.predict(imgs, hole)
        rec = self.forward_loss(imgs, pred, weights)
        out = {"rec": rec.detach()}
        if self.discriminator is None:
            out["loss"] = rec
        else:
            region = weights > 0
            adv, disc = self.adversarial_losses(imgs, torch.where(region, pred, imgs))
            out.update(loss=c.rec_weight * rec + c.adv_weight * adv + disc, adv=adv.detach(), disc=disc.detach())
        if return_outputs:
            out.update(pred=pred, weights=weights)
        return out


register_model("inpaint_cnn_fashion_mnist", ContextEncoder)
register_model("inpaint_cnn_adv_fashion_mnist", ContextEncoder, adversarial=True)
register_model("inpaint_cnn_block_fashion_mnist", ContextEncoder, mask="block")
