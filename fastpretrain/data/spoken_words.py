"""Spoken words, synthesised offline by eSpeak NG (:mod:`fastpretrain.data.espeak`): the 20 words of
Speech Commands' core set (digits zero to nine, yes/no/up/down/left/right/on/off/stop/go), each said
by English accents x voice variants at random rates, pitches and gains, at a random offset in a
fixed-length clip over background noise and a quieter second word by another voice (babble, so
that a clip's average spectrum alone does not give the word away), as log-mel frames; labels are
the word, for a word-class probe. The test split's
voice variants are never in the train split, so the probe measures words across unseen "speakers".

Honest limits: eSpeak is a formant synthesiser (clean, robotic speech, no recording conditions), its
speakers are voice presets; its noise and pitch flutter differ from call to call, so two builds of
the set differ in detail (never in words, voices, rates, pitches or offsets). Frames are cached under
:func:`~fastpretrain.data.corpus.cache_root`, one file per configuration."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
import torch

from fastpretrain.atomic import atomic_write
from fastpretrain.checks import check_float, check_int
from fastpretrain.data.corpus import cache_root
from fastpretrain.data.espeak import SAMPLE_RATE, synthesize
from fastpretrain.data.log_mel import LogMel, LogMelConfig

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
         "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")  # fmt: skip
ACCENTS = ("en-us", "en", "en-gb-scotland", "en-029", "en-us-nyc", "en-gb-x-rp")
VARIANTS = {"train": ("m1", "m2", "m3", "m4", "f1", "f2", "f3", "klatt"), "test": ("m5", "m6", "f4", "klatt2")}
SPLITS = tuple(VARIANTS)


@dataclass
class SpokenWordsConfig:
    """``takes`` random renditions per word x accent x variant (rate 120-240 words/min, pitch and
    pitch range 25-75 of eSpeak's 0-100, gain 0.2-1), each at a random offset in a ``clip_seconds``
    clip, over Gaussian noise of std up to ``noise`` (full scale 1) and, at ``babble`` x its level,
    another word by another voice of the split (the clip's label is the louder word)."""

    takes: int = 2
    clip_seconds: float = 0.8
    noise: float = 0.02
    babble: float = 0.35
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("takes", self.takes, 1)
        check_float("clip_seconds", self.clip_seconds, 0.1)
        check_float("noise", self.noise, 0.0)
        check_float("babble", self.babble, 0.0)
        check_int("seed", self.seed, 0)

    @property
    def clip_samples(self) -> int:
        return round(self.clip_seconds * SAMPLE_RATE)


def _trim(x: np.ndarray, threshold: int = 100) -> np.ndarray:
    loud = np.flatnonzero(np.abs(x) > threshold)
    return x[loud[0] : loud[-1] + 1] if len(loud) else x


def _say(rng: np.random.Generator, word: str, voice: str, n: int) -> np.ndarray:
    """float32 [n]: ``word`` at a random rate, pitch and gain, silence-trimmed, placed at a random offset."""
    rate, pitch, spread = int(rng.integers(120, 241)), int(rng.integers(25, 76)), int(rng.integers(25, 76))
    speech = _trim(synthesize(word, voice, rate=rate, pitch=pitch, pitch_range=spread)).astype(np.float32)
    speech = speech[max(0, (len(speech) - n) // 2) :][:n] * (rng.uniform(0.2, 1.0) / 32768.0)
    out = np.zeros(n, np.float32)
    start = int(rng.integers(0, n - len(speech) + 1))
    out[start : start + len(speech)] = speech
    return out


def synthesize_clips(split: str, config: SpokenWordsConfig) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(float32 waveforms [N, clip_samples], int64 word ids [N], voice per clip) of ``split``."""
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    rng = np.random.default_rng([config.seed, SPLITS.index(split)])
    n = config.clip_samples
    waves, labels, voices = [], [], []
    for word_id, word in enumerate(WORDS):
        for accent in ACCENTS:
            for variant in VARIANTS[split]:
                for _ in range(config.takes):
                    voice = f"{accent}+{variant}"
                    clip = _say(rng, word, voice, n)
                    if config.babble > 0:
                        other = WORDS[(word_id + int(rng.integers(1, len(WORDS)))) % len(WORDS)]
                        by = f"{ACCENTS[rng.integers(len(ACCENTS))]}+{VARIANTS[split][rng.integers(len(VARIANTS[split]))]}"
                        distractor = _say(rng, other, by, n)
                        clip += distractor * (config.babble * np.abs(clip).max() / max(np.abs(distractor).max(), 1e-6))
                    clip += (rng.standard_normal(n) * rng.uniform(0, config.noise)).astype(np.float32)
                    waves.append(clip)
                    labels.append(word_id)
                    voices.append(voice)
    return np.stack(waves), np.array(labels, dtype=np.int64), voices


class SpokenWords(torch.utils.data.Dataset):
    """``(frames float32 [T, n_mels], word id)`` items of one split; ``frames`` [N, T, n_mels],
    ``labels`` [N] and ``voices`` hold the whole split. Built once per configuration and cached."""

    def __init__(self, split: str = "train", config: SpokenWordsConfig | None = None,
                 log_mel: LogMelConfig | None = None) -> None:  # fmt: skip
        self.config = config or SpokenWordsConfig()
        self.log_mel = log_mel or LogMelConfig()
        if self.log_mel.sample_rate != SAMPLE_RATE:
            raise ValueError(f"log_mel: expected sample_rate {SAMPLE_RATE} (eSpeak's), got {self.log_mel.sample_rate}")
        key = json.dumps({"split": split, "words": asdict(self.config), "log_mel": asdict(self.log_mel),
                          "vocab": [WORDS, ACCENTS, VARIANTS.get(split)]}, sort_keys=True)  # fmt: skip
        path = cache_root() / "spoken_words" / f"{split}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
        if not path.is_file():
            waves, labels, voices = synthesize_clips(split, self.config)
            with torch.no_grad():
                frames = torch.cat([LogMel(self.log_mel)(torch.from_numpy(waves[i : i + 256]))
                                    for i in range(0, len(waves), 256)])  # fmt: skip
            with atomic_write(path) as f:
                np.savez(f, frames=frames.float().numpy(), labels=labels, voices=np.array(voices))
        with np.load(path) as saved:
            self.frames = torch.from_numpy(saved["frames"])
            self.labels = torch.from_numpy(saved["labels"])
            self.voices = saved["voices"].tolist()
        self.split = split

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.frames[i], int(self.labels[i])


__all__ = ["ACCENTS", "SPLITS", "VARIANTS", "WORDS", "SpokenWords", "SpokenWordsConfig", "synthesize_clips"]
