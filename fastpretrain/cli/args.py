"""argparse types shared by the commands' hand-written flags (those no config dataclass holds)."""

from __future__ import annotations

import argparse


def at_least(low: float, kind: type = int, high: float | None = None):
    """argparse type: a number >= low (and <= high), so typos fail before a long corpus read."""

    def parse(text: str):
        value = kind(text)
        if not value >= low or (high is not None and not value <= high):
            expected = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"expected a value {expected}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def fraction(low_open: bool = False):
    """argparse type: a float in [0, 1), or (0, 1) with ``low_open``."""

    def parse(text: str) -> float:
        value = float(text)
        if not (0.0 < value < 1.0 if low_open else 0.0 <= value < 1.0):
            raise argparse.ArgumentTypeError(f"expected a value in {'(' if low_open else '['}0, 1), got {text}")
        return value

    parse.__name__ = "float"
    return parse
