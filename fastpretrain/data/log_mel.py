"""Log-mel spectrograms with ``torch.stft`` (torchaudio is not installable here): a Hann-windowed
power spectrum, our own triangular mel filterbank on the HTK mel scale (mel = 2595 log10(1 + f / 700),
filters of peak 1 and no area normalisation, as torchaudio's ``melscale_fbanks(mel_scale="htk",
norm=None)``), then the natural log with a floor. Differentiable, and runs on the waveform's device."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from fastpretrain.checks import check_float, check_int


def hz_to_mel(f):
    """HTK mel of ``f`` Hz (a float or a tensor)."""
    return 2595.0 * (torch.log10(1.0 + f / 700.0) if isinstance(f, torch.Tensor) else math.log10(1.0 + f / 700.0))


def mel_to_hz(m):
    """Hz of HTK mel ``m`` (a float or a tensor); the inverse of :func:`hz_to_mel`."""
    return 700.0 * ((10.0 ** (m / 2595.0)) - 1.0)


def mel_centres(n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """float64 [n_mels + 2]: the filters' edges and centres in Hz, equally spaced on the mel scale from
    ``f_min`` to ``f_max``; filter m rises from point m, peaks at point m + 1, falls to point m + 2."""
    return mel_to_hz(torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2, dtype=torch.float64))


def mel_weights(freqs: torch.Tensor, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """float64 [len(freqs), n_mels]: each triangular filter's weight at frequencies ``freqs`` (Hz)."""
    pts = mel_centres(n_mels, f_min, f_max)
    f = freqs.double()[:, None]
    rise = (f - pts[:-2]) / (pts[1:-1] - pts[:-2])
    fall = (pts[2:] - f) / (pts[2:] - pts[1:-1])
    return torch.minimum(rise, fall).clamp_min(0.0)


@dataclass
class LogMelConfig:
    """Defaults: 22.05 kHz audio (espeak-ng's rate), 512-point FFT with a 512-sample (23 ms) Hann window,
    10 ms hop (220 samples), 40 mels over 0 Hz to Nyquist, log floor 1e-5 on the power."""

    sample_rate: int = 22050
    n_fft: int = 512
    hop_length: int = 220
    win_length: int | None = None  # None: n_fft
    n_mels: int = 40
    f_min: float = 0.0
    f_max: float | None = None  # None: sample_rate / 2
    floor: float = 1e-5
    center: bool = True  # frames centred on t * hop (the signal reflect-padded by n_fft // 2)

    def __post_init__(self) -> None:
        check_int("sample_rate", self.sample_rate, 1)
        check_int("n_fft", self.n_fft, 2)
        check_int("hop_length", self.hop_length, 1)
        if self.win_length is not None:
            check_int("win_length", self.win_length, 1, self.n_fft)
        check_int("n_mels", self.n_mels, 1)
        check_float("floor", self.floor, 0.0)
        if self.floor <= 0:
            raise ValueError(f"floor: expected > 0 (log of the floored power), got {self.floor!r}")
        top = self.sample_rate / 2 if self.f_max is None else check_float("f_max", self.f_max)
        if not 0 <= check_float("f_min", self.f_min) < top <= self.sample_rate / 2:
            raise ValueError(f"f_min, f_max: expected 0 <= f_min < f_max <= sample_rate / 2 = {self.sample_rate / 2}, "
                             f"got {self.f_min}, {top}")  # fmt: skip

    @property
    def top(self) -> float:
        return self.sample_rate / 2 if self.f_max is None else float(self.f_max)

    def frames(self, num_samples: int) -> int:
        """How many frames a waveform of ``num_samples`` samples gives."""
        return 1 + (num_samples if self.center else num_samples - self.n_fft) // self.hop_length

    def filterbank(self) -> torch.Tensor:
        """float64 [n_fft // 2 + 1, n_mels]: the filters sampled at the FFT bins k * sample_rate / n_fft."""
        bins = torch.arange(self.n_fft // 2 + 1, dtype=torch.float64) * self.sample_rate / self.n_fft
        return mel_weights(bins, self.n_mels, self.f_min, self.top)


class LogMel(nn.Module):
    """``LogMel(config)(waveform)``: float [..., T, n_mels] log-mel frames of float waveforms [..., N]
    (samples in [-1, 1]); time is the second-last axis, as the frame-span tokenizer reads it. The window
    and filterbank are float64 buffers, cast to the waveform's dtype (a float64 run is exact)."""

    def __init__(self, config: LogMelConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or LogMelConfig()
        window = torch.hann_window(c.win_length or c.n_fft, periodic=True, dtype=torch.float64)
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("fbank", c.filterbank(), persistent=False)

    def power(self, waveform: torch.Tensor) -> torch.Tensor:
        """float [..., T, n_fft // 2 + 1]: |STFT|^2 frames of ``waveform``."""
        c = self.config
        if not isinstance(waveform, torch.Tensor) or not waveform.is_floating_point() or waveform.dim() < 1:
            is_tensor = isinstance(waveform, torch.Tensor)
            got = f"{waveform.dtype} {tuple(waveform.shape)}" if is_tensor else type(waveform).__name__
            raise ValueError(f"waveform: expected a float [..., N] tensor, got {got}")
        need = c.n_fft // 2 + 1 if c.center else c.n_fft
        if waveform.shape[-1] < need:
            raise ValueError(f"waveform: expected at least {need} samples for n_fft {c.n_fft}, "
                             f"got {waveform.shape[-1]}")  # fmt: skip
        lead = waveform.shape[:-1]
        spec = torch.stft(waveform.reshape(-1, waveform.shape[-1]), c.n_fft, c.hop_length, c.win_length,
                          self.window.to(waveform.dtype), center=c.center, pad_mode="reflect",
                          return_complex=True)  # fmt: skip
        power = spec.real.square() + spec.imag.square()
        return power.transpose(1, 2).reshape(*lead, power.shape[2], power.shape[1])

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        mel = self.power(waveform) @ self.fbank.to(waveform.dtype)
        return mel.clamp_min(self.config.floor).log()


__all__ = ["LogMel", "LogMelConfig", "hz_to_mel", "mel_centres", "mel_to_hz", "mel_weights"]
