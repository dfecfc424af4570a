"""Discrete VAE image tokenizer (DALL-E's dVAE, Ramesh et al. 2021), the visual tokens BEiT predicts.

A convolutional encoder maps an image to logits over ``num_tokens`` codes at each cell of a grid
(``2 ** num_downsample`` times coarser than the image); training relaxes the codes with the
Gumbel-softmax (temperature annealed from ``temperature_start`` to ``temperature_end`` over
``anneal_steps``, cosine, as DALL-E) and decodes the soft one-hot mixture of codebook vectors; the
loss is the reconstruction error plus a KL to the uniform prior over codes, its weight raised
linearly over ``kl_warmup_steps`` (DALL-E raises it from 0 to 6.6). ``tokenize`` gives the hard
codes (argmax).

The KL is summed over codes, averaged over grid cells and divided by the pixels a cell covers, so
``kl_weight`` weighs one cell's KL against the reconstruction error of its pixels, as DALL-E's
per-image ELB does. DALL-E's 6.6 is against a logit-Laplace likelihood in nats per pixel; against
the mean squared error of normalised pixels used here, a weight that large pulls every cell to the
uniform prior (codes that carry nothing, seen), hence the default of 0.01.

Sizes: ``create_model("dvae_fashion_mnist")`` (28 x 28 grey, a 7 x 7 grid of 512 codes) and
``"dvae_imagenet"`` (224 x 224 RGB, a 28 x 28 grid of 8192 codes, as BEiT's tokenizer input).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fastpretrain.checks import check_int
from fastpretrain.models.registry import Pretrained, register_model


@dataclass
class DVAEConfig:
    img_size: int = 28
    in_chans: int = 1
    hidden_dim: int = 64
    num_downsample: int = 2  # stride-2 convolutions: the token grid is img_size / 2 ** num_downsample
    num_tokens: int = 512  # codebook size
    codebook_dim: int = 64
    temperature_start: float = 1.0
    temperature_end: float = 1 / 16
    anneal_steps: int = 2000
    kl_weight: float = 0.01
    kl_warmup_steps: int = 1000

    def __post_init__(self) -> None:
        for name in ("img_size", "in_chans", "hidden_dim", "codebook_dim"):
            check_int(name, getattr(self, name), 1)
        check_int("num_downsample", self.num_downsample, 0)
        check_int("num_tokens", self.num_tokens, 2)
        check_int("anneal_steps", self.anneal_steps, 0)
        check_int("kl_warmup_steps", self.kl_warmup_steps, 0)
        if self.img_size % 2**self.num_downsample:
            raise ValueError(f"img_size: {self.img_size} is not divisible by 2 ** num_downsample = "
                             f"{2**self.num_downsample}")  # fmt: skip
        if not 0 < self.temperature_end <= self.temperature_start:
            raise ValueError(f"temperature_end: expected 0 < temperature_end <= temperature_start "
                             f"({self.temperature_start}), got {self.temperature_end}")  # fmt: skip
        if not self.kl_weight >= 0:
            raise ValueError(f"kl_weight: expected a float >= 0, got {self.kl_weight!r}")

    @property
    def grid_size(self) -> int:
        return self.img_size // 2**self.num_downsample


def kl_to_uniform(logits: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """KL(softmax(logits) || uniform) along ``dim``: sum q log q + log K, per position."""
    log_q = F.log_softmax(logits.float(), dim=dim)
    return (log_q.exp() * log_q).sum(dim) + math.log(logits.shape[dim])


class DVAE(Pretrained, nn.Module):
    """``model(imgs)`` -> ``{"loss", "recon", "kl", "temperature"}`` (a second positional argument,
    the labels, is ignored); each training-mode forward advances the schedules by one step (the
    ``step`` buffer, saved with the weights). ``tokenize(imgs)`` -> codes [B, grid * grid] (row-major),
    ``decode_tokens(codes)`` -> images."""

    model_type, config_class = "dvae", DVAEConfig

    def __init__(self, config: DVAEConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = DVAEConfig(**{**(asdict(config) if config else {}), **overrides})
        h = c.hidden_dim
        down = [nn.Conv2d(c.in_chans, h, 3, padding=1), nn.ReLU()]
        for _ in range(c.num_downsample):
            down += [nn.Conv2d(h, h, 4, stride=2, padding=1), nn.ReLU(), nn.Conv2d(h, h, 3, padding=1), nn.ReLU()]
        self.encoder = nn.Sequential(*down, nn.Conv2d(h, c.num_tokens, 1))
        self.codebook = nn.Conv2d(c.num_tokens, c.codebook_dim, 1, bias=False)  # one-hot x codebook vectors
        up = [nn.Conv2d(c.codebook_dim, h, 3, padding=1), nn.ReLU()]
        for _ in range(c.num_downsample):
            up += [nn.ConvTranspose2d(h, h, 4, stride=2, padding=1), nn.ReLU(), nn.Conv2d(h, h, 3, padding=1), nn.ReLU()]
        self.decoder = nn.Sequential(*up, nn.Conv2d(h, c.in_chans, 3, padding=1))
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    def temperature(self, step: int | None = None) -> float:
        """The Gumbel-softmax temperature at ``step`` (default: the model's): cosine from start to end."""
        c = self.config
        t = min(1.0, (int(self.step) if step is None else step) / max(c.anneal_steps, 1))
        return c.temperature_end + 0.5 * (c.temperature_start - c.temperature_end) * (1 + math.cos(math.pi * t))

    def kl_scale(self, step: int | None = None) -> float:
        """``kl_weight`` raised linearly from 0 over ``kl_warmup_steps``."""
        c = self.config
        step = int(self.step) if step is None else step
        return c.kl_weight * (1.0 if c.kl_warmup_steps == 0 else min(1.0, step / c.kl_warmup_steps))

    def logits(self, imgs: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] -> code logits [B, num_tokens, grid, grid]."""
        c = self.config
        if imgs.dim() != 4 or tuple(imgs.shape[1:]) != (c.in_chans, c.img_size, c.img_size):
            raise ValueError(f"imgs: expected [B, {c.in_chans}, {c.img_size}, {c.img_size}], got {tuple(imgs.shape)}")
        return self.encoder(imgs)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(Soft) one-hot codes [B, num_tokens, grid, grid] -> images."""
        return self.decoder(self.codebook(codes))

    @torch.no_grad()
    def tokenize(self, imgs: torch.Tensor) -> torch.Tensor:
        """The hard codes int64 [B, grid * grid], row-major like ViT patches."""
        return self.logits(imgs).argmax(1).flatten(1)

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Codes [B, grid * grid] -> reconstructed images (what the tokens keep of an image)."""
        g = self.config.grid_size
        one_hot = F.one_hot(tokens.view(-1, g, g), self.config.num_tokens).permute(0, 3, 1, 2)
        return self.decode(one_hot.to(self.codebook.weight.dtype))

    def forward(self, imgs: torch.Tensor, labels=None) -> dict:
        c = self.config
        logits = self.logits(imgs)
        if self.training:
            tau = self.temperature()
            codes = F.gumbel_softmax(logits.float(), tau=tau, dim=1).to(logits.dtype)
            kl_scale = self.kl_scale()
            self.step += 1
        else:  # eval: the hard codes, what the tokens reconstruct
            tau, kl_scale = 0.0, self.kl_scale()
            codes = F.one_hot(logits.argmax(1), c.num_tokens).permute(0, 3, 1, 2).to(logits.dtype)
        recon = F.mse_loss(self.decode(codes).float(), imgs.float())
        kl = kl_to_uniform(logits).mean()
        pixels_per_cell = c.in_chans * (c.img_size // c.grid_size) ** 2
        loss = recon + kl_scale * kl / pixels_per_cell
        return {"loss": loss, "recon": recon.detach(), "kl": kl.detach(), "temperature": tau}


register_model("dvae_fashion_mnist", DVAE)
register_model("dvae_imagenet", DVAE, img_size=224, in_chans=3, hidden_dim=128, num_downsample=3, num_tokens=8192,
               codebook_dim=256, anneal_steps=150_000, kl_warmup_steps=5000)  # fmt: skip

__all__ = ["DVAE", "DVAEConfig", "kl_to_uniform"]
