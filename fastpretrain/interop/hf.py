"""Hugging Face ``transformers`` formats: ``BertForPreTraining`` and ``ViTMAEForPreTraining``
weights and configs to and from ours, and BERT directories that ``from_pretrained`` loads on
either side. transformers itself is needed only by :func:`bert_to_hf_model` (it builds one)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import load_file, save_file

from fastpretrain.atomic import atomic_path, atomic_write
from fastpretrain.interop.rename import RenameTable
from fastpretrain.models.bert import BertConfig, BertForPreTraining
from fastpretrain.models.mae import MAEConfig

# --- BERT (BertForPreTraining) --------------------------------------------------------------------

_HF_LAYER = "bert.encoder.layer.{i}."
BERT = RenameTable(
    [
        ("embeddings.word.weight", "bert.embeddings.word_embeddings.weight"),
        ("embeddings.position.weight", "bert.embeddings.position_embeddings.weight"),
        ("embeddings.token_type.weight", "bert.embeddings.token_type_embeddings.weight"),
        ("embeddings.norm.", "bert.embeddings.LayerNorm."),
        ("layers.{i}.attn.qkv.", tuple(f"{_HF_LAYER}attention.self.{n}." for n in ("query", "key", "value"))),
        ("layers.{i}.attn.proj.", _HF_LAYER + "attention.output.dense."),
        ("layers.{i}.norm1.", _HF_LAYER + "attention.output.LayerNorm."),
        ("layers.{i}.mlp.fc1.", _HF_LAYER + "intermediate.dense."),
        ("layers.{i}.mlp.fc2.", _HF_LAYER + "output.dense."),
        ("layers.{i}.norm2.", _HF_LAYER + "output.LayerNorm."),
        ("pooler.", "bert.pooler.dense."),
        ("nsp.", "cls.seq_relationship."),
        ("mlm_transform.", "cls.predictions.transform.dense."),
        ("mlm_norm.", "cls.predictions.transform.LayerNorm."),
        ("mlm_bias", "cls.predictions.bias"),
    ],
    ours="BertForPreTraining (fastpretrain)",
    theirs="Hugging Face BertForPreTraining",
    drop=("bert.embeddings.position_ids",),
    unsupported={"final_norm.": "pre_norm: Hugging Face BERT is post-norm; a pre-norm model has no counterpart"},
    tied=(
        ("cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight"),
        ("cls.predictions.decoder.bias", "cls.predictions.bias"),
    ),
    required=("embeddings.word.weight", "mlm_bias"),
)


def bert_from_hf(state_dict: dict) -> dict:
    """``BertForPreTraining`` weights -> ours (query/key/value concatenated into ``qkv``)."""
    return BERT.to_ours(state_dict)


def bert_to_hf(state_dict: dict) -> dict:
    """Our BERT weights -> ``BertForPreTraining``'s (``qkv`` split; the tied decoder weight and bias included)."""
    return BERT.to_theirs(state_dict)


def bert_config_to_hf(config: BertConfig) -> dict:
    """The fields of a Hugging Face ``BertConfig`` (config.json of ``BertForPreTraining``)."""
    if config.pre_norm:
        raise ValueError("pre_norm: Hugging Face BERT is post-norm; a pre-norm model has no HF counterpart")
    return {"architectures": ["BertForPreTraining"], "model_type": "bert", "vocab_size": config.vocab_size,
            "hidden_size": config.hidden_size, "num_hidden_layers": config.num_layers,
            "num_attention_heads": config.num_heads, "intermediate_size": config.intermediate_size,
            "hidden_act": "gelu", "hidden_dropout_prob": config.hidden_dropout,
            "attention_probs_dropout_prob": config.attention_dropout,
            "max_position_embeddings": config.max_position_embeddings, "type_vocab_size": config.type_vocab_size,
            "initializer_range": config.initializer_range, "layer_norm_eps": config.layer_norm_eps,
            "pad_token_id": config.pad_token_id, "tie_word_embeddings": True}  # fmt: skip


def bert_config_from_hf(d: dict) -> BertConfig:
    """Our BertConfig of a Hugging Face BERT config dict (``config.json`` or ``model.config.to_dict()``)."""
    if d.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"config: hidden_act {d['hidden_act']!r} is not supported (only exact 'gelu')")
    return BertConfig(vocab_size=d["vocab_size"], hidden_size=d["hidden_size"], num_layers=d["num_hidden_layers"],
                      num_heads=d["num_attention_heads"], intermediate_size=d["intermediate_size"],
                      max_position_embeddings=d["max_position_embeddings"], type_vocab_size=d["type_vocab_size"],
                      hidden_dropout=d["hidden_dropout_prob"], attention_dropout=d["attention_probs_dropout_prob"],
                      layer_norm_eps=d["layer_norm_eps"], initializer_range=d.get("initializer_range", 0.02),
                      pad_token_id=d.get("pad_token_id") or 0)  # fmt: skip


def _bert_with(state_dict: dict, config: BertConfig) -> BertForPreTraining:
    model = BertForPreTraining(config)
    ours = bert_from_hf(state_dict)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(ours))
    if missing:
        raise ValueError(f"state_dict: not a BertForPreTraining of {config.num_layers} layers: missing "
                         f"{', '.join(missing[:4])}")  # fmt: skip
    model.load_state_dict(ours)
    return model


def bert_from_hf_model(hf_model) -> BertForPreTraining:
    """Our model with the weights of a ``transformers.BertForPreTraining``."""
    return _bert_with(hf_model.state_dict(), bert_config_from_hf(hf_model.config.to_dict()))


def bert_to_hf_model(model: BertForPreTraining):
    """An equivalent ``transformers.BertForPreTraining`` (needs transformers)."""
    from transformers import BertConfig as HFConfig
    from transformers import BertForPreTraining as HFModel

    fields = {k: v for k, v in bert_config_to_hf(model.config).items() if k != "model_type"}
    hf = HFModel(HFConfig(**fields))
    hf.load_state_dict(bert_to_hf(model.state_dict()))
    return hf


def save_hf_bert(model: BertForPreTraining, directory: str | os.PathLike, tokenizer=None) -> Path:
    """A directory ``transformers.BertForPreTraining.from_pretrained`` loads: config.json,
    model.safetensors, and (given a tokenizer) vocab.txt + tokenizer.json. Post-norm only."""
    from fastpretrain.data.wordpiece import save_wordpiece

    directory = Path(directory)
    config = bert_config_to_hf(model.config)
    state = {k: v.detach().cpu().contiguous() for k, v in bert_to_hf(model.state_dict()).items()}
    for copy, _ in BERT.tied:  # tied, as HF saves them
        del state[copy]
    with atomic_path(directory / "model.safetensors") as tmp:
        save_file(state, tmp, metadata={"format": "pt"})
    with atomic_write(directory / "config.json", "w") as f:
        json.dump(config, f, indent=2)
    if tokenizer is not None:
        save_wordpiece(tokenizer, directory)
    return directory


def load_hf_bert(directory: str | os.PathLike) -> BertForPreTraining:
    """Our model from a Hugging Face BERT directory (config.json + model.safetensors), e.g. one
    :func:`save_hf_bert` wrote."""
    directory = Path(directory)
    for name in ("config.json", "model.safetensors"):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"directory: {str(directory)!r} has no {name}")
    config = bert_config_from_hf(json.loads((directory / "config.json").read_text()))
    return _bert_with(load_file(directory / "model.safetensors"), config)


# --- MAE (ViTMAEForPreTraining) -------------------------------------------------------------------


def _mae_table(layout: str) -> RenameTable:
    """Our MAE <-> ViTMAEForPreTraining names of transformers >= 5 (``layout="v5"``) or 4 (``"v4"``)."""
    if layout == "v5":
        encoder, qkv = "vit.layers.{i}.", tuple(f"attention.{n}_proj." for n in "qkv")
        attn_out, fc1, fc2 = "attention.o_proj.", "mlp.fc1.", "mlp.fc2."
    else:
        encoder, qkv = "vit.encoder.layer.{i}.", tuple(f"attention.attention.{n}." for n in ("query", "key", "value"))
        attn_out, fc1, fc2 = "attention.output.dense.", "intermediate.dense.", "output.dense."
    block = [("attn.qkv.", qkv), ("attn.proj.", attn_out), ("norm1.", "layernorm_before."),
             ("norm2.", "layernorm_after."), ("mlp.fc1.", fc1), ("mlp.fc2.", fc2)]  # fmt: skip
    rules = [
        ("encoder.cls_token", "vit.embeddings.cls_token"),
        ("encoder.pos_embed", "vit.embeddings.position_embeddings"),
        ("encoder.patch_embed.proj.", "vit.embeddings.patch_embeddings.projection."),
        ("encoder.norm.", "vit.layernorm."),
        ("mask_token", "decoder.mask_token"),
        ("decoder_pos_embed", "decoder.decoder_pos_embed"),
        ("decoder_embed.", "decoder.decoder_embed."),
        ("decoder_norm.", "decoder.decoder_norm."),
        ("decoder_pred.", "decoder.decoder_pred."),
    ]
    for ours, hf in (("encoder.blocks.{i}.", encoder), ("decoder_blocks.{i}.", "decoder.decoder_layers.{i}.")):
        rules += [(ours + a, tuple(hf + t for t in b) if isinstance(b, tuple) else hf + b) for a, b in block]
    return RenameTable(rules, ours="MAE (fastpretrain)", theirs=f"Hugging Face ViTMAEForPreTraining ({layout} names)",
                       required=("encoder.cls_token", "encoder.patch_embed.proj.weight"))  # fmt: skip


_MAE = {layout: _mae_table(layout) for layout in ("v4", "v5")}


def mae_from_hf(state_dict: dict) -> dict:
    """HF ``ViTMAEForPreTraining`` weights (transformers 4 or 5 names) -> our :class:`MAE`'s; the
    q/k/v projections are concatenated into our fused ``qkv``. Unknown keys raise ValueError."""
    layout = "v4" if any(k.startswith("vit.encoder.layer.") for k in state_dict) else "v5"
    return _MAE[layout].to_ours(state_dict)


def mae_to_hf(state_dict: dict, layout: str | None = None) -> dict:
    """Our MAE weights -> HF ``ViTMAEForPreTraining`` names: ``layout="v5"`` (transformers >= 5)
    or ``"v4"`` (transformers 4 and the hub's checkpoints); default: the installed transformers'."""
    if layout is None:
        try:
            import transformers

            layout = "v4" if int(transformers.__version__.split(".")[0]) < 5 else "v5"
        except ImportError:
            layout = "v4"
    if layout not in _MAE:
        raise ValueError(f"layout: expected 'v4' or 'v5', got {layout!r}")
    return _MAE[layout].to_theirs(state_dict)


def mae_config_from_hf(hf_config) -> MAEConfig:
    """The MAEConfig of a transformers ``ViTMAEConfig`` (sizes, eps, mask ratio, norm_pix_loss)."""
    c = hf_config
    same_ratio = c.intermediate_size * c.decoder_hidden_size == c.decoder_intermediate_size * c.hidden_size
    if c.hidden_act != "gelu" or not same_ratio:
        raise ValueError("hf_config: only exact GELU and the same MLP ratio in encoder and decoder are supported")
    return MAEConfig(img_size=c.image_size, patch_size=c.patch_size, in_chans=c.num_channels, embed_dim=c.hidden_size,
                     depth=c.num_hidden_layers, num_heads=c.num_attention_heads,
                     decoder_embed_dim=c.decoder_hidden_size, decoder_depth=c.decoder_num_hidden_layers,
                     decoder_num_heads=c.decoder_num_attention_heads, mlp_ratio=c.intermediate_size / c.hidden_size,
                     qkv_bias=c.qkv_bias, layer_norm_eps=c.layer_norm_eps, mask_ratio=c.mask_ratio,
                     norm_pix_loss=bool(c.norm_pix_loss))  # fmt: skip


__all__ = ["bert_config_from_hf", "bert_config_to_hf", "bert_from_hf", "bert_from_hf_model", "bert_to_hf",
           "bert_to_hf_model", "load_hf_bert", "mae_config_from_hf", "mae_from_hf", "mae_to_hf",
           "save_hf_bert"]  # fmt: skip
