"""Atomic file writes: write to a temporary file beside the target, then rename over it, so a
crash never leaves a half-written checkpoint, vocabulary or vector file behind. The file gets
the mode a plain ``open()`` would give it (0666 less the umask), not mkstemp's private 0600."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def umask() -> int:
    """The process umask, read from /proc where possible (setting it to read it is not thread-safe)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def creation_mode(base: int = 0o666) -> int:
    """The mode ``open()`` (base 0666) or ``mkdir()`` (base 0777) gives a new file under the umask."""
    return base & ~umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that takes file names (safetensors);
    on success the file is fsynced, given the umask's mode and renamed to ``path``, on failure removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, creation_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file for writing; on success it replaces ``path``."""
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as f:
        yield f


def check_writable(name: str, path: str | os.PathLike) -> Path:
    """``path`` if ``atomic_write`` can later create it: its folder exists (made now if missing) and
    takes new files, and ``path`` is not a folder. ValueError naming ``name`` otherwise, so a long
    run fails before it starts rather than when it saves."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name}: {str(path)!r} is a directory; give a file name")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
    except (FileExistsError, NotADirectoryError):
        blocker = next(p for p in [parent, *parent.parents] if p.exists())
        raise ValueError(f"{name}: cannot create {str(path)!r}: {str(blocker)!r} is a file, not a directory") from None
    except OSError as e:
        raise ValueError(f"{name}: cannot create files in {str(parent)!r} ({e.strerror})") from None
    os.close(fd)
    os.unlink(probe)
    return path
