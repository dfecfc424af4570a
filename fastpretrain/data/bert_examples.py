"""BERT pre-training examples: sentence pairs with next-sentence labels, masked for MLM.

Pairs are built as Google's ``create_pretraining_data.py`` builds them: a document's sentences
are gathered into a chunk of about ``max_len - 3`` tokens (10% of chunks get a shorter random
target), cut at a random sentence boundary into A and B; half the time B is replaced by sentences
from a random other document of the same split (the unused sentences go back to the pool), and
the pair is trimmed from a random end of the longer side. Two changes: a chunk of one sentence is
cut inside that sentence (so the random-next rate stays 50%), and sentences longer than
``max_len - 3`` tokens are cut into pieces of that length.

A corpus whose documents are not marked (no blank line anywhere: one document) falls back to
fixed-length chunks: its sentences are grouped into pseudo-documents of about 4 x ``max_len``
tokens, so that random-next sentences still come from elsewhere in the text.

Examples are built once per (corpus files, tokenizer, max_len, heldout, short_seq_prob, seed) into
a cache of int32 token arrays, memory-mapped; masking is drawn per example in ``__getitem__``
from (seed, index), so an example's masks are the same in every epoch and on every rank.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from fastpretrain.checks import check_int
from fastpretrain.data.corpus import cache_root
from fastpretrain.data.documents import read_documents, split_sentences
from fastpretrain.data.mlm_masking import MlmMasking
from fastpretrain.data.text_files import text_files
from fastpretrain.data.wordpiece import special_ids

FORMAT_VERSION = 1
SPLITS = ("train", "heldout")
MIN_MAX_LEN = 8  # [CLS] A [SEP] B [SEP] with a few tokens on each side
FALLBACK_DOC_LEN = 4  # pseudo-documents of FALLBACK_DOC_LEN * max_len tokens
_ENCODE_BATCH = 4096  # sentences per encode_batch call


class BertExamples(Dataset):
    """Map-style dataset of BERT pre-training examples (one split), built by :meth:`build`.

    Item i is a dict of numpy arrays: ``input_ids`` (int64, masked), ``token_type_ids``,
    ``mlm_positions`` (in the sequence), ``mlm_labels`` (original ids there), ``nsp_label``
    (1 = B is a random sentence, as HF's ``next_sentence_label``). See
    :func:`fastpretrain.data.collate_packed`.
    """

    def __init__(self, tokens: np.ndarray, index: np.ndarray, masking: MlmMasking, seed: int = 0) -> None:
        self.tokens, self.index, self.masking, self.seed = tokens, index, masking, seed

    @classmethod
    def build(cls, source: str | os.PathLike, tokenizer: Tokenizer, *, split: str = "train", max_len: int = 128,
              heldout: float = 0.01, short_seq_prob: float = 0.1, seed: int = 0, mlm_probability: float = 0.15,
              whole_word: bool = False, cache_dir: str | os.PathLike | None = None,
              progress: bool = True) -> BertExamples:  # fmt: skip
        """Examples of ``split`` ("train" or "heldout": a ``heldout`` fraction of the documents,
        at least 2, chosen by ``seed``) from a text file or directory; cached (see the module
        docstring) under ``cache_dir`` (default :func:`fastpretrain.data.cache_root`)."""
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
        check_int("max_len", max_len, MIN_MAX_LEN)
        check_int("seed", seed, 0)
        if not 0.0 <= heldout < 1.0:
            raise ValueError(f"heldout: expected a fraction in [0, 1), got {heldout!r}")
        if not 0.0 <= short_seq_prob <= 1.0:
            raise ValueError(f"short_seq_prob: expected a probability in [0, 1], got {short_seq_prob!r}")
        if split == "heldout" and heldout == 0:
            raise ValueError("heldout: the 'heldout' split needs heldout > 0")
        masking = MlmMasking.from_tokenizer(tokenizer, mlm_probability, whole_word)
        files = text_files(source)
        settings = [FORMAT_VERSION, [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files],
                    hashlib.sha256(tokenizer.to_str().encode()).hexdigest(), max_len, heldout, short_seq_prob, seed]  # fmt: skip
        key = hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:24]
        target = Path(cache_dir if cache_dir is not None else cache_root()) / "bert_examples" / key
        if not (target / "meta.json").is_file():
            _build_cache(target, source, tokenizer, max_len, heldout, short_seq_prob, seed, settings, progress)
        elif progress:
            _info(f"{split} examples of {str(source)!r} from the cache {target}")
        meta = json.loads((target / "meta.json").read_text())
        n = meta["examples"][split]
        if n == 0:
            raise ValueError(f"source: no {split} example could be built from {str(source)!r}")
        tokens = np.memmap(target / f"{split}.tokens.i32", dtype=np.int32, mode="r", shape=(meta["tokens"][split],))
        index = np.memmap(target / f"{split}.index.i64", dtype=np.int64, mode="r", shape=(n, 4))
        return cls(tokens, index, masking, seed)

    def __len__(self) -> int:
        return len(self.index)

    def pair(self, i: int) -> tuple[np.ndarray, int, int]:
        """(unmasked ids of [CLS] A [SEP] B [SEP], length of [CLS] A [SEP], nsp label) of example i."""
        start, length, a_len, label = (int(x) for x in self.index[i])
        return np.asarray(self.tokens[start : start + length], dtype=np.int64), a_len, label

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        ids, a_len, label = self.pair(i)
        input_ids, positions, labels = self.masking(ids, np.random.default_rng((self.seed, int(i))))
        token_type_ids = np.zeros(len(ids), dtype=np.int64)
        token_type_ids[a_len:] = 1
        return {"input_ids": input_ids, "token_type_ids": token_type_ids, "mlm_positions": positions,
                "mlm_labels": labels, "nsp_label": np.int64(label)}  # fmt: skip

    def lengths(self) -> np.ndarray:
        """Sequence lengths of every example."""
        return np.asarray(self.index[:, 1])


def _build_cache(target: Path, source, tokenizer: Tokenizer, max_len: int, heldout: float, short_seq_prob: float,
                 seed: int, settings: list, progress: bool) -> None:  # fmt: skip
    ids = special_ids(tokenizer)
    start = time.perf_counter()
    if progress:
        _info(f"building examples of {max_len} tokens from {str(source)!r} into {target}")
    documents = _tokenized_documents(source, tokenizer, max_len - 3, progress)
    if not documents:
        raise ValueError(f"source: {str(source)!r} holds no text")
    if progress:
        _info(f"tokenized {len(documents):,} documents ({time.perf_counter() - start:.1f} s); pairing sentences")
    if len(documents) == 1:  # documents not marked: fixed-length pseudo-documents
        documents = _chunk(documents[0], FALLBACK_DOC_LEN * max_len)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(documents))
    n_heldout = max(2, round(heldout * len(documents))) if heldout > 0 else 0
    if len(documents) - n_heldout < 2:
        raise ValueError(f"source: {len(documents)} documents are too few for next-sentence pairs "
                         f"(need 2 for training{' and 2 held out' if n_heldout else ''})")  # fmt: skip
    splits = {"heldout": [documents[i] for i in order[:n_heldout]], "train": [documents[i] for i in order[n_heldout:]]}
    root = target.parent
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    try:
        meta = {"format": FORMAT_VERSION, "settings": settings, "examples": {}, "tokens": {}, "documents": {}}
        for name, docs in splits.items():
            tokens, index = _pairs(docs, max_len, short_seq_prob, ids["[CLS]"], ids["[SEP]"], rng, progress, name)
            tokens.tofile(work / f"{name}.tokens.i32")
            index.tofile(work / f"{name}.index.i64")
            meta["examples"][name], meta["tokens"][name], meta["documents"][name] = len(index), len(tokens), len(docs)
            if progress:
                seconds = time.perf_counter() - start
                _info(f"{name}: {len(index):,} examples from {len(docs):,} documents ({seconds:.1f} s)")
        (work / "meta.json").write_text(json.dumps(meta))
        try:
            os.replace(work, target)  # atomic publish; a concurrent builder may have won
        except OSError:
            if not (target / "meta.json").is_file():
                raise
            shutil.rmtree(work)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _info(message: str) -> None:
    """A progress line on stderr: tokenizing and pairing a large corpus takes minutes."""
    print(f"[bert examples] {message}", file=sys.stderr, flush=True)


def _tokenized_documents(source, tokenizer: Tokenizer, max_piece: int, progress: bool) -> list[list[np.ndarray]]:
    """Every document as a list of sentences, each an int32 array of token ids (no specials),
    sentences longer than ``max_piece`` cut into pieces; empty sentences and documents dropped."""
    documents, pending, owners = [], [], []

    def flush():
        for owner, enc in zip(owners, tokenizer.encode_batch(pending, add_special_tokens=False)):
            sentence = np.asarray(enc.ids, dtype=np.int32)
            documents[owner].extend(sentence[i : i + max_piece] for i in range(0, len(sentence), max_piece))
        pending.clear()
        owners.clear()

    for paragraphs in read_documents(source, progress=progress):
        documents.append([])
        for paragraph in paragraphs:
            for sentence in split_sentences(paragraph):
                pending.append(sentence)
                owners.append(len(documents) - 1)
        if len(pending) >= _ENCODE_BATCH:
            flush()
    flush()
    return [d for d in documents if d]


def _chunk(sentences: list[np.ndarray], size: int) -> list[list[np.ndarray]]:
    docs, current, n = [], [], 0
    for s in sentences:
        current.append(s)
        n += len(s)
        if n >= size:
            docs.append(current)
            current, n = [], 0
    if current:
        docs.append(current)
    return docs


def _pairs(documents: list[list[np.ndarray]], max_len: int, short_seq_prob: float, cls_id: int, sep_id: int,
           rng: np.random.Generator, progress: bool, name: str) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(tokens int32, index int64 [n, 4] of (start, length, length of [CLS] A [SEP], nsp label))."""
    budget = max_len - 3
    pieces: list[np.ndarray] = []
    rows: list[tuple[int, int, int, int]] = []
    start = 0
    head, sep = np.array([cls_id], dtype=np.int32), np.array([sep_id], dtype=np.int32)
    for d, document in enumerate(tqdm(documents, desc=f"{name} pairs", unit="doc", disable=None if progress else True)):
        target = int(rng.integers(2, budget + 1)) if rng.random() < short_seq_prob else budget
        chunk, length, i = [], 0, 0
        while i < len(document):
            chunk.append(document[i])
            length += len(document[i])
            if i == len(document) - 1 or length >= target:
                a, b, label, unused = _split_chunk(chunk, target, documents, d, rng)
                i -= unused
                a, b = _truncate(a, b, budget, rng)
                if len(a) and len(b):
                    pieces += [head, a, sep, b, sep]
                    rows.append((start, len(a) + len(b) + 3, len(a) + 2, label))
                    start += len(a) + len(b) + 3
                chunk, length = [], 0
                target = int(rng.integers(2, budget + 1)) if rng.random() < short_seq_prob else budget
            i += 1
    tokens = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32)
    return tokens.astype(np.int32), np.array(rows, dtype=np.int64).reshape(-1, 4)


def _split_chunk(chunk, target, documents, d, rng) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(A, B, nsp label, sentences of the chunk to put back) for one chunk of document d."""
    if len(chunk) == 1:  # one sentence: cut inside it
        cut = int(rng.integers(1, len(chunk[0]))) if len(chunk[0]) > 1 else 1
        a_parts, rest = [chunk[0][:cut]], [chunk[0][cut:]]
    else:
        a_end = int(rng.integers(1, len(chunk)))
        a_parts, rest = chunk[:a_end], chunk[a_end:]
    a = np.concatenate(a_parts)
    if rng.random() >= 0.5:
        return a, np.concatenate(rest), 0, 0
    other = int(rng.integers(0, len(documents) - 1))
    other += other >= d  # any document but d
    doc = documents[other]
    b, need = [], max(1, target - len(a))
    for sentence in doc[int(rng.integers(0, len(doc))) :]:
        b.append(sentence)
        if sum(len(x) for x in b) >= need:
            break
    return a, np.concatenate(b), 1, len(rest) if len(chunk) > 1 else 0


def _truncate(a: np.ndarray, b: np.ndarray, budget: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Trim the longer of A and B, one token at a time from a random end, until they fit."""
    a_lo, a_hi, b_lo, b_hi = 0, len(a), 0, len(b)
    while (a_hi - a_lo) + (b_hi - b_lo) > budget:
        if a_hi - a_lo > b_hi - b_lo:
            if rng.random() < 0.5:
                a_lo += 1
            else:
                a_hi -= 1
        elif rng.random() < 0.5:
            b_lo += 1
        else:
            b_hi -= 1
    return a[a_lo:a_hi], b[b_lo:b_hi]

