"""Masked modeling of any tokenized sequence (Ti-MAE on time-series patches, HuBERT / TERA on
spectrogram frames, Point-MAE / GeoMAE on point groups), on the shared blocks: a modality's
tokenizer hands over :class:`~fastpretrain.nn.Groups` (values [B, L, G], positions [B, L, P]);
the recipe embeds both, masks whole groups, encodes, decodes lightly and scores the masked groups
with a :class:`~fastpretrain.models.group_targets.Target` (raw values, cluster ids, geometry, ...).

Steps, each a method: ``embed`` (the values through an embedder, ``nn.Linear(G, D)`` by default,
plus the positions: fixed 1-D sin-cos of the group index, or a small MLP on P-dim centres),
``draw_mask`` (a policy of :mod:`fastpretrain.data.group_masking`), ``forward_encoder``, ``forward_decoder``,
``forward_loss``. Two encoders (``encoder``):

- ``visible`` (MAE): only the kept groups enter the encoder, the fused ``gather_visible`` selects
  them (the per-sample positions are added before it, so its shared positional table is zero), the
  decoder gets mask tokens back through the fused ``unshuffle_tokens`` and adds its own positions.
  Needs a fixed masked count per sample: random masking.
- ``full`` (BERT / HuBERT): every group enters, the masked ones replaced by a learned mask token;
  any policy (span and block masks mask a different count in each sample).

A cls token leads the encoder's sequence; features for probes are the mean of the group tokens
(``forward_features``). Embedders are registered by name too (:data:`EMBEDDERS`, ``register_embedder``):
a factory ``config -> module`` mapping [B, L, G] to [B, L, embed_dim].

Sizes: ``create_model("masked_groups_tiny")`` (CPU-sized), ``"masked_groups_small"``, ``"masked_groups_base"``;
``group_dim`` and ``pos_dim`` come from the tokenizer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from fastpretrain.checks import check_int
from fastpretrain.data.group_masking import POLICIES, mask_policy
from fastpretrain.models.group_targets import TARGETS, check_target
from fastpretrain.models.registry import Pretrained, register_model
from fastpretrain.nn import (
    Groups,
    TransformerBlock,
    check_groups,
    check_heads,
    gather_visible,
    init_linear_and_norms,
    masking_from_noise,
    num_kept,
    random_masking,
    unshuffle_tokens,
)

POSITIONS = ("sincos", "mlp")
ENCODERS = ("visible", "full")
EMBEDDERS: dict[str, Callable[[MaskedGroupsConfig], nn.Module]] = {}


def register_embedder(name: str, factory: Callable[[MaskedGroupsConfig], nn.Module]) -> None:
    """Register ``factory(config)`` -> a module mapping values [B, L, G] to [B, L, embed_dim], as ``embedder=name``."""
    if name in EMBEDDERS and EMBEDDERS[name] is not factory:
        raise ValueError(f"name: embedder {name!r} is registered already")
    EMBEDDERS[name] = factory


register_embedder("linear", lambda c: nn.Linear(c.group_dim, c.embed_dim))


@dataclass
class MaskedGroupsConfig:
    group_dim: int = 16  # G, values per group (the tokenizer's)
    pos_dim: int = 1  # P, position coordinates per group (1: an index, 3: a point group's centre)
    position: str = "sincos"  # sincos: fixed 1-D table of positions[..., 0]; mlp: a learned MLP on all P
    embedder: str = "linear"
    embed_dim: int = 192
    depth: int = 12
    num_heads: int = 3
    decoder_embed_dim: int = 128
    decoder_depth: int = 2
    decoder_num_heads: int = 4
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6
    encoder: str = "visible"  # visible (MAE: kept groups only) or full (all groups, mask tokens)
    masking: str = "random"  # random, span or block (data.group_masking)
    mask_ratio: float = 0.75  # random and block
    mask_prob: float = 0.65  # span: fairseq's mask_prob (floor(mask_prob * L / span_length + U) starts)
    span_length: int = 10
    block_rows: int = 2  # block: the groups' grid rows
    min_block: int = 4  # block: BEiT's smallest block, in groups
    target: str = "values"
    norm_values: bool = False  # values: regress per-group normalised values
    num_clusters: int = 100  # clusters: the k-means codebook size

    def __post_init__(self) -> None:
        for name, low in (("group_dim", 1), ("pos_dim", 1), ("embed_dim", 2), ("depth", 1), ("num_heads", 1),
                          ("decoder_embed_dim", 2), ("decoder_depth", 0), ("decoder_num_heads", 1),
                          ("num_clusters", 2)):  # fmt: skip
            check_int(name, getattr(self, name), low)
        check_heads("num_heads", self.embed_dim, self.num_heads)
        check_heads("decoder_num_heads", self.decoder_embed_dim, self.decoder_num_heads)
        for name, choices in (("position", POSITIONS), ("encoder", ENCODERS), ("masking", tuple(POLICIES)),
                              ("embedder", tuple(EMBEDDERS))):  # fmt: skip
            if getattr(self, name) not in choices:
                raise ValueError(f"{name}: expected one of {', '.join(choices)}, got {getattr(self, name)!r}")
        if self.position == "sincos" and self.pos_dim != 1:
            raise ValueError(f"position: 'sincos' embeds a 1-D group index (pos_dim 1), got pos_dim {self.pos_dim}; "
                             f"use 'mlp' for P-dim centres")  # fmt: skip
        if self.position == "sincos" and (self.embed_dim % 2 or self.decoder_embed_dim % 2):
            raise ValueError(f"embed_dim: the sin-cos positions need even widths, got {self.embed_dim} and "
                             f"decoder_embed_dim {self.decoder_embed_dim}")  # fmt: skip
        if not (isinstance(self.mlp_ratio, (int, float)) and self.mlp_ratio > 0):
            raise ValueError(f"mlp_ratio: expected a positive number, got {self.mlp_ratio!r}")
        check_target(self.target)
        self.mask_policy()  # checks the policy's own fields
        if self.encoder == "visible" and self.masking != "random":
            raise ValueError(f"encoder: 'visible' needs a fixed masked count per sample (masking 'random'), got "
                             f"masking {self.masking!r}; use encoder 'full'")  # fmt: skip

    def mask_policy(self):
        """The masking policy this config names, with its settings."""
        settings = {"random": {"mask_ratio": self.mask_ratio},
                    "span": {"mask_prob": self.mask_prob, "span_length": self.span_length},
                    "block": {"mask_ratio": self.mask_ratio, "rows": self.block_rows, "min_block": self.min_block}}
        return mask_policy(self.masking, **settings[self.masking])  # fmt: skip


def sincos_positions(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """MAE's 1-D sin-cos embedding of float positions [B, L] -> [B, L, dim], computed in float32 on their device."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, device=positions.device, dtype=torch.float64) / (dim / 2))
    angles = positions.double()[..., None] * omega
    return torch.cat([angles.sin(), angles.cos()], dim=-1).float()


class PositionEmbed(nn.Module):
    """Positions [B, L, P] -> [B, L, dim]: fixed sin-cos of ``positions[..., 0]``, or Point-MAE's
    MLP (Linear(P, 128), GELU, Linear(128, dim)) on all P coordinates."""

    def __init__(self, kind: str, pos_dim: int, dim: int) -> None:
        super().__init__()
        self.kind, self.dim = kind, dim
        self.mlp = nn.Sequential(nn.Linear(pos_dim, 128), nn.GELU(), nn.Linear(128, dim)) if kind == "mlp" else None

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        if self.mlp is None:
            return sincos_positions(positions[..., 0], self.dim)
        return self.mlp(positions)


class MaskedGroups(Pretrained, nn.Module):
    """``MaskedGroups(MaskedGroupsConfig(...))``; ``model(values, positions, **fields)`` -> ``{"loss": ...}``
    for the Trainer's dict batches (``labels`` ignored; ``fields``: what the target needs, such as
    ``clusters``). ``mask`` (bool [B, L], full encoder) or ``noise`` ([B, L], visible encoder) fix
    the masking; ``return_outputs=True`` adds ``hidden`` (the decoder's output [B, L, decoder_embed_dim])
    and ``mask``."""

    model_type, config_class = "masked_groups", MaskedGroupsConfig

    def __init__(self, config: MaskedGroupsConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = MaskedGroupsConfig(**{**(asdict(config) if config else {}), **overrides})
        self.policy = c.mask_policy()
        self.embedder = EMBEDDERS[c.embedder](c)
        self.pos_embed = PositionEmbed(c.position, c.pos_dim, c.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim)) if c.encoder == "full" else None

        def blocks(dim, heads, depth):
            return nn.ModuleList(TransformerBlock(dim, heads, int(dim * c.mlp_ratio), qkv_bias=c.qkv_bias,
                                                  eps=c.layer_norm_eps) for _ in range(depth))  # fmt: skip

        self.blocks = blocks(c.embed_dim, c.num_heads, c.depth)
        self.norm = nn.LayerNorm(c.embed_dim, eps=c.layer_norm_eps)
        self.decoder_embed = nn.Linear(c.embed_dim, c.decoder_embed_dim)
        self.decoder_mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_embed_dim)) if c.encoder == "visible" else None
        self.decoder_pos_embed = PositionEmbed(c.position, c.pos_dim, c.decoder_embed_dim)
        self.decoder_blocks = blocks(c.decoder_embed_dim, c.decoder_num_heads, c.decoder_depth)
        self.decoder_norm = nn.LayerNorm(c.decoder_embed_dim, eps=c.layer_norm_eps)
        self.target = TARGETS[c.target](c)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """As MAE: N(0, .02) tokens, Xavier-uniform linears, zero biases, unit norms."""
        for token in (self.cls_token, self.mask_token, self.decoder_mask_token):
            if token is not None:
                nn.init.normal_(token, std=0.02)
        init_linear_and_norms(self)

    def embed(self, groups: Groups) -> torch.Tensor:
        """Values through the embedder plus the positions' embedding: [B, L, D]."""
        values, positions = check_groups(groups)
        c = self.config
        if values.shape[-1] != c.group_dim or positions.shape[-1] != c.pos_dim:
            raise ValueError(f"groups: expected values [B, L, {c.group_dim}] and positions [B, L, {c.pos_dim}], got "
                             f"{tuple(values.shape)} and {tuple(positions.shape)}")  # fmt: skip
        return self.embedder(values) + self.pos_embed(positions).to(values.dtype)

    def draw_mask(self, batch: int, length: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """A bool [B, L] mask (True = masked) from the config's policy."""
        return self.policy(batch, length, generator=generator, device=device)

    def _blocks(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward_features(self, values: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The encoder on every group, nothing masked: [B, 1 + L, D] (cls first), after the final norm."""
        x = self.embed(Groups(values, positions))
        return self._blocks(torch.cat([self.cls_token.expand(len(x), -1, -1).to(x.dtype), x], dim=1))

    def forward_encoder(self, groups: Groups, *, mask: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                        generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:  # fmt: skip
        """(latent [B, 1 + K, D] (K = L for the full encoder), mask bool [B, L], ids_restore or None)."""
        x = self.embed(groups)
        batch, length, dim = x.shape
        cls = self.cls_token.expand(batch, -1, -1).to(x.dtype)
        if self.config.encoder == "visible":
            if mask is not None:
                raise ValueError("mask: the visible encoder takes noise [B, L] (its lowest are kept), not a mask")
            if noise is None:
                masking = random_masking(batch, length, self.config.mask_ratio, generator=generator, device=x.device)
            else:
                if tuple(noise.shape) != (batch, length):
                    raise ValueError(f"noise: expected shape {(batch, length)}, got {tuple(noise.shape)}")
                masking = masking_from_noise(noise, self.config.mask_ratio)
            x = gather_visible(x, x.new_zeros(length, dim), masking.ids_keep)  # positions already added
            return self._blocks(torch.cat([cls, x], dim=1)), masking.mask.bool(), masking.ids_restore
        if noise is not None:
            raise ValueError("noise: only the visible encoder takes noise; give the full encoder a mask")
        if mask is None:
            mask = self.draw_mask(batch, length, generator=generator, device=x.device)
        elif mask.dtype != torch.bool or tuple(mask.shape) != (batch, length):
            raise ValueError(f"mask: expected a bool [B, L] = {(batch, length)} tensor, got {mask.dtype} "
                             f"{tuple(mask.shape)}")  # fmt: skip
        pos = self.pos_embed(groups.positions).to(x.dtype)
        x = torch.where(mask[..., None], self.mask_token.to(x.dtype) + pos, x)
        return self._blocks(torch.cat([cls, x], dim=1)), mask, None

    def forward_decoder(self, latent: torch.Tensor, positions: torch.Tensor,
                        ids_restore: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
        """Latent [B, 1 + K, D] -> the decoder's output at every group [B, L, decoder_embed_dim]."""
        x = self.decoder_embed(latent)
        if ids_restore is not None:
            zeros = x.new_zeros(1 + ids_restore.shape[1], x.shape[-1])
            x = unshuffle_tokens(x, self.decoder_mask_token, zeros, ids_restore)
        pos = self.decoder_pos_embed(positions).to(x.dtype)
        x = torch.cat([x[:, :1], x[:, 1:] + pos], dim=1)
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_norm(x)[:, 1:]

    def forward_loss(self, hidden: torch.Tensor, groups: Groups, mask: torch.Tensor, fields: dict) -> torch.Tensor:
        """The target's loss on the masked groups only."""
        missing = [n for n in self.target.needs if n not in fields]
        if missing:
            raise ValueError(f"{missing[0]}: the {self.config.target!r} target needs it in the batch ([B, L, ...])")
        rows = {"values": groups.values[mask], "positions": groups.positions[mask]}
        for name in self.target.needs:
            t = fields[name]
            if not isinstance(t, torch.Tensor) or tuple(t.shape[:2]) != tuple(mask.shape):
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"{name}: expected a [B, L, ...] = {tuple(mask.shape)} tensor, got {got}")
            rows[name] = t.to(mask.device)[mask]
        return self.target(hidden[mask], rows)

    def forward(self, values: torch.Tensor, positions: torch.Tensor, labels=None, *, mask: torch.Tensor | None = None,
                noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
                return_outputs: bool = False, **fields) -> dict:  # fmt: skip
        groups = check_groups(Groups(values, positions))
        latent, mask, ids_restore = self.forward_encoder(groups, mask=mask, noise=noise, generator=generator)
        hidden = self.forward_decoder(latent, groups.positions, ids_restore)
        loss = self.forward_loss(hidden, groups, mask, fields)
        if return_outputs:
            return {"loss": loss, "hidden": hidden, "mask": mask, "latent": latent}
        return {"loss": loss}

    def flops_per_sample(self, length: int) -> float:
        """Training FLOPs per sample of ``length`` groups (3 x forward): embedding, encoder blocks on
        1 + K tokens (K = kept groups, or L for the full encoder), decoder on 1 + L; the target's head not counted."""
        c = self.config
        kept = num_kept(length, c.mask_ratio) if c.encoder == "visible" else length
        forward = 2.0 * c.group_dim * c.embed_dim * length + sum(b.flops(1 + kept) for b in self.blocks)
        forward += 2.0 * c.embed_dim * c.decoder_embed_dim * (1 + kept) + sum(b.flops(1 + length) for b in self.decoder_blocks)
        return 3.0 * forward


# CPU-sized: a 4-block, 128-wide encoder and a 1-block, 64-wide decoder; then ViT-S and ViT-B encoders.
register_model("masked_groups_tiny", MaskedGroups, embed_dim=128, depth=4, num_heads=4, decoder_embed_dim=64,
               decoder_depth=1, decoder_num_heads=2)  # fmt: skip
register_model("masked_groups_small", MaskedGroups, embed_dim=384, depth=12, num_heads=6, decoder_embed_dim=256,
               decoder_depth=4, decoder_num_heads=8)  # fmt: skip
register_model("masked_groups_base", MaskedGroups, embed_dim=768, depth=12, num_heads=12, decoder_embed_dim=512,
               decoder_depth=8, decoder_num_heads=16)  # fmt: skip

__all__ = ["EMBEDDERS", "POSITIONS", "MaskedGroups", "MaskedGroupsConfig", "PositionEmbed", "register_embedder",
           "sincos_positions"]  # fmt: skip
