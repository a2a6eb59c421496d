"""argparse `type=` functions for numbers with a range: a value outside it is one line from argparse
("argument --port: must be a whole number from 1 to 65535, got 99999"), never a traceback."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def int_range(low: int, high: int) -> Callable[[str], int]:
    """A type= function taking a whole number from low to high."""

    def parse(text: str) -> int:
        # int() of a huge digit string is slow and can raise ValueError past 4300 digits: cap the text first
        value = int(text) if len(text) <= 20 and text.strip().lstrip("+-").isdigit() else None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}, got {text[:40]!r}")
        return value

    parse.__name__ = f"whole number {low}..{high}"
    return parse
