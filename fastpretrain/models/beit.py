"""BEiT (Bao et al. 2022): masked image modeling with visual tokens, BERT-style. A dVAE turns each
patch into a discrete code (:mod:`fastpretrain.models.dvae`, cached per image set by
:func:`fastpretrain.data.visual_tokens.cached_tokens`); block-wise masking
(:class:`~fastpretrain.data.image_masking.BlockMask`, ~40% of the patches) replaces masked patches
by a learned mask token; a ViT with relative position bias (shared by the blocks or one per block,
an additive attention bias on the fused attention op) and layer scale predicts the codes of the
masked patches only, through the fused linear cross-entropy (no [N, vocab] logits).

Module names follow the encoder (:class:`~fastpretrain.nn.ViTEncoder`) plus ``lm_head``;
:mod:`fastpretrain.interop.hf_beit` loads Hugging Face ``BeitForMaskedImageModeling`` weights.
Sizes: ``create_model("beit_base_patch16")`` (BEiT-B: shared relative bias, layer scale 0.1, 8192
codes) and ``"beit_fashion_mnist"`` (28 x 28 grey, 4 x 4 patches, 512 codes: dvae_fashion_mnist's grid).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from fastpretrain.checks import check_int
from fastpretrain.models.registry import Pretrained, register_model
from fastpretrain.nn import LinearCrossEntropyLoss, ViTEncoder, check_vit_args, init_linear_and_norms


@dataclass
class BEiTConfig:
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    mlp_hidden: int | None = None
    qkv_bias: bool = True
    rel_pos_bias: str = "shared"  # "shared" (BEiT pre-training), "layer" (one per block) or "none"
    abs_pos_embed: bool = False  # learned absolute positions as well (BEiT pre-trains without)
    init_values: float | None = 0.1  # LayerScale (None: none)
    drop_path_rate: float = 0.1
    layer_norm_eps: float = 1e-6
    vocab_size: int = 8192  # the tokenizer's codebook size
    mask_ratio: float = 0.4  # of the patches, masked in blocks
    min_block: int = 16  # patches in the smallest masked block (BEiT: 16)

    def __post_init__(self) -> None:
        check_vit_args(img_size=self.img_size, patch_size=self.patch_size, in_chans=self.in_chans,
                       embed_dim=self.embed_dim, depth=self.depth, num_heads=self.num_heads, mlp_ratio=self.mlp_ratio,
                       mlp_hidden=self.mlp_hidden)  # fmt: skip
        check_int("vocab_size", self.vocab_size, 2)
        check_int("min_block", self.min_block, 1)
        if self.rel_pos_bias not in ("shared", "layer", "none"):
            raise ValueError(f"rel_pos_bias: expected 'shared', 'layer' or 'none', got {self.rel_pos_bias!r}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio: expected a float in (0, 1), got {self.mask_ratio!r}")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate: expected a float in [0, 1), got {self.drop_path_rate!r}")

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    def masker(self):
        """The data-side block-wise mask generator of this config."""
        from fastpretrain.data.image_masking import BlockMask

        g = self.grid_size
        return BlockMask.from_ratio(g, g, self.mask_ratio, min_block=self.min_block)


class BEiT(Pretrained, nn.Module):
    """``model(imgs, tokens, mask)`` -> ``{"loss": ...}`` for the Trainer: cross-entropy of the
    codes ``tokens`` [B, L] at the masked patches (``mask`` bool [B, L], drawn block-wise here when
    None). ``return_outputs=True`` adds the masked positions' hidden states and the mask.
    ``forward_features`` / ``forward_intermediate`` (with the relative bias) serve the probes."""

    model_type, config_class = "beit", BEiTConfig

    def __init__(self, config: BEiTConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = BEiTConfig(**{**(asdict(config) if config else {}), **overrides})
        self.encoder = ViTEncoder(img_size=c.img_size, patch_size=c.patch_size, in_chans=c.in_chans,
                                  embed_dim=c.embed_dim, depth=c.depth, num_heads=c.num_heads, mlp_ratio=c.mlp_ratio,
                                  qkv_bias=c.qkv_bias, pos_embed="learn" if c.abs_pos_embed else "none",
                                  drop_path_rate=c.drop_path_rate, init_values=c.init_values,
                                  layer_norm_eps=c.layer_norm_eps, mask_token=True, mlp_hidden=c.mlp_hidden,
                                  rel_pos_bias=c.rel_pos_bias)  # fmt: skip
        self.num_patches = self.encoder.num_patches
        self.lm_head = nn.Linear(c.embed_dim, c.vocab_size)
        init_linear_and_norms(self.lm_head)
        self.loss_fn = LinearCrossEntropyLoss()
        self._masker = c.masker()

    def random_mask(self, batch: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """bool [batch, L]: a block-wise mask per image, drawn on the CPU."""
        return torch.stack([self._masker(generator) for _ in range(batch)]).to(device)

    def forward_features(self, imgs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Images -> normalised tokens [B, 1 + L, D] (masked patches as the mask token)."""
        return self.encoder.forward_features(imgs, mask)

    def forward_intermediate(self, imgs: torch.Tensor, layer: int) -> torch.Tensor:
        return self.encoder.forward_intermediate(imgs, layer)

    def forward(self, imgs: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None = None, *,
                generator: torch.Generator | None = None, return_outputs: bool = False) -> dict:  # fmt: skip
        if tokens.shape != (imgs.shape[0], self.num_patches):
            raise ValueError(f"tokens: expected codes [{imgs.shape[0]}, {self.num_patches}], got {tuple(tokens.shape)}")
        if mask is None:
            mask = self.random_mask(imgs.shape[0], generator, imgs.device)
        hidden = self.forward_features(imgs, mask)[:, 1:][mask]
        loss = self.loss_fn(hidden, self.lm_head.weight, tokens[mask].long(), self.lm_head.bias)
        out = {"loss": loss}
        if return_outputs:
            out.update(hidden=hidden, mask=mask)
        return out

    def flops_per_item(self) -> float:
        """Training FLOPs per image (3 x forward): patch projection, blocks on 1 + L tokens, the head
        on the masked patches."""
        c, patches = self.config, self.num_patches
        masked = self._masker.num_masked
        forward = 2.0 * c.patch_size**2 * c.in_chans * c.embed_dim * patches + 2.0 * c.embed_dim * c.vocab_size * masked
        return 3.0 * (forward + sum(b.flops(1 + patches) for b in self.encoder.blocks))


register_model("beit_base_patch16", BEiT)
register_model("beit_large_patch16", BEiT, embed_dim=1024, depth=24, num_heads=16, init_values=1e-5)
# Fashion-MNIST (28 x 28 grey, 7 x 7 patches of 4): a 4-block, 128-wide encoder on dvae_fashion_mnist's 512 codes.
register_model("beit_fashion_mnist", BEiT, embed_dim=128, depth=4, num_heads=4, img_size=28, patch_size=4, in_chans=1,
               vocab_size=512, drop_path_rate=0.0, min_block=4)  # fmt: skip

__all__ = ["BEiT", "BEiTConfig"]
