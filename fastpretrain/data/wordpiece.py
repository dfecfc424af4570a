"""WordPiece tokenizers for BERT on HF ``tokenizers``: trained on a corpus, or loaded from a BERT
``vocab.txt`` (or a saved ``tokenizer.json``), and saved beside the model as both files.

The pipeline is BERT's: normalise (lowercase and strip accents when ``lowercase``), split on
whitespace and punctuation, WordPiece with ``##`` continuation pieces, and ``[CLS] A [SEP] B [SEP]``
when asked for special tokens. The same vocab.txt gives the same ids as ``BertTokenizerFast``.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer
from tokenizers.implementations import BertWordPieceTokenizer

from fastpretrain.atomic import atomic_path, atomic_write
from fastpretrain.checks import check_int

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
CONTINUATION = "##"


def train_wordpiece(texts: Iterable[str], *, vocab_size: int = 30522, lowercase: bool = True, min_frequency: int = 2,
                    limit_alphabet: int = 1000, progress: bool = True) -> Tokenizer:  # fmt: skip
    """A WordPiece tokenizer trained on ``texts`` (an iterable of strings, e.g. paragraphs, read
    twice: it is held as a list), with the special tokens first: [PAD] 0, [UNK] 1, [CLS] 2,
    [SEP] 3, [MASK] 4. The same texts give the same vocabulary in every run: see :func:`_alphabet`."""
    check_int("vocab_size", vocab_size, len(SPECIAL_TOKENS) + 1)
    check_int("min_frequency", min_frequency, 1)
    check_int("limit_alphabet", limit_alphabet, 1)
    texts = list(texts)
    start = time.perf_counter()
    wordpiece = BertWordPieceTokenizer(lowercase=lowercase, strip_accents=lowercase)
    alphabet = _alphabet(texts, wordpiece.normalizer, limit_alphabet)
    if progress:
        info(f"training {vocab_size:,} pieces on {len(texts):,} texts ({len(alphabet):,} characters)")
    pinned = [*SPECIAL_TOKENS, *(CONTINUATION + c for c in alphabet)]
    wordpiece.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=min_frequency, limit_alphabet=limit_alphabet,
                                  initial_alphabet=alphabet, special_tokens=pinned, show_progress=progress)  # fmt: skip
    pieces = vocab_list(wordpiece._tokenizer)
    if len(pieces) <= len(pinned):
        raise ValueError("texts: no word to learn from (the corpus is empty)")
    # rebuilt from the vocabulary alone, as its vocab.txt loads: the pinned "##" pieces are ordinary pieces again
    vocab = {piece: i for i, piece in enumerate(pieces)}
    tokenizer = BertWordPieceTokenizer(vocab, lowercase=lowercase, strip_accents=lowercase)
    if progress:
        info(f"trained {len(pieces):,} pieces in {time.perf_counter() - start:.1f} s")
    return tokenizer._tokenizer


def _alphabet(texts: list[str], normalizer, limit: int) -> list[str]:
    """The ``limit`` most frequent characters of the normalised texts (ties by code point).

    HF's trainer numbers the ``##`` pieces of the alphabet in hash-map order (a new order each run),
    and merges of equal count are tied by those numbers, so the vocabulary changed from run to
    run. Passing the alphabet, and its ``##`` pieces as special tokens, fixes every number."""
    counts = Counter()
    for text in texts:
        counts.update(normalizer.normalize_str(text))
    chars = sorted((c for c in counts if not c.isspace()), key=lambda c: (-counts[c], c))[:limit]
    return sorted(chars)


def load_wordpiece(path: str | os.PathLike, *, lowercase: bool = True) -> Tokenizer:
    """A tokenizer from a BERT ``vocab.txt`` (one piece a line, id = line number), a
    ``tokenizer.json``, or a directory holding either (tokenizer.json first). ``lowercase`` applies
    to vocab.txt only (uncased vocabularies need True, cased ones False)."""
    path = Path(path)
    if path.is_dir():
        found = [p for p in (path / "tokenizer.json", path / "vocab.txt") if p.is_file()]
        if not found:
            raise FileNotFoundError(f"path: directory {str(path)!r} holds neither tokenizer.json nor vocab.txt")
        path = found[0]
    if not path.is_file():
        raise FileNotFoundError(f"path: {str(path)!r} does not exist")
    if path.suffix == ".json":
        tokenizer = Tokenizer.from_file(str(path))
    else:
        tokenizer = BertWordPieceTokenizer(str(path), lowercase=lowercase, strip_accents=lowercase)._tokenizer
    special_ids(tokenizer)
    return tokenizer


def save_wordpiece(tokenizer: Tokenizer, directory: str | os.PathLike) -> Path:
    """Write ``tokenizer.json`` and ``vocab.txt`` (ordered by id) into ``directory``."""
    directory = Path(directory)
    with atomic_path(directory / "tokenizer.json") as tmp:
        tokenizer.save(str(tmp))
    with atomic_write(directory / "vocab.txt", "w", encoding="utf-8") as f:
        f.writelines(piece + "\n" for piece in vocab_list(tokenizer))
    return directory


def vocab_list(tokenizer: Tokenizer) -> list[str]:
    """The pieces in id order."""
    vocab = tokenizer.get_vocab()
    pieces = [""] * len(vocab)
    for piece, i in vocab.items():
        pieces[i] = piece
    return pieces


def special_ids(tokenizer: Tokenizer) -> dict[str, int]:
    """{token: id} of BERT's special tokens, or ValueError naming the ones the vocabulary lacks."""
    ids = {t: tokenizer.token_to_id(t) for t in SPECIAL_TOKENS}
    missing = [t for t, i in ids.items() if i is None and t != "[UNK]"]
    if missing:
        raise ValueError(f"tokenizer: the vocabulary lacks the special tokens {missing} BERT needs")
    return ids


def info(message: str) -> None:
    """A progress line on stderr, for the phases that can take minutes on a large corpus."""
    print(f"[wordpiece] {message}", file=sys.stderr, flush=True)
