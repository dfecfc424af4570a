"""BERT (Devlin et al. 2019) for pre-training: masked LM + next-sentence prediction.

The encoder runs on packed tokens only: a batch is unpadded once after the embeddings and every
layer works on [total, E] rows with ``cu_seqlens`` (fastpretrain's varlen attention), so no FLOP is
spent on padding. The MLM head runs only on the selected positions, gathered from those rows, with
its decoder tied to the word embeddings; NSP reads the [CLS] rows. Post-norm as the original
(and Hugging Face's ``BertForPreTraining``, which :meth:`BertForPreTraining.to_hf_state_dict` and
:meth:`~BertForPreTraining.from_hf_state_dict` convert to and from), or pre-norm with a final
LayerNorm.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from fastpretrain.atomic import atomic_path, atomic_write
from fastpretrain.checks import check_int
from fastpretrain.nn import MultiheadSelfAttention, unpad
from fastpretrain.ops import linear_cross_entropy

SIZES = {"tiny": (2, 128), "mini": (4, 256), "small": (4, 512), "medium": (8, 512), "base": (12, 768), "large": (24, 1024)}
IGNORE_INDEX = -100


@dataclass
class BertConfig:
    """Sizes and regularisation; ``num_heads`` defaults to hidden_size / 64, ``intermediate_size``
    to 4 x hidden_size (Google's BERT sizes, :meth:`from_size`)."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int | None = None
    intermediate_size: int | None = None
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int = 0
    pre_norm: bool = False

    def __post_init__(self) -> None:
        self.num_heads = self.hidden_size // 64 if self.num_heads is None else self.num_heads
        self.intermediate_size = 4 * self.hidden_size if self.intermediate_size is None else self.intermediate_size
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size"):  # fmt: skip
            check_int(name, getattr(self, name), 1)
        if self.hidden_size % self.num_heads:
            raise ValueError(f"num_heads: {self.num_heads} does not divide hidden_size {self.hidden_size}")
        for name in ("hidden_dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1), got {getattr(self, name)!r}")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id: expected an id in [0, {self.vocab_size}), got {self.pad_token_id!r}")

    @classmethod
    def from_size(cls, size: str, **overrides) -> BertConfig:
        """tiny (2 layers, 128), mini (4, 256), small (4, 512), medium (8, 512), base (12, 768), large (24, 1024)."""
        if size not in SIZES:
            raise ValueError(f"size: expected one of {tuple(SIZES)}, got {size!r}")
        layers, hidden = SIZES[size]
        return cls(**{"num_layers": layers, "hidden_size": hidden, **overrides})

    def to_hf_dict(self) -> dict:
        """The fields of a Hugging Face ``BertConfig`` (config.json of ``BertForPreTraining``)."""
        if self.pre_norm:
            raise ValueError("pre_norm: Hugging Face BERT is post-norm; a pre-norm model has no HF counterpart")
        return {"architectures": ["BertForPreTraining"], "model_type": "bert", "vocab_size": self.vocab_size,
                "hidden_size": self.hidden_size, "num_hidden_layers": self.num_layers,
                "num_attention_heads": self.num_heads, "intermediate_size": self.intermediate_size,
                "hidden_act": "gelu", "hidden_dropout_prob": self.hidden_dropout,
                "attention_probs_dropout_prob": self.attention_dropout,
                "max_position_embeddings": self.max_position_embeddings, "type_vocab_size": self.type_vocab_size,
                "initializer_range": self.initializer_range, "layer_norm_eps": self.layer_norm_eps,
                "pad_token_id": self.pad_token_id, "tie_word_embeddings": True}  # fmt: skip

    @classmethod
    def from_hf_dict(cls, d: dict) -> BertConfig:
        if d.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"config: hidden_act {d['hidden_act']!r} is not supported (only exact 'gelu')")
        return cls(vocab_size=d["vocab_size"], hidden_size=d["hidden_size"], num_layers=d["num_hidden_layers"],
                   num_heads=d["num_attention_heads"], intermediate_size=d["intermediate_size"],
                   max_position_embeddings=d["max_position_embeddings"], type_vocab_size=d["type_vocab_size"],
                   hidden_dropout=d["hidden_dropout_prob"], attention_dropout=d["attention_probs_dropout_prob"],
                   layer_norm_eps=d["layer_norm_eps"], initializer_range=d.get("initializer_range", 0.02),
                   pad_token_id=d.get("pad_token_id") or 0)  # fmt: skip


def _mlm_loss(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor):
    """Mean cross-entropy of ``hidden @ weight.T + bias`` against ``targets`` (ignore_index -100),
    fused so the [N, V] logits are never materialised. Under autocast the inputs are cast to its
    dtype, as autocast would for the matmul (the MLM LayerNorm hands over float32)."""
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
    bias = None if bias is None else bias.to(dtype)
    return linear_cross_entropy(hidden.to(dtype), weight.to(dtype), targets, bias, ignore_index=IGNORE_INDEX)


class BertEmbeddings(nn.Module):
    """Word + learned position + token type embeddings, LayerNorm, dropout."""

    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.word = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.drop = nn.Dropout(c.hidden_dropout)

    def forward(self, input_ids, token_type_ids, position_ids) -> torch.Tensor:
        return self.drop(self.norm(self.word(input_ids) + self.position(position_ids) + self.token_type(token_type_ids)))


class BertLayer(nn.Module):
    """Self-attention then a GELU MLP, each with a residual; LayerNorm after each sum (post-norm)
    or on each branch's input (pre-norm)."""

    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.pre_norm = c.pre_norm
        self.attn = MultiheadSelfAttention(c.hidden_size, c.num_heads, attn_drop=c.attention_dropout, proj_drop=c.hidden_dropout)
        self.attn_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.fc1 = nn.Linear(c.hidden_size, c.intermediate_size)
        self.fc2 = nn.Linear(c.intermediate_size, c.hidden_size)
        self.mlp_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.drop = nn.Dropout(c.hidden_dropout)

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(F.gelu(self.fc1(x))))

    def forward(self, x: torch.Tensor, cu_seqlens: torch.Tensor, max_seqlen: int) -> torch.Tensor:
        """x: packed [total, E]."""
        if self.pre_norm:
            x = x + self.attn(self.attn_norm(x), cu_seqlens=cu_seqlens, max_seqlen=max_seqlen)
            return x + self.mlp(self.mlp_norm(x))
        x = self.attn_norm(x + self.attn(x, cu_seqlens=cu_seqlens, max_seqlen=max_seqlen))
        return self.mlp_norm(x + self.mlp(x))


class BertForPreTraining(nn.Module):
    """BERT with its MLM and NSP heads: ``model(**batch)`` on a packed or padded batch from
    :func:`fastpretrain.data.collate_packed` / :func:`~fastpretrain.data.collate_padded`."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"config: expected a BertConfig, got {type(config).__name__}")
        c = self.config = config
        self.embeddings = BertEmbeddings(c)
        self.layers = nn.ModuleList(BertLayer(c) for _ in range(c.num_layers))
        self.final_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps) if c.pre_norm else nn.Identity()
        self.pooler = nn.Linear(c.hidden_size, c.hidden_size)
        self.nsp = nn.Linear(c.hidden_size, 2)
        self.mlm_transform = nn.Linear(c.hidden_size, c.hidden_size)
        self.mlm_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.mlm_bias = nn.Parameter(torch.zeros(c.vocab_size))  # the decoder weight is embeddings.word.weight
        self.apply(self._init_weights)

    def _init_weights(self, m: nn.Module) -> None:
        """As Hugging Face initialises BERT: N(0, 0.02) weights, zero biases and padding row."""
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=self.config.initializer_range)
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.Embedding) and m.padding_idx is not None:
            nn.init.zeros_(m.weight[m.padding_idx])

    def encode(self, input_ids, token_type_ids, position_ids, cu_seqlens, max_seqlen: int) -> torch.Tensor:
        """Final hidden states [total, E] of packed tokens."""
        x = self.embeddings(input_ids, token_type_ids, position_ids)
        for layer in self.layers:
            x = layer(x, cu_seqlens, max_seqlen)
        return self.final_norm(x)

    def mlm_features(self, hidden: torch.Tensor) -> torch.Tensor:
        """The MLM transform (dense, GELU, LayerNorm) of selected rows, before the tied decoder."""
        return self.mlm_norm(F.gelu(self.mlm_transform(hidden)))

    def nsp_logits(self, hidden: torch.Tensor, cu_seqlens: torch.Tensor) -> torch.Tensor:
        """[B, 2] from the pooled [CLS] rows (the first row of each sequence)."""
        return self.nsp(torch.tanh(self.pooler(hidden[cu_seqlens[:-1].long()])))

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, cu_seqlens: torch.Tensor | None = None,
                max_seqlen: int | None = None, attention_mask: torch.Tensor | None = None,
                mlm_positions: torch.Tensor | None = None, mlm_labels: torch.Tensor | None = None,
                nsp_labels: torch.Tensor | None = None) -> dict:  # fmt: skip
        """Packed: ``input_ids`` [total] with ``cu_seqlens`` [B + 1] (``max_seqlen`` and
        ``position_ids`` computed when absent), ``mlm_positions`` rows of the packed batch.
        Padded: ``input_ids`` [B, S] with ``attention_mask`` (1 = real token; default all), unpadded
        here; ``mlm_positions`` flat indices into [B * S]. ``token_type_ids`` default to 0.

        Returns, with labels, {"loss": MLM + NSP, "items": real tokens, "mlm_loss", "nsp_loss",
        "nsp_accuracy"}; without, {"mlm_logits" [M, V] at ``mlm_positions`` (every real token when
        None, in packed order), "nsp_logits" [B, 2], "cls_hidden" [B, E] (final [CLS] states)}.
        """
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if input_ids.dim() == 2:
            input_ids, token_type_ids, position_ids, cu_seqlens, max_seqlen, mlm_positions = _unpad_batch(
                input_ids, token_type_ids, position_ids, attention_mask, mlm_positions)  # fmt: skip
        elif input_ids.dim() != 1 or cu_seqlens is None:
            raise ValueError(f"input_ids: expected packed [total] ids with cu_seqlens, or padded [B, S] ids, "
                             f"got shape {tuple(input_ids.shape)}{'' if cu_seqlens is not None else ' without cu_seqlens'}")  # fmt: skip
        lengths = cu_seqlens.diff()
        if max_seqlen is None:
            max_seqlen = int(lengths.max())
        if position_ids is None:
            starts = torch.repeat_interleave(cu_seqlens[:-1].long(), lengths.long(), output_size=input_ids.shape[0])
            position_ids = torch.arange(input_ids.shape[0], device=input_ids.device) - starts
        hidden = self.encode(input_ids, token_type_ids, position_ids, cu_seqlens, max_seqlen)
        nsp_logits = self.nsp_logits(hidden, cu_seqlens)
        selected = hidden if mlm_positions is None else hidden[mlm_positions]
        features = self.mlm_features(selected)
        if mlm_labels is None and nsp_labels is None:
            return {"mlm_logits": F.linear(features, self.embeddings.word.weight, self.mlm_bias), "nsp_logits": nsp_logits,
                    "cls_hidden": hidden[cu_seqlens[:-1].long()]}  # fmt: skip
        out = {"items": input_ids.shape[0]}
        losses = []
        if mlm_labels is not None:
            out["mlm_loss"] = _mlm_loss(features, self.embeddings.word.weight, self.mlm_bias, mlm_labels)
            losses.append(out["mlm_loss"])
        if nsp_labels is not None:
            out["nsp_loss"] = F.cross_entropy(nsp_logits.float(), nsp_labels)
            out["nsp_accuracy"] = (nsp_logits.argmax(-1) == nsp_labels).float().mean().detach()
            losses.append(out["nsp_loss"])
        out["loss"] = sum(losses)
        return out

    def flops_per_item(self, seq_len: int = 128, mlm_fraction: float = 0.15) -> float:
        """Training FLOPs per real token (forward + backward = 3x forward) at sequence length
        ``seq_len``: the layers' matmuls, attention (4 S E a layer forward), and the MLM head on
        ``mlm_fraction`` of the tokens; for MFU."""
        c = self.config
        layer = 2 * (4 * c.hidden_size**2 + 2 * c.hidden_size * c.intermediate_size) + 4 * seq_len * c.hidden_size
        head = mlm_fraction * 2 * (c.hidden_size**2 + c.hidden_size * c.vocab_size)
        return 3.0 * (c.num_layers * layer + head)

    # -- Hugging Face interchange ---------------------------------------------------------------

    def to_hf_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights under ``BertForPreTraining``'s names (query/key/value split from qkv)."""
        self.config.to_hf_dict()  # raises for pre-norm
        ours = self.state_dict()
        out = {}
        for mine, theirs in _renames(self.config.num_layers):
            out[theirs] = ours[mine]
        for i in range(self.config.num_layers):
            for kind in ("weight", "bias"):
                q, k, v = ours[f"layers.{i}.attn.qkv.{kind}"].chunk(3)
                for name, t in (("query", q), ("key", k), ("value", v)):
                    out[f"bert.encoder.layer.{i}.attention.self.{name}.{kind}"] = t
        out["cls.predictions.decoder.weight"] = ours["embeddings.word.weight"]
        out["cls.predictions.decoder.bias"] = ours["mlm_bias"]
        return out

    @classmethod
    def from_hf_state_dict(cls, state: dict[str, torch.Tensor], config: BertConfig) -> BertForPreTraining:
        """A model holding the weights of a ``BertForPreTraining`` state dict."""
        model = cls(config)
        ours = {}
        try:
            for mine, theirs in _renames(config.num_layers):
                ours[mine] = state[theirs]
            for i in range(config.num_layers):
                for kind in ("weight", "bias"):
                    parts = [state[f"bert.encoder.layer.{i}.attention.self.{n}.{kind}"] for n in ("query", "key", "value")]
                    ours[f"layers.{i}.attn.qkv.{kind}"] = torch.cat(parts)
        except KeyError as e:
            raise ValueError(f"state: not a BertForPreTraining state dict of {config.num_layers} layers, missing {e}") from None
        model.load_state_dict(ours)
        return model

    def to_hf(self):
        """An equivalent ``transformers.BertForPreTraining`` (needs transformers)."""
        from transformers import BertConfig as HFConfig
        from transformers import BertForPreTraining as HFModel

        fields = {k: v for k, v in self.config.to_hf_dict().items() if k != "model_type"}
        hf = HFModel(HFConfig(**fields))
        hf.load_state_dict(self.to_hf_state_dict())
        return hf

    @classmethod
    def from_hf(cls, hf_model) -> BertForPreTraining:
        """Our model with the weights of a ``transformers.BertForPreTraining``."""
        return cls.from_hf_state_dict(hf_model.state_dict(), BertConfig.from_hf_dict(hf_model.config.to_dict()))

    def save_pretrained(self, directory: str | os.PathLike, tokenizer=None) -> Path:
        """A directory ``transformers.BertForPreTraining.from_pretrained`` loads: config.json,
        model.safetensors, and (given a tokenizer) vocab.txt + tokenizer.json. Post-norm only."""
        from fastpretrain.data.wordpiece import save_wordpiece

        directory = Path(directory)
        config = self.config.to_hf_dict()
        state = {k: v.detach().cpu().contiguous() for k, v in self.to_hf_state_dict().items()}
        del state["cls.predictions.decoder.weight"], state["cls.predictions.decoder.bias"]  # tied, as HF saves them
        with atomic_path(directory / "model.safetensors") as tmp:
            save_file(state, tmp, metadata={"format": "pt"})
        with atomic_write(directory / "config.json", "w") as f:
            json.dump(config, f, indent=2)
        if tokenizer is not None:
            save_wordpiece(tokenizer, directory)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> BertForPreTraining:
        """Load a ``save_pretrained`` directory (ours or Hugging Face's, safetensors weights)."""
        directory = Path(directory)
        for name in ("config.json", "model.safetensors"):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"directory: {str(directory)!r} has no {name}")
        config = BertConfig.from_hf_dict(json.loads((directory / "config.json").read_text()))
        return cls.from_hf_state_dict(load_file(directory / "model.safetensors"), config)


def _renames(num_layers: int) -> list[tuple[str, str]]:
    """(our name, Hugging Face name) of every weight that maps one to one."""
    pairs = [("embeddings.word.weight", "bert.embeddings.word_embeddings.weight"),
             ("embeddings.position.weight", "bert.embeddings.position_embeddings.weight"),
             ("embeddings.token_type.weight", "bert.embeddings.token_type_embeddings.weight"),
             ("mlm_bias", "cls.predictions.bias")]  # fmt: skip
    modules = [("embeddings.norm", "bert.embeddings.LayerNorm"), ("pooler", "bert.pooler.dense"),
               ("nsp", "cls.seq_relationship"), ("mlm_transform", "cls.predictions.transform.dense"),
               ("mlm_norm", "cls.predictions.transform.LayerNorm")]  # fmt: skip
    for i in range(num_layers):
        hf = f"bert.encoder.layer.{i}"
        modules += [(f"layers.{i}.attn.proj", f"{hf}.attention.output.dense"),
                    (f"layers.{i}.attn_norm", f"{hf}.attention.output.LayerNorm"),
                    (f"layers.{i}.fc1", f"{hf}.intermediate.dense"), (f"layers.{i}.fc2", f"{hf}.output.dense"),
                    (f"layers.{i}.mlp_norm", f"{hf}.output.LayerNorm")]  # fmt: skip
    return pairs + [(f"{m}.{k}", f"{h}.{k}") for m, h in modules for k in ("weight", "bias")]


def _unpad_batch(input_ids, token_type_ids, position_ids, attention_mask, mlm_positions):
    """Padded [B, S] inputs as packed ones, ``mlm_positions`` remapped from [B * S] to packed rows."""
    b, s = input_ids.shape
    mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    if position_ids is None:
        position_ids = torch.arange(s, device=input_ids.device).expand(b, s)
    packed = unpad(torch.stack([input_ids, token_type_ids, position_ids.expand(b, s)], -1), mask)
    if mlm_positions is not None:
        rows = torch.full((b * s,), -1, dtype=torch.long, device=input_ids.device)
        rows[packed.indices] = torch.arange(packed.indices.numel(), device=input_ids.device)
        mlm_positions = rows[mlm_positions]
    ids, types, positions = packed.x.unbind(-1)
    return ids, types, positions, packed.cu_seqlens, packed.max_seqlen, mlm_positions

