"""Numbers, percentages, months and times as a reader of the page's language expects them, through Babel's
locale data (Vietnamese: decimal comma, thousands dot, `tháng 11/2026`, `30/11/2026 13:57` in the collector's
time zone), and the month box's text read back into a YYYY-MM month."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, format_skeleton
from babel.numbers import format_decimal, format_percent

from xaprobe.months import DEFAULT_TZ, parse_month

LOCALES = {"vi": "vi", "en": "en"}
# what a person types in the month box: 2026-11, 11/2026, 11-2026, 11.2026, T11/2026, tháng 11/2026
_MONTH_FIRST = re.compile(r"^(?:th[aá]ng|t)?\s*(\d{1,2})\s*[/.\-]\s*(\d{4})$", re.IGNORECASE)
_YEAR_FIRST = re.compile(r"^(\d{4})\s*[/.\-]\s*(\d{1,2})$")
EMPTY = "–"


def parse_month_input(text: str) -> str:
    """Given what was typed in a month box, return the month as YYYY-MM; raise ValueError when it is none."""
    shown = text.strip()
    found = _YEAR_FIRST.match(shown)
    year, month = (found.group(1), found.group(2)) if found else (None, None)
    if found is None and (found := _MONTH_FIRST.match(shown)) is not None:
        month, year = found.group(1), found.group(2)
    if year is None or month is None:
        raise ValueError(f"not a month: {text[:40]!r}")
    canonical = f"{int(year):04d}-{int(month):02d}"
    parse_month(canonical)  # the range check: 2000..2999, 1..12
    return canonical


@dataclasses.dataclass(frozen=True)
class Formats:
    """Formatting for one language and the collector's time zone; every method takes None and gives a dash."""

    language: str = "vi"
    timezone: str = DEFAULT_TZ

    @property
    def locale(self) -> str:
        return LOCALES.get(self.language, "vi")

    def number(self, value: float | None, digits: int = 1) -> str:
        """1.234,5 in Vietnamese, 1,234.5 in English; digits after the decimal sign, always shown."""
        if value is None:
            return EMPTY
        pattern = "#,##0" + ("." + "0" * digits if digits > 0 else "")
        return format_decimal(value, format=pattern, locale=self.locale)

    def integer(self, value: float | None) -> str:
        return EMPTY if value is None else format_decimal(round(value), format="#,##0", locale=self.locale)

    def percent(self, share: float | None, digits: int = 1) -> str:
        """A share (0..1) as a percentage: 0.017 is 1,7%."""
        if share is None:
            return EMPTY
        pattern = "#,##0" + ("." + "0" * digits if digits > 0 else "") + "%"
        return format_percent(share, format=pattern, locale=self.locale)

    def month(self, month: str) -> str:
        """2026-11 as `tháng 11/2026` (Vietnamese) or `November 2026`."""
        year, mon = parse_month(month)
        first = dt.date(year, mon, 1)
        if self.locale == "vi":
            return "tháng " + format_skeleton("yM", first, locale="vi")
        return format_skeleton("yMMMM", first, locale=self.locale)

    def short_month(self, month: str) -> str:
        """2026-11 as `11/2026` (Vietnamese) or `Nov 2026`: for chart axes and narrow columns."""
        year, mon = parse_month(month)
        first = dt.date(year, mon, 1)
        return format_skeleton("yM" if self.locale == "vi" else "yMMM", first, locale=self.locale)

    def local(self, instant: dt.datetime) -> dt.datetime:
        aware = instant if instant.tzinfo else instant.replace(tzinfo=dt.timezone.utc)
        return aware.astimezone(ZoneInfo(self.timezone))

    def datetime(self, instant: dt.datetime | None) -> str:
        """An instant in the collector's time zone: `30/11/2026 13:57` (Vietnamese), `30 Nov 2026, 13:57`."""
        if instant is None:
            return EMPTY
        pattern = "dd/MM/yyyy HH:mm" if self.locale == "vi" else "d MMM yyyy, HH:mm"
        return format_datetime(self.local(instant), pattern, locale=self.locale)

    def zone_note(self) -> str:
        """The time zone the page's times are in, as `giờ Asia/Ho_Chi_Minh (UTC+07:00)`."""
        offset = dt.datetime.now(ZoneInfo(self.timezone)).strftime("%z")
        utc = f"UTC{offset[:3]}:{offset[3:]}"
        return f"{'giờ' if self.locale == 'vi' else 'time'} {self.timezone} ({utc})"
