"""BERT (Devlin et al. 2019) for pre-training: masked LM + next-sentence prediction.

The encoder runs on packed tokens only: a batch is unpadded once after the embeddings and every
layer works on [total, E] rows with ``cu_seqlens`` (fastpretrain's varlen attention), so no FLOP is
spent on padding. The MLM head runs only on the selected positions, gathered from those rows, with
its decoder tied to the word embeddings; NSP reads the [CLS] rows. Post-norm as the original
(and Hugging Face's ``BertForPreTraining``, which :mod:`fastpretrain.interop.hf` converts to and
from), or pre-norm with a final LayerNorm. Sizes: ``create_model("bert_tiny" | "bert_mini" |
"bert_small" | "bert_medium" | "bert_base" | "bert_large")`` (Google's BERT sizes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fastpretrain.checks import check_int
from fastpretrain.models.registry import Pretrained, register_model
from fastpretrain.nn import LinearCrossEntropyLoss, TransformerBlock, check_heads, unpad

IGNORE_INDEX = -100


@dataclass
class BertConfig:
    """Sizes and regularisation; ``num_heads`` defaults to hidden_size / 64, ``intermediate_size``
    to 4 x hidden_size (as in Google's BERT sizes)."""

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
        check_heads("num_heads", self.hidden_size, self.num_heads)
        for name in ("hidden_dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1), got {getattr(self, name)!r}")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id: expected an id in [0, {self.vocab_size}), got {self.pad_token_id!r}")


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


def bert_layer(c: BertConfig) -> TransformerBlock:
    """One BERT layer: self-attention then a GELU MLP, each a residual branch with dropout after its
    output projection; LayerNorm after each sum (post-norm) or on each branch's input (pre-norm)."""
    return TransformerBlock(c.hidden_size, c.num_heads, c.intermediate_size, pre_norm=c.pre_norm,
                            proj_drop=c.hidden_dropout, mlp_hidden_drop=0.0, attn_drop=c.attention_dropout,
                            eps=c.layer_norm_eps)  # fmt: skip


class BertForPreTraining(Pretrained, nn.Module):
    """BERT with its MLM and NSP heads: ``model(**batch)`` on a packed or padded batch from
    :func:`fastpretrain.data.collate_packed` / :func:`~fastpretrain.data.collate_padded`."""

    model_type, config_class = "bert", BertConfig

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"config: expected a BertConfig, got {type(config).__name__}")
        c = self.config = config
        self.embeddings = BertEmbeddings(c)
        self.layers = nn.ModuleList(bert_layer(c) for _ in range(c.num_layers))
        self.final_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps) if c.pre_norm else nn.Identity()
        self.pooler = nn.Linear(c.hidden_size, c.hidden_size)
        self.nsp = nn.Linear(c.hidden_size, 2)
        self.mlm_transform = nn.Linear(c.hidden_size, c.hidden_size)
        self.mlm_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.mlm_bias = nn.Parameter(torch.zeros(c.vocab_size))  # the decoder weight is embeddings.word.weight
        self.mlm_criterion = LinearCrossEntropyLoss(ignore_index=IGNORE_INDEX)  # fused: no [M, V] logits
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
            x = layer(x, cu_seqlens=cu_seqlens, max_seqlen=max_seqlen)
        return self.final_norm(x)

    def mlm_features(self, hidden: torch.Tensor) -> torch.Tensor:
        """The MLM transform (dense, GELU, LayerNorm) of selected rows, before the tied decoder."""
        return self.mlm_norm(F.gelu(self.mlm_transform(hidden)))

    def nsp_logits(self, cls_hidden: torch.Tensor) -> torch.Tensor:
        """[B, 2] from the final states of each sequence's first position [B, E], through the pooler."""
        return self.nsp(torch.tanh(self.pooler(cls_hidden)))

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, cu_seqlens: torch.Tensor | None = None,
                max_seqlen: int | None = None, attention_mask: torch.Tensor | None = None,
                mlm_positions: torch.Tensor | None = None, mlm_labels: torch.Tensor | None = None,
                nsp_labels: torch.Tensor | None = None) -> dict:  # fmt: skip
        """Packed: ``input_ids`` [total] with ``cu_seqlens`` [B + 1] (``max_seqlen`` and
        ``position_ids`` computed when absent), ``mlm_positions`` rows of the packed batch.
        Padded: ``input_ids`` [B, S] with ``attention_mask`` (1 = real token; default all), unpadded
        here; ``mlm_positions`` flat indices into [B * S]. ``token_type_ids`` default to 0.
        The pooler reads position 0 as Hugging Face's does: a left-padded batch (a pad token at
        position 0) runs padded, so that row's state is the pad token's, as HF computes it.

        Returns, with labels, {"loss": MLM + NSP, "items": real tokens, "mlm_loss", "nsp_loss",
        "nsp_accuracy"}; without, {"mlm_logits" [M, V] at ``mlm_positions`` (every real token when
        None, in packed order), "nsp_logits" [B, 2], "cls_hidden" [B, E] (final states at position 0)}.
        """
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if input_ids.dim() == 2:
            selected, cls_hidden, items = self._encode_padded(input_ids, token_type_ids, position_ids, attention_mask,
                                                              mlm_positions)  # fmt: skip
        elif input_ids.dim() == 1 and cu_seqlens is not None:
            hidden = self._encode_packed(input_ids, token_type_ids, position_ids, cu_seqlens, max_seqlen)
            selected = hidden if mlm_positions is None else hidden[mlm_positions]
            cls_hidden, items = hidden[cu_seqlens[:-1].long()], input_ids.shape[0]
        else:
            raise ValueError(f"input_ids: expected packed [total] ids with cu_seqlens, or padded [B, S] ids, "
                             f"got shape {tuple(input_ids.shape)}{'' if cu_seqlens is not None else ' without cu_seqlens'}")  # fmt: skip
        return self._heads(self.mlm_features(selected), cls_hidden, items, mlm_labels, nsp_labels)

    def _encode_packed(self, input_ids, token_type_ids, position_ids, cu_seqlens, max_seqlen) -> torch.Tensor:
        """Final states [total, E] of a packed batch, ``max_seqlen`` and the positions filled in when absent."""
        lengths = cu_seqlens.diff()
        if max_seqlen is None:
            max_seqlen = int(lengths.max())
        if position_ids is None:
            starts = torch.repeat_interleave(cu_seqlens[:-1].long(), lengths.long(), output_size=input_ids.shape[0])
            position_ids = torch.arange(input_ids.shape[0], device=input_ids.device) - starts
        return self.encode(input_ids, token_type_ids, position_ids, cu_seqlens, max_seqlen)

    def _encode_padded(self, input_ids, token_type_ids, position_ids, attention_mask, mlm_positions):
        """(final states of the MLM rows, of position 0 [B, E], real tokens) of a padded batch:
        unpadded when position 0 is real in every row, else run padded (the pooler reads pad states)."""
        b, s = input_ids.shape
        mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        if position_ids is None:
            position_ids = torch.arange(s, device=input_ids.device).expand(b, s)
        if bool(mask[:, 0].all()):
            ids, types, positions, cu_seqlens, max_seqlen, rows = _unpad_batch(input_ids, token_type_ids, position_ids,
                                                                               mask, mlm_positions)  # fmt: skip
            hidden = self.encode(ids, types, positions, cu_seqlens, max_seqlen)
            selected = hidden if rows is None else hidden[rows]
            return selected, hidden[cu_seqlens[:-1].long()], ids.shape[0]
        x = self.embeddings(input_ids, token_type_ids, position_ids.expand(b, s))
        for layer in self.layers:
            x = layer(x, key_padding_mask=mask)
        x = self.final_norm(x)
        flat = x.flatten(0, 1)
        selected = flat[mask.flatten()] if mlm_positions is None else flat[mlm_positions]
        return selected, x[:, 0], int(mask.sum())

    def _heads(self, features, cls_hidden, items, mlm_labels, nsp_labels) -> dict:
        """The outputs of :meth:`forward` from the MLM features and the position-0 states."""
        nsp_logits = self.nsp_logits(cls_hidden)
        if mlm_labels is None and nsp_labels is None:
            return {"mlm_logits": F.linear(features, self.embeddings.word.weight, self.mlm_bias), "nsp_logits": nsp_logits,
                    "cls_hidden": cls_hidden}  # fmt: skip
        out = {"items": items}
        losses = []
        if mlm_labels is not None:
            out["mlm_loss"] = self.mlm_criterion(features, self.embeddings.word.weight, mlm_labels, self.mlm_bias)
            losses.append(out["mlm_loss"])
        if nsp_labels is not None:
            out["nsp_loss"] = F.cross_entropy(nsp_logits.float(), nsp_labels)
            out["nsp_accuracy"] = (nsp_logits.argmax(-1) == nsp_labels).float().mean().detach()
            losses.append(out["nsp_loss"])
        out["loss"] = sum(losses)
        return out

    def flops_per_item(self, seq_len: int = 128, mlm_fraction: float = 0.15) -> float:
        """Training FLOPs per real token (forward + backward = 3x forward) at sequence length
        ``seq_len``: the layers (:meth:`~fastpretrain.nn.TransformerBlock.flops`), and the MLM head on
        ``mlm_fraction`` of the tokens; for MFU."""
        c = self.config
        layers = sum(layer.flops(seq_len) for layer in self.layers) / seq_len
        head = mlm_fraction * 2 * (c.hidden_size**2 + c.hidden_size * c.vocab_size)
        return 3.0 * (layers + head)


def _unpad_batch(input_ids, token_type_ids, position_ids, mask, mlm_positions):
    """Padded [B, S] inputs as packed ones, ``mlm_positions`` remapped from [B * S] to packed rows."""
    b, s = input_ids.shape
    packed = unpad(torch.stack([input_ids, token_type_ids, position_ids.expand(b, s)], -1), mask)
    if mlm_positions is not None:
        rows = torch.full((b * s,), -1, dtype=torch.long, device=input_ids.device)
        rows[packed.indices] = torch.arange(packed.indices.numel(), device=input_ids.device)
        mlm_positions = rows[mlm_positions]
    ids, types, positions = packed.x.unbind(-1)
    return ids, types, positions, packed.cu_seqlens, packed.max_seqlen, mlm_positions


register_model("bert_tiny", BertForPreTraining, num_layers=2, hidden_size=128)
register_model("bert_mini", BertForPreTraining, num_layers=4, hidden_size=256)
register_model("bert_small", BertForPreTraining, num_layers=4, hidden_size=512)
register_model("bert_medium", BertForPreTraining, num_layers=8, hidden_size=512)
register_model("bert_base", BertForPreTraining, num_layers=12, hidden_size=768)
register_model("bert_large", BertForPreTraining, num_layers=24, hidden_size=1024)
