"""Corpora as compact int32 id streams.

One pass over the text (C++, GIL released) counts the words and writes provisional ids to
disk; the ids are then remapped in place to the final, frequency-sorted vocabulary and
memory-mapped, so a corpus of 1e9 tokens never becomes 1e9 Python objects. Corpora read from
files are cached under a key of the files' paths, sizes and mtimes and the vocabulary settings;
a cache entry is published by one directory rename and checked (sizes, CRC-32s) whenever it is
opened, so a damaged one is rebuilt rather than trusted. Publishing an entry deletes the entries no
run can hit again: those of an older format, or of files since changed or removed, and builds
abandoned over a day ago.

Text is split on whitespace as Python's ``str.split()`` splits it (as gensim's ``LineSentence``
reads a file): ASCII whitespace, ``\x1c``-``\x1f`` and the Unicode spaces (NBSP, U+2028,
U+3000, ...). Each line (ended by ``\n``) is a sentence (a text8 file is one line, cut into
1000-word sentences when batches are made). ``-1`` in ``ids`` marks a line end. The vocabulary
follows gensim's rules: ``min_count``, ``max_final_vocab``, ``max_vocab_size`` and
``sorted_vocab`` mean what they mean in gensim's ``Word2Vec``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np

from fastpretrain import _C
from fastpretrain.atomic import atomic_write, creation_mode
from fastpretrain.checks import INT32_MAX, INT64_MAX, check_flag, check_int
from fastpretrain.data.text_files import open_text, text_files
from fastpretrain.data.vocab import Vocab
from fastpretrain.progress import Progress

Source = Union[str, os.PathLike, Iterable[Sequence[str]]]

FORMAT_VERSION = 2  # 2: Unicode whitespace splits words; gensim's vocabulary order; CRC-32s in meta.json
CHUNK_BYTES = 1 << 22


def cache_root() -> Path:
    """Where corpora and BERT examples are cached: $FASTPRETRAIN_CACHE, else $XDG_CACHE_HOME/fastpretrain."""
    if "FASTPRETRAIN_CACHE" in os.environ:
        return Path(os.environ["FASTPRETRAIN_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fastpretrain"


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
        max_final_vocab: int | None = None,
        max_vocab_size: int | None = None,
        sorted_vocab: int = 1,
        vocab: Vocab | None = None,
        cache_dir: str | os.PathLike | None = None,
        progress: bool = True,
    ) -> Corpus:
        """Read ``source`` once: count words, build the vocabulary, encode the ids.

        Args:
            source: a text file (plain, or .xz/.bz2/.gz), a directory of text files, or an
                iterable of token lists (each list is a sentence).
            min_count: drop words seen fewer times (gensim's ``min_count``; 0 keeps every word).
            max_final_vocab: keep at most this many words, as gensim does: the words counted more
                often than the (max_final_vocab + 1)-th most frequent one, so all the words tied at
                the cut go and fewer may remain; None keeps all.
            max_vocab_size: gensim's scan-time pruning: whenever more than this many distinct words
                are counted at a sentence end (a token list, or a line or 10000-word piece of one, as
                ``LineSentence`` reads a file), the words counted fewer than 1, 2, 3, ... times are
                forgotten (their counts restart if they come back). It reproduces gensim's counts;
                the C++ table keeps every distinct word either way. None: no pruning.
            sorted_vocab: 1 (gensim's default) orders the words by decreasing count, ties with the
                word counted last first, as gensim 4.4; 0 keeps the order in which they were counted.
            vocab: encode against this vocabulary instead of building one; words outside it are
                dropped. The four vocabulary options are then ignored.
            cache_dir: cache root for corpora read from files (default :func:`cache_root`).
            progress: a progress bar on a terminal, log lines on stderr otherwise.
        """
        settings = _settings(min_count, max_final_vocab, max_vocab_size, sorted_vocab)
        if vocab is not None and not isinstance(vocab, Vocab):
            raise TypeError(f"vocab: expected a fastpretrain.data.Vocab or None, got {type(vocab).__name__}")
        root = Path(cache_dir) if cache_dir is not None else cache_root()

        files = text_files(source) if isinstance(source, (str, os.PathLike)) else None
        if files is None and isinstance(source, (bytes, np.ndarray)):
            raise TypeError(f"source: expected a path or an iterable of token lists, got {type(source).__name__}")
        target = stats = None
        if files is not None:
            stats = _file_stats(files)
            target = root / "corpora" / _cache_key(stats, settings, vocab)
            cached = _open_cached(target)
            if cached is not None:
                return cached

        (root / "corpora").mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=root / "corpora"))
        try:
            encoder = _C.TextEncoder(settings["max_vocab_size"] or 0)
            with open(work / "ids.i32", "wb") as out:
                if files is not None:
                    _encode_files(encoder, files, out, progress)
                else:
                    _encode_sentences(encoder, source, out)
            built = _finish(encoder, work, files, stats, settings, vocab)
            if target is None:  # iterable source: keep the ids in memory, drop the files
                built = cls(built.vocab, np.array(built.ids), built.n_words, None)
                shutil.rmtree(work)
                return built
            os.chmod(work, creation_mode(0o777))  # mkdtemp's 0700 would keep a shared cache private
            try:
                os.replace(work, target)  # atomic publish; loses to a concurrent builder
            except OSError:
                if not (target / "meta.json").is_file():
                    raise
                shutil.rmtree(work)
            prune_cache(root / "corpora")
            return cls.load(target)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> Corpus:
        """Open a corpus directory written by :meth:`build` (ids memory-mapped, read-only), after
        checking it is whole: ValueError naming the file that is not."""
        path = Path(path)
        meta = _read_meta(path)
        ids_path = path / "ids.i32"
        for name, key in (("ids.i32", "ids_crc32"), ("vocab.txt", "vocab_crc32")):
            if not (path / name).is_file():
                raise FileNotFoundError(f"path: {str(path)!r} lacks {name}")
            if _crc32(path / name) != meta[key]:
                raise ValueError(f"path: {str(path / name)!r} does not match its CRC-32 in meta.json (damaged)")
        if ids_path.stat().st_size != 4 * meta["n_tokens"]:
            raise ValueError(f"path: {str(ids_path)!r} holds {ids_path.stat().st_size} bytes, "
                             f"meta.json announces {meta['n_tokens']} ids")  # fmt: skip
        vocab = Vocab.load(path / "vocab.txt")
        if len(vocab) != meta["vocab_size"]:
            raise ValueError(f"path: {str(path)!r}: vocab.txt has {len(vocab)} words, meta.json {meta['vocab_size']}")
        ids = np.memmap(ids_path, dtype=np.int32, mode="r", shape=(meta["n_tokens"],))
        return cls(vocab, ids, meta["n_words"], path)

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path else ""
        return f"Corpus(vocab={len(self.vocab)} words, n_words={self.n_words}{where})"


def _settings(min_count, max_final_vocab, max_vocab_size, sorted_vocab) -> dict:
    """The vocabulary options, checked."""
    optional = {"max_final_vocab": (max_final_vocab, INT32_MAX), "max_vocab_size": (max_vocab_size, INT64_MAX)}
    settings = {name: None if v is None else check_int(name, v, 1, high) for name, (v, high) in optional.items()}
    settings["min_count"] = check_int("min_count", min_count, 0, INT64_MAX)
    settings["sorted_vocab"] = check_flag("sorted_vocab", sorted_vocab)
    return settings


def _cache_key(stats: list, settings: dict, vocab: Vocab | None) -> str:
    vocab_digest = None
    if vocab is not None:
        h = hashlib.sha256()
        for w in vocab.words:
            h.update(w.encode() + b"\n")
        h.update(vocab.counts.tobytes())
        vocab_digest = h.hexdigest()
    blob = json.dumps([FORMAT_VERSION, stats, settings, vocab_digest], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _file_stats(files: list[Path]) -> list:
    return [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]


def _stale(entry: Path) -> bool:
    """Whether no run can hit cache entry ``entry`` again: another format, or its files changed or gone."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
    except (OSError, ValueError):
        return False  # being written, or damaged: opening it decides
    if meta.get("format") != FORMAT_VERSION:
        return True
    recorded = meta.get("stats")
    if not isinstance(recorded, list):
        return False
    try:
        return [list(r) for r in _file_stats([Path(r[0]) for r in recorded])] != recorded
    except (OSError, TypeError, IndexError):
        return True  # a source file is gone (or the record is not one)


def prune_cache(corpora: Path, *, abandoned_s: float = 86400.0) -> list[Path]:
    """Delete the entries under ``corpora`` that no run can hit again (see the module docstring) and
    build directories older than ``abandoned_s``; the deleted paths."""
    deleted = []
    for entry in sorted(corpora.iterdir()) if corpora.is_dir() else []:
        old_build = entry.name.startswith((".build-", ".damaged-")) and time.time() - entry.stat().st_mtime > abandoned_s
        if old_build or (not entry.name.startswith(".") and entry.is_dir() and _stale(entry)):
            shutil.rmtree(entry, ignore_errors=True)
            deleted.append(entry)
    return deleted


def _open_cached(target: Path) -> Corpus | None:
    """The cache entry ``target``, None if there is none; a damaged one is removed with a warning."""
    if not target.exists():
        return None
    try:
        return Corpus.load(target)
    except (OSError, ValueError) as e:
        warnings.warn(f"corpus cache: {str(target)!r} is damaged ({e}); rebuilding it", stacklevel=3)
    aside = target.with_name(f".damaged-{target.name}-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):  # a concurrent reader may have moved it first
        os.replace(target, aside)
        shutil.rmtree(aside, ignore_errors=True)
    return None


def _read_meta(path: Path) -> dict:
    """meta.json of a corpus directory, with the fields of this format checked."""
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"path: {str(path)!r} is not a corpus directory (no meta.json)")
    try:
        meta = json.loads(meta_path.read_bytes())
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"path: {str(meta_path)!r} is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ValueError(f"path: {str(path)!r} has corpus format {found}, expected {FORMAT_VERSION}")
    for key in ("n_tokens", "n_words", "vocab_size", "ids_crc32", "vocab_crc32"):
        low = 1 if key == "n_tokens" else 0
        if not isinstance(meta.get(key), int) or isinstance(meta[key], bool) or meta[key] < low:
            raise ValueError(f"path: {str(meta_path)!r}: field {key!r} is missing or not an int >= {low}")
    return meta


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            crc = zlib.crc32(chunk, crc)
    return crc


def _encode_files(encoder: _C.TextEncoder, files: list[Path], out: BinaryIO, progress: bool) -> None:
    total = sum(f.stat().st_size for f in files)
    with Progress(total, "reading corpus", "B", enabled=progress) as bar:
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
    encoder: _C.TextEncoder, work: Path, files: list[Path] | None, stats: list | None, settings: dict,
    vocab: Vocab | None,
) -> Corpus:
    """Turn provisional ids into final ones in place and write vocab and metadata."""
    where = "source" if files is None else f"source: {', '.join(map(str, files[:3]))}"
    if len(encoder) == 0:
        raise ValueError(f"{where}: the corpus is empty (no words)")
    words, counts = encoder.words(), encoder.counts()
    if vocab is None:
        vocab, mapping = _final_vocab(encoder, words, counts, settings)
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
    with open(ids_path, "rb+") as f:
        f.truncate(n * 4)
        os.fsync(f.fileno())

    vocab.save(work / "vocab.txt")
    meta = {
        "format": FORMAT_VERSION,
        "n_tokens": n,
        "n_words": n_words,
        "vocab_size": len(vocab),
        "ids_crc32": _crc32(ids_path),
        "vocab_crc32": _crc32(work / "vocab.txt"),
        "sources": [str(f) for f in files] if files else None,
        "stats": stats,  # the files as read, for prune_cache
        **settings,
    }
    with atomic_write(work / "meta.json", "w") as f:
        json.dump(meta, f, indent=1)
    return Corpus(vocab, np.memmap(ids_path, np.int32, "r", shape=(n,)), n_words, work)


def _final_vocab(
    encoder: _C.TextEncoder, words: list[str], counts: np.ndarray, settings: dict
) -> tuple[Vocab, np.ndarray]:
    """The vocabulary by gensim's rules, and the map from provisional to final ids (-1: dropped)."""
    max_final_vocab = settings["max_final_vocab"]
    order = encoder.final_order(settings["min_count"], -1 if max_final_vocab is None else max_final_vocab,
                                bool(settings["sorted_vocab"]))  # fmt: skip
    if len(order) == 0:
        why = f"min_count={settings['min_count']}: no word occurs that often"
        if max_final_vocab is not None:
            why = f"min_count={settings['min_count']} and max_final_vocab={max_final_vocab}: no word is left"
        raise ValueError(f"{why} (the most frequent occurs {counts.max()} times)")
    mapping = np.full(len(words), -1, dtype=np.int32)
    mapping[order] = np.arange(len(order), dtype=np.int32)
    return Vocab([words[i] for i in order.tolist()], counts[order]), mapping
