"""CPC (van den Oord et al. 2018, "Representation Learning with Contrastive Predictive Coding") on
text: a window of S consecutive sentences of a document, each its UTF-8 bytes [L] (0-padded), is
encoded sentence by sentence (byte embeddings, strided 1-D convolutions, a max over positions, a
linear map) into z_1..z_S; a GRU over them gives contexts c_1..c_S; for each step k = 1..K a linear
predictor W_k scores c_t against every z of the batch, log-bilinearly as the paper's
f_k = exp(z^T W_k c_t). The loss is InfoNCE on the fused op: the positive is z_{t+k} of the same
window, the negatives every other sentence of the batch (its window's and the other windows'),
averaged over the K steps. The representation probed afterwards is the encoder's z (or the GRU's c).

Sizes: ``create_model("cpc_text_tiny")`` (tests, smoke), ``"cpc_text_mini"`` (the CPU benchmark) and
``"cpc_text_small"`` (the default).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from fastpretrain.checks import check_int
from fastpretrain.models.registry import Pretrained, register_model
from fastpretrain.ops import infonce_loss


@dataclass
class CPCConfig:
    sentence_len: int = 128  # bytes per sentence (longer ones are cut, shorter 0-padded)
    window: int = 8  # consecutive sentences per item (S)
    embed_dim: int = 64  # byte embedding width
    conv_dim: int = 256  # width of the strided convolutions
    conv_layers: int = 3  # each kernel 4, stride 2: a 2**layers-fold downsampling before the max
    z_dim: int = 256  # the sentence representation z
    context_dim: int = 256  # the GRU's hidden size (c)
    prediction_steps: int = 3  # K: predict z_{t+1} .. z_{t+K}

    def __post_init__(self) -> None:
        check_int("conv_layers", self.conv_layers, 1)
        check_int("sentence_len", self.sentence_len, 2**self.conv_layers)
        check_int("prediction_steps", self.prediction_steps, 1)
        check_int("window", self.window, self.prediction_steps + 1)
        for name in ("embed_dim", "conv_dim", "z_dim", "context_dim"):
            check_int(name, getattr(self, name), 1)


class CPC(Pretrained, nn.Module):
    """``CPC(CPCConfig(...))``; ``model(windows)`` with windows [B, S, L] uint8/int64 bytes (0 = padding)
    -> ``{"loss"}`` for the Trainer; ``encode(sentences [N, L])`` -> z [N, z_dim]."""

    model_type, config_class = "cpc", CPCConfig

    def __init__(self, config: CPCConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = CPCConfig(**{**(asdict(config) if config else {}), **overrides})
        self.embed = nn.Embedding(256, c.embed_dim, padding_idx=0)
        convs, width = [], c.embed_dim
        for _ in range(c.conv_layers):
            convs += [nn.Conv1d(width, c.conv_dim, kernel_size=4, stride=2, padding=1), nn.ReLU(inplace=True)]
            width = c.conv_dim
        self.convs = nn.Sequential(*convs)
        self.to_z = nn.Linear(c.conv_dim, c.z_dim)
        self.gru = nn.GRU(c.z_dim, c.context_dim, batch_first=True)
        steps = range(c.prediction_steps)
        self.predictors = nn.ModuleList(nn.Linear(c.context_dim, c.z_dim, bias=False) for _ in steps)

    def encode(self, sentences: torch.Tensor) -> torch.Tensor:
        """Sentences [N, L] bytes -> z [N, z_dim]."""
        h = self.convs(self.embed(sentences.long()).transpose(1, 2))  # [N, conv_dim, L / 2**layers]
        return self.to_z(h.amax(dim=2))

    def context(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, S, z_dim] -> c [B, S, context_dim]: the GRU's state after each sentence."""
        return self.gru(z)[0]

    def encode_windows(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z [B, S, z_dim], c [B, S, context_dim]) of windows [B, S, L]."""
        c = self.config
        if windows.dim() != 3 or tuple(windows.shape[1:]) != (c.window, c.sentence_len):
            raise ValueError(f"windows: expected [B, {c.window}, {c.sentence_len}] bytes (B windows of {c.window} "
                             f"sentences), got {tuple(windows.shape)}")  # fmt: skip
        b, s, length = windows.shape
        z = self.encode(windows.reshape(b * s, length)).reshape(b, s, -1)
        return z, self.context(z)

    def step_losses(self, z: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """[K] InfoNCE of each step k: W_k c_t against all B * S z's, the positive z_{t+k} of its window."""
        b, s, _ = z.shape
        keys = z.reshape(b * s, -1)
        losses = []
        for k, predictor in enumerate(self.predictors, start=1):
            queries = predictor(ctx[:, : s - k]).reshape(b * (s - k), -1)
            t = torch.arange(s - k, device=z.device)
            targets = (torch.arange(b, device=z.device)[:, None] * s + t[None, :] + k).reshape(-1)
            losses.append(infonce_loss(queries, keys, 1.0, targets=targets, normalize=False))
        return torch.stack(losses)

    def forward(self, windows: torch.Tensor, labels=None) -> dict[str, torch.Tensor]:
        z, ctx = self.encode_windows(windows)
        return {"loss": self.step_losses(z, ctx).mean()}

    def flops_per_item(self) -> float:
        """Training FLOPs per window (3 x forward): convolutions, z map, GRU, predictors (queries x keys ignored)."""
        c, length, forward, width = self.config, self.config.sentence_len, 0.0, self.config.embed_dim
        for _ in range(c.conv_layers):
            length //= 2
            forward += 2.0 * 4 * width * c.conv_dim * length
            width = c.conv_dim
        forward += 2.0 * c.conv_dim * c.z_dim + 2.0 * 3 * (c.z_dim + c.context_dim) * c.context_dim
        forward = forward * c.window + 2.0 * c.context_dim * c.z_dim * c.prediction_steps * c.window
        return 3.0 * forward


register_model("cpc_text_tiny", CPC, sentence_len=32, window=4, embed_dim=16, conv_dim=32, conv_layers=2, z_dim=32,
               context_dim=32, prediction_steps=2)  # fmt: skip
# CPU-sized (the CPU benchmark): about a fifth of cpc_text_small's FLOPs per window.
register_model("cpc_text_mini", CPC, sentence_len=96, window=6, embed_dim=32, conv_dim=128, z_dim=128, context_dim=128,
               prediction_steps=2)  # fmt: skip
register_model("cpc_text_small", CPC)
