"""Log-mel spectrogram: torch.stft path against a float64 direct-DFT reference (centred and not, a
window shorter than the FFT, batch axes, odd lengths), the filterbank's defining properties (HTK
mel scale, peak 1 at each centre, neighbouring triangles summing to 1, centres equally spaced in
mel), pure tones landing in the band of the nearest centre, gradients by gradcheck, bad input."""

import math

import pytest
import torch

from fastpretrain.data.log_mel import LogMel, LogMelConfig, hz_to_mel, mel_centres, mel_to_hz, mel_weights


def log_mel_reference(x: torch.Tensor, c: LogMelConfig) -> torch.Tensor:
    """Frames cut by hand, a DFT as an explicit float64 sum, the filterbank from mel_weights."""
    x = x.double()
    if c.center:
        p = c.n_fft // 2  # reflect: mirror around the first and last samples
        x = torch.cat([x[..., 1 : p + 1].flip(-1), x, x[..., -p - 1 : -1].flip(-1)], -1)
    win = c.win_length or c.n_fft
    n = torch.arange(win, dtype=torch.float64)
    window = torch.zeros(c.n_fft, dtype=torch.float64)
    left = (c.n_fft - win) // 2
    window[left : left + win] = 0.5 - 0.5 * torch.cos(2 * math.pi * n / win)  # periodic Hann, centred in n_fft
    frames = x.unfold(-1, c.n_fft, c.hop_length) * window
    k = torch.arange(c.n_fft // 2 + 1, dtype=torch.float64)
    angle = 2 * math.pi * k[:, None] * torch.arange(c.n_fft, dtype=torch.float64) / c.n_fft
    re, im = frames @ torch.cos(angle).T, -(frames @ torch.sin(angle).T)
    bins = k * c.sample_rate / c.n_fft
    mel = (re**2 + im**2) @ mel_weights(bins, c.n_mels, c.f_min, c.top)
    return mel.clamp_min(c.floor).log()


@pytest.mark.parametrize("config", [
    LogMelConfig(sample_rate=8000, n_fft=64, hop_length=16, n_mels=10),
    LogMelConfig(sample_rate=16000, n_fft=100, hop_length=33, win_length=61, n_mels=7, f_min=80.0, f_max=7000.0),
    LogMelConfig(sample_rate=22050, n_fft=128, hop_length=50, n_mels=12, center=False),
])  # fmt: skip
def test_matches_the_direct_dft_reference(config, one_thread):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 517, generator=g, dtype=torch.float64) * 0.3
    x[1, 2, :200] = 0.0  # silence: those frames sit on the floor
    want = log_mel_reference(x, config)
    got64 = LogMel(config)(x)
    assert got64.shape == (2, 3, config.frames(517), config.n_mels) == want.shape
    torch.testing.assert_close(got64, want, atol=1e-9, rtol=0)
    got32 = LogMel(config)(x.float())
    torch.testing.assert_close(got32.double(), want, atol=2e-4, rtol=1e-5)
    assert (want[1, 2, :2] == math.log(config.floor)).all()


def test_the_filterbank_is_htk_triangles():
    assert hz_to_mel(1000.0) == pytest.approx(999.9855, abs=1e-4)  # HTK: about 1000 mel at 1 kHz
    assert hz_to_mel(700.0) == pytest.approx(2595.0 * math.log10(2.0))
    f = torch.tensor([0.0, 123.0, 4000.0, 11025.0], dtype=torch.float64)
    torch.testing.assert_close(mel_to_hz(hz_to_mel(f)), f)
    pts = mel_centres(20, 50.0, 8000.0)
    assert pts[0] == pytest.approx(50.0) and pts[-1] == pytest.approx(8000.0)
    torch.testing.assert_close(hz_to_mel(pts).diff(), torch.full((21,), hz_to_mel(pts).diff()[0].item(), dtype=torch.float64))
    torch.testing.assert_close(mel_weights(pts[1:-1], 20, 50.0, 8000.0), torch.eye(20, dtype=torch.float64))  # peak 1 at its centre, 0 at the others'
    between = torch.linspace(pts[1].item(), pts[-2].item(), 997, dtype=torch.float64)
    w = mel_weights(between, 20, 50.0, 8000.0)
    torch.testing.assert_close(w.sum(1), torch.ones(997, dtype=torch.float64))  # neighbours overlap to 1
    assert ((w > 0).sum(1) <= 2).all()
    outside = mel_weights(torch.tensor([0.0, 49.0, 8001.0, 11000.0]), 20, 50.0, 8000.0)
    assert (outside == 0).all()
    config = LogMelConfig(sample_rate=16000, n_fft=400, n_mels=20, f_min=50.0, f_max=8000.0)
    bins = torch.arange(201, dtype=torch.float64) * 40.0
    torch.testing.assert_close(config.filterbank(), mel_weights(bins, 20, 50.0, 8000.0))


@pytest.mark.parametrize("freq", [440.0, 1000.0, 2500.0, 6000.0])
def test_a_pure_tone_lands_in_the_band_of_the_nearest_centre(freq, one_thread):
    config = LogMelConfig(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=24)
    t = torch.arange(16000) / 16000
    frames = LogMel(config)(0.5 * torch.sin(2 * math.pi * freq * t))
    band = frames[2:-2].mean(0).argmax().item()
    centres = mel_centres(24, 0.0, 8000.0)[1:-1]
    assert band == (hz_to_mel(centres) - hz_to_mel(freq)).abs().argmin().item()
    assert frames[2:-2, band].min() > frames[2:-2].median() + 5  # far above the rest of the spectrum


def test_tone_at_a_centre_peaks_there():
    config = LogMelConfig(sample_rate=16000, n_fft=2048, hop_length=512, n_mels=16)
    centre = mel_centres(16, 0.0, 8000.0)[9].item()
    t = torch.arange(32000) / 16000
    frames = LogMel(config)(torch.sin(2 * math.pi * centre * t))
    assert frames[2:-2].mean(0).argmax().item() == 8


def test_gradients_by_gradcheck():
    config = LogMelConfig(sample_rate=8000, n_fft=16, hop_length=5, win_length=12, n_mels=5, floor=1e-12)
    module = LogMel(config)
    x = torch.randn(2, 41, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(module, (x,), atol=1e-6)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="waveform: expected a float"):
        LogMel()(torch.zeros(100, dtype=torch.int16))
    with pytest.raises(ValueError, match="waveform: expected at least 257 samples"):
        LogMel()(torch.zeros(100))
    with pytest.raises(ValueError, match="f_min, f_max"):
        LogMelConfig(f_max=20000.0)
    with pytest.raises(ValueError, match="floor"):
        LogMelConfig(floor=0.0)
    with pytest.raises(ValueError, match="win_length"):
        LogMelConfig(n_fft=64, win_length=65)
