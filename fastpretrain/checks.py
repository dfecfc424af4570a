"""Argument checks shared by the public entry points: the error names the argument."""

from __future__ import annotations

import numpy as np


def check_int(name: str, value, low: int) -> int:
    """``value`` as an int, or ValueError naming ``name`` unless it is an integer >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
    return int(value)
