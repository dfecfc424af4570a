"""Word vocabulary: words sorted by frequency, their counts, and the sampling tables word2vec
derives from them (subsampling keep rates, the noise distribution, Huffman codes)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fastpretrain import _C
from fastpretrain.atomic import atomic_write


@dataclass(frozen=True)
class HuffmanCodes:
    """Hierarchical-softmax paths in word2vec.c's layout.

    For word ``w`` with ``L = lengths[w]``: ``points[w, :L]`` are inner-node ids (0..V-2, the
    root is V-2) from the root down, and ``codes[w, i]`` is the branch (0 or 1) taken below
    ``points[w, i]``. Rows are padded with code 0 and point -1.
    """

    codes: np.ndarray  # int8 [V, max_length]
    points: np.ndarray  # int32 [V, max_length]
    lengths: np.ndarray  # int32 [V]


@dataclass(eq=False)
class Vocab:
    """Words sorted by decreasing count (ties by word), as word2vec.c and gensim keep them."""

    words: list[str]
    counts: np.ndarray
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.counts = np.ascontiguousarray(self.counts, dtype=np.int64)
        if self.counts.shape != (len(self.words),):
            raise ValueError(f"counts: expected shape ({len(self.words)},), got {self.counts.shape}")
        if len(self.words) == 0:
            raise ValueError("words: the vocabulary is empty")
        if (self.counts < 0).any():
            raise ValueError("counts: must be >= 0")
        self._index = {w: i for i, w in enumerate(self.words)}
        if len(self._index) != len(self.words):
            raise ValueError("words: contains duplicates")

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self._index

    def __getitem__(self, word: str) -> int:
        """Id of ``word``; KeyError if it is not in the vocabulary."""
        return self._index[word]

    def get(self, word: str, default: int = -1) -> int:
        return self._index.get(word, default)

    @property
    def total_words(self) -> int:
        """Sum of the counts: the T of word2vec's subsampling formula."""
        return int(self.counts.sum())

    def keep_probabilities(self, sample: float) -> np.ndarray:
        """word2vec.c's per-word keep rate min(1, (sqrt(f/(s*T)) + 1) * (s*T)/f)."""
        if not sample >= 0:
            raise ValueError(f"sample: expected a threshold >= 0 (e.g. 1e-3), got {sample}")
        return _C.keep_probabilities(self.counts, float(sample))

    def noise_distribution(self, ns_exponent: float = 0.75) -> np.ndarray:
        """Negative-sampling distribution: counts ** ns_exponent, normalised."""
        if not np.isfinite(ns_exponent):
            raise ValueError(f"ns_exponent: expected a finite number, got {ns_exponent}")
        weights = np.where(self.counts > 0, self.counts.astype(np.float64) ** ns_exponent, 0.0)
        return weights / weights.sum()

    def huffman(self) -> HuffmanCodes:
        """Huffman tree over the counts, for hierarchical softmax."""
        codes, points, lengths = _C.huffman(self.counts)
        return HuffmanCodes(codes, points, lengths)

    def save(self, path: str | os.PathLike) -> None:
        """Write word2vec.c's vocabulary format (``word count`` per line), atomically."""
        lines = "".join(f"{w} {c}\n" for w, c in zip(self.words, self.counts.tolist()))
        with atomic_write(path, "w", encoding="utf-8") as f:
            f.write(lines)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocab:
        """Read a vocabulary written by :meth:`save` or ``word2vec -save-vocab``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path: vocabulary file {str(path)!r} does not exist")
        words, counts = [], []
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 2 or not parts[1].isdigit():
                    raise ValueError(f"path: {str(path)!r} line {lineno}: expected 'word count', got {line!r}")
                words.append(parts[0])
                counts.append(int(parts[1]))
        if not words:
            raise ValueError(f"path: vocabulary file {str(path)!r} is empty")
        return cls(words, np.array(counts, dtype=np.int64))
