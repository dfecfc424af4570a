"""Windows of consecutive sentences as bytes, for CPC on text: each document's sentences
(:func:`~fastpretrain.data.documents.split_sentences`), each sentence its UTF-8 bytes cut or
0-padded to a fixed length, cut into non-overlapping windows of S sentences (a document's tail
shorter than S is dropped). Every ``HELDOUT_EVERY``-th document (index 9, 19, ...) is held out of
training, so the evaluation's sentences are ones the model never saw.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from fastpretrain.checks import check_int
from fastpretrain.data.documents import read_documents, split_sentences

HELDOUT_EVERY = 10


def sentence_bytes(sentence: str, length: int) -> np.ndarray:
    """[length] uint8: the sentence's UTF-8 bytes, cut at ``length`` or 0-padded."""
    raw = np.frombuffer(sentence.encode("utf-8")[:length], dtype=np.uint8)
    return np.pad(raw, (0, length - len(raw)))


def document_sentences(source: str | os.PathLike, split: str, max_documents: int | None = None) -> list[list[str]]:
    """The sentences of each document of ``source`` in ``split`` ("train" or "heldout"), among its
    first ``max_documents`` documents (default all)."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split: expected 'train' or 'heldout', got {split!r}")
    if max_documents is not None:
        check_int("max_documents", max_documents, 1)
    docs = []
    for i, doc in enumerate(read_documents(source, progress=False)):
        if max_documents is not None and i >= max_documents:
            break
        if (i % HELDOUT_EVERY == HELDOUT_EVERY - 1) == (split == "heldout"):
            docs.append([s for paragraph in doc for s in split_sentences(paragraph)])
    return docs


class SentenceWindows(torch.utils.data.Dataset):
    """Item i: [window, length] uint8, ``window`` consecutive sentences of one document as bytes."""

    def __init__(self, documents: list[list[str]], window: int, length: int) -> None:
        check_int("window", window, 1)
        check_int("length", length, 1)
        rows = [np.stack([sentence_bytes(s, length) for s in doc[lo : lo + window]])
                for doc in documents for lo in range(0, len(doc) - window + 1, window)]  # fmt: skip
        if not rows:
            raise ValueError(f"documents: no document has {window} sentences (the window)")
        self.windows = torch.from_numpy(np.stack(rows))

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.windows[i]
