"""SimMIM (Xie et al. 2022) with a ViT encoder, as in microsoft/SimMIM ``models/simmim.py``: masked
patches are replaced by a learned mask token (the encoder sees the full sequence), a one-layer
linear head predicts every patch's raw pixels from its token, and the loss is L1 on the masked
patches only.

The mask is drawn on the data side (:class:`~fastpretrain.data.image_masking.RandomPatchMask`:
``mask_ratio`` of the ``mask_patch_size`` groups, 0.6 of 32-pixel groups in the paper), or here
when none is passed. Probing reads an intermediate block without the final norm
(``forward_intermediate``): SimMIM's features are best inside the encoder.

Sizes: ``create_model("simmim_vit_base")`` (ViT-B/16, layer scale 0.1, as the paper's ViT) and
``"simmim_vit_fashion_mnist"`` (28 x 28 grey images, 4 x 4 patches) for CPU-sized runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from fastpretrain.checks import check_int
from fastpretrain.models.registry import Pretrained, register_model
from fastpretrain.nn import ViTEncoder, check_vit_args, init_linear_and_norms, patchify, unpatchify


@dataclass
class SimMIMConfig:
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    pos_embed: str = "learn"
    init_values: float | None = 0.1  # LayerScale (SimMIM's ViT uses 0.1); None: no LayerScale
    drop_path_rate: float = 0.0
    layer_norm_eps: float = 1e-6
    mask_ratio: float = 0.6
    mask_patch_size: int = 32  # pixels per side of a masked group (a multiple of patch_size dividing img_size)

    def __post_init__(self) -> None:
        check_vit_args(img_size=self.img_size, patch_size=self.patch_size, in_chans=self.in_chans,
                       embed_dim=self.embed_dim, depth=self.depth, num_heads=self.num_heads, mlp_ratio=self.mlp_ratio,
                       pos_embed=self.pos_embed)  # fmt: skip
        check_int("mask_patch_size", self.mask_patch_size, 1)
        if self.mask_patch_size % self.patch_size or self.img_size % self.mask_patch_size:
            raise ValueError(f"mask_patch_size: expected a multiple of patch_size {self.patch_size} that divides "
                             f"img_size {self.img_size}, got {self.mask_patch_size}")  # fmt: skip
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio: expected a float in (0, 1), got {self.mask_ratio!r}")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate: expected a float in [0, 1), got {self.drop_path_rate!r}")
        if self.init_values is not None and not self.init_values > 0:
            raise ValueError(f"init_values: expected a float > 0 or None, got {self.init_values!r}")

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    def masker(self):
        """The data-side mask generator of this config."""
        from fastpretrain.data.image_masking import RandomPatchMask

        return RandomPatchMask(self.grid_size, self.mask_ratio, self.mask_patch_size // self.patch_size)


class SimMIM(Pretrained, nn.Module):
    """``SimMIM(SimMIMConfig(...))``; ``model(imgs, labels, mask)`` -> ``{"loss": ...}`` for the
    Trainer (labels ignored; ``mask`` bool [B, L], True = masked, drawn here when None).
    ``return_outputs=True`` adds the prediction [B, L, p*p*C] and the mask.

    ``self.encoder`` is a :class:`~fastpretrain.nn.ViTEncoder` with a mask token; ``self.head`` is
    the linear prediction head (SimMIM's 1x1 convolution + pixel shuffle, as a per-token Linear).
    """

    model_type, config_class = "simmim", SimMIMConfig

    def __init__(self, config: SimMIMConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = SimMIMConfig(**{**(asdict(config) if config else {}), **overrides})
        self.encoder = ViTEncoder(img_size=c.img_size, patch_size=c.patch_size, in_chans=c.in_chans,
                                  embed_dim=c.embed_dim, depth=c.depth, num_heads=c.num_heads, mlp_ratio=c.mlp_ratio,
                                  qkv_bias=c.qkv_bias, pos_embed=c.pos_embed, drop_path_rate=c.drop_path_rate,
                                  init_values=c.init_values, layer_norm_eps=c.layer_norm_eps,
                                  mask_token=True)  # fmt: skip
        self.num_patches, self.patch_size, self.in_chans = self.encoder.num_patches, c.patch_size, c.in_chans
        self.head = nn.Linear(c.embed_dim, c.patch_size**2 * c.in_chans)
        init_linear_and_norms(self.head)
        self._masker = c.masker()

    def random_mask(self, batch: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """bool [batch, L]: a SimMIM mask per image, drawn on the CPU (from ``generator`` if given,
        a CPU one or one seeding a CPU one)."""
        if generator is not None and generator.device.type != "cpu":
            seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
            generator = torch.Generator().manual_seed(seed)
        return torch.stack([self._masker(generator) for _ in range(batch)]).to(device)

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> the pixel targets [B, L, p*p*C] (MAE's layout)."""
        return patchify(imgs, self.patch_size)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        return unpatchify(x, self.patch_size, self.in_chans)

    def pixels(self, imgs: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """A prediction in pixels (SimMIM regresses them directly)."""
        return pred.float()

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean absolute error over the pixels (and channels) of the masked patches."""
        target = self.patchify(imgs).float()
        loss = (pred.float() - target).abs().mean(dim=-1)
        return (loss * mask).sum() / mask.sum().clamp_min(1)

    def forward(self, imgs: torch.Tensor, labels=None, mask: torch.Tensor | None = None, *,
                generator: torch.Generator | None = None, return_outputs: bool = False) -> dict:  # fmt: skip
        if mask is None:
            mask = self.random_mask(imgs.shape[0], generator, imgs.device)
        tokens = self.encoder.forward_features(imgs, mask)
        pred = self.head(tokens[:, 1:])
        loss = self.forward_loss(imgs, pred, mask)
        if return_outputs:
            return {"loss": loss, "pred": pred, "mask": mask}
        return {"loss": loss}

    def flops_per_item(self) -> float:
        """Training FLOPs per image (3 x forward): the patch projection and head on L patches, every
        block on 1 + L tokens."""
        c, patches = self.config, self.num_patches
        patch_dim = c.patch_size**2 * c.in_chans
        forward = 4.0 * patch_dim * c.embed_dim * patches
        return 3.0 * (forward + sum(b.flops(1 + patches) for b in self.encoder.blocks))


register_model("simmim_vit_base", SimMIM, drop_path_rate=0.1)
# Fashion-MNIST (28 x 28 grey, 7 x 7 patches of 4, masked one patch at a time): a 4-block, 128-wide encoder.
register_model("simmim_vit_fashion_mnist", SimMIM, embed_dim=128, depth=4, num_heads=4, img_size=28, patch_size=4,
               in_chans=1, mask_patch_size=4)  # fmt: skip

__all__ = ["SimMIM", "SimMIMConfig"]
