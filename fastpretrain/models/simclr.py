"""SimCLR (Chen et al. 2020) with a ViT encoder: two augmented views of each image
(:class:`~fastpretrain.data.views.TwoViews` of ``SimCLRAugment``), one encoder, a projection head
(Linear - BatchNorm - ReLU - Linear, SimCLR v2's), and NT-Xent over the 2N projections: each view
against the other 2N - 1, its pair the positive, on the fused InfoNCE op (across ranks: every
rank's rows against all ranks' views, gathered with their gradient). The representation probed
afterwards is the encoder's (cls token or patch mean), before the head, as in the paper.

Sizes: ``create_model("simclr_vit_small_patch16")`` and ``"simclr_vit_fashion_mnist"`` (28 x 28 grey,
4 x 4 patches, the encoder of ``mae_vit_fashion_mnist``, so their probes compare like for like).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from fastpretrain.checks import check_int
from fastpretrain.models.registry import Pretrained, register_model
from fastpretrain.nn import NTXentLoss, ViTEncoder, check_vit_args

POOLS = ("cls", "mean")


@dataclass
class SimCLRConfig:
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    pos_embed: str = "sincos"  # fixed 2-D sin-cos, as MoCo v3's ViTs (more stable in contrastive training)
    layer_norm_eps: float = 1e-6
    pool: str = "cls"  # the representation: the cls token or the patch tokens' mean
    proj_hidden: int = 2048
    proj_dim: int = 128
    temperature: float = 0.2

    def __post_init__(self) -> None:
        check_vit_args(img_size=self.img_size, patch_size=self.patch_size, in_chans=self.in_chans,
                       embed_dim=self.embed_dim, depth=self.depth, num_heads=self.num_heads, mlp_ratio=self.mlp_ratio,
                       pos_embed=self.pos_embed)  # fmt: skip
        if self.pool not in POOLS:
            raise ValueError(f"pool: expected one of {POOLS}, got {self.pool!r}")
        check_int("proj_hidden", self.proj_hidden, 1)
        check_int("proj_dim", self.proj_dim, 1)
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0:
            raise ValueError(f"temperature: expected a float > 0, got {t!r}")


class SimCLR(Pretrained, nn.Module):
    """``SimCLR(SimCLRConfig(...))``; ``model(views)`` with views [B, 2, C, H, W] (two views per image;
    a second argument, the labels, is ignored) -> ``{"loss"}`` for the Trainer. ``self.encoder`` is a
    :class:`~fastpretrain.nn.ViTEncoder`: probe it with ``forward_features`` on whole images."""

    model_type, config_class = "simclr", SimCLRConfig

    def __init__(self, config: SimCLRConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = SimCLRConfig(**{**(asdict(config) if config else {}), **overrides})
        self.encoder = ViTEncoder(img_size=c.img_size, patch_size=c.patch_size, in_chans=c.in_chans,
                                  embed_dim=c.embed_dim, depth=c.depth, num_heads=c.num_heads, mlp_ratio=c.mlp_ratio,
                                  qkv_bias=c.qkv_bias, pos_embed=c.pos_embed, layer_norm_eps=c.layer_norm_eps)  # fmt: skip
        self.projector = nn.Sequential(nn.Linear(c.embed_dim, c.proj_hidden), nn.BatchNorm1d(c.proj_hidden),
                                       nn.ReLU(inplace=True), nn.Linear(c.proj_hidden, c.proj_dim))  # fmt: skip
        self.criterion = NTXentLoss(c.temperature)

    def represent(self, imgs: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] -> the representation [B, D] (cls token or patch mean)."""
        tokens = self.encoder.forward_features(imgs)
        return tokens[:, 0] if self.config.pool == "cls" else tokens[:, 1:].mean(1)

    def forward(self, views: torch.Tensor, labels=None) -> dict[str, torch.Tensor]:
        c = self.config
        expected = (2, c.in_chans, c.img_size, c.img_size)
        if views.dim() != 5 or tuple(views.shape[1:]) != expected:
            raise ValueError(f"views: expected [B, {', '.join(map(str, expected))}] (two views per image), "
                             f"got {tuple(views.shape)}")  # fmt: skip
        b = views.shape[0]
        z = self.projector(self.represent(views.transpose(0, 1).flatten(0, 1)))  # first views, then second views
        return {"loss": self.criterion(z[:b], z[b:])}

    def flops_per_item(self) -> float:
        """Training FLOPs per image (two views, 3 x forward): patch projection, blocks, projection head."""
        c, patches = self.config, self.encoder.num_patches
        forward = 2.0 * c.patch_size**2 * c.in_chans * c.embed_dim * patches
        forward += sum(b.flops(1 + patches) for b in self.encoder.blocks)
        forward += 2.0 * (c.embed_dim * c.proj_hidden + c.proj_hidden * c.proj_dim)
        return 3.0 * 2 * forward


register_model("simclr_vit_small_patch16", SimCLR, embed_dim=384, depth=12, num_heads=6)
# Fashion-MNIST (28 x 28 grey, 7 x 7 patches of 4): mae_vit_fashion_mnist's encoder, a 512-wide head.
register_model("simclr_vit_fashion_mnist", SimCLR, embed_dim=128, depth=4, num_heads=4, img_size=28, patch_size=4,
               in_chans=1, proj_hidden=512, proj_dim=128, temperature=0.2)  # fmt: skip
