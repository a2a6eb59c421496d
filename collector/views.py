"""What the overview and fleet pages show, decided apart from HTML: the communes an officer asked for (status,
operator, a name typed without diacritics) in the order asked for, behind first; and per probe what the
commune should do about it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import unicodedata
from collections.abc import Callable
from typing import Any

from xaprobe.collector.fleet import DeviceHealth
from xaprobe.collector.reports import STATUSES, CommuneMonth, MonthReport, monthly_report
from xaprobe.collector.settings import CollectorSettings
from xaprobe.collector.store import CollectorStore
from xaprobe.months import parse_month

SORTS = ("status", "name", "percent", "needed", "concentration", "residential")
# a probe that cannot upload this many samples is worth a word to the commune
BACKLOG_WORTH_A_CALL = 50


def fold(text: str) -> str:
    """Text as compared by the search box: no diacritics, đ as d, case folded (`Cẩm Xuyên` -> `cam xuyen`)."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return " ".join("".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold().split())


@dataclasses.dataclass(frozen=True)
class CommuneFilter:
    """What the overview's filter form asks for; empty strings mean no filter."""

    status: str = ""
    operator: str = ""
    search: str = ""
    sort: str = "status"

    @classmethod
    def of(cls, status: str | None, operator: str | None, search: str | None, sort: str | None) -> "CommuneFilter":
        """Read the form's values; an unknown status or sort is taken as none (a link typed by hand)."""
        return cls(status if status in STATUSES else "", (operator or "").strip()[:64], (search or "").strip()[:80],
                   sort if sort in SORTS else "status")

    def active(self) -> bool:
        return bool(self.status or self.operator or self.search)


def _sort_key(sort: str) -> Callable[[CommuneMonth], Any]:
    if sort == "name":
        return lambda c: fold(c.name)
    if sort == "percent":
        return lambda c: (c.percent, fold(c.name))
    if sort == "concentration":  # one site giving most of the month first; communes without sites last
        return lambda c: (-(c.coverage.top_share if c.coverage.top_share is not None else -1), fold(c.name))
    if sort == "residential":  # least from residential sites first (a commune with no samples last)
        return lambda c: (c.coverage.residential_share if c.coverage.residential_share is not None else 2,
                          fold(c.name))
    if sort == "needed":  # most samples a day still needed first; a month already lost last
        return lambda c: (-(c.needed_per_day if c.needed_per_day is not None else -1), fold(c.name))
    return lambda c: (STATUSES.index(c.status), c.percent, fold(c.name))  # behind first, least progress first


def select_communes(report: MonthReport, wanted: CommuneFilter) -> list[CommuneMonth]:
    """The report's communes that pass the filter, in the order asked for."""
    needle = fold(wanted.search)
    rows = [c for c in report.communes
            if (not wanted.status or c.status == wanted.status)
            and (not wanted.operator or wanted.operator in c.operators)
            and (not needle or needle in fold(c.name) or needle == c.code)]
    return sorted(rows, key=_sort_key(wanted.sort))


def advice(h: DeviceHealth) -> list[str]:
    """Label keys of what the commune (or the centre) should do about this probe, most urgent first; none
    when it is well."""
    keys = []
    if h.status == "revoked":
        return ["advice_revoked"]
    if h.last_seen_at is None:
        keys.append("advice_never")
    elif h.status == "stale":
        keys.append("advice_stale")
    elif h.status == "silent":
        keys.append("advice_silent")
    if h.disk_full:
        keys.append("advice_disk")
    if h.clock_synced is False:
        keys.append("advice_clock")
    if h.backlog is not None and h.backlog >= BACKLOG_WORTH_A_CALL and h.status == "ok":
        keys.append("advice_backlog")
    if h.id_conflicts:
        keys.append("advice_conflicts")
    return keys


def fleet_counts(devices: list[DeviceHealth]) -> dict[str, int]:
    """How many probes are in each state (ok, silent, stale, revoked), and how many need something done."""
    counts = {status: sum(d.status == status for d in devices) for status in ("stale", "silent", "ok", "revoked")}
    counts["attention"] = sum(bool(advice(d)) and d.status != "revoked" for d in devices)
    return counts


def last_months(month: str, n: int) -> list[str]:
    """The n months up to and including month, oldest first (2026-11, 3 -> 2026-09, 2026-10, 2026-11)."""
    year, mon = parse_month(month)
    index = year * 12 + mon - 1
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(index - n + 1, index + 1)]


def commune_history(store: CollectorStore, settings: CollectorSettings, code: str, province: str, month: str,
                    now: dt.datetime, n: int = 12) -> list[tuple[str, CommuneMonth]]:
    """The commune's figures for the n months up to month, oldest first, from the cached monthly figures."""
    return [(m, monthly_report(store, settings, m, province, now, only_commune=code).communes[0])
            for m in last_months(month, n) if m >= "2000-01"]
