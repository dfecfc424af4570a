"""Corpora as compact int32 id streams.

One pass over the text (C++, GIL released) counts the words and writes provisional ids to
disk; the ids are then remapped in place to the final, frequency-sorted vocabulary and
memory-mapped, so a corpus of 1e9 tokens never becomes 1e9 Python objects. Corpora read from
files are cached under a key of the files' paths, sizes and mtimes and the vocabulary settings.

Text is split on ASCII whitespace, as word2vec.c does; each line is a sentence (a text8 file
is one line, cut into 1000-word sentences when batches are made). ``-1`` in ``ids`` marks a
line end.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import json
import lzma
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from tqdm.auto import tqdm

from fastpretrain import _C
from fastpretrain.atomic import atomic_write
from fastpretrain.checks import check_int
from fastpretrain.data.vocab import Vocab

Source = Union[str, os.PathLike, Iterable[Sequence[str]]]

FORMAT_VERSION = 1
CHUNK_BYTES = 1 << 22
_COMPRESSED = {".xz": lzma.LZMAFile, ".lzma": lzma.LZMAFile, ".bz2": bz2.BZ2File, ".gz": lambda raw: gzip.GzipFile(fileobj=raw)}


def cache_root() -> Path:
    """Where corpora are cached: $FASTPRETRAIN_CACHE, else $XDG_CACHE_HOME/fastpretrain."""
    if "FASTPRETRAIN_CACHE" in os.environ:
        return Path(os.environ["FASTPRETRAIN_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fastpretrain"


def text_files(path: str | os.PathLike) -> list[Path]:
    """The file itself, or every non-hidden file under a directory, in sorted order."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.exists():
        raise FileNotFoundError(f"source: {str(path)!r} does not exist")
    files = sorted(
        p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    if not files:
        raise ValueError(f"source: directory {str(path)!r} holds no files")
    return files


@contextlib.contextmanager
def open_text(path: Path) -> Iterator[tuple[BinaryIO, BinaryIO]]:
    """(raw file, byte stream), decompressing .xz/.lzma/.bz2/.gz by suffix."""
    with open(path, "rb") as raw:
        opener = _COMPRESSED.get(path.suffix.lower())
        if opener is None:
            yield raw, raw
        else:
            with opener(raw) as stream:
                yield raw, stream


@dataclass(eq=False)
class Corpus:
    """A vocabulary and the corpus encoded against it.

    Attributes:
        vocab: words sorted by frequency.
        ids: int32 word ids, memory-mapped when the corpus was read from files; -1 ends a line.
        n_words: number of word tokens (ids >= 0).
        path: directory holding ``ids.i32``, ``vocab.txt`` and ``meta.json``, if any.
    """

    vocab: Vocab
    ids: np.ndarray
    n_words: int
    path: Path | None = None

    @classmethod
    def build(
        cls,
        source: Source,
        *,
        min_count: int = 5,
        max_vocab_size: int | None = None,
        vocab: Vocab | None = None,
        cache_dir: str | os.PathLike | None = None,
        progress: bool = True,
    ) -> Corpus:
        """Read ``source`` once: count words, build the vocabulary, encode the ids.

        Args:
            source: a text file (plain, or .xz/.bz2/.gz), a directory of text files, or an
                iterable of token lists (each list is a sentence).
            min_count: drop words seen fewer times (word2vec.c / gensim ``min_count``).
            max_vocab_size: keep at most this many most frequent words (gensim's
                ``max_final_vocab``); None keeps all.
            vocab: encode against this vocabulary instead of building one; words outside it
                are dropped. ``min_count`` and ``max_vocab_size`` are then ignored.
            cache_dir: cache root for corpora read from files (default :func:`cache_root`).
            progress: show a progress bar on a terminal.
        """
        check_int("min_count", min_count, 1)
        if max_vocab_size is not None and (not isinstance(max_vocab_size, int) or max_vocab_size < 1):
            raise ValueError(f"max_vocab_size: expected None or an int >= 1, got {max_vocab_size!r}")
        root = Path(cache_dir) if cache_dir is not None else cache_root()

        files = text_files(source) if isinstance(source, (str, os.PathLike)) else None
        if files is None and isinstance(source, (bytes, np.ndarray)):
            raise TypeError(f"source: expected a path or an iterable of token lists, got {type(source).__name__}")
        target = None
        if files is not None:
            key = _cache_key(files, min_count, max_vocab_size, vocab)
            target = root / "corpora" / key
            if (target / "meta.json").is_file():
                return cls.load(target)

        (root / "corpora").mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=root / "corpora"))
        try:
            encoder = _C.TextEncoder()
            with open(work / "ids.i32", "wb") as out:
                if files is not None:
                    _encode_files(encoder, files, out, progress)
                else:
                    _encode_sentences(encoder, source, out)
            built = _finish(encoder, work, files, min_count, max_vocab_size, vocab)
            if target is None:  # iterable source: keep the ids in memory, drop the files
                built = cls(built.vocab, np.array(built.ids), built.n_words, None)
                shutil.rmtree(work)
                return built
            try:
                os.replace(work, target)  # atomic publish; loses to a concurrent builder
            except OSError:
                if not (target / "meta.json").is_file():
                    raise
                shutil.rmtree(work)
            return cls.load(target)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> Corpus:
        """Open a corpus directory written by :meth:`build` (ids memory-mapped, read-only)."""
        path = Path(path)
        meta_path = path / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"path: {str(path)!r} is not a corpus directory (no meta.json)")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"path: {str(path)!r} has corpus format {meta.get('format')}, expected {FORMAT_VERSION}")
        ids = np.memmap(path / "ids.i32", dtype=np.int32, mode="r", shape=(meta["n_tokens"],))
        return cls(Vocab.load(path / "vocab.txt"), ids, meta["n_words"], path)

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path else ""
        return f"Corpus(vocab={len(self.vocab)} words, n_words={self.n_words}{where})"


def _cache_key(files: list[Path], min_count: int, max_vocab_size: int | None, vocab: Vocab | None) -> str:
    stats = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    vocab_digest = None
    if vocab is not None:
        h = hashlib.sha256()
        for w in vocab.words:
            h.update(w.encode() + b"\n")
        h.update(vocab.counts.tobytes())
        vocab_digest = h.hexdigest()
    blob = json.dumps([FORMAT_VERSION, stats, min_count, max_vocab_size, vocab_digest])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _encode_files(encoder: _C.TextEncoder, files: list[Path], out: BinaryIO, progress: bool) -> None:
    total = sum(f.stat().st_size for f in files)
    with tqdm(total=total, unit="B", unit_scale=True, desc="reading corpus", disable=None if progress else True) as bar:
        for f in files:
            done = 0
            with open_text(f) as (raw, stream):
                try:
                    while chunk := stream.read(CHUNK_BYTES):
                        encoder.feed(chunk).tofile(out)
                        bar.update(raw.tell() - done)
                        done = raw.tell()
                    encoder.end_source().tofile(out)
                except ValueError as e:
                    raise ValueError(f"source: {str(f)!r}: {e}") from None
                except (OSError, EOFError) as e:
                    raise ValueError(f"source: cannot read {str(f)!r}: {e}") from None


def _encode_sentences(encoder: _C.TextEncoder, sentences: Iterable[Sequence[str]], out: BinaryIO) -> None:
    if not isinstance(sentences, Iterable):
        raise TypeError(f"source: expected a path or an iterable of token lists, got {type(sentences).__name__}")
    batch = []
    for sentence in sentences:
        batch.append(sentence)
        if len(batch) == 4096:
            encoder.feed_sentences(batch).tofile(out)
            batch.clear()
    encoder.feed_sentences(batch).tofile(out)


def _finish(
    encoder: _C.TextEncoder,
    work: Path,
    files: list[Path] | None,
    min_count: int,
    max_vocab_size: int | None,
    vocab: Vocab | None,
) -> Corpus:
    """Turn provisional ids into final ones in place and write vocab and metadata."""
    where = "source" if files is None else f"source: {', '.join(map(str, files[:3]))}"
    if len(encoder) == 0:
        raise ValueError(f"{where}: the corpus is empty (no words)")
    words, counts = encoder.words(), encoder.counts()
    if vocab is None:
        order = encoder.final_order(min_count, -1 if max_vocab_size is None else max_vocab_size)
        if len(order) == 0:
            raise ValueError(
                f"min_count={min_count}: no word occurs that often (the most frequent occurs {counts.max()} times)"
            )
        vocab = Vocab([words[i] for i in order.tolist()], counts[order])
        mapping = np.full(len(words), -1, dtype=np.int32)
        mapping[order] = np.arange(len(order), dtype=np.int32)
    else:
        mapping = np.array([vocab.get(w) for w in words], dtype=np.int32)
        if (mapping < 0).all():
            raise ValueError("vocab: no word of the source is in the given vocabulary")

    ids_path = work / "ids.i32"
    n_raw = ids_path.stat().st_size // 4
    ids = np.memmap(ids_path, dtype=np.int32, mode="r+", shape=(n_raw,))
    n = _C.remap_ids(ids, mapping)
    step = 1 << 24
    n_words = int(sum(np.count_nonzero(ids[i : min(i + step, n)] >= 0) for i in range(0, n, step)))
    ids.flush()
    del ids
    os.truncate(ids_path, n * 4)

    vocab.save(work / "vocab.txt")
    meta = {
        "format": FORMAT_VERSION,
        "n_tokens": n,
        "n_words": n_words,
        "sources": [str(f) for f in files] if files else None,
        "min_count": min_count,
        "max_vocab_size": max_vocab_size,
    }
    with atomic_write(work / "meta.json", "w") as f:
        json.dump(meta, f, indent=1)
    return Corpus(vocab, np.memmap(ids_path, np.int32, "r", shape=(n,)), n_words, work)
