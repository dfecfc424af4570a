"""argparse helpers shared by the commands."""

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
