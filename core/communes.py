"""Commune (xã/phường) and province names and codes from vietnam-provinces (post-2025 units).

The probe installs without vietnam-provinces; `available()` says whether lookups can be made.
Codes are the official numeric codes as strings without leading zeros ("18673").
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache


@dataclasses.dataclass(frozen=True)
class Commune:
    code: str
    name: str
    province_code: str
    province_name: str


def available() -> bool:
    """Return True when vietnam-provinces is installed."""
    try:
        import vietnam_provinces  # noqa: F401
    except ImportError:
        return False
    return True


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
