"""How the command line fails: bad input and failures of the machine (a missing or corrupt file,
bad JSON, weights that do not fit, a full disk, no memory) are one line naming the flag, exit 2;
anything else is a bug and keeps its traceback."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

INTERRUPTED = 130  # the shell's exit status after Ctrl-C
BAD_INPUT = 2  # argparse's exit status for a bad flag


def clear_errors() -> tuple[type[BaseException], ...]:
    """The exceptions reported in one line: those of bad input, a full disk and no memory."""
    torch = sys.modules.get("torch")
    out_of_memory = (torch.OutOfMemoryError,) if torch is not None else ()
    return ValueError, OSError, ImportError, FloatingPointError, MemoryError, *out_of_memory


def message(error: BaseException) -> str:
    """The error's text for the one line (its kind when it has none)."""
    text = str(error)
    if isinstance(error, MemoryError):
        return f"out of memory{': ' + text if text else ''}"
    return text or type(error).__name__


@contextlib.contextmanager
def renamed(name: str, *names: str) -> Iterator[None]:
    """Errors (ValueError, OSError) of a call that name one of its arguments ``names`` ("path: ...")
    name ``name`` instead, the flag the value came from ("--tokenizer: ...")."""
    try:
        yield
    except (ValueError, OSError) as e:
        head, _, rest = str(e).partition(":")
        if head not in names or not rest:
            raise
        raise ValueError(f"{name}:{rest}") from None


@contextlib.contextmanager
def loading(name: str, path: str | os.PathLike | None, *names: str) -> Iterator[None]:
    """Run a loader of a user's file ``path``, given as ``name`` (a flag or positional argument):
    errors naming the loader's arguments ``names`` name ``name`` instead (as :func:`renamed`), and
    any other failure (a truncated file, bad JSON, wrong shapes, a library's own error types) is one
    ValueError naming ``name`` and the file."""
    try:
        with renamed(name, *names):
            yield
    except Exception as e:
        if str(e).partition(":")[0] == name:
            raise
        kind = "" if type(e) is Exception else f"{type(e).__name__}: "  # a library's bare Exception says nothing
        raise ValueError(f"{name}: cannot load {str(path)!r}: {kind}{message(e)}") from None
