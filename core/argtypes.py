"""argparse `type=` functions for numbers with a range, and a parser whose errors are one line
("xaprobe-collector serve: error: argument --port: must be a whole number from 1 to 65535, got '99999'"),
never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser (subcommands included) that reports a bad command line in one line, exit code 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


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
