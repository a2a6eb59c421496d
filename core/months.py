"""Calendar months in the local time zone: what month a UTC instant counts for, and its bounds."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

DEFAULT_TZ = "Asia/Ho_Chi_Minh"


def utc_now() -> dt.datetime:
    """Return the current time as an aware UTC datetime."""
    return dt.datetime.now(dt.timezone.utc)


def month_of(instant: dt.datetime, tz: str = DEFAULT_TZ) -> str:
    """Return 'YYYY-MM' of the local calendar month that the aware instant falls in."""
    local = instant.astimezone(ZoneInfo(tz))
    return f"{local.year:04d}-{local.month:02d}"


def month_bounds(month: str, tz: str = DEFAULT_TZ) -> tuple[dt.datetime, dt.datetime]:
    """Return the UTC start (inclusive) and end (exclusive) of local month 'YYYY-MM'."""
    year, mon = parse_month(month)
    zone = ZoneInfo(tz)
    start = dt.datetime(year, mon, 1, tzinfo=zone)
    end = dt.datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)


def parse_month(month: str) -> tuple[int, int]:
    """Parse 'YYYY-MM' into (year, month); raise ValueError naming the bad text."""
    try:
        year_text, mon_text = month.split("-")
        year, mon = int(year_text), int(mon_text)
    except ValueError:
        raise ValueError(f"month must look like 2026-11, got {month!r}") from None
    if not (2000 <= year <= 2999 and 1 <= mon <= 12):
        raise ValueError(f"month must look like 2026-11, got {month!r}")
    return year, mon


def parse_utc(text: str) -> dt.datetime:
    """Parse an ISO 8601 timestamp that carries its offset; return it in UTC."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone offset")
    try:
        return value.astimezone(dt.timezone.utc)
    except OverflowError:  # 0001-01-01T00:00+14:00 lies before the first instant a datetime can hold
        raise ValueError(f"timestamp {text!r} is out of range") from None


def format_utc(instant: dt.datetime) -> str:
    """Format an aware datetime as UTC ISO 8601, Z suffix, microseconds (fixed width: text order is time order)."""
    return instant.astimezone(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
