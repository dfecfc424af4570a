"""ELECTRA (Clark et al. 2020): a small masked-LM generator fills BERT's masked positions with
tokens sampled from its softmax, and the discriminator, a BERT encoder, tells for every token
whether it was replaced (replaced-token detection, RTD). Loss = MLM + ``rtd_weight`` (50) x RTD.

Built on BERT's parts (:mod:`fastpretrain.models.bert`: the embeddings, the layer, the init, the
masked examples of :class:`~fastpretrain.data.BertExamples`), on packed batches
(:func:`~fastpretrain.data.collate_packed`). As the paper: the token, position (and token type)
embeddings and their LayerNorm are shared by both networks, so the generator's MLM decoder is tied
to the discriminator's word embeddings; the generator has the discriminator's depth at a fraction
of its width (``generator_size``: 1/4 for small, 1/3 for base; heads of 64 as ELECTRA's code), with
a projection from the embedding width; the sampled ids carry no gradient into the generator; a
sampled token equal to the original is labelled "original". Not built: ELECTRA-small's factorised
128-wide embeddings (here the embedding width is the discriminator's, as base and large), so the
discriminator is exactly a BERT encoder: :meth:`ElectraForPreTraining.discriminator_as_bert` hands
it to everything BERT has (fine-tuning, the [CLS] probe, the Hugging Face export). The masking is
BERT's 80/10/10 (ELECTRA's code uses 85% [MASK], 15% kept).
Sizes: ``create_model("electra_tiny" | "electra_small" | "electra_base")``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from fastpretrain.checks import check_float, check_int
from fastpretrain.models.bert import IGNORE_INDEX, BertConfig, BertEmbeddings, BertForPreTraining, bert_layer
from fastpretrain.models.registry import Pretrained, register_model
from fastpretrain.nn import LinearCrossEntropyLoss


@dataclass
class ElectraConfig:
    """The discriminator's sizes (``num_heads`` default hidden_size / 64, ``intermediate_size``
    4 x hidden_size, as BERT), the generator's as fractions of them, and the RTD loss weight."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int | None = None
    intermediate_size: int | None = None
    generator_size: float = 1 / 3  # generator width / discriminator width (heads of 64, MLP 4 x width)
    generator_layers: int | None = None  # default: the discriminator's depth
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int = 0
    rtd_weight: float = 50.0

    def __post_init__(self) -> None:
        self.generator_layers = self.num_layers if self.generator_layers is None else self.generator_layers
        check_int("generator_layers", self.generator_layers, 1)
        check_float("rtd_weight", self.rtd_weight, 0.0)
        if not (isinstance(self.generator_size, (int, float)) and 0.0 < self.generator_size <= 1.0):
            raise ValueError(f"generator_size: expected a fraction in (0, 1], got {self.generator_size!r}")
        d = self.discriminator_config()  # checks the shared fields
        self.num_heads, self.intermediate_size = d.num_heads, d.intermediate_size
        self.generator_config()

    def _bert(self, **sizes) -> BertConfig:
        shared = ("vocab_size", "max_position_embeddings", "type_vocab_size", "hidden_dropout", "attention_dropout",
                  "layer_norm_eps", "initializer_range", "pad_token_id")  # fmt: skip
        return BertConfig(**{k: getattr(self, k) for k in shared}, **sizes)

    def discriminator_config(self) -> BertConfig:
        """The discriminator as a (post-norm) BERT encoder's config."""
        return self._bert(hidden_size=self.hidden_size, num_layers=self.num_layers, num_heads=self.num_heads,
                          intermediate_size=self.intermediate_size)  # fmt: skip

    def generator_config(self) -> BertConfig:
        """The generator's layers as ELECTRA's ``get_generator_config``: width round(hidden x
        generator_size), heads of 64 (at least one), MLP 4 x width."""
        width = max(1, round(self.hidden_size * self.generator_size))
        try:
            return self._bert(hidden_size=width, num_layers=self.generator_layers, num_heads=max(1, width // 64),
                              intermediate_size=4 * width)  # fmt: skip
        except ValueError as e:
            raise ValueError(f"generator_size: {self.generator_size!r} x hidden_size {self.hidden_size} gives a "
                             f"generator of width {width}, which does not split into heads ({e})") from None


class ElectraGenerator(nn.Module):
    """The MLM generator above the shared embeddings: a projection to its width, BERT layers, and
    the MLM transform back to the embedding width (dense, GELU, LayerNorm) before the tied decoder."""

    def __init__(self, g: BertConfig, embedding_size: int) -> None:
        super().__init__()
        self.project = nn.Linear(embedding_size, g.hidden_size) if g.hidden_size != embedding_size else nn.Identity()
        self.layers = nn.ModuleList(bert_layer(g) for _ in range(g.num_layers))
        self.transform = nn.Linear(g.hidden_size, embedding_size)
        self.norm = nn.LayerNorm(embedding_size, eps=g.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(g.vocab_size))  # the decoder weight is the shared word embeddings

    def forward(self, embedded: torch.Tensor, cu_seqlens: torch.Tensor, max_seqlen: int) -> torch.Tensor:
        x = self.project(embedded)
        for layer in self.layers:
            x = layer(x, cu_seqlens=cu_seqlens, max_seqlen=max_seqlen)
        return x

    def features(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.norm(F.gelu(self.transform(hidden)))


class ElectraDiscriminator(nn.Module):
    """BERT layers above the shared embeddings and the RTD head (dense, GELU, one logit a token)."""

    def __init__(self, d: BertConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(bert_layer(d) for _ in range(d.num_layers))
        self.dense = nn.Linear(d.hidden_size, d.hidden_size)
        self.out = nn.Linear(d.hidden_size, 1)

    def forward(self, embedded: torch.Tensor, cu_seqlens: torch.Tensor, max_seqlen: int) -> torch.Tensor:
        x = embedded
        for layer in self.layers:
            x = layer(x, cu_seqlens=cu_seqlens, max_seqlen=max_seqlen)
        return x

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[total] replaced-token logits (> 0: replaced)."""
        return self.out(F.gelu(self.dense(hidden))).squeeze(-1)


def replaced_tokens(input_ids: torch.Tensor, mlm_positions: torch.Tensor, mlm_labels: torch.Tensor,
                    sampled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(the discriminator's input: the original ids with ``sampled`` at ``mlm_positions``, the RTD
    labels: 1 where that differs from the original, so a sample equal to the original is 0)."""
    original = input_ids.clone()
    original[mlm_positions] = mlm_labels
    corrupted = original.clone()
    corrupted[mlm_positions] = sampled
    return corrupted, corrupted != original


class ElectraForPreTraining(Pretrained, nn.Module):
    """Generator + discriminator on shared embeddings: ``model(**batch)`` on a packed batch of
    :class:`~fastpretrain.data.BertExamples` (its ``nsp_labels`` are ignored: ELECTRA has no NSP)."""

    model_type, config_class = "electra", ElectraConfig

    def __init__(self, config: ElectraConfig) -> None:
        super().__init__()
        if not isinstance(config, ElectraConfig):
            raise TypeError(f"config: expected an ElectraConfig, got {type(config).__name__}")
        self.config = config
        d = config.discriminator_config()
        self.embeddings = BertEmbeddings(d)
        self.generator = ElectraGenerator(config.generator_config(), d.hidden_size)
        self.discriminator = ElectraDiscriminator(d)
        self.mlm_criterion = LinearCrossEntropyLoss(ignore_index=IGNORE_INDEX)  # fused: no [M, V] logits
        self.apply(partial(BertForPreTraining._init_weights, self))  # BERT's init: N(0, 0.02), zero biases

    def embed(self, input_ids, token_type_ids, position_ids) -> torch.Tensor:
        return self.embeddings(input_ids, token_type_ids, position_ids)

    def encode(self, input_ids, token_type_ids, position_ids, cu_seqlens, max_seqlen: int) -> torch.Tensor:
        """The discriminator's final states [total, E] of packed tokens (the representation to fine-tune)."""
        return self.discriminator(self.embed(input_ids, token_type_ids, position_ids), cu_seqlens, max_seqlen)

    def generator_logits(self, features: torch.Tensor) -> torch.Tensor:
        """[M, V] generator logits from MLM features (the tied decoder)."""
        return F.linear(features, self.embeddings.word.weight, self.generator.bias)

    @torch.no_grad()
    def sample(self, logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """[M] ids drawn from softmax(``logits``) (float32), from ``generator`` (default torch's, which
        the Trainer seeds and checkpoints); no gradient."""
        return torch.multinomial(torch.softmax(logits.float(), -1), 1, generator=generator).squeeze(-1)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, cu_seqlens: torch.Tensor | None = None,
                max_seqlen: int | None = None, mlm_positions: torch.Tensor | None = None,
                mlm_labels: torch.Tensor | None = None, nsp_labels: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> dict:  # fmt: skip
        """Packed ``input_ids`` [total] (masked for MLM) with ``cu_seqlens`` [B + 1]; ``max_seqlen``
        and ``position_ids`` computed when absent, ``token_type_ids`` default 0.

        With ``mlm_positions`` (rows of the packed batch) and ``mlm_labels`` (the original ids
        there): {"loss": MLM + rtd_weight x RTD, "items": tokens, "mlm_loss", "rtd_loss",
        "mlm_accuracy" (generator), "rtd_accuracy" (discriminator, every token), "replaced_fraction"
        (1 - it: the accuracy of calling every token original)}. Without: the discriminator on
        ``input_ids`` as given: {"rtd_logits" [total], "hidden" [total, E], "cls_hidden" [B, E]}.
        """
        if input_ids.dim() != 1 or cu_seqlens is None:
            raise ValueError(f"input_ids: expected packed [total] ids with cu_seqlens (fastpretrain.data.collate_packed), "
                             f"got shape {tuple(input_ids.shape)}{'' if cu_seqlens is not None else ' without cu_seqlens'}")  # fmt: skip
        if (mlm_positions is None) != (mlm_labels is None):
            raise ValueError("mlm_positions, mlm_labels: give both (training) or neither (detection only)")
        types = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        lengths = cu_seqlens.diff()
        if max_seqlen is None:
            max_seqlen = int(lengths.max())
        if position_ids is None:
            starts = torch.repeat_interleave(cu_seqlens[:-1].long(), lengths.long(), output_size=input_ids.shape[0])
            position_ids = torch.arange(input_ids.shape[0], device=input_ids.device) - starts
        if mlm_labels is None:
            hidden = self.encode(input_ids, types, position_ids, cu_seqlens, max_seqlen)
            return {"rtd_logits": self.discriminator.logits(hidden), "hidden": hidden,
                    "cls_hidden": hidden[cu_seqlens[:-1].long()]}  # fmt: skip
        if mlm_positions.shape != mlm_labels.shape or mlm_positions.dim() != 1:
            raise ValueError(f"mlm_positions, mlm_labels: expected two [M] tensors, got shapes "
                             f"{tuple(mlm_positions.shape)} and {tuple(mlm_labels.shape)}")  # fmt: skip
        gen_hidden = self.generator(self.embed(input_ids, types, position_ids), cu_seqlens, max_seqlen)
        features = self.generator.features(gen_hidden[mlm_positions])
        mlm_loss = self.mlm_criterion(features, self.embeddings.word.weight, mlm_labels, self.generator.bias)
        with torch.no_grad():
            logits = self.generator_logits(features)
            sampled = self.sample(logits, generator)
        corrupted, labels = replaced_tokens(input_ids, mlm_positions, mlm_labels, sampled)
        rtd_logits = self.discriminator.logits(self.encode(corrupted, types, position_ids, cu_seqlens, max_seqlen))
        target = labels.to(torch.float32)
        rtd_loss = F.binary_cross_entropy_with_logits(rtd_logits.float(), target)
        return {"loss": mlm_loss + self.config.rtd_weight * rtd_loss, "items": input_ids.shape[0], "mlm_loss": mlm_loss,
                "rtd_loss": rtd_loss, "mlm_accuracy": (logits.argmax(-1) == mlm_labels).float().mean(),
                "rtd_accuracy": ((rtd_logits.detach() > 0) == labels).float().mean(),
                "replaced_fraction": target.mean()}  # fmt: skip

    def discriminator_as_bert(self) -> BertForPreTraining:
        """A :class:`~fastpretrain.models.BertForPreTraining` whose encoder (embeddings and layers)
        is a copy of the discriminator's, for fine-tuning and probing with BERT's tools (its
        ``encode``, ``cls_hidden``, ``save_pretrained``, the Hugging Face export). Its MLM / NSP /
        pooler heads are freshly initialised: ELECTRA trains none of them."""
        bert = BertForPreTraining(self.config.discriminator_config())
        bert.embeddings.load_state_dict(self.embeddings.state_dict())
        bert.layers.load_state_dict(self.discriminator.layers.state_dict())
        return bert.to(self.embeddings.word.weight.device)

    def flops_per_item(self, seq_len: int = 128, mlm_fraction: float = 0.15) -> float:
        """Training FLOPs per real token at sequence length ``seq_len`` (forward + backward = 3 x
        forward, as :meth:`BertForPreTraining.flops_per_item`): both networks' layers, the
        generator's input projection, its MLM head on ``mlm_fraction`` of the tokens (plus the
        forward-only [M, V] logits it samples from), the RTD head on every token."""
        c, e = self.config, self.config.hidden_size
        g = self.config.generator_config().hidden_size
        layers = sum(layer.flops(seq_len) for layer in (*self.generator.layers, *self.discriminator.layers)) / seq_len
        project = 2 * e * g if g != e else 0
        mlm = mlm_fraction * 2 * (g * e + e * c.vocab_size)
        rtd = 2 * (e * e + e)
        return 3.0 * (layers + project + mlm + rtd) + mlm_fraction * 2 * e * c.vocab_size


register_model("electra_tiny", ElectraForPreTraining, num_layers=2, hidden_size=128, generator_size=0.25)
register_model("electra_small", ElectraForPreTraining, num_layers=12, hidden_size=256, generator_size=0.25)
register_model("electra_base", ElectraForPreTraining, num_layers=12, hidden_size=768, generator_size=1 / 3)
