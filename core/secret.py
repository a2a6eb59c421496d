"""A token that keeps itself out of reprs, logs and tracebacks."""

from __future__ import annotations

import hashlib


class Secret:
    """Wrap a secret string; only `reveal()` gives it back."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def fingerprint(self) -> str:
        """A short one-way digest: enough to tell tokens apart, useless to anyone who reads it."""
        return hashlib.sha256(self._value.encode()).hexdigest()[:16] if self._value else ""

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)
