"""The one root of user-facing failures: a mistake or a condition the person running xaprobe can fix.

Both programs catch `UserError` once (core/commands.py) and print its message as one line; every
module raises a subclass that says what is wrong and what to do, never a traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A failure the user can fix; printed as one line, exit code 1."""


class ConfigError(UserError):
    """A configuration file with problems; `problems` lists 'key.path: message' lines."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))
