"""NNLM (Bengio et al. 2003, "A Neural Probabilistic Language Model"): the n - 1 previous words'
embeddings from one shared table, concatenated (x), a tanh hidden layer, and a softmax over the
vocabulary of y = b + W x + U tanh(d + H x), W being the optional direct connections.

[U W] is one output matrix over the features [tanh(d + H x), x], so the output layer is one
:class:`fastpretrain.nn.losses.SampledSoftmax`: trained with a sampled softmax (TensorFlow's
semantics: candidates shared by the batch, log expected counts subtracted, accidental hits removed)
when ``num_sampled`` > 0, else with the full softmax; evaluated with the full softmax always
(``model.eval()``: the loss is the exact cross-entropy, its exp the perplexity).

A batch is blocks of consecutive word ids [B, L + context] (``fastpretrain.data.word_lm.TokenBlocks``
with ``overlap=context``): each of the L last positions is a target with its n - 1 words of context,
the windows cut from the block by ``unfold`` (one embedding lookup per token, not per window).
Sizes: ``create_model("nnlm_tiny" | "nnlm_small" | "nnlm_bengio")``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fastpretrain.checks import check_int
from fastpretrain.data.samplers import LogUniformSampler, UniformSampler
from fastpretrain.models.registry import Pretrained, register_model
from fastpretrain.nn.losses import SampledSoftmax

SAMPLERS = {"log_uniform": LogUniformSampler, "uniform": UniformSampler}


@dataclass
class NNLMConfig:
    """Sizes and the output layer's training: ``num_sampled`` candidates (0: the full softmax),
    drawn by ``sampler`` (log_uniform suits frequency-sorted ids), distinct when ``unique``."""

    vocab_size: int = 50_000
    context: int = 4  # n - 1: a 5-gram model
    embed_dim: int = 100
    hidden_dim: int = 500
    direct: bool = True
    dropout: float = 0.0
    num_sampled: int = 512
    sampler: str = "log_uniform"
    unique: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context", "embed_dim", "hidden_dim"):
            check_int(name, getattr(self, name), 1)
        check_int("num_sampled", self.num_sampled, 0)
        if self.unique and self.num_sampled > self.vocab_size:
            raise ValueError(f"num_sampled: {self.num_sampled} distinct candidates from a vocabulary of "
                             f"{self.vocab_size}")  # fmt: skip
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler: expected one of {tuple(SAMPLERS)}, got {self.sampler!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {self.dropout!r}")


class NNLM(nn.Module, Pretrained):
    model_type = "nnlm"
    config_class = NNLMConfig

    def __init__(self, config: NNLMConfig) -> None:
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.embed_dim)
        nn.init.normal_(self.embed.weight, std=c.embed_dim**-0.5)
        self.hidden = nn.Linear(c.context * c.embed_dim, c.hidden_dim)
        self.drop = nn.Dropout(c.dropout)
        features = c.hidden_dim + (c.context * c.embed_dim if c.direct else 0)
        sampler = SAMPLERS[c.sampler](c.vocab_size, seed=None) if c.num_sampled else None
        self.output = SampledSoftmax(features, c.vocab_size, c.num_sampled, sampler, unique=c.unique)

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, L + context] ids -> [B, L, F]: [tanh(d + H x), x] for each window x of context ids."""
        if tokens.dim() != 2 or tokens.shape[1] <= self.config.context:
            raise ValueError(f"tokens: expected [B, L + {self.config.context}] ids with L >= 1, "
                             f"got shape {tuple(tokens.shape)}")  # fmt: skip
        n = self.config.context
        e = self.embed(tokens)  # [B, T, m]
        x = e.unfold(1, n, 1)[:, :-1].transpose(2, 3).flatten(2)  # [B, L, n*m]: window ending before each target
        h = torch.tanh(self.hidden(self.drop(x)))
        return torch.cat([h, x], -1) if self.config.direct else h

    def forward(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """"loss": the mean over the block's L targets (sampled in training, exact otherwise);
        "items": L * B; "nll": the loss, detached, when it is the full softmax's (its exp: the perplexity)."""
        feats = self.drop(self.features(tokens))
        targets = tokens[:, self.config.context :]
        sampled = self.output.sampling()
        loss = self.output(feats.flatten(0, 1), targets.flatten()).mean()
        return {"loss": loss, "items": targets.numel(), **({} if sampled else {"nll": loss.detach()})}

    def flops_per_item(self) -> float:
        """Training FLOPs per target (forward + backward: 3 x the forward's multiply-adds x 2)."""
        c = self.config
        x = c.context * c.embed_dim
        out = (c.hidden_dim + (x if c.direct else 0)) * (c.num_sampled or c.vocab_size)
        return 6.0 * (x * c.hidden_dim + out)


register_model("nnlm_tiny", NNLM, vocab_size=2000, context=3, embed_dim=32, hidden_dim=64, num_sampled=64)
register_model("nnlm_small", NNLM, vocab_size=20_000, context=4, embed_dim=64, hidden_dim=256, num_sampled=512)
# Bengio et al.'s best AP News model: n = 6, m = 100, h = 60, direct connections (vocabulary 17,964 there)
register_model("nnlm_bengio", NNLM, vocab_size=50_000, context=5, embed_dim=100, hidden_dim=60, num_sampled=1024)
