"""word2vec training batches from the C++ producer: skip-gram (center, context) pairs or CBOW
(context window, center) examples, optionally with negatives, as numpy int32 arrays that
``torch.from_numpy`` wraps without a copy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional

import numpy as np

from fastpretrain import _C
from fastpretrain.checks import check_int
from fastpretrain.data.corpus import Corpus


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
    ``max_sentence_length`` kept words, each center gets a window b ~ U[1, window], and
    negatives come from counts ** ns_exponent. Every iteration replays the same batches: the
    order depends only on ``seed`` and ``workers``.

    Args mirror gensim's ``Word2Vec``: ``sg`` (1 skip-gram, 0 CBOW), ``window``, ``sample``,
    ``negative``, ``ns_exponent``, ``epochs``, ``workers``, ``seed``; ``batch_size`` counts
    pairs (skip-gram) or examples (CBOW).
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
    ) -> None:
        if not isinstance(corpus, Corpus):
            raise TypeError(f"corpus: expected a fastpretrain.data.Corpus, got {type(corpus).__name__}")
        if corpus.n_words == 0:
            raise ValueError("corpus: holds no words")
        if sg not in (0, 1):
            raise ValueError(f"sg: expected 1 (skip-gram) or 0 (CBOW), got {sg!r}")
        self.corpus = corpus
        self.sg = int(sg)
        self.window = check_int("window", window, 1)
        self.negative = check_int("negative", negative, 0)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.epochs = check_int("epochs", epochs, 1)
        self.workers = check_int("workers", workers, 1)
        self.seed = check_int("seed", seed, 0)
        self.max_sentence_length = check_int("max_sentence_length", max_sentence_length, 1)
        if not (isinstance(sample, (int, float)) and sample >= 0):
            raise ValueError(f"sample: expected a threshold >= 0 (e.g. 1e-3; 0 disables), got {sample!r}")
        self.sample = float(sample)
        self.ns_exponent = float(ns_exponent)
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
        )  # fmt: skip
        while (b := producer.next()) is not None:
            yield Word2VecBatch(b["centers"], b["contexts"], b["lengths"], b["negatives"], b["epoch"], b["progress"])
