"""Masked autoencoder (He et al. 2022), step by step as in facebookresearch/mae ``models_mae.py``:
``patchify`` / ``unpatchify``, ``random_masking``, ``forward_encoder`` (visible patches only),
``forward_decoder`` (lightweight, mask tokens), ``forward_loss`` (masked patches only, optionally
on per-patch normalised pixels).

The three masking steps are one fused op each (:mod:`fastpretrain.nn.masking`): ``random_masking``
(one sort per sample, no second argsort), ``gather_visible`` (the encoder's positional add fused
into the gather of visible patches) and ``unshuffle_tokens`` (mask tokens, unshuffle and the
decoder's positional add in one pass); MAE's argsort / gather code is their reference.

Sizes: ``create_model("mae_vit_tiny_patch16_dec512d8b")`` ... ``"mae_vit_large_patch16_dec512d8b"``,
and ``"mae_vit_fashion_mnist"`` (28 x 28 grey images, 4 x 4 patches) for CPU-sized runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from fastpretrain.checks import check_int
from fastpretrain.models.registry import Pretrained, register_model
from fastpretrain.nn import (
    Masking,
    TransformerBlock,
    ViTEncoder,
    check_heads,
    check_mask_ratio,
    check_vit_args,
    gather_visible,
    init_linear_and_norms,
    masking_from_noise,
    num_kept,
    patchify,
    random_masking,
    sincos_pos_embed_2d,
    unpatchify,
    unshuffle_tokens,
)

NORM_PIX_EPS = 1e-6  # added to each target patch's variance (a constant patch has none)


@dataclass
class MAEConfig:
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    mlp_ratio: float = 4.0  # each MLP's hidden width is int(width * mlp_ratio), as MAE's ...
    mlp_hidden: int | None = None  # ... unless given exactly: the encoder's (Hugging Face's intermediate_size)
    decoder_mlp_hidden: int | None = None  # and the decoder's (decoder_intermediate_size)
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6
    mask_ratio: float = 0.75
    norm_pix_loss: bool = False

    def __post_init__(self) -> None:
        check_int("decoder_embed_dim", self.decoder_embed_dim, 4)
        check_int("decoder_depth", self.decoder_depth, 0)
        check_int("decoder_num_heads", self.decoder_num_heads, 1)
        if self.decoder_mlp_hidden is not None:
            check_int("decoder_mlp_hidden", self.decoder_mlp_hidden, 1)
        check_heads("decoder_num_heads", self.decoder_embed_dim, self.decoder_num_heads)
        if self.decoder_embed_dim % 4:
            raise ValueError(f"decoder_embed_dim: the sin-cos embedding needs a multiple of 4, got {self.decoder_embed_dim}")
        check_vit_args(img_size=self.img_size, patch_size=self.patch_size, in_chans=self.in_chans,
                       embed_dim=self.embed_dim, depth=self.depth, num_heads=self.num_heads, mlp_ratio=self.mlp_ratio,
                       pos_embed="sincos", mlp_hidden=self.mlp_hidden)  # fmt: skip
        check_mask_ratio(self.mask_ratio, self.num_patches)

    @property
    def num_patches(self) -> int:
        return (self.img_size // self.patch_size) ** 2


class MAE(Pretrained, nn.Module):
    """``MAE(MAEConfig(...))``; ``model(imgs)`` -> ``{"loss": ...}`` for the Trainer (a second
    positional argument, the dataset's labels, is ignored). ``return_outputs=True`` adds the
    prediction [B, L, p*p*C], the mask [B, L] and the encoder's latent [B, 1 + K, D].

    ``self.encoder`` is a :class:`~fastpretrain.nn.ViTEncoder` (fixed sin-cos positions): probe it
    with ``forward_features`` on whole images. The decoder's names are MAE's (``decoder_embed``,
    ``mask_token``, ``decoder_pos_embed``, ``decoder_blocks``, ``decoder_norm``, ``decoder_pred``).
    """

    model_type, config_class = "mae", MAEConfig

    def __init__(self, config: MAEConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = MAEConfig(**{**(asdict(config) if config else {}), **overrides})
        self.encoder = ViTEncoder(img_size=c.img_size, patch_size=c.patch_size, in_chans=c.in_chans,
                                  embed_dim=c.embed_dim, depth=c.depth, num_heads=c.num_heads, mlp_ratio=c.mlp_ratio,
                                  qkv_bias=c.qkv_bias, pos_embed="sincos", layer_norm_eps=c.layer_norm_eps,
                                  mlp_hidden=c.mlp_hidden)  # fmt: skip
        self.num_patches, self.patch_size, self.in_chans = self.encoder.num_patches, c.patch_size, c.in_chans
        self.decoder_embed = nn.Linear(c.embed_dim, c.decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, 1 + self.num_patches, c.decoder_embed_dim), requires_grad=False)
        mlp_dim = int(c.decoder_embed_dim * c.mlp_ratio) if c.decoder_mlp_hidden is None else c.decoder_mlp_hidden
        self.decoder_blocks = nn.ModuleList(
            TransformerBlock(c.decoder_embed_dim, c.decoder_num_heads, mlp_dim, qkv_bias=c.qkv_bias,
                             eps=c.layer_norm_eps)
            for _ in range(c.decoder_depth)
        )  # fmt: skip
        self.decoder_norm = nn.LayerNorm(c.decoder_embed_dim, eps=c.layer_norm_eps)
        self.decoder_pred = nn.Linear(c.decoder_embed_dim, c.patch_size**2 * c.in_chans)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """As MAE: sin-cos positions, N(0, .02) tokens, Xavier-uniform linears, zero biases."""
        self.encoder.init_weights()
        with torch.no_grad():
            self.decoder_pos_embed.copy_(sincos_pos_embed_2d(self.config.decoder_embed_dim, self.encoder.grid_size)[None])
        nn.init.normal_(self.mask_token, std=0.02)
        for module in (self.decoder_embed, self.decoder_blocks, self.decoder_norm, self.decoder_pred):
            init_linear_and_norms(module)

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, L, p*p*C], each patch as (row, column, channel), as MAE."""
        if imgs.dim() != 4 or imgs.shape[1] != self.in_chans:
            raise ValueError(f"imgs: expected [B, {self.in_chans}, H, W], got {tuple(imgs.shape)}")
        return patchify(imgs, self.patch_size)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, p*p*C] -> [B, C, H, W] for a square grid of L patches (inverse of :meth:`patchify`)."""
        return unpatchify(x, self.patch_size, self.in_chans)

    def random_masking(self, batch: int, mask_ratio: float, *, noise: torch.Tensor | None = None,
                       generator: torch.Generator | None = None, device=None) -> Masking:  # fmt: skip
        """Per-sample random masking of the L patches (``noise`` [B, L] fixes it, as in MAE / HF);
        the masking op checks ``mask_ratio``."""
        if noise is not None:
            if tuple(noise.shape) != (batch, self.num_patches):
                raise ValueError(f"noise: expected shape {(batch, self.num_patches)}, got {tuple(noise.shape)}")
            return masking_from_noise(noise, mask_ratio)
        return random_masking(batch, self.num_patches, mask_ratio, generator=generator, device=device)

    def forward_encoder(self, imgs: torch.Tensor, mask_ratio: float, *, noise: torch.Tensor | None = None,
                        generator: torch.Generator | None = None) -> tuple[torch.Tensor, Masking]:  # fmt: skip
        """Embed the patches, keep the visible ones (positions added in the gather), prepend the
        cls token, run the blocks: latent [B, 1 + K, D] and the masking used."""
        enc = self.encoder
        x = enc.patch_embed(imgs)
        masking = self.random_masking(x.shape[0], mask_ratio, noise=noise, generator=generator, device=x.device)
        x = gather_visible(x, enc.pos_embed[:, 1:], masking.ids_keep)
        return enc.forward_blocks(enc.prepend_cls(x)), masking

    def forward_decoder(self, x: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Latent [B, 1 + K, D] -> predicted pixels of every patch [B, L, p*p*C]."""
        x = self.decoder_embed(x)
        x = unshuffle_tokens(x, self.mask_token, self.decoder_pos_embed, ids_restore)
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def _patch_stats(self, imgs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The float32 target patches [B, L, p*p*C], their means and their stds (variance + NORM_PIX_EPS)."""
        target = self.patchify(imgs).float()
        mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
        return target, mean, (var + NORM_PIX_EPS) ** 0.5

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error per patch, averaged over the masked patches only; with
        ``norm_pix_loss`` the target patches are normalised by their own mean and variance."""
        if self.config.norm_pix_loss:
            target, mean, std = self._patch_stats(imgs)
            target = (target - mean) / std
        else:
            target = self.patchify(imgs).float()
        loss = ((pred.float() - target) ** 2).mean(dim=-1)
        return (loss * mask).sum() / mask.sum()

    def pixels(self, imgs: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """A prediction [B, L, p*p*C] in pixels: itself, or with ``norm_pix_loss`` mapped back with
        each target patch's own mean and std."""
        if not self.config.norm_pix_loss:
            return pred.float()
        _, mean, std = self._patch_stats(imgs)
        return pred.float() * std + mean

    def forward(self, imgs: torch.Tensor, labels=None, *, mask_ratio: float | None = None,
                noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
                return_outputs: bool = False) -> dict:  # fmt: skip
        mask_ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        latent, masking = self.forward_encoder(imgs, mask_ratio, noise=noise, generator=generator)
        pred = self.forward_decoder(latent, masking.ids_restore)
        loss = self.forward_loss(imgs, pred, masking.mask)
        if return_outputs:
            return {"loss": loss, "pred": pred, "mask": masking.mask, "latent": latent, "ids_restore": masking.ids_restore}
        return {"loss": loss}

    def flops_per_item(self) -> float:
        """Training FLOPs per image (3 x forward): the patch projection on all L patches, the
        encoder blocks on 1 + K tokens, the decoder's embedding, blocks and prediction on 1 + L."""
        c, patches = self.config, self.num_patches
        patch_dim = c.patch_size**2 * c.in_chans
        kept = 1 + num_kept(patches, c.mask_ratio)
        forward = 2.0 * patch_dim * c.embed_dim * patches + sum(b.flops(kept) for b in self.encoder.blocks)
        forward += 2.0 * (c.embed_dim * c.decoder_embed_dim + c.decoder_embed_dim * patch_dim) * (1 + patches)
        return 3.0 * (forward + sum(b.flops(1 + patches) for b in self.decoder_blocks))


register_model("mae_vit_tiny_patch16_dec512d8b", MAE, embed_dim=192, depth=12, num_heads=3)
register_model("mae_vit_small_patch16_dec512d8b", MAE, embed_dim=384, depth=12, num_heads=6)
register_model("mae_vit_base_patch16_dec512d8b", MAE, embed_dim=768, depth=12, num_heads=12)
register_model("mae_vit_large_patch16_dec512d8b", MAE, embed_dim=1024, depth=24, num_heads=16)
# Fashion-MNIST (28 x 28 grey, 7 x 7 patches of 4): a 4-block, 128-wide encoder and a 2-block, 128-wide decoder.
register_model("mae_vit_fashion_mnist", MAE, embed_dim=128, depth=4, num_heads=4, img_size=28, patch_size=4, in_chans=1,
               decoder_embed_dim=128, decoder_depth=2, decoder_num_heads=4)  # fmt: skip

__all__ = ["MAE", "MAEConfig"]
