"""word2vec training batches from the C++ producer: skip-gram (center, context) pairs or CBOW
(context window, center) examples, optionally with negatives, as numpy int32 arrays that
``torch.from_numpy`` wraps without a copy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional

import numpy as np

from fastpretrain import _C
from fastpretrain.checks import INT32_MAX, UINT64_MAX, check_flag, check_float, check_int
from fastpretrain.data.corpus import Corpus

# The C++ producer's bounds (csrc/producer.h); the memory the batches take together is checked there.
MAX_BATCH_SIZE = 2**24
MAX_WINDOW = 2**20
MAX_NEGATIVE = 2**20
MAX_WORKERS = 1024


@dataclass(frozen=True)
class Word2VecBatch:
    """One batch. Skip-gram: ``contexts`` is [N]; CBOW: [N, 2*window] padded with -1 past
    ``lengths[i]``. ``negatives`` is [N, negative] (None when negative == 0).
    ``progress`` is the fraction of all epochs' words read so far, for word2vec's linear
    learning-rate decay."""

    centers: np.ndarray
    contexts: np.ndarray
    lengths: Optional[np.ndarray]
    negatives: Optional[np.ndarray]
    epoch: int
    progress: float

    def __len__(self) -> int:
        return len(self.centers)


class Word2VecBatches:
    """Iterable over word2vec training batches, made by C++ worker threads.

    word2vec.c's sampling: frequent words are dropped with keep rate
    min(1, (sqrt(f/(s*T)) + 1) * (s*T)/f) afresh each epoch, sentences are cut at
    ``max_sentence_length`` kept words, each center gets a window b ~ U[1, window] (b = window
    with ``shrink_windows=0``), and negatives come from counts ** ns_exponent. Every iteration
    replays the same batches: the order depends only on ``seed`` and ``workers``.

    Args mirror gensim's ``Word2Vec``: ``sg`` (1 skip-gram, 0 CBOW), ``window``, ``sample``,
    ``negative``, ``ns_exponent``, ``epochs``, ``workers``, ``seed``, ``shrink_windows``;
    ``batch_size`` counts pairs (skip-gram) or examples (CBOW), at most 2**24. Iterating raises
    ValueError when the batches buffered by all workers would take more than half the memory.
    """

    def __init__(
        self,
        corpus: Corpus,
        *,
        sg: int = 1,
        window: int = 5,
        sample: float = 1e-3,
        negative: int = 5,
        ns_exponent: float = 0.75,
        batch_size: int = 16384,
        epochs: int = 1,
        workers: int = 2,
        seed: int = 1,
        max_sentence_length: int = 1000,
        shrink_windows: int = 1,
    ) -> None:
        if not isinstance(corpus, Corpus):
            raise TypeError(f"corpus: expected a fastpretrain.data.Corpus, got {type(corpus).__name__}")
        if corpus.n_words == 0:
            raise ValueError("corpus: holds no words")
        self.corpus = corpus
        self.sg = check_flag("sg", sg)
        self.window = check_int("window", window, 1, MAX_WINDOW)
        self.negative = check_int("negative", negative, 0, MAX_NEGATIVE)
        self.batch_size = check_int("batch_size", batch_size, 1, MAX_BATCH_SIZE)
        self.epochs = check_int("epochs", epochs, 1, INT32_MAX)
        self.workers = check_int("workers", workers, 1, MAX_WORKERS)
        self.seed = check_int("seed", seed, 0, UINT64_MAX)
        self.max_sentence_length = check_int("max_sentence_length", max_sentence_length, 1, INT32_MAX)
        self.shrink_windows = check_flag("shrink_windows", shrink_windows)
        self.sample = check_float("sample", sample, 0.0, " (e.g. 1e-3; 0 disables)")
        self.ns_exponent = check_float("ns_exponent", ns_exponent)
        self.keep = corpus.vocab.keep_probabilities(self.sample)
        self.noise = corpus.vocab.noise_distribution(self.ns_exponent)

    @property
    def total_words(self) -> int:
        """Words read over all epochs (before subsampling)."""
        return self.epochs * self.corpus.n_words

    def __iter__(self) -> Iterator[Word2VecBatch]:
        producer = _C.Producer(
            self.corpus.ids, self.keep, self.noise, skipgram=bool(self.sg), window=self.window,
            negative=self.negative, batch_size=self.batch_size, epochs=self.epochs, workers=self.workers,
            seed=self.seed, max_sentence_length=self.max_sentence_length, queue_depth=4,
            shrink_windows=bool(self.shrink_windows),
        )  # fmt: skip
        while (b := producer.next()) is not None:
            yield Word2VecBatch(b["centers"], b["contexts"], b["lengths"], b["negatives"], b["epoch"], b["progress"])
