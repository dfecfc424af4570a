"""GPT (Radford et al. 2019): a causal language model, pre-norm, tied input and output embeddings,
GPT-2's initialisation, on packed documents.

A batch is rows of tokens from a document stream; on the packed path (``cu_seqlens``) every
document of a row is its own causal sequence: attention never crosses a document boundary and
positions restart at each one (fastpretrain's varlen attention; no [S, S] mask is built). The loss
is the fused linear cross-entropy against the tied embeddings (no [N, V] logits in memory), with
optional label smoothing and z-loss. Positions: learned (GPT-2, which
:mod:`fastpretrain.interop.hf` converts to and from) or rotary. Generation samples with a KV cache.
Sizes: ``create_model("gpt_tiny" | "gpt_mini" | "gpt_124m" | "gpt_350m")`` (the last two GPT-2
small and medium).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from fastpretrain.checks import check_float, check_int
from fastpretrain.models.registry import Pretrained, register_model
from fastpretrain.nn import (
    KVCache,
    LMHeadLoss,
    RotarySelfAttention,
    TransformerBlock,
    cached_block,
    check_heads,
    positions_in_sequences,
)

IGNORE_INDEX = -100
POSITIONS = ("learned", "rope")


@dataclass
class GPTConfig:
    """Sizes, positions, regularisation and loss options; ``intermediate_size`` defaults to 4 x hidden_size."""

    vocab_size: int = 50257
    block_size: int = 1024  # the longest sequence (learned positions' table, rotary tables)
    num_layers: int = 12
    num_heads: int = 12
    hidden_size: int = 768
    intermediate_size: int | None = None
    positions: str = "learned"
    rope_theta: float = 10000.0
    dropout: float = 0.0
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    label_smoothing: float = 0.0
    z_loss: float = 0.0

    def __post_init__(self) -> None:
        self.intermediate_size = 4 * self.hidden_size if self.intermediate_size is None else self.intermediate_size
        for name in ("vocab_size", "block_size", "num_layers", "num_heads", "hidden_size", "intermediate_size"):
            check_int(name, getattr(self, name), 1)
        check_heads("num_heads", self.hidden_size, self.num_heads)
        if self.positions not in POSITIONS:
            raise ValueError(f"positions: expected one of {POSITIONS}, got {self.positions!r}")
        check_float("rope_theta", self.rope_theta, 1.0)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {self.dropout!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing: expected a float in [0, 1), got {self.label_smoothing!r}")
        check_float("z_loss", self.z_loss, 0.0)
        check_float("layer_norm_eps", self.layer_norm_eps, 0.0)
        check_float("initializer_range", self.initializer_range, 0.0)


def gpt_layer(c: GPTConfig) -> TransformerBlock:
    """One GPT-2 layer: pre-norm causal self-attention and a tanh-GELU MLP, dropout after each
    branch's output projection and on the attention probabilities."""
    block = TransformerBlock(c.hidden_size, c.num_heads, c.intermediate_size, causal=True, proj_drop=c.dropout,
                             mlp_hidden_drop=0.0, attn_drop=c.dropout, eps=c.layer_norm_eps)  # fmt: skip
    block.mlp.act = nn.GELU(approximate="tanh")  # GPT-2's gelu_new
    if c.positions == "rope":
        block.attn = RotarySelfAttention(c.hidden_size, c.num_heads, c.block_size, c.rope_theta,
                                         attn_drop=c.dropout, proj_drop=c.dropout)  # fmt: skip
    return block


class GPT(Pretrained, nn.Module):
    """``model(input_ids, labels)``: dense [B, S] rows, or packed [total] tokens with ``cu_seqlens``
    (one sequence per document, see :func:`fastpretrain.data.collate_lm_rows`)."""

    model_type, config_class = "gpt", GPTConfig

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config: expected a GPTConfig, got {type(config).__name__}")
        c = self.config = config
        self.wte = nn.Embedding(c.vocab_size, c.hidden_size)
        self.wpe = nn.Embedding(c.block_size, c.hidden_size) if c.positions == "learned" else None
        self.drop = nn.Dropout(c.dropout)
        self.layers = nn.ModuleList(gpt_layer(c) for _ in range(c.num_layers))
        self.final_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.criterion = LMHeadLoss(label_smoothing=c.label_smoothing, z_loss=c.z_loss, ignore_index=IGNORE_INDEX)
        self.apply(self._init_weights)
        for layer in self.layers:  # GPT-2: residual projections scaled by 1 / sqrt(2 x layers)
            for proj in (layer.attn.proj, layer.mlp.fc2):
                nn.init.normal_(proj.weight, std=c.initializer_range / math.sqrt(2 * c.num_layers))

    def _init_weights(self, m: nn.Module) -> None:
        """GPT-2's: N(0, 0.02) weights and embeddings, zero biases, unit LayerNorms."""
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=self.config.initializer_range)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def _embed(self, input_ids: torch.Tensor, position_ids: torch.Tensor, longest: int) -> torch.Tensor:
        """Token (+ learned position) embeddings; ``longest``: the longest sequence, checked against block_size."""
        if longest > self.config.block_size:
            raise ValueError(
                f"input_ids: a sequence of {longest} tokens is longer than block_size {self.config.block_size}"
            )
        x = self.wte(input_ids)
        return self.drop(x if self.wpe is None else x + self.wpe(position_ids))

    def hidden_states(self, input_ids: torch.Tensor, cu_seqlens: torch.Tensor | None = None,
                      max_seqlen: int | None = None) -> torch.Tensor:  # fmt: skip
        """Final (normed) states: [B, S, E] of dense rows, or [total, E] of packed tokens."""
        if input_ids.dim() == 1 and cu_seqlens is not None:
            if max_seqlen is None:
                max_seqlen = int(cu_seqlens.diff().max())
            x = self._embed(input_ids, positions_in_sequences(cu_seqlens, input_ids.shape[0]), max_seqlen)
            for layer in self.layers:
                x = layer(x, cu_seqlens=cu_seqlens, max_seqlen=max_seqlen)
        elif input_ids.dim() == 2 and cu_seqlens is None:
            x = self._embed(input_ids, torch.arange(input_ids.shape[1], device=input_ids.device), input_ids.shape[1])
            for layer in self.layers:
                x = layer(x)
        else:
            raise ValueError(f"input_ids: expected dense [B, S] ids, or packed [total] ids with cu_seqlens; got shape "
                             f"{tuple(input_ids.shape)} {'with' if cu_seqlens is not None else 'without'} cu_seqlens")  # fmt: skip
        return self.final_norm(x)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None,
                cu_seqlens: torch.Tensor | None = None, max_seqlen: int | None = None) -> dict:  # fmt: skip
        """With ``labels`` (the next token of each position, ``-100`` where none, same shape as
        ``input_ids``): {"loss", "items" (labelled tokens), "nll" (plain cross-entropy), "z_loss" if
        set}, the logits never materialised. Without: {"logits"} [..., V] (for evaluation and interop)."""
        hidden = self.hidden_states(input_ids, cu_seqlens, max_seqlen)
        if labels is None:
            return {"logits": hidden @ self.wte.weight.T}
        if labels.shape != input_ids.shape:
            raise ValueError(
                f"labels: expected the shape of input_ids {tuple(input_ids.shape)}, got {tuple(labels.shape)}"
            )
        labels = labels.reshape(-1)
        out = self.criterion(hidden.reshape(-1, hidden.shape[-1]), self.wte.weight, labels)
        return {**out, "items": (labels != IGNORE_INDEX).sum()}

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
        """[B, T + max_new_tokens]: the prompts ``input_ids`` [B, T] continued by sampling (temperature
        0: greedy; ``top_k``: from the k likeliest), one token a step through a KV cache."""
        check_int("max_new_tokens", max_new_tokens, 0)
        check_float("temperature", temperature, 0.0)
        if top_k is not None:
            check_int("top_k", top_k, 1)
        if input_ids.dim() != 2 or input_ids.shape[1] == 0:
            raise ValueError(f"input_ids: expected [B, T] prompts with T >= 1, got shape {tuple(input_ids.shape)}")
        total = input_ids.shape[1] + max_new_tokens
        if total > self.config.block_size:
            raise ValueError(f"max_new_tokens: {input_ids.shape[1]} prompt + {max_new_tokens} new tokens exceed "
                             f"block_size {self.config.block_size}")  # fmt: skip
        was_training = self.training
        self.eval()
        cache, tokens, x = KVCache(len(self.layers), total), input_ids, input_ids
        for _ in range(max_new_tokens):
            start = cache.lengths[0]
            h = self._embed(x, torch.arange(start, start + x.shape[1], device=x.device), start + x.shape[1])
            for i, layer in enumerate(self.layers):
                h = cached_block(layer, h, cache, i)
            logits = self.final_norm(h[:, -1]).float() @ self.wte.weight.float().T
            x = _sample(logits, temperature, top_k, generator)
            tokens = torch.cat([tokens, x], 1)
        self.train(was_training)
        return tokens

    def flops_per_item(self, seq_len: int = 1024) -> float:
        """Training FLOPs per token (3x forward: the layers at ``seq_len`` and the tied head), for MFU."""
        c = self.config
        layers = sum(layer.flops(seq_len) for layer in self.layers) / seq_len
        return 3.0 * (layers + 2 * c.hidden_size * c.vocab_size)


def _sample(logits: torch.Tensor, temperature: float, top_k: int | None, generator) -> torch.Tensor:
    """[B, 1] next tokens from [B, V] logits."""
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, -1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator)


register_model("gpt_tiny", GPT, num_layers=2, hidden_size=128, num_heads=2, block_size=256)
register_model("gpt_mini", GPT, num_layers=4, hidden_size=256, num_heads=4, block_size=512)
register_model("gpt_124m", GPT, num_layers=12, hidden_size=768, num_heads=12)
register_model("gpt_350m", GPT, num_layers=24, hidden_size=1024, num_heads=16)
