"""A small synthetic corpus whose tokens say where they came from, for the BERT tests.

Sentence s of document d is ``D{d}s{s} w w w.`` with filler words w; with the vocabulary written
by :func:`write_vocab`, every word is one token, so a token id tells its document and sentence.
``TEXTS`` are a few sentences to train a WordPiece vocabulary on.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
FILLERS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu"]
MARKER = re.compile(r"d(\d+)s(\d+)")
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A journey of a thousand miles begins with a single step.",
    "To be, or not to be: that is the question.",
    "All that glitters is not gold; the dog sleeps, the fox runs.",
] * 20


def write_corpus(path: Path, docs: int = 60, sentences: int = 20, seed: int = 0) -> Path:
    rng = random.Random(seed)
    blocks = []
    for d in range(docs):
        lines = []
        for s in range(sentences):
            words = [f"D{d}s{s}", *rng.choices(FILLERS, k=rng.randint(2, 6))]
            lines.append(" ".join(words) + ".")
        # two or three sentences a paragraph
        paragraphs = [" ".join(lines[i : i + 3]) for i in range(0, len(lines), 3)]
        blocks.append("\n".join(paragraphs))
    path.write_text("\n\n".join(blocks) + "\n")
    return path


def write_vocab(path: Path, docs: int = 60, sentences: int = 20) -> Path:
    pieces = SPECIALS + [".", ","] + FILLERS + [f"d{d}s{s}" for d in range(docs) for s in range(sentences)]
    path.write_text("\n".join(pieces) + "\n")
    return path


def origin(token: str) -> tuple[int, int] | None:
    """(document, sentence) of a marker token, else None."""
    m = MARKER.fullmatch(token)
    return (int(m.group(1)), int(m.group(2))) if m else None
