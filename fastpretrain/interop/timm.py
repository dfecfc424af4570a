"""timm formats: ``VisionTransformer`` weights (class token, pre-norm, token pooling, optional
LayerScale) to and from our ViT, and the encoder of the original MAE checkpoints
(facebookresearch/mae ``models_mae.py`` uses timm's names; its decoder keys are dropped);
:func:`load_timm_vit` builds our model of such weights, checked before loading."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from fastpretrain.interop.rename import RenameTable
from fastpretrain.models.registry import check_weights, read_weights
from fastpretrain.models.vit import VisionTransformer, ViTConfig

_BLOCK = ("norm1.", "attn.qkv.", "attn.proj.", "ls1.", "norm2.", "mlp.fc1.", "mlp.fc2.", "ls2.")
_UNSUPPORTED = "register tokens, fc_norm (avg-pool heads), norm_pre and attention pooling have no counterpart here"
VIT = RenameTable(
    [("cls_token", "cls_token"), ("pos_embed", "pos_embed"), ("patch_embed.proj.", "patch_embed.proj.")]
    + [(f"blocks.{{i}}.{name}", f"blocks.{{i}}.{name}") for name in _BLOCK]
    + [("norm.", "norm."), ("head.", "head.")],
    ours="VisionTransformer (fastpretrain)",
    theirs="timm VisionTransformer with a class token",
    drop=("decoder_", "mask_token"),  # an original MAE checkpoint's decoder
    unsupported=dict.fromkeys(("reg_token", "fc_norm", "norm_pre", "attn_pool"), _UNSUPPORTED),
    required=("cls_token", "pos_embed", "patch_embed.proj.weight"),
)


def vit_from_timm(state_dict: dict) -> dict:
    """timm ``VisionTransformer`` weights (or an original MAE checkpoint's encoder) -> ours: the
    names are the same, so this checks the layout; layouts we do not build raise ValueError."""
    return VIT.to_ours(state_dict)


def vit_to_timm(state_dict: dict) -> dict:
    """Our ViT weights -> timm ``VisionTransformer`` names (the same, checked)."""
    return VIT.to_theirs(state_dict)


def vit_config_from_state_dict(state_dict: dict, **kw) -> ViTConfig:
    """The ViTConfig that fits timm-layout weights: the sizes, the exact MLP width included, read off
    the tensors; num_heads (not in the weights: default 64-wide heads) and the rest from ``kw``."""
    for key in ("patch_embed.proj.weight", "pos_embed", "blocks.0.mlp.fc1.weight"):
        if key not in state_dict:
            raise ValueError(f"state_dict: no {key!r}; expected the weights of a {VIT.theirs}")
    proj = state_dict["patch_embed.proj.weight"]
    dim, in_chans, patch = proj.shape[0], proj.shape[1], proj.shape[2]
    patches = state_dict["pos_embed"].shape[1] - 1
    if math.isqrt(patches) ** 2 != patches:
        raise ValueError(f"state_dict: pos_embed holds {patches} patch positions after the class token, "
                         f"not a square grid")  # fmt: skip
    depth = 1 + max(int(k.split(".")[1]) for k in state_dict if k.startswith("blocks."))
    hidden = state_dict["blocks.0.mlp.fc1.weight"].shape[0]
    head = state_dict.get("head.weight")
    cfg = {"img_size": math.isqrt(patches) * patch, "patch_size": patch, "in_chans": in_chans, "embed_dim": dim,
           "depth": depth, "num_heads": dim // 64, "mlp_ratio": hidden / dim, "mlp_hidden": hidden,
           "num_classes": 0 if head is None else head.shape[0], "qkv_bias": "blocks.0.attn.qkv.bias" in state_dict,
           "init_values": 1e-5 if "blocks.0.ls1.gamma" in state_dict else None}  # fmt: skip
    return ViTConfig(**{**cfg, **kw})


def load_timm_vit(weights, **kw) -> VisionTransformer:
    """Our ViT of timm-layout ``weights`` (a state dict or a .safetensors file; the encoder of an
    original MAE checkpoint too), its config from :func:`vit_config_from_state_dict` with ``kw``.
    The weights are checked before loading: a misfit is a ValueError naming the source and the keys."""
    source = "state_dict" if isinstance(weights, Mapping) else f"weights: {weights}"
    state = weights if isinstance(weights, Mapping) else read_weights(Path(weights), argument="weights")
    try:
        ours = vit_from_timm(state)
        model = VisionTransformer(vit_config_from_state_dict(ours, **kw))
    except ValueError as e:
        raise ValueError(f"{source}: {str(e).removeprefix('state_dict: ')}") from None
    check_weights(ours, model.state_dict(), f"{source}: does not fit the config read off it with {kw}")
    model.load_state_dict(ours)
    return model


__all__ = ["load_timm_vit", "vit_config_from_state_dict", "vit_from_timm", "vit_to_timm"]
