"""argparse helpers shared by the commands."""

from __future__ import annotations

import argparse


def at_least(low: float, kind: type = int):
    """argparse type: a number >= low, so typos fail before a long corpus read."""

    def parse(text: str):
        value = kind(text)
        if not value >= low:
            raise argparse.ArgumentTypeError(f"expected a value >= {low}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse
