"""eSpeak NG speech through ctypes and the spoken-words set: the synthesiser follows its pitch and
rate settings, rejects unknown voices; the set has every word for every voice, disjoint voices per
split, is cached (a second build synthesises nothing), and its words are linearly decodable from
log-mel statistics on unseen voices far above chance. Skips without the espeakng-loader wheel."""

import numpy as np
import pytest
import torch

from fastpretrain.data import spoken_words
from fastpretrain.data.espeak import SAMPLE_RATE, espeak_available, synthesize
from fastpretrain.data.log_mel import LogMelConfig
from fastpretrain.data.spoken_words import WORDS, SpokenWords, SpokenWordsConfig
from fastpretrain.eval.probe import linear_probe

pytestmark = pytest.mark.skipif(not espeak_available(), reason="needs the espeakng-loader wheel (pip install espeakng-loader)")


def f0(x: np.ndarray) -> float:
    """Fundamental frequency of the loudest 100 ms by autocorrelation (60-400 Hz)."""
    x = x.astype(np.float64)
    w = 2205
    start = int(np.argmax(np.convolve(x**2, np.ones(w), "valid")))
    seg = x[start : start + w] - x[start : start + w].mean()
    ac = np.correlate(seg, seg, "full")[w - 1 :]
    lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 60
    return SAMPLE_RATE / (lo + int(np.argmax(ac[lo:hi])))


def test_synthesis_follows_pitch_and_rate():
    low, high = synthesize("no", "en-us+m3", pitch=10), synthesize("no", "en-us+m3", pitch=90)
    assert low.dtype == np.int16 and np.abs(low).max() > 3000
    assert 0.15 < len(low) / SAMPLE_RATE < 1.0
    assert f0(high) > 1.3 * f0(low)
    slow, fast = synthesize("seven", "en-us", rate=100), synthesize("seven", "en-us", rate=400)
    assert len(slow) > 1.8 * len(fast)
    with pytest.raises(ValueError, match="voice: eSpeak NG has no voice 'xx-nope'"):
        synthesize("no", "xx-nope")
    with pytest.raises(ValueError, match="rate: expected an int in \\[80, 450\\]"):
        synthesize("no", rate=20)
    with pytest.raises(ValueError, match="text: expected a non-empty string"):
        synthesize(" ")


@pytest.fixture
def small_set(monkeypatch):
    """Two accents, 3 train and 2 test variants: 120 + 80 clips, quick to build."""
    monkeypatch.setattr(spoken_words, "ACCENTS", ("en-us", "en"))
    monkeypatch.setattr(spoken_words, "VARIANTS", {"train": ("m1", "f1", "m3"), "test": ("m5", "f4")})
    return SpokenWordsConfig(takes=1, clip_seconds=0.7), LogMelConfig(n_mels=24)


def test_the_set_covers_every_word_and_voice_and_is_cached(small_set, monkeypatch, one_thread):
    config, log_mel = small_set
    train, test = SpokenWords("train", config, log_mel), SpokenWords("test", config, log_mel)
    assert train.frames.shape == (120, log_mel.frames(config.clip_samples), 24) and len(test) == 80
    assert torch.equal(torch.bincount(train.labels), torch.full((len(WORDS),), 6))
    assert {v.split("+")[1] for v in train.voices} == {"m1", "f1", "m3"}
    assert not set(train.voices) & set(test.voices)
    frames, label = train[7]
    assert torch.equal(frames, train.frames[7]) and label == int(train.labels[7])
    assert train.frames.isfinite().all() and (train.frames.amax((1, 2)) > 0).all()  # speech well above the floor

    def fail(*args, **kwargs):
        raise AssertionError("the cached set synthesised again")

    monkeypatch.setattr(spoken_words, "synthesize", fail)
    again = SpokenWords("train", config, log_mel)
    assert torch.equal(again.frames, train.frames) and again.voices == train.voices
    with pytest.raises(AssertionError, match="synthesised again"):
        SpokenWords("train", SpokenWordsConfig(takes=1, clip_seconds=0.7, seed=1), log_mel)
    with pytest.raises(ValueError, match="split: expected one of"):
        SpokenWords("valid", config, log_mel)
    with pytest.raises(ValueError, match="log_mel: expected sample_rate 22050"):
        SpokenWords("train", config, LogMelConfig(sample_rate=16000))


def test_words_are_decodable_on_unseen_voices(small_set, one_thread):
    config, log_mel = small_set
    train, test = SpokenWords("train", config, log_mel), SpokenWords("test", config, log_mel)

    def stats(x):
        return torch.cat([x.mean(1), x.std(1)], 1)

    got = linear_probe(stats(train.frames), train.labels, stats(test.frames), test.labels)
    assert got["test_acc"] > 0.25  # chance is 0.05
