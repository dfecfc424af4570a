"""CLIP (Radford et al. 2021) on our blocks: an image ViT (cls token) and a text transformer (causal
blocks, the end-of-text token's features, as CLIP's), each projected linearly into one embedding
space, and CLIP's symmetric InfoNCE with a learnable temperature on the fused op (the [B, B] logits
never whole; across ranks, each rank's rows against every rank's, gathered with their gradient).
Zero-shot classification embeds one prompt set per class (:meth:`class_embeddings`) and takes the
most similar class.

Sizes: ``create_model("clip_vit_b16")`` (ViT-B/16 and a 12-block, 512-wide text tower) and
``"clip_vit_fashion_mnist"`` (28 x 28 grey, 4 x 4 patches, MAE's Fashion-MNIST encoder; a 2-block,
128-wide text tower over BERT's uncased WordPiece vocabulary) for CPU-sized runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fastpretrain.checks import check_int
from fastpretrain.models.registry import Pretrained, register_model
from fastpretrain.nn import ClipLoss, TransformerBlock, ViTEncoder, check_heads, check_vit_args


@dataclass
class CLIPConfig:
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    vision_width: int = 768
    vision_depth: int = 12
    vision_heads: int = 12
    vocab_size: int = 30522
    pad_token_id: int = 0
    context_length: int = 77
    text_width: int = 512
    text_depth: int = 12
    text_heads: int = 8
    embed_dim: int = 512
    mlp_ratio: float = 4.0
    temperature: float = 0.07  # CLIP's initial temperature; exp(logit_scale) is learnt, capped at max_scale
    max_scale: float = 100.0

    def __post_init__(self) -> None:
        check_vit_args(img_size=self.img_size, patch_size=self.patch_size, in_chans=self.in_chans,
                       embed_dim=self.vision_width, depth=self.vision_depth, num_heads=self.vision_heads,
                       mlp_ratio=self.mlp_ratio, pos_embed="learn")  # fmt: skip
        for name in ("vocab_size", "context_length", "text_width", "text_depth", "text_heads", "embed_dim"):
            check_int(name, getattr(self, name), 1)
        check_int("pad_token_id", self.pad_token_id, 0, self.vocab_size - 1)
        check_heads("text_heads", self.text_width, self.text_heads)
        for name in ("temperature", "max_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name}: expected a float > 0, got {value!r}")


class CLIP(Pretrained, nn.Module):
    """``CLIP(CLIPConfig(...))``; ``model(images, ids)`` (images [B, C, H, W], caption ids [B, L] padded
    with ``pad_token_id`` after the end token) -> ``{"loss"}`` for the Trainer. ``self.encoder`` is the
    image :class:`~fastpretrain.nn.ViTEncoder` (the linear probe's features)."""

    model_type, config_class = "clip", CLIPConfig

    def __init__(self, config: CLIPConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = CLIPConfig(**{**(asdict(config) if config else {}), **overrides})
        self.encoder = ViTEncoder(img_size=c.img_size, patch_size=c.patch_size, in_chans=c.in_chans,
                                  embed_dim=c.vision_width, depth=c.vision_depth, num_heads=c.vision_heads,
                                  mlp_ratio=c.mlp_ratio)  # fmt: skip
        self.image_proj = nn.Linear(c.vision_width, c.embed_dim, bias=False)
        self.token_embedding = nn.Embedding(c.vocab_size, c.text_width)
        self.positional_embedding = nn.Parameter(torch.empty(c.context_length, c.text_width))
        self.text_blocks = nn.ModuleList(
            TransformerBlock(c.text_width, c.text_heads, int(c.text_width * c.mlp_ratio), causal=True)
            for _ in range(c.text_depth)
        )  # fmt: skip
        self.ln_final = nn.LayerNorm(c.text_width, eps=1e-6)
        self.text_proj = nn.Linear(c.text_width, c.embed_dim, bias=False)
        self.criterion = ClipLoss(c.temperature, c.max_scale)
        self.initialize_text()

    def initialize_text(self) -> None:
        """CLIP's: N(0, .02) token and N(0, .01) position embeddings; Xavier linears in the blocks
        (as the image tower's), projections N(0, width^-1/2)."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        for block in self.text_blocks:
            for m in block.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        nn.init.normal_(self.image_proj.weight, std=self.config.vision_width**-0.5)
        nn.init.normal_(self.text_proj.weight, std=self.config.text_width**-0.5)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] -> image embeddings [B, embed_dim] (not normalised)."""
        return self.image_proj(self.encoder.forward_features(images)[:, 0])

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        """Caption ids [B, L] -> text embeddings [B, embed_dim] (not normalised): the features of each
        row's last token before the padding (the end token), which the causal blocks let see the whole caption."""
        c = self.config
        if ids.dim() != 2 or not 1 <= ids.shape[1] <= c.context_length:
            raise ValueError(f"ids: expected [B, L], L <= context_length {c.context_length}, got {tuple(ids.shape)}")
        x = self.token_embedding(ids) + self.positional_embedding[: ids.shape[1]]
        for block in self.text_blocks:
            x = block(x)
        last = ((ids != c.pad_token_id).sum(1) - 1).clamp(min=0)
        return self.text_proj(self.ln_final(x[torch.arange(len(ids), device=ids.device), last]))

    def forward(self, images: torch.Tensor, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.shape[0] != ids.shape[0]:
            raise ValueError(f"ids: expected one caption per image ({images.shape[0]}), got {ids.shape[0]}")
        loss = self.criterion(self.encode_image(images), self.encode_text(ids))
        return {"loss": loss, "scale": self.criterion.scale().detach()}

    @torch.no_grad()
    def class_embeddings(self, prompt_ids: torch.Tensor) -> torch.Tensor:
        """Prompt ids [K, P, L] (P prompts for each of K classes) -> unit class embeddings [K, embed_dim]:
        the normalised mean of the class's normalised prompt embeddings (CLIP's prompt ensembling)."""
        k, p, length = prompt_ids.shape
        emb = F.normalize(self.encode_text(prompt_ids.reshape(k * p, length)), dim=-1).reshape(k, p, -1)
        return F.normalize(emb.mean(1), dim=-1)


register_model("clip_vit_b16", CLIP, vocab_size=49408, context_length=77)
# Fashion-MNIST: 28 x 28 grey, 7 x 7 patches of 4, the image encoder of mae_vit_fashion_mnist; captions of <= 24 pieces.
register_model("clip_vit_fashion_mnist", CLIP, img_size=28, patch_size=4, in_chans=1, vision_width=128,
               vision_depth=4, vision_heads=4, context_length=24, text_width=128, text_depth=2, text_heads=4,
               embed_dim=128)  # fmt: skip
