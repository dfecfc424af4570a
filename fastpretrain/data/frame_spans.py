"""Audio as groups for the masked-modeling recipe: log-mel frames cut into spans of ``span``
consecutive frames (TERA and HuBERT mask and predict such spans; at a 10 ms hop, span 2 is HuBERT's
20 ms label rate). Each span's ``span x n_mels`` values, frame after frame, are one group; its
position is its index."""

from __future__ import annotations

import torch
from torch import nn

from fastpretrain.checks import check_int
from fastpretrain.data.log_mel import LogMel
from fastpretrain.nn.groups import Groups


class FrameSpans(nn.Module):
    """``FrameSpans(span)(frames)``: :class:`~fastpretrain.nn.groups.Groups` of log-mel frames
    [B, T, n_mels] (values [B, T // span, span * n_mels], positions [B, T // span, 1] = 0, 1, ...);
    the last ``T % span`` frames are dropped. With ``log_mel``, it takes waveforms [B, N] and
    computes the frames first."""

    def __init__(self, span: int, log_mel: LogMel | None = None) -> None:
        super().__init__()
        self.span = check_int("span", span, 1)
        self.log_mel = log_mel

    def forward(self, x: torch.Tensor) -> Groups:
        frames = self.log_mel(x) if self.log_mel is not None else x
        if not isinstance(frames, torch.Tensor) or frames.dim() != 3 or not frames.is_floating_point():
            got = f"{frames.dtype} {tuple(frames.shape)}" if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise ValueError(f"frames: expected float log-mel frames [B, T, n_mels], got {got}")
        b, t, m = frames.shape
        if t < self.span:
            raise ValueError(f"frames: {t} frames are fewer than one span of {self.span}")
        n = t // self.span
        values = frames[:, : n * self.span].reshape(b, n, self.span * m)
        positions = torch.arange(n, device=frames.device, dtype=frames.dtype).expand(b, n)[..., None]
        return Groups(values, positions)

    def frames(self, values: torch.Tensor) -> torch.Tensor:
        """[B, L * span, n_mels]: group values [B, L, span * n_mels] (inputs, targets or predictions)
        back as frames; the inverse of :meth:`forward` on the frames it kept."""
        if values.dim() != 3 or values.shape[-1] % self.span:
            raise ValueError(f"values: expected [B, L, span * n_mels] with span {self.span}, got {tuple(values.shape)}")
        b, n, g = values.shape
        return values.reshape(b, n * self.span, g // self.span)


__all__ = ["FrameSpans"]
