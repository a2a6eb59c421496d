"""The JSON Schema of a wire record, read from the same type hints and field limits that
xaprobe.fields.decode checks, so the OpenAPI document promises what the API accepts (no more, no less)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from typing import Any

from xaprobe.fields import MAX_INT, MAX_ITEMS, MAX_NUMBER, MAX_TEXT


def record_schema(cls: type) -> dict[str, Any]:
    """An object schema of the dataclass: its fields as properties, those without a default required."""
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.name != "extra"]  # extra: any other key is kept
    required = [f.name for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    return {"type": "object", "required": required, "additionalProperties": True,
            "properties": {f.name: _value_schema(hints[f.name], f.metadata) for f in fields}}


def _value_schema(hint: Any, meta: Any) -> dict[str, Any]:
    if isinstance(hint, types.UnionType) and type(None) in hint.__args__:  # decode takes null as absent
        [inner] = [a for a in hint.__args__ if a is not type(None)]
        return {"anyOf": [_value_schema(inner, meta), {"type": "null"}]}
    if hint is str:  # no NUL: fields.check_text refuses it
        return {"type": "string", "maxLength": meta.get("limit", MAX_TEXT), "pattern": "^[^\\u0000]*$"}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer", "minimum": meta.get("low", 0), "maximum": meta.get("limit", MAX_INT)}
    if hint is float:
        return {"type": "number", "minimum": meta.get("low", 0.0), "maximum": meta.get("limit", MAX_NUMBER)}
    if hint is dt.datetime:
        return {"type": "string", "format": "date-time"}
    if typing.get_origin(hint) is tuple:
        return {"type": "array", "maxItems": meta.get("items", MAX_ITEMS),
                "items": _value_schema(typing.get_args(hint)[0], {})}
    if dataclasses.is_dataclass(hint):
        return record_schema(typing.cast(type, hint))
    raise TypeError(f"no JSON Schema rule for {hint!r}")
