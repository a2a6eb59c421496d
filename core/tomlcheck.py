"""Read TOML tables key by key, collecting every problem as 'key.path: message' instead of raising."""

from __future__ import annotations

import difflib
import math
from typing import Any

from xaprobe.i18n import _


class TableReader:
    """Typed access to one TOML table; every bad value adds one problem to the shared list."""

    def __init__(self, table: Any, path: str, problems: list[str]):
        self.path = path
        self.problems = problems
        self.seen: set[str] = set()
        if not isinstance(table, dict):
            self.fail("", _("must be a table, got {value}").format(value=_shown(table)))
            table = {}
        self.table = table

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, message: str) -> None:
        where = self.key(name) if name else self.path
        self.problems.append(f"{where}: {message}")

    def raw(self, name: str) -> Any:
        """Return the value as it is in the file (None when absent), marking the key as known."""
        self.seen.add(name)
        return self.table.get(name)

    _get = raw

    def text(self, name: str, default: str = "", required: bool = False) -> str:
        value = self._get(name)
        if value is None:
            if required:
                self.fail(name, _("required"))
            return default
        if not isinstance(value, str):
            self.fail(name, _("must be a string, got {value}").format(value=_shown(value)))
            return default
        if required and not value.strip():
            self.fail(name, _("required (it is empty)"))
        return value

    def integer(self, name: str, default: int, low: int = 1, high: int = 10**12) -> int:
        value = self._get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            message = _("must be a positive integer, got {value}") if (low, high) == (1, 10**12) \
                else _("must be an integer from {low} to {high}, got {value}")
            self.fail(name, message.format(low=low, high=high, value=_shown(value)))
            return default
        return value

    def number(self, name: str, default: float, low: float = 0.0, high: float = 1e12) -> float:
        value = self._get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not low <= value <= high:
            self.fail(name, _("must be a number from {low} to {high}, got {value}").format(
                low=f"{low:g}", high=f"{high:g}", value=_shown(value)))
            return default
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(name, _("must be true or false, got {value}").format(value=_shown(value)))
            return default
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(name, default)
        if value not in choices:
            self.fail(name, _("must be one of {choices}, got {value}").format(
                choices=", ".join(repr(c) for c in choices), value=_shown(value)))
            return default
        return value

    def text_list(self, name: str) -> tuple[str, ...]:
        value = self._get(name)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
            self.fail(name, _("must be a list of strings, got {value}").format(value=_shown(value)))
            return ()
        return tuple(str(v) for v in value)

    def sub(self, name: str) -> "TableReader":
        value = self._get(name)
        return TableReader({} if value is None else value, self.key(name), self.problems)

    def tables(self, name: str) -> list["TableReader"]:
        value = self._get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(name, _("must be an array of tables ([[{name}]]), got {value}").format(name=name,
                                                                                            value=_shown(value)))
            return []
        return [TableReader(item, f"{self.key(name)}[{i}]", self.problems) for i, item in enumerate(value)]

    def reject_unknown(self) -> None:
        """Add a problem for every key that was never read (a typo, most likely)."""
        for name in self.table:
            if name not in self.seen:
                close = difflib.get_close_matches(name, sorted(self.seen), n=1)
                self.fail(name, _("unknown key (did you mean {key!r}?)").format(key=close[0]) if close
                          else _("unknown key"))


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return _("a table")
    if isinstance(value, list):
        return _("a list")
    return repr(value)
