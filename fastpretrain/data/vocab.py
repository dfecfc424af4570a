"""Word vocabulary: words sorted by frequency, their counts, and the sampling tables word2vec
derives from them (subsampling keep rates, the noise distribution, Huffman codes)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fastpretrain import _C
from fastpretrain.atomic import atomic_write

# What splits words: Python's str.split() whitespace, which the C++ tokenizer splits on too.
_SPACE = re.compile(r"\s")


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
    """Words and their counts. :meth:`Corpus.build` orders them as gensim 4.4 does: by decreasing
    count, ties with the word counted last first (its ``sort_by_descending_frequency``), or in
    order of first count with ``sorted_vocab=False``. Words are non-empty and hold no whitespace
    (what Python's ``str.split()`` splits on: the tokenizer never makes such a word)."""

    words: list[str]
    counts: np.ndarray
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.words = list(self.words)
        _check_words(self.words)
        counts = np.asarray(self.counts)
        if counts.dtype.kind not in "iu" and counts.size:
            raise ValueError(f"counts: expected integers, got dtype {counts.dtype}")
        self.counts = np.ascontiguousarray(counts, dtype=np.int64)
        if self.counts.shape != (len(self.words),):
            raise ValueError(f"counts: expected shape ({len(self.words)},), got {self.counts.shape}")
        if len(self.words) == 0:
            raise ValueError("words: the vocabulary is empty")
        if (self.counts < 0).any():
            raise ValueError("counts: must be >= 0")
        self._index = {w: i for i, w in enumerate(self.words)}
        if len(self._index) != len(self.words):
            i = next(i for i, w in enumerate(self.words) if self._index[w] != i)
            raise ValueError(f"words: contains duplicates ({self.words[i]!r} at {i} and {self._index[self.words[i]]})")

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
        with np.errstate(over="ignore"):
            weights = np.where(self.counts > 0, self.counts.astype(np.float64) ** ns_exponent, 0.0)
            total = weights.sum()
        if not (np.isfinite(total) and total > 0):
            why = "every count is 0" if not self.counts.any() else f"counts ** {ns_exponent} overflows"
            raise ValueError(f"ns_exponent: no noise distribution, {why}")
        return weights / total

    def huffman(self) -> HuffmanCodes:
        """Huffman tree over the counts, for hierarchical softmax. Among equal counts the leaves
        are taken in the words' string order, not the vocabulary's: in gensim's order a document's
        rare words sit side by side and would become siblings, and the CPU reference, which applies
        a batch's updates from one set of weights, then learned CBOW-HS markedly worse (gensim's Lee
        corpus: "bombings" ranked 45-77th from "attacks" instead of 7-11th, 3 seeds)."""
        order = np.lexsort((np.array(self.words, dtype=object).argsort().argsort(), -self.counts))
        codes, points, lengths = _C.huffman(self.counts[order])
        rows = np.empty_like(order)
        rows[order] = np.arange(len(order))
        return HuffmanCodes(codes[rows], points[rows], lengths[rows])

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
        words, counts, lineno = [], [], 0
        with open(path, encoding="utf-8") as f:
            try:
                for lineno, line in enumerate(f, 1):
                    parts = line.split()
                    if not parts:
                        continue
                    if len(parts) != 2 or not (parts[1].isascii() and parts[1].isdigit()):
                        raise ValueError(f"path: {str(path)!r} line {lineno}: expected 'word count' (words hold no "
                                         f"whitespace), got {line[:80]!r}")  # fmt: skip
                    words.append(parts[0])
                    counts.append(int(parts[1]))
            except UnicodeDecodeError as e:
                raise ValueError(f"path: {str(path)!r} is not UTF-8 text ({e.reason} after line {lineno})") from None
        if not words:
            raise ValueError(f"path: vocabulary file {str(path)!r} is empty")
        if max(counts) > 2**63 - 1:
            raise ValueError(f"path: {str(path)!r}: the count of {words[counts.index(max(counts))]!r} is above 2^63 - 1")
        try:
            return cls(words, np.array(counts, dtype=np.int64))
        except ValueError as e:
            raise ValueError(f"path: {str(path)!r}: {e}") from None


def _check_words(words: list[str]) -> None:
    """Every word a non-empty str without whitespace, so a vocabulary file can hold it."""
    for i, w in enumerate(words):
        if not isinstance(w, str):
            raise TypeError(f"words: entry {i} is {type(w).__name__}, expected str")
    if "" in words:
        raise ValueError(f"words: entry {words.index('')} is empty")
    if _SPACE.search("".join(words)):
        i, w = next((i, w) for i, w in enumerate(words) if _SPACE.search(w))
        raise ValueError(f"words: entry {i} ({w!r}) holds whitespace (U+{ord(_SPACE.search(w).group()):04X}), "
                         "which splits words")  # fmt: skip
