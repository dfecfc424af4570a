"""Language-model rows from documents: a corpus tokenized once into a memory-mapped cache, cut
into fixed-length rows, and batched with each row's document boundaries.

The cache holds, per split, every document as ``<|endoftext|>`` then its tokens, back to back
(``tokens.bin``, uint16 or uint32), so the separator opens each document as GPT-2's does. A row is
``seq_len + 1`` consecutive tokens (inputs and their next tokens), rows not overlapping, documents
running across rows. :func:`collate_lm_rows` packs a batch for the varlen path, where each row is
cut before every separator: a document's tokens attend to nothing of the one before it. Documents
are split between train and held-out by a seeded draw, so held-out text is never trained on.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from fastpretrain.atomic import atomic_path, atomic_write
from fastpretrain.checks import check_int
from fastpretrain.data.bpe import EOT
from fastpretrain.data.documents import read_documents
from fastpretrain.progress import Progress

SPLITS = ("train", "heldout")
_VERSION = 1


def _key(source: Path, tokenizer: Tokenizer, heldout: float, seed: int) -> str:
    """The cache entry's name: the corpus files (paths, sizes, times), the tokenizer and the split."""
    files = sorted(source.rglob("*")) if source.is_dir() else [source]
    h = hashlib.sha256(f"{_VERSION} {heldout!r} {seed}".encode())
    for f in files:
        if f.is_file():
            st = f.stat()
            h.update(f"{f.resolve()} {st.st_size} {st.st_mtime_ns}".encode())
    h.update(tokenizer.to_str().encode())
    return h.hexdigest()[:16]


class TokenCache:
    """The tokenized documents of one corpus split: ``tokens`` (a read-only memmap) and ``starts``
    (int64 [documents + 1], each document's first token, then the total)."""

    def __init__(self, folder: Path, split: str) -> None:
        meta = json.loads((folder / "meta.json").read_text())
        self.folder, self.split, self.eot_id = folder, split, meta["eot_id"]
        self.starts = np.load(folder / f"{split}_starts.npy")
        total = int(self.starts[-1])
        self.tokens = np.memmap(folder / f"{split}.bin", dtype=meta["dtype"], mode="r", shape=(total,)) if total else \
            np.zeros(0, dtype=meta["dtype"])  # fmt: skip

    @classmethod
    def build(cls, source: str | os.PathLike, tokenizer: Tokenizer, split: str = "train", *, heldout: float = 0.01,
              seed: int = 0, cache_dir: str | os.PathLike | None = None, progress: bool = True) -> TokenCache:  # fmt: skip
        """Split ``split`` of the documents of ``source`` (a text file or folder, a blank line
        between documents, see :func:`~fastpretrain.data.read_documents`), tokenized once: a later
        call with the same corpus, tokenizer, ``heldout`` and ``seed`` maps the cached files."""
        from fastpretrain.data.corpus import cache_root

        if split not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
        if not (isinstance(heldout, float | int) and 0.0 <= heldout < 1.0):
            raise ValueError(f"heldout: expected a fraction in [0, 1), got {heldout!r}")
        check_int("seed", seed, 0)
        source = Path(source)
        if not source.exists():
            raise FileNotFoundError(f"source: {str(source)!r} does not exist")
        eot_id = tokenizer.token_to_id(EOT)
        if eot_id is None:
            raise ValueError(f"tokenizer: has no {EOT} token to separate documents")
        folder = Path(cache_dir or cache_root()) / "lm_tokens" / _key(source, tokenizer, heldout, seed)
        if not (folder / "meta.json").is_file():
            _write(folder, source, tokenizer, eot_id, heldout, seed, progress)
        return cls(folder, split)

    def __len__(self) -> int:
        return len(self.starts) - 1

    def document(self, i: int) -> np.ndarray:
        """Document ``i``'s tokens, its leading separator included."""
        return np.asarray(self.tokens[self.starts[i] : self.starts[i + 1]])


def _write(folder: Path, source: Path, tokenizer: Tokenizer, eot_id: int, heldout: float, seed: int,
           progress: bool) -> None:  # fmt: skip
    """Tokenize every document of ``source`` into ``folder``'s split files; meta.json last (it marks the entry done)."""
    dtype = np.uint16 if tokenizer.get_vocab_size() <= 1 << 16 else np.uint32
    docs = ["\n".join(d) for d in read_documents(source, progress=progress)]
    if not docs:
        raise ValueError(f"source: {str(source)!r} holds no documents")
    rng = np.random.default_rng(seed)
    is_heldout = rng.random(len(docs)) < heldout
    folder.mkdir(parents=True, exist_ok=True)
    for split, take in (("train", ~is_heldout), ("heldout", is_heldout)):
        chosen = [d for d, t in zip(docs, take) if t]
        lengths = []
        with atomic_path(folder / f"{split}.bin") as tmp, open(tmp, "wb") as f, \
                Progress(len(chosen), f"tokenizing {split}", "docs", enabled=progress) as bar:  # fmt: skip
            for i in range(0, len(chosen), 256):
                for enc in tokenizer.encode_batch(chosen[i : i + 256], add_special_tokens=False):
                    f.write(np.asarray([eot_id, *enc.ids], dtype=dtype).tobytes())
                    lengths.append(len(enc.ids) + 1)
                bar.update(len(chosen[i : i + 256]))
        with atomic_path(folder / f"{split}_starts.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64))
    with atomic_write(folder / "meta.json", "w") as f:
        json.dump({"dtype": np.dtype(dtype).name, "eot_id": eot_id, "source": str(source.resolve()),
                   "heldout": heldout, "seed": seed}, f)  # fmt: skip


class LMRows(torch.utils.data.Dataset):
    """Rows of ``seq_len + 1`` consecutive tokens of a :class:`TokenCache` (int64 tensors), not
    overlapping; the tail shorter than a row is dropped. ``max_rows``: only the first ones."""

    def __init__(self, cache: TokenCache, seq_len: int, max_rows: int | None = None) -> None:
        check_int("seq_len", seq_len, 1)
        self.cache, self.seq_len, self.eot_id = cache, seq_len, cache.eot_id
        rows = max(0, (len(cache.tokens) - 1) // seq_len)
        self.rows = rows if max_rows is None else min(rows, check_int("max_rows", max_rows, 1))
        if self.rows == 0:
            raise ValueError(f"seq_len: the {cache.split} split's {len(cache.tokens):,} tokens make no row of "
                             f"{seq_len + 1}")  # fmt: skip

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, i: int) -> torch.Tensor:
        if not 0 <= i < self.rows:
            raise IndexError(f"row {i} of {self.rows}")
        start = i * self.seq_len
        return torch.from_numpy(self.cache.tokens[start : start + self.seq_len + 1].astype(np.int64))


def document_segments(input_ids: torch.Tensor, eot_id: int) -> tuple[torch.Tensor, int]:
    """(cu_seqlens int32, max_seqlen) of rows ``input_ids`` [B, S] packed back to back: a sequence
    starts at every row start and at every separator."""
    b, s = input_ids.shape
    starts = input_ids == eot_id
    starts[:, 0] = True
    begin = starts.flatten().nonzero().flatten()
    cu = torch.cat([begin, torch.tensor([b * s])]).to(torch.int32)
    return cu, int(cu.diff().max())


def collate_lm_rows(rows: Sequence[torch.Tensor], eot_id: int | None = None) -> dict:
    """A batch of rows [B, S + 1]: ``input_ids`` and ``labels`` (the next tokens). With
    ``eot_id``: packed, [B * S] tokens with ``cu_seqlens`` / ``max_seqlen`` cutting each row at its
    documents (:func:`document_segments`); without: dense [B, S] rows, one causal sequence each."""
    batch = torch.stack(list(rows))
    input_ids, labels = batch[:, :-1], batch[:, 1:]
    if eot_id is None:
        return {"input_ids": input_ids.contiguous(), "labels": labels.contiguous()}
    cu, longest = document_segments(input_ids, eot_id)
    return {"input_ids": input_ids.reshape(-1), "labels": labels.reshape(-1), "cu_seqlens": cu, "max_seqlen": longest}
