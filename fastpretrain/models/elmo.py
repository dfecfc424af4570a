"""ELMo (Peters et al. 2018): a bidirectional language model over character-built word vectors,
whose layers give contextual word vectors.

- Token encoder (context-free, "layer 0"): each word's UTF-8 bytes, begin/end-of-word marks and
  padding to ``max_chars`` (:func:`char_ids`), embedded, a 1-D convolution per filter width with
  max-pooling over the word, ReLU, ``highway`` highway layers, a linear projection.
- Two language models, forward and backward, each ``num_layers`` LSTM layers with a projection
  (torch's ``nn.LSTM(proj_size=...)``: cuDNN on the GPU, no hand-written cell), dropout between
  layers, a residual connection around every layer after the first (bilm-tf's skip connections).
- One output layer shared by both directions, trained with the sampled softmax (TensorFlow's
  semantics, unique log-uniform candidates over the frequency-sorted vocabulary, on the device),
  scored with the full softmax in eval mode; the loss is the mean of the two directions'.

A training batch is blocks of L + 1 consecutive word ids of packed sentences (BPTT windows:
``TokenBlocks(ids, L, overlap=1)``; the LSTM state starts at zero in each block): the forward LM
reads the block left to right and predicts ids 1..L, the backward LM right to left and predicts
0..L-1. Word ids become characters through ``char_table`` (a buffer saved with the weights, set by
:meth:`ELMo.set_vocabulary`); :meth:`ELMo.layers` takes characters directly, so any word embeds.
Contextual vectors: ``layers(chars)`` -> [K + 1, B, T, 2 x projection_dim] (layer 0 duplicated,
the others the forward and backward states of the same position), mixed by ``nn.ScalarMix``.
Sizes: ``create_model("elmo_tiny" | "elmo_small")`` (elmo_small: AllenNLP's 2x1024_128_2048cnn_1xhighway).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fastpretrain.checks import check_int
from fastpretrain.data.samplers import LogUniformSampler
from fastpretrain.models.registry import Pretrained, register_model
from fastpretrain.nn.losses import SampledSoftmax

# Character ids (+1 for the padding id 0 of an absent word): bytes 0-255, then ELMo's marks.
BOW, EOW, PAD_CHAR = 258, 259, 260
NUM_CHARS = 262


def char_ids(word: str, max_chars: int = 50) -> list[int]:
    """ELMo's character ids of ``word``: [BOW] + its UTF-8 bytes (cut to max_chars - 2) + [EOW],
    padded, each + 1."""
    raw = list(word.encode("utf-8"))[: max_chars - 2]
    return [c + 1 for c in [BOW, *raw, EOW] + [PAD_CHAR] * (max_chars - 2 - len(raw))]


def char_tensor(sentences: list[list[str]], max_chars: int = 50) -> torch.Tensor:
    """[B, T, max_chars] int64 character ids of tokenised sentences, absent words all 0."""
    longest = max((len(s) for s in sentences), default=0)
    out = torch.zeros(len(sentences), max(longest, 1), max_chars, dtype=torch.long)
    for i, sentence in enumerate(sentences):
        if sentence:
            out[i, : len(sentence)] = torch.tensor([char_ids(w, max_chars) for w in sentence])
    return out


@dataclass
class ELMoConfig:
    """The character CNN (``filter_counts[i]`` filters of width ``filter_widths[i]``; ELMo's
    small config by default), the biLM and the sampled softmax."""

    vocab_size: int = 50_000
    max_chars: int = 50
    char_dim: int = 16
    filter_widths: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
    filter_counts: tuple[int, ...] = (32, 32, 64, 128, 256, 512, 1024)
    highway: int = 1
    lstm_dim: int = 1024
    projection_dim: int = 128
    num_layers: int = 2
    residual: bool = True
    dropout: float = 0.1
    num_sampled: int = 8192
    unique: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_chars", "char_dim", "lstm_dim", "projection_dim", "num_layers"):
            check_int(name, getattr(self, name), 1)
        check_int("max_chars", self.max_chars, 3)
        check_int("highway", self.highway, 0)
        check_int("num_sampled", self.num_sampled, 0)
        self.filter_widths, self.filter_counts = tuple(self.filter_widths), tuple(self.filter_counts)
        for name in ("filter_widths", "filter_counts"):
            values = getattr(self, name)
            if not values or not all(isinstance(x, int) and x >= 1 for x in values):
                raise ValueError(f"{name}: expected ints >= 1, got {values!r}")
        if len(self.filter_widths) != len(self.filter_counts):
            raise ValueError(f"filter_counts: expected one count per width ({len(self.filter_widths)}), "
                             f"got {len(self.filter_counts)}")  # fmt: skip
        if max(self.filter_widths) > self.max_chars:
            raise ValueError(f"filter_widths: {max(self.filter_widths)} is above max_chars ({self.max_chars})")
        if self.projection_dim > self.lstm_dim:
            raise ValueError(f"projection_dim: {self.projection_dim} is above lstm_dim ({self.lstm_dim})")
        if self.unique and self.num_sampled > self.vocab_size:
            raise ValueError(f"num_sampled: {self.num_sampled} distinct candidates from {self.vocab_size} words")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {self.dropout!r}")


class Highway(nn.Module):
    """y = g * x + (1 - g) * relu(W_h x), g = sigmoid(W_g x) (Srivastava et al. 2015), carry gate biased open."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 2 * dim)
        nn.init.constant_(self.proj.bias[dim:], 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, g = self.proj(x).chunk(2, -1)
        g = torch.sigmoid(g)
        return g * x + (1 - g) * torch.relu(h)


class CharCNN(nn.Module):
    """[N, max_chars] character ids -> [N, projection_dim] word vectors."""

    def __init__(self, c: ELMoConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(NUM_CHARS, c.char_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(c.char_dim, n, w) for w, n in zip(c.filter_widths, c.filter_counts))
        width = sum(c.filter_counts)
        self.highways = nn.ModuleList(Highway(width) for _ in range(c.highway))
        self.proj = nn.Linear(width, c.projection_dim)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        x = self.embed(chars).transpose(1, 2)  # [N, char_dim, max_chars]
        x = torch.cat([torch.relu(conv(x).amax(-1)) for conv in self.convs], -1)
        for highway in self.highways:
            x = highway(x)
        return self.proj(x)


class LanguageModel(nn.Module):
    """One direction: LSTM layers with projections, residual around each layer after the first."""

    def __init__(self, c: ELMoConfig) -> None:
        super().__init__()
        self.lstms = nn.ModuleList(nn.LSTM(c.projection_dim, c.lstm_dim, proj_size=c.projection_dim, batch_first=True)
                                   for _ in range(c.num_layers))  # fmt: skip
        self.drop = nn.Dropout(c.dropout)
        self.residual = c.residual

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[B, T, P] -> each layer's [B, T, P] outputs."""
        outputs = []
        for i, lstm in enumerate(self.lstms):
            h, _ = lstm(self.drop(x))
            x = h + x if self.residual and i > 0 else h
            outputs.append(x)
        return outputs


class ELMo(nn.Module, Pretrained):
    model_type = "elmo"
    config_class = ELMoConfig

    def __init__(self, config: ELMoConfig) -> None:
        super().__init__()
        self.config = c = config
        self.encoder = CharCNN(c)
        self.forward_lm, self.backward_lm = LanguageModel(c), LanguageModel(c)
        self.drop = nn.Dropout(c.dropout)
        sampler = LogUniformSampler(c.vocab_size, seed=None) if c.num_sampled else None
        self.output = SampledSoftmax(c.projection_dim, c.vocab_size, c.num_sampled, sampler, unique=c.unique)
        # word id -> its characters (set_vocabulary); all padding until then
        self.register_buffer("char_table", torch.zeros(c.vocab_size, c.max_chars, dtype=torch.int32))

    def set_vocabulary(self, words: list[str]) -> ELMo:
        """The characters of each word id (the training vocabulary, in id order)."""
        if len(words) != self.config.vocab_size:
            raise ValueError(f"words: expected {self.config.vocab_size} words (vocab_size), got {len(words)}")
        table = torch.tensor([char_ids(w, self.config.max_chars) for w in words], dtype=torch.int32)
        self.char_table.copy_(table)
        return self

    def token_vectors(self, chars: torch.Tensor) -> torch.Tensor:
        """[..., max_chars] character ids -> [..., projection_dim] context-free vectors (layer 0)."""
        return self.encoder(chars.reshape(-1, chars.shape[-1])).reshape(*chars.shape[:-1], -1)

    def word_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """Layer 0 of word ids, the character CNN run once per distinct id of the batch."""
        unique, inverse = torch.unique(ids, return_inverse=True)
        return self.token_vectors(self.char_table[unique].long())[inverse]

    def directions(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
        """Layer 0 [B, T, P] -> the forward and the backward LM's layers, aligned to the input
        positions. With ``lengths`` [B] (words before a row's padding) the backward LM reads each
        row from its own last word, so padding reaches neither direction's real words."""
        forward = self.forward_lm(x)
        if lengths is None:
            return forward, [h.flip(1) for h in self.backward_lm(x.flip(1))]
        t = torch.arange(x.shape[1], device=x.device)
        index = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # reverse within each length
        flip = lambda h: h.gather(1, index[..., None].expand_as(h))
        return forward, [flip(h) for h in self.backward_lm(flip(x))]

    def forward(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """[B, L + 1] word ids -> "loss" (mean of the directions', sampled in training, exact
        otherwise), "forward_loss", "backward_loss" (detached), "items" (B * L predictions per
        direction), and "nll" (the loss, detached) when it is the full softmax's."""
        if tokens.dim() != 2 or tokens.shape[1] < 2:
            raise ValueError(f"tokens: expected [B, L + 1] word ids with L >= 1, got shape {tuple(tokens.shape)}")
        forward, backward = self.directions(self.word_vectors(tokens))
        fwd, bwd = self.drop(forward[-1][:, :-1]), self.drop(backward[-1][:, 1:])
        hidden = torch.cat([fwd.flatten(0, 1), bwd.flatten(0, 1)])
        targets = torch.cat([tokens[:, 1:].flatten(), tokens[:, :-1].flatten()])
        sampled = self.output.sampling()
        losses = self.output(hidden, targets)
        n = targets.numel() // 2
        f, b = losses[:n].mean(), losses[n:].mean()
        loss = (f + b) / 2
        out = {"loss": loss, "forward_loss": f.detach(), "backward_loss": b.detach(), "items": n}
        return out if sampled else {**out, "nll": loss.detach()}

    def layers(self, chars: torch.Tensor) -> torch.Tensor:
        """[B, T, max_chars] character ids (:func:`char_tensor`: sentences padded at the end with
        all-0 words) -> [num_layers + 1, B, T, 2 P]: layer 0 twice, then each layer's forward and
        backward states; a sentence's vectors do not depend on the padding of its batch."""
        if chars.dim() != 3 or chars.shape[-1] != self.config.max_chars:
            raise ValueError(f"chars: expected [B, T, {self.config.max_chars}] character ids, "
                             f"got shape {tuple(chars.shape)}")  # fmt: skip
        x = self.token_vectors(chars)
        forward, backward = self.directions(x, (chars != 0).any(-1).sum(1))
        return torch.stack([torch.cat([x, x], -1), *(torch.cat(fb, -1) for fb in zip(forward, backward))])

    def flops_per_item(self) -> float:
        """Training FLOPs per item (a position both directions predict): LSTMs and output layer, not the CNN."""
        c = self.config
        lstm = c.num_layers * (4 * c.lstm_dim * 2 * c.projection_dim + c.lstm_dim * c.projection_dim)  # gates, projection
        out = c.projection_dim * (c.num_sampled or c.vocab_size)
        return 6.0 * 2 * (lstm + out)


register_model("elmo_tiny", ELMo, vocab_size=2000, filter_widths=(1, 2, 3, 4), filter_counts=(8, 8, 16, 32),
               lstm_dim=64, projection_dim=32, num_sampled=128)  # fmt: skip
register_model("elmo_small", ELMo)
