"""Argument checks shared by the public entry points: the error names the argument."""

from __future__ import annotations

import math
import os
from numbers import Real

import numpy as np

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1


def check_int(name: str, value, low: int, high: int | None = None) -> int:
    """``value`` as an int, or ValueError naming ``name`` unless it is an integer in [low, high]."""
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer))
    if not ok or value < low or (high is not None and value > high):
        expected = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name}: expected an int {expected}, got {value!r}")
    return int(value)


def check_flag(name: str, value) -> int:
    """``value`` as 0 or 1 (gensim's flags are ints; bools are accepted), or ValueError naming ``name``."""
    if not isinstance(value, (int, np.integer)) or value not in (0, 1):
        raise ValueError(f"{name}: expected 0 or 1, got {value!r}")
    return int(value)


def check_float(name: str, value, low: float | None = None, hint: str = "") -> float:
    """``value`` as a float, or ValueError naming ``name`` unless it is a finite number (>= ``low``)."""
    ok = not isinstance(value, bool) and isinstance(value, (Real, np.floating, np.integer))
    if not ok or not math.isfinite(value) or (low is not None and value < low):
        expected = "a finite number" + ("" if low is None else f" >= {low}")
        raise ValueError(f"{name}: expected {expected}{hint}, got {value!r}")
    return float(value)


CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def host_memory_bytes() -> int:
    """The memory this process may use: the machine's RAM, or less where a cgroup (a container, a
    batch job) limits it (v2 ``memory.max`` or v1 ``memory.limit_in_bytes``)."""
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for path in CGROUP_LIMITS:
        try:
            text = open(path).read().strip()
        except OSError:
            continue
        if text.isdigit():
            memory = min(memory, int(text))
    return memory
