"""Vision Transformer (Dosovitskiy et al. 2021) in timm's layout, on fastpretrain's layers.

Module names mirror timm's ``VisionTransformer`` (``patch_embed.proj``, ``cls_token``,
``pos_embed``, ``blocks.i.{norm1,attn.qkv,attn.proj,ls1,norm2,mlp.fc1,mlp.fc2,ls2}``, ``norm``,
``head``), so timm weights and the encoder of the original MAE checkpoints load through
:mod:`fastpretrain.interop.timm` by name. Sizes: ``create_model("vit_tiny" | "vit_small" |
"vit_base" | "vit_large")`` (192 / 384 / 768 / 1024 wide, 12 / 12 / 12 / 24 deep, 64-wide heads).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from fastpretrain.checks import check_int
from fastpretrain.models.registry import Pretrained, register_model
from fastpretrain.nn import ViTEncoder, check_vit_args, init_linear_and_norms

POOLS = ("token", "avg")


@dataclass
class ViTConfig:
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 1000  # 0: no head (forward_head returns the pooled features)
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0  # the MLP's hidden width is int(embed_dim * mlp_ratio), as timm's ...
    mlp_hidden: int | None = None  # ... unless given exactly here (weights read off tensors, Hugging Face sizes)
    qkv_bias: bool = True
    pos_embed: str = "learn"  # "learn" (timm) or "sincos" (fixed, as in MAE)
    global_pool: str = "token"  # "token": the cls token's features; "avg": mean of the patch tokens
    drop_rate: float = 0.0  # after the attention / MLP projections, and before the head
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0  # stochastic depth, linearly increasing over the blocks
    init_values: float | None = None  # LayerScale's initial value (None: no LayerScale)
    layer_norm_eps: float = 1e-6
    mask_token: bool = False  # a learned token for the patches forward_features(x, mask) masks (SimMIM)

    def __post_init__(self) -> None:
        check_vit_args(img_size=self.img_size, patch_size=self.patch_size, in_chans=self.in_chans,
                       embed_dim=self.embed_dim, depth=self.depth, num_heads=self.num_heads, mlp_ratio=self.mlp_ratio,
                       pos_embed=self.pos_embed, mlp_hidden=self.mlp_hidden)  # fmt: skip
        check_int("num_classes", self.num_classes, 0)
        if self.global_pool not in POOLS:
            raise ValueError(f"global_pool: expected one of {POOLS}, got {self.global_pool!r}")
        for name in ("drop_rate", "attn_drop_rate", "drop_path_rate"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name}: expected a float in [0, 1), got {getattr(self, name)!r}")

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2


class VisionTransformer(Pretrained, ViTEncoder):
    """``forward(x) = forward_head(forward_features(x))``: logits [B, num_classes] (or pooled
    features [B, D] with ``num_classes=0``). ``forward_features(x, mask)`` is the encoder's."""

    model_type, config_class = "vit", ViTConfig

    def __init__(self, config: ViTConfig | None = None, **overrides) -> None:
        c = ViTConfig(**{**(asdict(config) if config else {}), **overrides})
        super().__init__(img_size=c.img_size, patch_size=c.patch_size, in_chans=c.in_chans, embed_dim=c.embed_dim,
                         depth=c.depth, num_heads=c.num_heads, mlp_ratio=c.mlp_ratio, qkv_bias=c.qkv_bias,
                         pos_embed=c.pos_embed, drop_rate=c.drop_rate, attn_drop_rate=c.attn_drop_rate,
                         drop_path_rate=c.drop_path_rate, init_values=c.init_values, layer_norm_eps=c.layer_norm_eps,
                         mask_token=c.mask_token, mlp_hidden=c.mlp_hidden)  # fmt: skip
        self.config = c
        self.num_features = c.embed_dim
        self.head_drop = nn.Dropout(c.drop_rate)
        self.head = nn.Linear(c.embed_dim, c.num_classes) if c.num_classes else nn.Identity()
        init_linear_and_norms(self.head)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Tokens [B, 1 + L, D] -> pooled [B, D] (cls token or patch mean) -> logits, unless ``pre_logits``."""
        x = x[:, 1:].mean(dim=1) if self.config.global_pool == "avg" else x[:, 0]
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, mask))

    def flops_per_item(self) -> float:
        """Training FLOPs per image (forward + backward = 3 x forward): the patch projection on L
        patches, every block on 1 + L tokens (:meth:`TransformerBlock.flops`) and the head."""
        c = self.config
        forward = 2.0 * c.patch_size**2 * c.in_chans * c.embed_dim * c.num_patches + 2.0 * c.embed_dim * c.num_classes
        return 3.0 * (forward + sum(b.flops(1 + c.num_patches) for b in self.blocks))


register_model("vit_tiny", VisionTransformer, embed_dim=192, depth=12, num_heads=3)
register_model("vit_small", VisionTransformer, embed_dim=384, depth=12, num_heads=6)
register_model("vit_base", VisionTransformer, embed_dim=768, depth=12, num_heads=12)
register_model("vit_large", VisionTransformer, embed_dim=1024, depth=24, num_heads=16)

__all__ = ["ViTConfig", "VisionTransformer"]
