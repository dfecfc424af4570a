"""Frame-span tokenizer: each group holds exactly its span's frames in order, positions count the
groups, frames() inverts it (the dropped tail aside), the waveform path equals log-mel then spans,
gradients flow to the waveform, bad input names the argument."""

import pytest
import torch

from fastpretrain.data.frame_spans import FrameSpans
from fastpretrain.data.log_mel import LogMel, LogMelConfig
from fastpretrain.nn.groups import check_groups


@pytest.mark.parametrize("span, t", [(1, 7), (2, 10), (3, 11), (4, 4)])
def test_groups_are_spans_of_frames_and_round_trip(span, t):
    frames = torch.randn(2, t, 5)
    groups = check_groups(FrameSpans(span)(frames))
    n = t // span
    assert groups.values.shape == (2, n, span * 5) and groups.positions.shape == (2, n, 1)
    for b in range(2):
        for i in range(n):
            for j in range(span):  # frame i * span + j sits at values[b, i, j * 5 : (j + 1) * 5]
                assert torch.equal(groups.values[b, i, j * 5 : (j + 1) * 5], frames[b, i * span + j])
    assert torch.equal(groups.positions[..., 0], torch.arange(n).float().expand(2, n))
    assert torch.equal(FrameSpans(span).frames(groups.values), frames[:, : n * span])


def test_waveforms_go_through_log_mel_first_and_keep_gradients():
    log_mel = LogMel(LogMelConfig(sample_rate=8000, n_fft=64, hop_length=16, n_mels=6))
    wave = torch.randn(3, 400, requires_grad=True)
    groups = FrameSpans(2, log_mel)(wave)
    want = FrameSpans(2)(log_mel(wave))
    assert torch.equal(groups.values, want.values) and groups.values.shape == (3, 13, 12)  # 1 + 400 // 16 = 26 frames
    groups.values.sum().backward()
    assert wave.grad is not None and wave.grad.abs().sum() > 0


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="span"):
        FrameSpans(0)
    with pytest.raises(ValueError, match="frames: expected float log-mel frames"):
        FrameSpans(2)(torch.randn(4, 5))
    with pytest.raises(ValueError, match="frames: 1 frames are fewer than one span of 2"):
        FrameSpans(2)(torch.randn(1, 1, 5))
    with pytest.raises(ValueError, match="values: expected"):
        FrameSpans(2).frames(torch.randn(1, 3, 5))
