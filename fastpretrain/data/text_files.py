"""What a text source on disk is: one file (plain, or .xz/.lzma/.bz2/.gz by suffix) or a folder of
them, read in sorted order; the corpus engine and the document reader both open it this way."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_COMPRESSED = {
    ".xz": lzma.LZMAFile, ".lzma": lzma.LZMAFile, ".bz2": bz2.BZ2File, ".gz": lambda raw: gzip.GzipFile(fileobj=raw),
}  # fmt: skip


def text_files(path: str | os.PathLike) -> list[Path]:
    """The file itself, or every non-hidden file under a directory, in sorted order."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.exists():
        raise FileNotFoundError(f"source: {str(path)!r} does not exist")
    files = sorted(p for p in path.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))  # fmt: skip
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
