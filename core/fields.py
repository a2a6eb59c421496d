"""JSON field checks shared by every record on the wire: each raises WireError naming the field's path.

`encode(record)` and `decode(cls, obj)` turn a frozen dataclass of plain fields (text, numbers, booleans,
UTC datetimes, nested records, tuples of records) into JSON-ready dicts and back, field by field, in
the dataclass's own order (stable across processes). Limits come from each field's metadata:
`limit` (longest text, largest number), `low` (smallest number, default 0), `items` (longest tuple).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import types
import typing
import unicodedata
from functools import cache
from typing import Any

from xaprobe.months import format_utc, parse_utc

MAX_TEXT = 500
# instants outside these years are a broken clock or a hostile item, and would overflow local-time arithmetic
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
LATEST = dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)
# control (Cc) and format (Cf) characters can rewrite a terminal (ESC), reorder a line (RLO) or hide text
# (zero-width): removed from every text on the wire, tabs and line breaks becoming spaces, so what is left
# is safe in a terminal table, a page or an export
_HIDDEN = ("Cc", "Cf")
MAX_INT = 2**53
MAX_NUMBER = 1e15
MAX_ITEMS = 100


class WireError(ValueError):
    """An item that breaks the wire format; str() is 'field: problem'."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def check_text(value: Any, where: str, limit: int = MAX_TEXT) -> str:
    """Return value, control and bidi characters removed, if it is Unicode text within limit with no NUL;
    raise WireError naming where."""
    if not isinstance(value, str):
        raise WireError(where, f"must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise WireError(where, f"longer than {limit} characters")
    if "\x00" in value:
        raise WireError(where, "contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise WireError(where, "contains a lone surrogate (not Unicode text)") from None
    if value.isprintable():  # the common case, at C speed
        return value
    spaced = value.replace("\t", " ").replace("\r", " ").replace("\n", " ")
    return "".join(ch for ch in spaced if unicodedata.category(ch) not in _HIDDEN)


def check_number(value: Any, where: str, limit: float, low: float = 0.0) -> float:
    """Return value as a finite float in [low, limit]; raise WireError naming where."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WireError(where, f"must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise WireError(where, "must be a finite number")
    if not low <= number <= limit:
        raise WireError(where, f"must be between {low:g} and {limit:g}, got {number:g}")
    return number


def check_integer(value: Any, where: str, limit: int, low: int = 0) -> int:
    """Return value if it is an integer in [low, limit]; raise WireError naming where."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise WireError(where, f"must be an integer, got {type(value).__name__}")
    if not low <= value <= limit:
        raise WireError(where, f"must be between {low} and {limit}, got {value}")
    return value


def check_time(value: Any, where: str) -> dt.datetime:
    """Return an aware UTC datetime from ISO 8601 text with an offset; raise WireError naming where."""
    try:
        instant = parse_utc(check_text(value, where, 40))
    except ValueError as e:
        if isinstance(e, WireError):
            raise
        raise WireError(where, str(e)) from None
    if not EARLIEST <= instant < LATEST:
        raise WireError(where, f"{value!r} is outside the years {EARLIEST.year}-{LATEST.year - 1}")
    return instant


# --- records --------------------------------------------------------------------------------------

@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def encode(record: Any) -> dict[str, Any]:
    """Return the JSON-ready dict of a record, keys in field order."""
    return {f.name: _encode_value(getattr(record, f.name)) for f in dataclasses.fields(record)
            if f.name != "extra"} | dict(getattr(record, "extra", {}) or {})


def _encode_value(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return encode(value)
    if isinstance(value, dt.datetime):
        return format_utc(value)
    if isinstance(value, tuple):
        return [_encode_value(v) for v in value]
    return value


def decode(cls: type, obj: Any, path: str = "") -> Any:
    """Check obj field by field against the record class; return the record or raise WireError."""
    if not isinstance(obj, dict):
        raise WireError(path.rstrip(".") or cls.__name__, f"must be an object, got {type(obj).__name__}")
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name == "extra":
            continue
        where = path + f.name
        if f.name not in obj or obj[f.name] is None:
            if _optional(hints[f.name]):
                values[f.name] = None
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise WireError(where, "required")
            continue  # the field's default
        values[f.name] = _decode_value(_strip_optional(hints[f.name]), obj[f.name], where, f.metadata)
    if "extra" in {f.name for f in dataclasses.fields(cls)}:
        known = {f.name for f in dataclasses.fields(cls)}
        values["extra"] = {k: v for k, v in obj.items() if k not in known}
    return cls(**values)


def _optional(hint: Any) -> bool:
    return isinstance(hint, types.UnionType) and type(None) in hint.__args__


def _strip_optional(hint: Any) -> Any:
    if _optional(hint):
        rest = [a for a in hint.__args__ if a is not type(None)]
        return rest[0]
    return hint


def _decode_value(hint: Any, value: Any, where: str, meta: Any) -> Any:
    if hint is str:
        return check_text(value, where, meta.get("limit", MAX_TEXT))
    if hint is bool:
        if not isinstance(value, bool):
            raise WireError(where, "must be true or false")
        return value
    if hint is int:
        return check_integer(value, where, meta.get("limit", MAX_INT), meta.get("low", 0))
    if hint is float:
        return check_number(value, where, meta.get("limit", MAX_NUMBER), meta.get("low", 0.0))
    if hint is dt.datetime:
        return check_time(value, where)
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list):
            raise WireError(where, f"must be a list, got {type(value).__name__}")
        if len(value) > meta.get("items", MAX_ITEMS):
            raise WireError(where, f"more than {meta.get('items', MAX_ITEMS)} items")
        item = typing.get_args(hint)[0]
        return tuple(_decode_value(item, v, f"{where}[{i}]", {}) for i, v in enumerate(value))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return decode(hint, value, where + ".")
    raise TypeError(f"{where}: no wire rule for {hint!r}")  # a record declared with an unsupported type
