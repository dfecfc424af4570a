"""Word-level language-model data (NNLM, ELMo): the words and punctuation of a document corpus as
one id stream, a frequency-sorted vocabulary, documents split into train and held-out, and the
stream cut into fixed-length blocks for training.

Tokens are runs of word characters (apostrophes inside a word kept: ``don't``) and single
punctuation marks; each sentence (``sentences=True``, :func:`split_sentences`) or paragraph ends
with ``</s>``. Ids are sorted by decreasing training count, so id order is frequency order, as the
log-uniform sampler of a sampled softmax assumes; words outside the vocabulary become ``<unk>``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch

from fastpretrain.checks import check_int
from fastpretrain.data.documents import read_documents, split_sentences
from fastpretrain.data.vocab import Vocab

TOKEN = re.compile(r"\w+(?:'\w+)*|[^\w\s]")
UNK, EOS = "<unk>", "</s>"


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Words and punctuation marks of ``text``."""
    return TOKEN.findall(text.lower() if lowercase else text)


def _segments(document: list[str], sentences: bool) -> list[str]:
    return [s for p in document for s in split_sentences(p)] if sentences else document


@dataclass(eq=False)
class WordCorpus:
    """A corpus as word ids: ``train`` and ``heldout`` int32 streams, ``vocab`` (``<unk>`` and
    ``</s>`` included, by decreasing count), the settings that made them and which documents (in
    file order) were held out."""

    vocab: Vocab
    train: np.ndarray
    heldout: np.ndarray
    lowercase: bool
    sentences: bool
    heldout_documents: list[int] = field(default_factory=list)

    @classmethod
    def build(cls, source: str | os.PathLike, *, vocab_size: int = 50_000, heldout: float = 0.01, seed: int = 0,
              lowercase: bool = True, sentences: bool = False, max_documents: int | None = None,
              vocab: Vocab | None = None, progress: bool = False) -> WordCorpus:  # fmt: skip
        """Read ``source`` (a file or folder: a paragraph a line, a blank line between documents);
        hold out a seeded ``heldout`` fraction of its documents (at least one when > 0); the
        vocabulary is the training documents' ``vocab_size`` most frequent tokens (or ``vocab``)."""
        check_int("vocab_size", vocab_size, 3)
        if not 0 <= heldout < 1:
            raise ValueError(f"heldout: expected a fraction in [0, 1), got {heldout!r}")
        documents = []
        for doc in read_documents(source, progress=progress):
            documents.append([tokenize(s, lowercase) for s in _segments(doc, sentences)])
            if max_documents is not None and len(documents) >= max_documents:
                break
        if len(documents) < (2 if heldout > 0 else 1):
            raise ValueError(f"source: {len(documents)} document(s) in {str(source)!r}, too few to hold some out")
        order = np.random.default_rng(seed).permutation(len(documents))
        n_held = max(1, round(heldout * len(documents))) if heldout > 0 else 0
        held, train = sorted(order[:n_held]), sorted(order[n_held:])
        if vocab is None:
            vocab = build_vocab((documents[i] for i in train), vocab_size)
        return cls(vocab, encode(vocab, (documents[i] for i in train)), encode(vocab, (documents[i] for i in held)),
                   lowercase, sentences, [int(i) for i in held])  # fmt: skip


def build_vocab(documents, vocab_size: int) -> Vocab:
    """The ``vocab_size`` - 2 most frequent tokens, ``<unk>`` (the others' count) and ``</s>``, by
    decreasing count (ties by first appearance)."""
    counts: Counter = Counter()
    segments = 0
    for doc in documents:
        for tokens in doc:
            counts.update(tokens)
            segments += 1
    counts.pop(UNK, None), counts.pop(EOS, None)
    kept = counts.most_common(vocab_size - 2)
    rest = sum(counts.values()) - sum(c for _, c in kept)
    entries = sorted([*kept, (UNK, rest), (EOS, segments)], key=lambda e: -e[1])
    return Vocab([w for w, _ in entries], np.array([c for _, c in entries], dtype=np.int64))


def encode(vocab: Vocab, documents) -> np.ndarray:
    """The int32 id stream of ``documents`` (lists of token lists), ``</s>`` after each list."""
    unk, eos = vocab[UNK], vocab[EOS]
    ids: list[int] = []
    for doc in documents:
        for tokens in doc:
            ids.extend(vocab.get(t, unk) for t in tokens)
            ids.append(eos)
    return np.array(ids, dtype=np.int32)


class TokenBlocks(torch.utils.data.Dataset):
    """Consecutive blocks of an id stream: item i is ``ids[i * length : (i + 1) * length + overlap]``
    (int64), so each block's ``length`` targets have their ``overlap`` tokens of context (an n-gram
    model's n - 1, a language model's 1). The tail that fills no block is dropped."""

    def __init__(self, ids: np.ndarray, length: int, overlap: int = 1) -> None:
        self.length = check_int("length", length, 1)
        self.overlap = check_int("overlap", overlap, 0)
        self.ids = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
        if len(self) == 0:
            raise ValueError(f"length: {len(ids)} tokens fill no block of {length} + {overlap} (a shorter block?)")

    def __len__(self) -> int:
        return max(0, (len(self.ids) - self.overlap) // self.length)

    def __getitem__(self, i: int) -> torch.Tensor:
        if not 0 <= i < len(self):
            raise IndexError(f"block {i} out of range [0, {len(self)})")
        return self.ids[i * self.length : (i + 1) * self.length + self.overlap]
