"""Hugging Face ``GPT2LMHeadModel`` weights and configs to and from our :class:`~fastpretrain.models.GPT`
(learned positions), and GPT-2 directories that ``from_pretrained`` loads on either side.

GPT-2's linear layers are ``Conv1D``: weights stored [in, out], the transpose of ``nn.Linear``'s,
so those four per layer are transposed on the way; ``c_attn`` is already our fused ``qkv``
(queries, keys, values in that order). ``lm_head.weight`` is the tied copy of the token embeddings.
transformers itself is needed only by :func:`gpt_to_hf_model` (it builds one)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import save_file

from fastpretrain.atomic import atomic_path, atomic_write
from fastpretrain.interop.hf import _from_hf_fields
from fastpretrain.interop.rename import RenameTable, load_converted
from fastpretrain.models.gpt import GPT, GPTConfig
from fastpretrain.models.registry import read_json, read_weights

_LAYER = "transformer.h.{i}."
GPT2 = RenameTable(
    [
        ("wte.weight", "transformer.wte.weight"),
        ("wpe.weight", "transformer.wpe.weight"),
        ("layers.{i}.norm1.", _LAYER + "ln_1."),
        ("layers.{i}.attn.qkv.", _LAYER + "attn.c_attn."),
        ("layers.{i}.attn.proj.", _LAYER + "attn.c_proj."),
        ("layers.{i}.norm2.", _LAYER + "ln_2."),
        ("layers.{i}.mlp.fc1.", _LAYER + "mlp.c_fc."),
        ("layers.{i}.mlp.fc2.", _LAYER + "mlp.c_proj."),
        ("final_norm.", "transformer.ln_f."),
    ],
    ours="GPT (fastpretrain)",
    theirs="Hugging Face GPT2LMHeadModel",
    tied=(("lm_head.weight", "transformer.wte.weight"),),
    required=("wte.weight", "wpe.weight", "final_norm.weight"),
)
_CONV1D = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")
_BUFFERS = (".attn.bias", ".attn.masked_bias")  # older transformers' causal-mask buffers


def gpt_from_hf(state_dict: dict) -> dict:
    """``GPT2LMHeadModel`` (or ``GPT2Model`` with ``transformer.`` names) weights -> ours."""
    state = {k: v.t() if k.endswith(_CONV1D) else v for k, v in state_dict.items()
             if not k.endswith(_BUFFERS)}  # fmt: skip
    return GPT2.to_ours(state)


def gpt_to_hf(state_dict: dict) -> dict:
    """Our GPT weights -> ``GPT2LMHeadModel``'s (Conv1D weights transposed, the tied lm_head included)."""
    if "wpe.weight" not in state_dict:
        raise ValueError("state_dict: no wpe.weight (a positions='rope' model?); GPT-2 has learned positions only")
    return {k: v.t().contiguous() if k.endswith(_CONV1D) else v for k, v in GPT2.to_theirs(state_dict).items()}


# Our GPTConfig fields and Hugging Face's GPT2Config names for them.
_FIELDS = {
    "vocab_size": "vocab_size", "block_size": "n_positions", "num_layers": "n_layer", "num_heads": "n_head",
    "hidden_size": "n_embd", "intermediate_size": "n_inner", "dropout": "resid_pdrop",
    "layer_norm_eps": "layer_norm_epsilon", "initializer_range": "initializer_range",
}  # fmt: skip
_OPTIONAL = {"intermediate_size": None, "dropout": 0.1, "layer_norm_eps": 1e-5, "initializer_range": 0.02}
_ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh")  # both the tanh approximation


def gpt_config_to_hf(config: GPTConfig, eos_token_id: int | None = None) -> dict:
    """The fields of a Hugging Face ``GPT2Config`` (config.json of ``GPT2LMHeadModel``); learned positions only."""
    if config.positions != "learned":
        raise ValueError(f"positions: GPT-2 has learned positions; a {config.positions!r} model has no HF counterpart")
    fields = {hf: getattr(config, ours) for ours, hf in _FIELDS.items()}
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "activation_function": "gelu_new", **fields,
            "embd_pdrop": config.dropout, "attn_pdrop": config.dropout, "scale_attn_weights": True,
            "bos_token_id": eos_token_id, "eos_token_id": eos_token_id, "tie_word_embeddings": True}  # fmt: skip


def gpt_config_from_hf(d: dict, source: str = "config") -> GPTConfig:
    """Our GPTConfig of a Hugging Face GPT-2 config dict (``config.json`` or ``model.config.to_dict()``);
    errors name ``source`` and Hugging Face's field."""
    if d.get("activation_function", "gelu_new") not in _ACTIVATIONS:
        raise ValueError(f"{source}: activation_function {d['activation_function']!r} is not supported "
                         f"(only {' or '.join(_ACTIVATIONS)})")  # fmt: skip
    for field, supported in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                             ("add_cross_attention", False), ("tie_word_embeddings", True)):  # fmt: skip
        if d.get(field, supported) != supported:
            raise ValueError(f"{source}: {field}={d[field]!r} is not supported (only {supported!r})")
    drops = {f: d[f] for f in ("resid_pdrop", "embd_pdrop", "attn_pdrop") if d.get(f) is not None}
    if len(set(drops.values())) > 1:
        raise ValueError(f"{source}: resid_pdrop, embd_pdrop and attn_pdrop differ ({drops}); GPT here has one dropout")
    return _from_hf_fields(GPTConfig, d, _FIELDS, _OPTIONAL, source)


def _gpt_with(state_dict: dict, config: GPTConfig, source: str) -> GPT:
    """A GPT of ``config`` with HF weights ``state_dict``, checked before loading."""
    return load_converted(GPT(config), state_dict, gpt_from_hf, source,
                          "not the GPT2LMHeadModel its config gives")  # fmt: skip


def gpt_from_hf_model(hf_model) -> GPT:
    """Our GPT with the weights of a ``transformers.GPT2LMHeadModel``."""
    return _gpt_with(hf_model.state_dict(), gpt_config_from_hf(hf_model.config.to_dict(), "hf_model.config"),
                     "hf_model")  # fmt: skip


def gpt_to_hf_model(model: GPT, eos_token_id: int | None = None):
    """An equivalent ``transformers.GPT2LMHeadModel`` (needs transformers)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    fields = {k: v for k, v in gpt_config_to_hf(model.config, eos_token_id).items() if k != "model_type"}
    hf = GPT2LMHeadModel(GPT2Config(**fields))
    hf.load_state_dict(gpt_to_hf(model.state_dict()))
    return hf


def save_hf_gpt(model: GPT, directory: str | os.PathLike, tokenizer=None) -> Path:
    """A directory ``transformers.GPT2LMHeadModel.from_pretrained`` loads: config.json and
    model.safetensors (the tied lm_head left out, as HF saves it), and given a BPE tokenizer its
    tokenizer.json, vocab.json and merges.txt (``GPT2TokenizerFast.from_pretrained`` loads them)."""
    from fastpretrain.data.bpe import EOT, save_bpe

    directory = Path(directory)
    eos = None if tokenizer is None else tokenizer.token_to_id(EOT)
    config = gpt_config_to_hf(model.config, eos)
    state = {k: v.detach().cpu().contiguous() for k, v in gpt_to_hf(model.state_dict()).items()}
    for copy, _ in GPT2.tied:
        del state[copy]
    with atomic_path(directory / "model.safetensors") as tmp:
        save_file(state, tmp, metadata={"format": "pt"})
    with atomic_write(directory / "config.json", "w") as f:
        json.dump(config, f, indent=2)
    if tokenizer is not None:
        save_bpe(tokenizer, directory)
        with atomic_write(directory / "tokenizer_config.json", "w") as f:
            json.dump({"tokenizer_class": "GPT2Tokenizer", "bos_token": EOT, "eos_token": EOT, "unk_token": EOT,
                       "model_max_length": model.config.block_size}, f, indent=2)  # fmt: skip
    return directory


def load_hf_gpt(directory: str | os.PathLike) -> GPT:
    """Our GPT from a Hugging Face GPT-2 directory (config.json + model.safetensors), e.g. one
    :func:`save_hf_gpt` wrote; any problem is an error naming the file and the field or key."""
    directory = Path(directory)
    for name in ("config.json", "model.safetensors"):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"directory: {str(directory)!r} has no {name}")
    config_file, weights = directory / "config.json", directory / "model.safetensors"
    config = gpt_config_from_hf(read_json(config_file, "directory"), f"directory: {config_file}")
    return _gpt_with(read_weights(weights, argument="directory"), config, f"directory: {weights}")


__all__ = ["gpt_config_from_hf", "gpt_config_to_hf", "gpt_from_hf", "gpt_from_hf_model", "gpt_to_hf",
           "gpt_to_hf_model", "load_hf_gpt", "save_hf_gpt"]  # fmt: skip
