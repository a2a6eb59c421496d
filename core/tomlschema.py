"""A TOML table declared once as a frozen dataclass: each field's default, range and help are read and written from it.

`setting(default, help, ...)` declares a field; `read_table(reader, cls)` reads every declared field with
TableReader (so each problem names its key path) by the field's type: str, int, float, bool or
tuple[str, ...]. `sample_lines(cls, examples)` writes the table back as commented TOML, the help text
and the allowed values above each key. Fields declared with `custom=True` are read and written by
their owner's own named functions (a token that may come from a file, a path relative to the config).
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from xaprobe.errors import UserError
from xaprobe.i18n import _
from xaprobe.tomlcheck import TableReader

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")
Choices = tuple[str, ...] | Callable[[], tuple[str, ...]]


def setting(default: Any, help: str, *, low: float | None = None, high: float | None = None,
            choices: Choices = (), url: bool = False, path_or_url: bool = False, required: bool = False,
            custom: bool = False) -> Any:
    """A dataclass field for one TOML key; choices may be a callable when they are known only at run time.
    url: an http(s) URL; path_or_url: that or an absolute file path."""
    metadata = {"help": help, "low": low, "high": high, "choices": choices, "url": url, "path_or_url": path_or_url,
                "required": required, "custom": custom}
    return dataclasses.field(default=default, metadata=metadata)


def declared(cls: type, name: str) -> dataclasses.Field:
    """The field called name of the dataclass cls (KeyError when it has none)."""
    return {f.name: f for f in dataclasses.fields(cls)}[name]


def choices_of(field: dataclasses.Field) -> tuple[str, ...]:
    choices = field.metadata.get("choices", ())
    return choices() if callable(choices) else choices


def read_value(r: TableReader, field: dataclasses.Field, kind: Any, default: Any = dataclasses.MISSING) -> Any:
    """Read one key as its field declares it; a problem is added to r and the default returned."""
    meta, name = field.metadata, field.name
    default = field.default if default is dataclasses.MISSING else default
    if choices_of(field):
        return r.choice(name, choices_of(field), default)
    if kind is str:
        value = r.text(name, default, required=meta.get("required", False))
        if value and meta.get("path_or_url") and "://" not in value:
            if not value.startswith("/"):
                r.fail(name, _('must be an http:// or https:// URL or an absolute file path, got "{value}"').format(
                    value=value))
        elif value and (meta.get("url") or meta.get("path_or_url")):
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                r.fail(name, _('must be an http:// or https:// URL, got "{value}"').format(value=value))
        return value
    if kind is bool:
        return r.boolean(name, default)
    bounds = {k: meta[k] for k in ("low", "high") if meta.get(k) is not None}
    if kind is int:
        return r.integer(name, default, **{k: int(v) for k, v in bounds.items()})
    if kind is float:
        return r.number(name, default, **bounds)
    if kind == tuple[str, ...]:
        return r.text_list(name) if r.raw(name) is not None else default
    raise TypeError(f"{field.name}: no TOML reader for {kind!r}; declare it custom=True and read it yourself")


def read_table(r: TableReader, cls: type[T], defaults: Mapping[str, Any] | None = None, **given: Any) -> T:
    """Build cls from the table: custom fields come from given, the rest are read; unknown keys are problems."""
    kinds = typing.get_type_hints(cls)
    values = dict(given)
    for field in dataclasses.fields(cls):
        if field.name not in given and not field.metadata.get("custom"):
            values[field.name] = read_value(r, field, kinds[field.name], (defaults or {}).get(field.name,
                                                                                               dataclasses.MISSING))
    r.reject_unknown()
    return cls(**values)


# TOML basic strings: these must be escaped; every other control character is written as \uXXXX
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_string(value: str) -> str:
    """value as a TOML basic string, quotes included, so no text can end it early or add a key; raise
    UserError for text TOML cannot hold (a lone surrogate)."""
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            raise UserError(f"{value[:40]!r} contains a lone surrogate, which a TOML file cannot hold")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    """Write a str, int, float, bool or sequence of str as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    return "[" + ", ".join(toml_value(v) for v in value) + "]"


def allowed(field: dataclasses.Field) -> str:
    """The values a field accepts, in words, for the sample's comments ('' when any value of its type goes)."""
    meta = field.metadata
    if choices_of(field):
        return "One of " + ", ".join(json.dumps(c) for c in choices_of(field)) + "."
    if meta.get("low") is not None and meta.get("high") is not None:
        return f"From {meta['low']:g} to {meta['high']:g}."
    if meta.get("url"):
        return "An http:// or https:// URL."
    if meta.get("path_or_url"):
        return "An http:// or https:// URL, or an absolute file path."
    return ""


def comment(text: str) -> list[str]:
    return textwrap.wrap(text, width=100, initial_indent="# ", subsequent_indent="# ") if text else []


def sample_lines(cls: type, examples: Mapping[str, Any] | None = None, commented: frozenset[str] = frozenset(),
                 help: bool = True, only: frozenset[str] | None = None) -> list[str]:
    """Each non-custom field (or those in only) as '# help' lines then 'key = value' (an example, else the default).

    Keys in commented are written commented out: their default comes from elsewhere (a link's target).
    """
    lines: list[str] = []
    for field in dataclasses.fields(cls):
        if field.metadata.get("custom") or (only is not None and field.name not in only):
            continue
        if help:
            lines += comment(" ".join(p for p in (field.metadata.get("help", ""), allowed(field)) if p))
        value = (examples or {}).get(field.name, field.default)
        lines.append(("# " if field.name in commented else "") + f"{field.name} = {toml_value(value)}")
    return lines
