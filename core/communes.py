"""Commune (xã/phường) and province names and codes from vietnam-provinces (post-2025 units).

The probe installs without vietnam-provinces; `available()` says whether lookups can be made.
Codes are the official numeric codes as strings without leading zeros ("18673").
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from functools import lru_cache
from pathlib import Path

from xaprobe.slug import slugify


@dataclasses.dataclass(frozen=True)
class Commune:
    code: str
    name: str
    province_code: str
    province_name: str


def available() -> bool:
    """Return True when vietnam-provinces is installed (without importing it)."""
    return importlib.util.find_spec("vietnam_provinces") is not None


@lru_cache(maxsize=1)
def _known_codes() -> frozenset[str]:
    # The probe only needs to know whether a code exists. Importing vietnam_provinces builds enums of
    # every unit (about 4 MB resident on a Pi that idles at 35 MB); its data file gives the codes alone.
    spec = importlib.util.find_spec("vietnam_provinces")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("vietnam_provinces is not installed", name="vietnam_provinces")
    folder = Path(next(iter(spec.submodule_search_locations)))
    with open(folder / "data" / "flat-divisions.json", encoding="utf-8") as f:
        return frozenset(str(int(unit["code"])) for unit in json.load(f))


def is_commune_code(code: str | int) -> bool | None:
    """True or False when vietnam-provinces is installed, None when it is not (cannot tell)."""
    if not available():
        return None
    try:
        return normalise_code(code) in _known_codes()
    except ValueError:
        return False


def normalise_code(code: str | int) -> str:
    """Return a division code without leading zeros ('01' -> '1'); raise ValueError if not digits."""
    text = str(code).strip()
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a numeric code")
    return str(int(text))


@lru_cache(maxsize=1)
def _index() -> tuple[dict[str, Commune], dict[str, str]]:
    from vietnam_provinces import Province, Ward

    provinces = {str(int(p.code)): p.name for p in Province.iter_all()}
    communes = {
        str(int(w.code)): Commune(str(int(w.code)), w.name, str(int(w.province_code)),
                                  provinces[str(int(w.province_code))])
        for w in Ward.iter_all()
    }
    return communes, provinces


def commune(code: str | int) -> Commune | None:
    """Return the commune with this code, or None when no such commune exists."""
    try:
        return _index()[0].get(normalise_code(code))
    except ValueError:
        return None


def province_name(code: str | int) -> str | None:
    """Return the province's name, or None when no such province exists."""
    try:
        return _index()[1].get(normalise_code(code))
    except ValueError:
        return None


def provinces() -> dict[str, str]:
    """Return every province, code to name."""
    return dict(_index()[1])


def communes_of(province_code: str | int) -> list[Commune]:
    """Return the province's communes in code order (empty when the province is unknown)."""
    code = normalise_code(province_code)
    return sorted((c for c in _index()[0].values() if c.province_code == code), key=lambda c: int(c.code))


def all_communes() -> list[Commune]:
    """Return every commune of the country in code order."""
    return sorted(_index()[0].values(), key=lambda c: int(c.code))


def _folded(text: str) -> str:
    return slugify(text, limit=200).replace("-", " ")


def search(text: str, limit: int = 20) -> list[Commune]:
    """Communes whose name and province hold each word of text (the last one may be unfinished), diacritics
    and case ignored ("cam xuyen" finds Xã Cẩm Xuyên); names ending in the whole text first, then by code."""
    query = _folded(text)
    words = query.split()
    if not words:
        return []

    def matches(c: Commune) -> bool:
        hay = f"{_folded(c.name)} {_folded(c.province_name)}".split()
        return all(w in hay for w in words[:-1]) and any(h.startswith(words[-1]) for h in hay)

    found = [c for c in _index()[0].values() if matches(c)]
    return sorted(found, key=lambda c: (not _folded(c.name).endswith(query), int(c.code)))[:limit]
