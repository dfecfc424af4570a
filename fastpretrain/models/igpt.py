"""Image GPT (Chen et al. 2020): a transformer over images as sequences of palette ids (see
:mod:`fastpretrain.data.palette`), trained autoregressively (next pixel, causal attention, a start
token before the first pixel) or BERT-style (masked pixels, bidirectional attention, a mask token),
the same stack either way; features for a linear probe are read at a middle layer (image-gpt
finds the best ones there, not at the last), layer-normed and averaged over the sequence.
Sizes: ``create_model("igpt_tiny" | "igpt_mini" | "igpt_small")`` (the last image-gpt's iGPT-S).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fastpretrain.checks import check_float, check_int
from fastpretrain.models.registry import Pretrained, register_model
from fastpretrain.nn import KVCache, LMHeadLoss, TransformerBlock, cached_block, check_heads

IGNORE_INDEX = -100
OBJECTIVES = ("ar", "bert")


@dataclass
class IGPTConfig:
    """The token grid (``image_size`` x ``image_size`` pixels, ``palette_size`` colours), the
    stack, the objective ("ar" or "bert", with ``mask_ratio``) and the probe layer (None: the middle)."""

    image_size: int = 28
    palette_size: int = 16
    num_layers: int = 8
    num_heads: int = 4
    hidden_size: int = 256
    intermediate_size: int | None = None
    objective: str = "ar"
    mask_ratio: float = 0.15
    dropout: float = 0.0
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    probe_layer: int | None = None

    def __post_init__(self) -> None:
        self.intermediate_size = 4 * self.hidden_size if self.intermediate_size is None else self.intermediate_size
        for name in ("image_size", "num_layers", "num_heads", "hidden_size", "intermediate_size"):
            check_int(name, getattr(self, name), 1)
        check_int("palette_size", self.palette_size, 2)
        check_heads("num_heads", self.hidden_size, self.num_heads)
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective: expected one of {OBJECTIVES}, got {self.objective!r}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio: expected a fraction in (0, 1), got {self.mask_ratio!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {self.dropout!r}")
        check_float("layer_norm_eps", self.layer_norm_eps, 0.0)
        check_float("initializer_range", self.initializer_range, 0.0)
        if self.probe_layer is not None:
            check_int("probe_layer", self.probe_layer, 1, self.num_layers)


class ImageGPT(Pretrained, nn.Module):
    """``model(tokens)``: the objective's loss on palette ids [B, L] (L = image_size^2)."""

    model_type, config_class = "igpt", IGPTConfig

    def __init__(self, config: IGPTConfig) -> None:
        super().__init__()
        if not isinstance(config, IGPTConfig):
            raise TypeError(f"config: expected an IGPTConfig, got {type(config).__name__}")
        c = self.config = config
        self.seq_len = c.image_size**2
        self.special = c.palette_size  # the start token (ar) or the mask token (bert)
        self.wte = nn.Embedding(c.palette_size + 1, c.hidden_size)
        self.wpe = nn.Embedding(self.seq_len, c.hidden_size)
        self.drop = nn.Dropout(c.dropout)
        self.layers = nn.ModuleList(
            TransformerBlock(c.hidden_size, c.num_heads, c.intermediate_size, causal=c.objective == "ar",
                             proj_drop=c.dropout, mlp_hidden_drop=0.0, attn_drop=c.dropout, eps=c.layer_norm_eps)
            for _ in range(c.num_layers))  # fmt: skip
        self.final_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.head = nn.Linear(c.hidden_size, c.palette_size, bias=False)  # untied, as image-gpt
        self.criterion = LMHeadLoss(ignore_index=IGNORE_INDEX)
        self.apply(self._init_weights)

    def _init_weights(self, m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=self.config.initializer_range)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def _check(self, tokens: torch.Tensor) -> None:
        if tokens.dim() != 2 or tokens.shape[1] != self.seq_len:
            raise ValueError(f"tokens: expected [B, {self.seq_len}] palette ids ({self.config.image_size}^2 pixels), "
                             f"got shape {tuple(tokens.shape)}")  # fmt: skip

    def inputs(
        self, tokens: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(input ids, targets) of the objective: "ar" shifts right behind the start token and
        predicts every pixel; "bert" replaces a random ``mask_ratio`` of each image's pixels (at
        least one) by the mask token and predicts those only (-100 elsewhere)."""
        self._check(tokens)
        if self.config.objective == "ar":
            start = torch.full_like(tokens[:, :1], self.special)
            return torch.cat([start, tokens[:, :-1]], 1), tokens
        noise = torch.rand(tokens.shape, device=tokens.device, generator=generator)
        keep = max(1, round(self.config.mask_ratio * self.seq_len))
        masked = noise <= noise.kthvalue(keep, dim=1, keepdim=True).values
        return tokens.masked_fill(masked, self.special), tokens.masked_fill(~masked, IGNORE_INDEX)

    def hidden_states(self, ids: torch.Tensor, layers: int | None = None) -> torch.Tensor:
        """[B, L, E] states after the first ``layers`` blocks (default all, then the final norm)."""
        x = self.drop(self.wte(ids) + self.wpe.weight[: ids.shape[1]])
        for layer in self.layers[:layers]:
            x = layer(x)
        return self.final_norm(x) if layers is None else x

    def forward(self, tokens: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """{"loss", "items" (predicted pixels), "nll"} of the objective on palette ids ``tokens``."""
        ids, targets = self.inputs(tokens, generator)
        hidden = self.hidden_states(ids)
        out = self.criterion(hidden.flatten(0, 1), self.head.weight, targets.flatten())
        return {**out, "items": (targets != IGNORE_INDEX).sum()}

    @torch.no_grad()
    def features(self, tokens: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        """[B, E] probe features: the states after block ``layer`` (default ``probe_layer``, else
        the middle one) of the unmasked input (ar: behind the start token), layer-normed
        without affine weights and averaged over the pixels."""
        self._check(tokens)
        if layer is None:
            layer = self.config.probe_layer or max(1, self.config.num_layers // 2)
        check_int("layer", layer, 1, self.config.num_layers)
        ids = self.inputs(tokens)[0] if self.config.objective == "ar" else tokens
        h = self.hidden_states(ids, layer)
        return F.layer_norm(h, h.shape[-1:]).mean(1)

    @torch.no_grad()
    def generate(self, num: int, temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
        """[num, L] palette ids sampled pixel by pixel (an "ar" model), through a KV cache."""
        if self.config.objective != "ar":
            raise ValueError("objective: only an autoregressive ('ar') model generates images")
        check_int("num", num, 1)
        check_float("temperature", temperature, 0.0)
        was_training, device = self.training, self.wte.weight.device
        self.eval()
        cache = KVCache(len(self.layers), self.seq_len)
        x = torch.full((num, 1), self.special, dtype=torch.long, device=device)
        out = []
        for pos in range(self.seq_len):
            h = self.drop(self.wte(x) + self.wpe.weight[pos])
            for i, layer in enumerate(self.layers):
                h = cached_block(layer, h, cache, i)
            logits = self.head(self.final_norm(h[:, -1])).float()
            if temperature == 0:
                x = logits.argmax(-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None and top_k < logits.shape[-1]:
                    logits = logits.masked_fill(logits < logits.topk(top_k, -1).values[:, -1:], float("-inf"))
                x = torch.multinomial(logits.softmax(-1), 1, generator=generator)
            out.append(x)
        self.train(was_training)
        return torch.cat(out, 1)

    def flops_per_item(self) -> float:
        """Training FLOPs per predicted pixel of an "ar" model (3x forward), for MFU."""
        return 3.0 * (sum(layer.flops(self.seq_len) for layer in self.layers) / self.seq_len
                      + 2 * self.config.hidden_size * self.config.palette_size)  # fmt: skip


register_model("igpt_tiny", ImageGPT, num_layers=2, hidden_size=128, num_heads=2, image_size=14)
register_model("igpt_mini", ImageGPT, num_layers=4, hidden_size=256, num_heads=4, image_size=14)
register_model("igpt_small", ImageGPT, num_layers=24, hidden_size=512, num_heads=8, image_size=32, palette_size=512)
