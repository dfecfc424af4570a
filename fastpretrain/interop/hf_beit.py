"""Hugging Face ``BeitForMaskedImageModeling`` weights and config to our :class:`~fastpretrain.models.BEiT`.

HF keeps separate query / key / value projections with biases on the query and value only; ours is
one fused ``qkv`` whose key bias is set to zero (a key bias adds the same amount to every score of
a query row, so softmax ignores it). ``lambda_1`` / ``lambda_2`` are our LayerScale ``gamma``s; the
relative position tables (shared, ``beit.shared_position_bias`` / ``beit.encoder.relative_position_bias``,
or per layer) are the same tables in the same layout. Both state-dict layouts of transformers are
read: v5 (``beit.layers.{i}.attention.q_proj``, ``mlp.fc1``) and v4 (``beit.encoder.layer.{i}
.attention.attention.query``, ``intermediate.dense``). A model without absolute positions gets our
(untrained) zero table. Options we do not model are refused by name.
"""

from __future__ import annotations

import re

import torch

from fastpretrain.models.beit import BEiT, BEiTConfig

_V4_TO_V5 = [  # transformers v4 key patterns -> v5
    (r"^beit\.encoder\.layer\.(\d+)\.attention\.attention\.query\.", r"beit.layers.\1.attention.q_proj."),
    (r"^beit\.encoder\.layer\.(\d+)\.attention\.attention\.key\.", r"beit.layers.\1.attention.k_proj."),
    (r"^beit\.encoder\.layer\.(\d+)\.attention\.attention\.value\.", r"beit.layers.\1.attention.v_proj."),
    (r"^beit\.encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"beit.layers.\1.attention.o_proj."),
    (r"^beit\.encoder\.layer\.(\d+)\.attention\.attention\.relative_position_bias\.",
     r"beit.layers.\1.relative_position_bias."),
    (r"^beit\.encoder\.layer\.(\d+)\.intermediate\.dense\.", r"beit.layers.\1.mlp.fc1."),
    (r"^beit\.encoder\.layer\.(\d+)\.output\.dense\.", r"beit.layers.\1.mlp.fc2."),
    (r"^beit\.encoder\.layer\.(\d+)\.", r"beit.layers.\1."),
    (r"^beit\.encoder\.relative_position_bias\.", "beit.shared_position_bias."),
]  # fmt: skip


def _v5(state: dict) -> dict:
    out = {}
    for key, value in state.items():
        if key.endswith("relative_position_index"):
            continue  # recomputed buffers
        for pattern, repl in _V4_TO_V5:
            if re.match(pattern, key):
                key = re.sub(pattern, repl, key)
                break
        out[key] = value
    return out


def beit_config_from_hf(hf_config) -> BEiTConfig:
    """Our config of an HF ``BeitConfig``; ValueError naming the HF field we cannot follow."""
    c = hf_config
    if getattr(c, "hidden_act", "gelu") != "gelu":
        raise ValueError(f"hf_config: hidden_act {c.hidden_act!r} is not supported (expected 'gelu')")
    if not getattr(c, "use_mean_pooling", True):
        raise ValueError("hf_config: use_mean_pooling=False (a second final LayerNorm) is not supported")
    size = c.image_size if isinstance(c.image_size, int) else c.image_size[0]
    if not isinstance(c.image_size, int) and c.image_size[0] != c.image_size[1]:
        raise ValueError(f"hf_config: image_size {tuple(c.image_size)} is not square")
    patch = c.patch_size if isinstance(c.patch_size, int) else c.patch_size[0]
    rel = "shared" if c.use_shared_relative_position_bias else "layer" if c.use_relative_position_bias else "none"
    scale = c.layer_scale_init_value
    return BEiTConfig(img_size=size, patch_size=patch, in_chans=c.num_channels, embed_dim=c.hidden_size,
                      depth=c.num_hidden_layers, num_heads=c.num_attention_heads,
                      mlp_ratio=c.intermediate_size / c.hidden_size, mlp_hidden=c.intermediate_size, qkv_bias=True,
                      rel_pos_bias=rel, abs_pos_embed=bool(c.use_absolute_position_embeddings),
                      init_values=scale if scale and scale > 0 else None, drop_path_rate=0.0,
                      layer_norm_eps=c.layer_norm_eps, vocab_size=c.vocab_size)  # fmt: skip


def beit_from_hf(state_dict: dict, config: BEiTConfig) -> dict:
    """Our state dict of HF ``BeitForMaskedImageModeling`` weights (either layout)."""
    hf = _v5(state_dict)
    d = config.embed_dim
    out = {
        "encoder.cls_token": hf["beit.embeddings.cls_token"],
        "encoder.mask_token": hf["beit.embeddings.mask_token"],
        "encoder.patch_embed.proj.weight": hf["beit.embeddings.patch_embeddings.projection.weight"],
        "encoder.patch_embed.proj.bias": hf["beit.embeddings.patch_embeddings.projection.bias"],
        "encoder.pos_embed": hf.get("beit.embeddings.position_embeddings",
                                    torch.zeros(1, 1 + config.num_patches, d)),
        "encoder.norm.weight": hf["layernorm.weight"], "encoder.norm.bias": hf["layernorm.bias"],
        "lm_head.weight": hf["lm_head.weight"], "lm_head.bias": hf["lm_head.bias"],
    }  # fmt: skip
    if config.rel_pos_bias == "shared":
        out["encoder.rel_pos_bias.relative_position_bias_table"] = hf["beit.shared_position_bias.relative_position_bias_table"]
    for i in range(config.depth):
        h, o = f"beit.layers.{i}.", f"encoder.blocks.{i}."
        a = h + "attention."
        q_bias = hf[a + "q_proj.bias"]
        out[o + "attn.qkv.weight"] = torch.cat([hf[a + "q_proj.weight"], hf[a + "k_proj.weight"], hf[a + "v_proj.weight"]])
        out[o + "attn.qkv.bias"] = torch.cat([q_bias, torch.zeros_like(q_bias), hf[a + "v_proj.bias"]])
        for ours, theirs in (("attn.proj", "attention.o_proj"), ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2"),
                             ("norm1", "layernorm_before"), ("norm2", "layernorm_after")):  # fmt: skip
            out[o + ours + ".weight"], out[o + ours + ".bias"] = hf[h + theirs + ".weight"], hf[h + theirs + ".bias"]
        if config.init_values is not None:
            out[o + "ls1.gamma"], out[o + "ls2.gamma"] = hf[h + "lambda_1"], hf[h + "lambda_2"]
        if config.rel_pos_bias == "layer":
            out[f"encoder.rel_pos_biases.{i}.relative_position_bias_table"] = hf[
                h + "relative_position_bias.relative_position_bias_table"
            ]
    return out


def beit_from_hf_model(hf_model) -> BEiT:
    """Our BEiT with the weights of an HF ``BeitForMaskedImageModeling`` (equal outputs, eval mode)."""
    config = beit_config_from_hf(hf_model.config)
    model = BEiT(config)
    state = beit_from_hf({k: v.detach().cpu() for k, v in hf_model.state_dict().items()}, config)
    model.load_state_dict(state)
    return model


__all__ = ["beit_config_from_hf", "beit_from_hf", "beit_from_hf_model"]
