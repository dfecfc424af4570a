"""The ViT encoder stack (patch embedding, cls token, positions, pre-norm blocks, final norm) in
timm's names, shared by the ViT classifier and MAE's encoder."""

from __future__ import annotations

import torch
from torch import nn

from fastpretrain.checks import check_int
from fastpretrain.nn.attention import check_heads
from fastpretrain.nn.block import TransformerBlock
from fastpretrain.nn.init import init_linear_and_norms
from fastpretrain.nn.patch_embed import PatchEmbed
from fastpretrain.nn.positions import RelativePositionBias, sincos_pos_embed_2d

POS_EMBEDS = ("learn", "sincos", "none")
REL_POS_BIASES = ("none", "shared", "layer")


def check_vit_args(*, img_size, patch_size, in_chans, embed_dim, depth, num_heads, mlp_ratio, pos_embed="learn",
                   mlp_hidden=None):  # fmt: skip
    """The checks of a ViT encoder's sizes, for the configs that build one (ValueError naming the field)."""
    for name, value in (("img_size", img_size), ("patch_size", patch_size), ("in_chans", in_chans),
                        ("embed_dim", embed_dim), ("depth", depth), ("num_heads", num_heads)):  # fmt: skip
        check_int(name, value, 1)
    if img_size % patch_size:
        raise ValueError(f"img_size: {img_size} is not divisible by patch_size {patch_size}")
    check_heads("num_heads", embed_dim, num_heads)
    if pos_embed not in POS_EMBEDS:
        raise ValueError(f"pos_embed: expected one of {POS_EMBEDS}, got {pos_embed!r}")
    if pos_embed == "sincos" and embed_dim % 4:
        raise ValueError(f"embed_dim: the sin-cos embedding needs a multiple of 4, got {embed_dim}")
    if isinstance(mlp_ratio, bool) or not isinstance(mlp_ratio, (int, float)) or not mlp_ratio > 0:
        raise ValueError(f"mlp_ratio: expected a float > 0, got {mlp_ratio!r}")
    if mlp_hidden is not None:
        check_int("mlp_hidden", mlp_hidden, 1)


class ViTEncoder(nn.Module):
    """Images [B, C, H, W] -> normalised tokens [B, 1 + L, D], cls first (:meth:`forward_features`).

    ``pos_embed``: "learn" (timm), "sincos" (MAE's fixed 2-D table, not trained) or "none" (zeros,
    not trained: BEiT, whose positions are its relative attention bias). ``drop_rate``
    follows the positions and every projection in the blocks; ``drop_path_rate`` rises linearly
    over the blocks; ``init_values`` turns on LayerScale. ``mask_token=True`` adds a learned token
    that replaces the patch embeddings where :meth:`forward_features` gets ``mask`` True (SimMIM, BEiT).
    ``rel_pos_bias``: BEiT's relative position bias, one table for all blocks ("shared",
    ``rel_pos_bias``) or one per block ("layer", ``rel_pos_biases``), added to every attention's scores.
    The MLPs are ``mlp_hidden`` wide, or ``int(embed_dim * mlp_ratio)`` (timm's rule) when it is None.
    Sizes are checked by the configs that build this (:func:`check_vit_args`).
    """

    def __init__(self, *, img_size: int, patch_size: int, in_chans: int, embed_dim: int, depth: int, num_heads: int,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, pos_embed: str = "learn", drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0, init_values: float | None = None,
                 layer_norm_eps: float = 1e-6, mask_token: bool = False, mlp_hidden: int | None = None,
                 rel_pos_bias: str = "none") -> None:  # fmt: skip
        super().__init__()
        self.embed_dim, self.learned_pos, self.pos_kind = embed_dim, pos_embed == "learn", pos_embed
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.num_patches, self.grid_size = self.patch_embed.num_patches, self.patch_embed.grid_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.num_patches, embed_dim), requires_grad=self.learned_pos)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if mask_token else None
        self.pos_drop = nn.Dropout(drop_rate)
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        mlp_dim = int(embed_dim * mlp_ratio) if mlp_hidden is None else mlp_hidden
        self.blocks = nn.ModuleList(
            TransformerBlock(embed_dim, num_heads, mlp_dim, qkv_bias=qkv_bias, proj_drop=drop_rate,
                             attn_drop=attn_drop_rate, drop_path=r, init_values=init_values, eps=layer_norm_eps)
            for r in rates
        )  # fmt: skip
        if rel_pos_bias not in REL_POS_BIASES:
            raise ValueError(f"rel_pos_bias: expected one of {REL_POS_BIASES}, got {rel_pos_bias!r}")
        grid = self.grid_size
        self.rel_pos_bias = RelativePositionBias(grid, grid, num_heads) if rel_pos_bias == "shared" else None
        self.rel_pos_biases = (nn.ModuleList(RelativePositionBias(grid, grid, num_heads) for _ in range(depth))
                               if rel_pos_bias == "layer" else None)  # fmt: skip
        self.norm = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        self.init_weights()

    def init_weights(self) -> None:
        """MAE's initialisation: sin-cos or N(0, .02) positions, N(0, .02) cls (and mask) token,
        Xavier-uniform linear layers and patch projection (as a linear map), zero biases, unit
        LayerNorms (of every submodule, so a subclass's head too)."""
        with torch.no_grad():
            if self.learned_pos:
                nn.init.trunc_normal_(self.pos_embed, std=0.02)
            elif self.pos_kind == "sincos":
                self.pos_embed.copy_(sincos_pos_embed_2d(self.embed_dim, self.grid_size)[None])
        nn.init.normal_(self.cls_token, std=0.02)
        init_linear_and_norms(self)
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        if self.mask_token is not None:
            nn.init.normal_(self.mask_token, std=0.02)

    def prepend_cls(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens [B, K, D] (positions added) -> [B, 1 + K, D] with the cls token (and its position) first."""
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        return torch.cat([cls.to(x.dtype), x], dim=1)

    def block_biases(self) -> list[torch.Tensor | None]:
        """Each block's additive attention bias [H, 1 + L, 1 + L] (None without relative positions)."""
        if self.rel_pos_biases is not None:
            return [bias() for bias in self.rel_pos_biases]
        shared = self.rel_pos_bias() if self.rel_pos_bias is not None else None
        return [shared] * len(self.blocks)

    def run_blocks(self, x: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        """Tokens [B, S, D] through the first ``depth`` blocks (default all), no final norm."""
        for block, bias in list(zip(self.blocks, self.block_biases()))[:depth]:
            x = block(x) if bias is None else block(x, attn_bias=bias)
        return x

    def forward_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens [B, S, D] through the blocks and the final norm."""
        return self.norm(self.run_blocks(x))

    def embed(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Images [B, C, H, W] -> tokens [B, 1 + L, D] before the blocks; ``mask`` (bool [B, L],
        True = masked) swaps those patch embeddings for the mask token before the positions are added."""
        x = self.patch_embed(x)
        if mask is not None:
            if self.mask_token is None:
                raise ValueError("mask: this encoder has no mask token; build it with mask_token=True")
            if mask.dtype != torch.bool or tuple(mask.shape) != tuple(x.shape[:2]):
                raise ValueError(f"mask: expected a bool tensor of shape {tuple(x.shape[:2])} (True = masked), "
                                 f"got {mask.dtype} {tuple(mask.shape)}")  # fmt: skip
            x = torch.where(mask[..., None], self.mask_token.to(x.dtype), x)
        return self.pos_drop(self.prepend_cls(x + self.pos_embed[:, 1:]))

    def forward_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Images [B, C, H, W] -> [B, 1 + L, D] (``mask`` as in :meth:`embed`)."""
        return self.forward_blocks(self.embed(x, mask))

    def forward_intermediate(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """Images -> the tokens [B, 1 + L, D] out of block ``layer`` (1 .. depth), without the final
        norm: the features a linear probe of SimMIM or BEiT reads (their best layer is inside)."""
        if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= len(self.blocks):
            raise ValueError(f"layer: expected a block number in 1 .. {len(self.blocks)}, got {layer!r}")
        return self.run_blocks(self.embed(x), layer)

    def num_params(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
