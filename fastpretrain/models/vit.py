"""Vision Transformer (Dosovitskiy et al. 2021) in timm's layout, on fastpretrain's attention.

Module names mirror timm's ``VisionTransformer`` (``patch_embed.proj``, ``cls_token``,
``pos_embed``, ``blocks.i.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm``, ``head``),
so :func:`vit_from_timm` / :func:`vit_to_timm` are nearly the identity, and the encoder weights of
the original MAE checkpoints (``models_mae.py`` uses timm's names) load the same way.

Sizes: :func:`vit_tiny` (192 wide, 12 deep, 3 heads), :func:`vit_small` (384/12/6),
:func:`vit_base` (768/12/12), :func:`vit_large` (1024/24/16).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from fastpretrain.checks import check_int
from fastpretrain.nn.attention import MultiheadSelfAttention
from fastpretrain.ops.attention import HEAD_DIMS

POS_EMBEDS = ("learn", "sincos")
POOLS = ("token", "avg")


def sincos_pos_embed_2d(dim: int, grid_h: int, grid_w: int | None = None, cls_token: bool = True) -> torch.Tensor:
    """MAE's fixed 2-D sin-cos positional embedding (``util/pos_embed.py``), float32
    [cls_token + grid_h * grid_w, dim]; the cls row is zeros.

    Patches are numbered row-major (h outer). As in MAE's code (``np.meshgrid(grid_w, grid_h)``),
    the first half of the channels encodes the column (w) and the second half the row (h), each
    as ``[sin(pos * omega), cos(pos * omega)]`` with ``omega_i = 10000 ** (-i / (dim / 4))``.
    """
    check_int("dim", dim, 4)
    if dim % 4:
        raise ValueError(f"dim: the 2-D sin-cos embedding needs a multiple of 4, got {dim}")
    grid_w = grid_h if grid_w is None else grid_w
    h, w = torch.meshgrid(torch.arange(grid_h, dtype=torch.float64), torch.arange(grid_w, dtype=torch.float64),
                          indexing="ij")  # fmt: skip
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))

    def one_axis(pos: torch.Tensor) -> torch.Tensor:
        out = pos.reshape(-1, 1) * omega
        return torch.cat([out.sin(), out.cos()], dim=1)

    emb = torch.cat([one_axis(w), one_axis(h)], dim=1)
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim, dtype=emb.dtype), emb])
    return emb.float()


@dataclass
class ViTConfig:
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 1000  # 0: no head (forward_head returns the pooled features)
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    pos_embed: str = "learn"  # "learn" (timm) or "sincos" (fixed, as in MAE)
    global_pool: str = "token"  # "token": the cls token's features; "avg": mean of the patch tokens
    drop_rate: float = 0.0  # after the attention / MLP projections, and before the head
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0  # stochastic depth, linearly increasing over the blocks
    layer_norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        for name in ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads"):
            check_int(name, getattr(self, name), 1)
        check_int("num_classes", self.num_classes, 0)
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size: {self.img_size} is not divisible by patch_size {self.patch_size}")
        check_heads("num_heads", self.embed_dim, self.num_heads)
        if self.pos_embed not in POS_EMBEDS:
            raise ValueError(f"pos_embed: expected one of {POS_EMBEDS}, got {self.pos_embed!r}")
        if self.pos_embed == "sincos" and self.embed_dim % 4:
            raise ValueError(f"embed_dim: the sin-cos embedding needs a multiple of 4, got {self.embed_dim}")
        if self.global_pool not in POOLS:
            raise ValueError(f"global_pool: expected one of {POOLS}, got {self.global_pool!r}")
        if not self.mlp_ratio > 0:
            raise ValueError(f"mlp_ratio: expected a float > 0, got {self.mlp_ratio!r}")
        for name in ("drop_rate", "attn_drop_rate", "drop_path_rate"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name}: expected a float in [0, 1), got {getattr(self, name)!r}")

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2


def check_heads(name: str, dim: int, heads: int) -> None:
    """``heads`` must divide ``dim`` into a head width the fused attention supports."""
    if dim % heads or dim // heads not in HEAD_DIMS:
        raise ValueError(f"{name}: {heads} heads split width {dim} into heads of {dim / heads:g}; "
                         f"the attention op needs a head width in {HEAD_DIMS}")  # fmt: skip


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> tokens: a Conv2d with stride = kernel = patch_size, [B, L, D]."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.img_size, self.patch_size, self.in_chans = img_size, patch_size, in_chans
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_chans or tuple(x.shape[2:]) != (self.img_size, self.img_size):
            raise ValueError(f"x: expected images [B, {self.in_chans}, {self.img_size}, {self.img_size}], "
                             f"got shape {tuple(x.shape)}")  # fmt: skip
        return self.proj(x).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2, self.drop = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim), nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch of a sample with probability p (training)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0, eps: float = 1e-6) -> None:  # fmt: skip
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = MultiheadSelfAttention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """``forward(x) = forward_head(forward_features(x))``: logits [B, num_classes] (or pooled
    features [B, D] with ``num_classes=0``)."""

    def __init__(self, config: ViTConfig | None = None, **overrides) -> None:
        super().__init__()
        config = ViTConfig(**{**(asdict(config) if config else {}), **overrides})
        self.config = c = config
        self.num_features = self.embed_dim = c.embed_dim
        self.patch_embed = PatchEmbed(c.img_size, c.patch_size, c.in_chans, c.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + c.num_patches, c.embed_dim), requires_grad=c.pos_embed == "learn")
        self.pos_drop = nn.Dropout(c.drop_rate)
        rates = [c.drop_path_rate * i / max(c.depth - 1, 1) for i in range(c.depth)]
        self.blocks = nn.ModuleList(
            Block(c.embed_dim, c.num_heads, c.mlp_ratio, c.qkv_bias, c.drop_rate, c.attn_drop_rate, r, c.layer_norm_eps)
            for r in rates
        )  # fmt: skip
        self.norm = nn.LayerNorm(c.embed_dim, eps=c.layer_norm_eps)
        self.head_drop = nn.Dropout(c.drop_rate)
        self.head = nn.Linear(c.embed_dim, c.num_classes) if c.num_classes else nn.Identity()
        self.init_weights()

    def init_weights(self) -> None:
        """MAE's initialisation: sin-cos or N(0, .02) positions, N(0, .02) cls token, Xavier-uniform
        linear layers and patch projection (as a linear map), zero biases, unit LayerNorms."""
        with torch.no_grad():
            if self.config.pos_embed == "sincos":
                self.pos_embed.copy_(sincos_pos_embed_2d(self.embed_dim, self.config.grid_size)[None])
            else:
                nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=0.02)
        init_linear_and_norms(self)
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B, C, H, W] -> normalised tokens [B, 1 + L, D] (cls first)."""
        x = self.patch_embed(x) + self.pos_embed[:, 1:]
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = self.pos_drop(torch.cat([cls, x], dim=1))
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Tokens [B, 1 + L, D] -> pooled [B, D] (cls token or patch mean) -> logits, unless ``pre_logits``."""
        x = x[:, 1:].mean(dim=1) if self.config.global_pool == "avg" else x[:, 0]
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def num_params(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def flops_per_item(self) -> float:
        """Training FLOPs per image (forward + backward = 3 x forward): 6 x (weights of the patch
        projection, blocks and head) x tokens they see, plus attention's two S x S x D matmuls per
        block (12 x depth x S^2 x D); norms, GELU and softmax are not counted."""
        c = self.config
        return vit_flops(c.embed_dim, c.depth, c.mlp_ratio, 1 + c.num_patches, c.num_patches,
                         c.patch_size**2 * c.in_chans, c.num_classes)  # fmt: skip


def vit_flops(dim: int, depth: int, mlp_ratio: float, tokens: int, patches: int, patch_dim: int,
              num_classes: int = 0) -> float:  # fmt: skip
    """Training FLOPs of one image through patch embedding (``patches`` patches), ``depth`` blocks
    on ``tokens`` tokens and a head (see :meth:`VisionTransformer.flops_per_item`)."""
    hidden = int(dim * mlp_ratio)
    block_weights = 4 * dim * dim + 2 * dim * hidden  # qkv + proj + fc1 + fc2
    forward = 2 * (patch_dim * dim * patches + depth * block_weights * tokens + dim * num_classes)
    forward += depth * 4 * tokens * tokens * dim
    return 3.0 * forward


def init_linear_and_norms(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _factory(embed_dim: int, depth: int, num_heads: int):
    def make(patch_size: int = 16, img_size: int = 224, **kw) -> VisionTransformer:
        return VisionTransformer(ViTConfig(img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
                                           num_heads=num_heads, **kw))  # fmt: skip

    make.__doc__ = f"ViT with width {embed_dim}, depth {depth}, {num_heads} heads (any other ViTConfig field as a keyword)."
    return make


vit_tiny = _factory(192, 12, 3)
vit_small = _factory(384, 12, 6)
vit_base = _factory(768, 12, 12)
vit_large = _factory(1024, 24, 16)
for _f, _n in ((vit_tiny, "vit_tiny"), (vit_small, "vit_small"), (vit_base, "vit_base"), (vit_large, "vit_large")):
    _f.__name__ = _f.__qualname__ = _n


# --- timm interop ---------------------------------------------------------------------------------

def vit_from_timm(state_dict: dict) -> dict:
    """timm ``VisionTransformer`` (class token, pre-norm, ``global_pool='token'``) weights -> ours.

    Our module names are timm's, so this checks the layout and copies. Also takes the encoder of
    an original MAE checkpoint (``models_mae.py``): its decoder keys are dropped. Layouts we do not
    build raise ValueError: register tokens, layer scale, ``fc_norm`` (avg-pool heads), no class token.
    """
    out = {}
    unsupported = []
    for key, value in state_dict.items():
        if key.startswith(("decoder_", "mask_token")):
            continue  # MAE decoder
        if key.startswith(("reg_token", "fc_norm", "norm_pre", "attn_pool")) or ".ls1." in key or ".ls2." in key:
            unsupported.append(key)
            continue
        out[key] = value
    if unsupported:
        raise ValueError(f"state_dict: timm layouts with {', '.join(sorted(unsupported)[:4])} are not supported "
                         "(register tokens, layer scale, fc_norm and attention pooling have no counterpart here)")  # fmt: skip
    for key in ("cls_token", "pos_embed", "patch_embed.proj.weight"):
        if key not in out:
            raise ValueError(f"state_dict: {key!r} is missing; not a timm ViT with a class token")
    return out


def vit_to_timm(state_dict: dict) -> dict:
    """Our ViT weights -> timm ``VisionTransformer`` names (the same: a copy)."""
    return dict(state_dict)


def vit_config_from_state_dict(state_dict: dict, **kw) -> ViTConfig:
    """The ViTConfig that fits timm-layout weights (sizes read off the tensors; num_heads and the
    rest from ``kw``, default 64-wide heads)."""
    proj = state_dict["patch_embed.proj.weight"]
    dim, in_chans, patch = proj.shape[0], proj.shape[1], proj.shape[2]
    patches = state_dict["pos_embed"].shape[1] - 1
    depth = 1 + max(int(k.split(".")[1]) for k in state_dict if k.startswith("blocks."))
    hidden = state_dict["blocks.0.mlp.fc1.weight"].shape[0]
    head = state_dict.get("head.weight")
    cfg = dict(img_size=math.isqrt(patches) * patch, patch_size=patch, in_chans=in_chans, embed_dim=dim, depth=depth,
               num_heads=dim // 64, mlp_ratio=hidden / dim, num_classes=0 if head is None else head.shape[0],
               qkv_bias="blocks.0.attn.qkv.bias" in state_dict)  # fmt: skip
    return ViTConfig(**{**cfg, **kw})


__all__ = ["Block", "Mlp", "PatchEmbed", "ViTConfig", "VisionTransformer", "sincos_pos_embed_2d", "vit_base",
           "vit_config_from_state_dict", "vit_from_timm", "vit_large", "vit_small", "vit_tiny", "vit_to_timm"]  # fmt: skip
