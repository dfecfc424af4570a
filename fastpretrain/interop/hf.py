"""Hugging Face ``transformers`` formats: ``BertForPreTraining`` and ``ViTMAEForPreTraining``
weights and configs to and from ours, and BERT directories that ``from_pretrained`` loads on
either side. transformers itself is needed only by :func:`bert_to_hf_model` (it builds one)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import save_file

from fastpretrain.atomic import atomic_path, atomic_write
from fastpretrain.interop.rename import RenameTable, load_converted
from fastpretrain.models.bert import BertConfig, BertForPreTraining
from fastpretrain.models.mae import MAE, MAEConfig
from fastpretrain.models.registry import check_weights, read_json, read_weights

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


# Our BertConfig fields and Hugging Face's names for them (config.json of BertForPreTraining).
_BERT_FIELDS = {
    "vocab_size": "vocab_size", "hidden_size": "hidden_size", "num_layers": "num_hidden_layers",
    "num_heads": "num_attention_heads", "intermediate_size": "intermediate_size",
    "max_position_embeddings": "max_position_embeddings", "type_vocab_size": "type_vocab_size",
    "hidden_dropout": "hidden_dropout_prob", "attention_dropout": "attention_probs_dropout_prob",
    "layer_norm_eps": "layer_norm_eps", "initializer_range": "initializer_range", "pad_token_id": "pad_token_id",
}  # fmt: skip
_BERT_OPTIONAL = {"initializer_range": 0.02, "pad_token_id": 0}  # older config.json files may lack these


def bert_config_to_hf(config: BertConfig) -> dict:
    """The fields of a Hugging Face ``BertConfig`` (config.json of ``BertForPreTraining``)."""
    if config.pre_norm:
        raise ValueError("pre_norm: Hugging Face BERT is post-norm; a pre-norm model has no HF counterpart")
    fields = {hf: getattr(config, ours) for ours, hf in _BERT_FIELDS.items()}
    return {"architectures": ["BertForPreTraining"], "model_type": "bert", "hidden_act": "gelu", **fields,
            "tie_word_embeddings": True}  # fmt: skip


def _from_hf_fields(cls, d: dict, names: dict, optional: dict, source: str):
    """``cls`` (our config) from Hugging Face config dict ``d`` (``names``: ours -> theirs): a
    missing or invalid field is a ValueError naming ``source`` and Hugging Face's field."""
    missing = [hf for ours, hf in names.items() if d.get(hf) is None and ours not in optional]
    if missing:
        raise ValueError(f"{source}: lacks {', '.join(missing)}")
    values = {ours: optional[ours] if d.get(hf) is None else d[hf] for ours, hf in names.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        field, sep, rest = str(e).partition(": ")
        raise ValueError(f"{source}: {names.get(field, field)}: {rest}" if sep else f"{source}: {e}") from None


def bert_config_from_hf(d: dict, source: str = "config") -> BertConfig:
    """Our BertConfig of a Hugging Face BERT config dict (``config.json`` or ``model.config.to_dict()``);
    errors name ``source`` and Hugging Face's field (e.g. num_attention_heads giving a head width
    the attention kernels lack, :data:`~fastpretrain.nn.HEAD_DIMS`)."""
    for field, supported in (("hidden_act", "gelu"), ("position_embedding_type", "absolute")):
        if d.get(field, supported) != supported:
            raise ValueError(f"{source}: {field} {d[field]!r} is not supported (only {supported!r})")
    return _from_hf_fields(BertConfig, d, _BERT_FIELDS, _BERT_OPTIONAL, source)


def _bert_with(state_dict: dict, config: BertConfig, source: str) -> BertForPreTraining:
    """A BertForPreTraining of ``config`` with HF weights ``state_dict``, checked before loading."""
    return load_converted(BertForPreTraining(config), state_dict, bert_from_hf, source,
                          "not the BertForPreTraining its config gives")  # fmt: skip


def bert_from_hf_model(hf_model) -> BertForPreTraining:
    """Our model with the weights of a ``transformers.BertForPreTraining``."""
    config = bert_config_from_hf(hf_model.config.to_dict(), "hf_model.config")
    return _bert_with(hf_model.state_dict(), config, "hf_model")


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
    :func:`save_hf_bert` wrote; any problem is an error naming the file and the field or key."""
    directory = Path(directory)
    for name in ("config.json", "model.safetensors"):
        if not (directory / name).is_file():
            hint = " (a pytorch_model.bin: load it with transformers, then bert_from_hf_model)" * (
                name == "model.safetensors" and (directory / "pytorch_model.bin").is_file())  # fmt: skip
            raise FileNotFoundError(f"directory: {str(directory)!r} has no {name}{hint}")
    config_file, weights = directory / "config.json", directory / "model.safetensors"
    config = bert_config_from_hf(read_json(config_file, "directory"), f"directory: {config_file}")
    return _bert_with(read_weights(weights, argument="directory"), config, f"directory: {weights}")


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


# Our MAEConfig fields and Hugging Face's names for them (ViTMAEConfig); the MLP widths are carried exactly.
_MAE_FIELDS = {
    "img_size": "image_size", "patch_size": "patch_size", "in_chans": "num_channels", "embed_dim": "hidden_size",
    "depth": "num_hidden_layers", "num_heads": "num_attention_heads", "mlp_hidden": "intermediate_size",
    "decoder_embed_dim": "decoder_hidden_size", "decoder_depth": "decoder_num_hidden_layers",
    "decoder_num_heads": "decoder_num_attention_heads", "decoder_mlp_hidden": "decoder_intermediate_size",
    "qkv_bias": "qkv_bias", "layer_norm_eps": "layer_norm_eps", "mask_ratio": "mask_ratio",
    "norm_pix_loss": "norm_pix_loss",
}  # fmt: skip


def _square_size(value, source: str):
    """HF's ``image_size``: an int, or a square (n, n) pair as HF also accepts; n."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise ValueError(f"{source}: image_size {tuple(value)} is not square; MAE here (as HF's sin-cos "
                             f"position table) takes square images")  # fmt: skip
        return value[0]
    return value


def mae_config_from_hf(hf_config, source: str = "hf_config") -> MAEConfig:
    """The MAEConfig of a transformers ``ViTMAEConfig`` (or its ``to_dict()``): sizes with the exact
    MLP widths, eps, mask ratio, norm_pix_loss. Errors name ``source`` and Hugging Face's field."""
    d = hf_config if isinstance(hf_config, dict) else hf_config.to_dict()
    if d.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"{source}: hidden_act {d['hidden_act']!r} is not supported (only 'gelu')")
    d = {**d, "image_size": _square_size(d.get("image_size"), source), "norm_pix_loss": bool(d.get("norm_pix_loss"))}
    return _from_hf_fields(MAEConfig, d, _MAE_FIELDS, {}, source)


def mae_from_hf_model(hf_model) -> MAE:
    """Our MAE with the weights of a ``transformers.ViTMAEForPreTraining`` (checked before loading)."""
    model, ours = MAE(mae_config_from_hf(hf_model.config, "hf_model.config")), mae_from_hf(hf_model.state_dict())
    check_weights(ours, model.state_dict(), "hf_model: its weights do not fit its config")
    model.load_state_dict(ours)
    return model


__all__ = ["bert_config_from_hf", "bert_config_to_hf", "bert_from_hf", "bert_from_hf_model", "bert_to_hf",
           "bert_to_hf_model", "load_hf_bert", "mae_config_from_hf", "mae_from_hf", "mae_from_hf_model", "mae_to_hf",
           "save_hf_bert"]  # fmt: skip
