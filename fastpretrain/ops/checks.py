"""Argument checks shared by the ops, so that every op fails alike: TypeError for a wrong type or
dtype, ValueError for a wrong shape, device or value; each message names the argument and what
was expected. Checks that read tensor values (index ranges) run only where they cost no host
sync: on CPU tensors in eager mode."""

from __future__ import annotations

import numbers
from collections.abc import Callable

import torch

FLOAT = (torch.float32, torch.float16, torch.bfloat16)
INDEX = (torch.int64, torch.int32)


def _names(dtypes: tuple[torch.dtype, ...]) -> str:
    names = [str(d).removeprefix("torch.") for d in dtypes]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def tensor(name: str, t, dtypes: tuple[torch.dtype, ...], layout: str = "") -> None:
    """TypeError unless ``t`` is a tensor of one of ``dtypes``; ``layout`` (e.g. "[B, L, D]") is for the message."""
    names = _names(dtypes)
    what = f"{'an' if names[0] in 'aeiou' else 'a'} {names} tensor{' ' + layout if layout else ''}"
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected {what}, got {type(t).__name__}")
    if t.dtype not in dtypes:
        raise TypeError(f"{name}: expected {what}, got {t.dtype}")


def dims(name: str, t: torch.Tensor, ndim: int, layout: str) -> None:
    """ValueError unless ``t`` has ``ndim`` dimensions."""
    if t.dim() != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d {layout} tensor, got shape {tuple(t.shape)}")


def shape(name: str, t: torch.Tensor, expected: tuple[int, ...]) -> None:
    """ValueError unless ``t`` has exactly the shape ``expected``."""
    if tuple(t.shape) != tuple(expected):
        raise ValueError(f"{name}: expected shape {tuple(expected)}, got {tuple(t.shape)}")


def dtype_like(name: str, t: torch.Tensor, other_name: str, other: torch.Tensor) -> None:
    """TypeError unless ``t`` has ``other``'s dtype."""
    if t.dtype != other.dtype:
        raise TypeError(f"{name}: expected {other.dtype} like {other_name}, got {t.dtype}")


def device_like(name: str, t: torch.Tensor, other_name: str, other: torch.Tensor) -> None:
    """ValueError unless ``t`` is on ``other``'s device."""
    if t.device != other.device:
        raise ValueError(f"{name}: expected a tensor on {other.device} like {other_name}, got {t.device}")


def integer(name: str, value, low: int) -> int:
    """``value`` as an int: TypeError unless an integer (bools are not), ValueError unless >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int >= {low}, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
    return int(value)


def real(name: str, value, what: str, ok: Callable[[float], bool]) -> float:
    """``value`` as a float: TypeError unless a real number (bools are not), ValueError unless ``ok``;
    ``what`` says what was expected, e.g. "a float in [0, 1)"."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected {what}, got {type(value).__name__}")
    if not ok(float(value)):
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    return float(value)


def host_sync_free(t: torch.Tensor) -> bool:
    """True where reading ``t``'s values costs no host sync and no graph break: CPU, eager."""
    return t.device.type == "cpu" and not torch.compiler.is_compiling()


def ids_in_range(name: str, ids: torch.Tensor, high: int, ignore: int | None = None) -> None:
    """ValueError unless every id lies in [0, high) (or equals ``ignore``); a no-op where it would
    cost a host sync (CUDA tensors, torch.compile), where the ids are trusted."""
    if not host_sync_free(ids) or ids.numel() == 0:
        return
    bad = (ids < 0) | (ids >= high)
    if ignore is not None:
        bad &= ids != ignore
    if bool(bad.any()):
        also = f" or ignore_index={ignore}" if ignore is not None else ""
        raise ValueError(f"{name}: expected ids in [0, {high}){also}, got {int(ids[bad][0])}")
