"""The monthly commune report: samples by operator against the target, projection, quality figures."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import defaultdict
from typing import Any

from xaprobe import communes
from xaprobe.collector.coverage import Coverage, coverage_by_commune
from xaprobe.collector.scope import province_of_scope, province_scope
from xaprobe.collector.settings import CollectorSettings
from xaprobe.collector.store import CollectorStore
from xaprobe.months import month_bounds, month_of

# the order an officer reads them in: behind first
STATUSES = ("behind", "no_data", "on_track", "done")


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..1) of values; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclasses.dataclass(frozen=True)
class Spread:
    p10: float | None
    median: float | None
    p90: float | None

    @classmethod
    def of(cls, values: list[float]) -> "Spread":
        return cls(*(None if (v := percentile(values, q)) is None else round(v, 2) for q in (0.1, 0.5, 0.9)))


@dataclasses.dataclass(frozen=True)
class OperatorMonth:
    samples: int
    failed: int
    download_mbps: Spread
    upload_mbps: Spread
    latency_ms: Spread
    share_above_threshold: float | None


@dataclasses.dataclass(frozen=True)
class CommuneMonth:
    code: str
    name: str
    samples: int
    failed: int
    target: int
    percent: float
    projected: int
    status: str  # behind, no_data, on_track (projected to reach the target), done (reached it)
    operators: dict[str, OperatorMonth]
    suspect: int = 0  # samples the plausibility gate stored as suspect: not in samples nor medians
    # samples a day still needed to reach the target by the end of the month (0 once reached; None once the
    # month is over and it was not)
    needed_per_day: float | None = None
    coverage: Coverage = Coverage()  # where in the commune its samples came from


@dataclasses.dataclass(frozen=True)
class MonthReport:
    month: str
    province: str
    province_name: str
    threshold_mbps: float
    communes: list[CommuneMonth]
    operators: dict[str, OperatorMonth]  # the whole province (or the one commune asked for)
    target: int = 300  # the default target (a commune may have its own)
    days_left: float = 0.0  # days left in the month at the time of the report

    def counts(self) -> dict[str, int]:
        """How many communes are in each status, every status named (0 when none)."""
        return {status: sum(c.status == status for c in self.communes) for status in STATUSES}

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def elapsed_share(month: str, tz: str, now: dt.datetime) -> float:
    """How much of the local month has passed at now: 0 before it, 1 after it."""
    start, end = month_bounds(month, tz)
    return min(max((now - start) / (end - start), 0.0), 1.0)


def days_left(month: str, tz: str, now: dt.datetime) -> float:
    """Days (fractional) from now to the end of the local month: the whole month before it, 0 after it."""
    start, end = month_bounds(month, tz)
    return max((end - max(now, start)).total_seconds(), 0.0) / 86_400


def needed_per_day(samples: int, target: int, left: float) -> float | None:
    """Samples a day that reach the target by the month's end; 0 once reached, None when no time is left."""
    if samples >= target:
        return 0.0
    return (target - samples) / left if left > 0 else None


def _operator_month(rows: list[Any], threshold: float) -> OperatorMonth:
    ok = [r for r in rows if r.status == "ok"]
    downloads = [r.download_mbps for r in ok if r.download_mbps is not None]
    return OperatorMonth(
        samples=len(ok), failed=sum(1 for r in rows if r.status == "failed"),  # a suspect sample is neither
        download_mbps=Spread.of(downloads),
        upload_mbps=Spread.of([r.upload_mbps for r in ok if r.upload_mbps is not None]),
        latency_ms=Spread.of([r.latency_ms for r in ok if r.latency_ms is not None]),
        share_above_threshold=round(sum(d >= threshold for d in downloads) / len(downloads), 4)
        if downloads else None)


def _stat_row(operator: str, o: OperatorMonth) -> dict[str, Any]:
    return {"operator": operator, "samples": o.samples, "failed": o.failed,
            "down_p10": o.download_mbps.p10, "down_p50": o.download_mbps.median, "down_p90": o.download_mbps.p90,
            "up_p10": o.upload_mbps.p10, "up_p50": o.upload_mbps.median, "up_p90": o.upload_mbps.p90,
            "lat_p10": o.latency_ms.p10, "lat_p50": o.latency_ms.median, "lat_p90": o.latency_ms.p90,
            "share_above": o.share_above_threshold}


def _from_stat(row: Any) -> OperatorMonth:
    return OperatorMonth(row.samples, row.failed, Spread(row.down_p10, row.down_p50, row.down_p90),
                         Spread(row.up_p10, row.up_p50, row.up_p90), Spread(row.lat_p10, row.lat_p50, row.lat_p90),
                         row.share_above)


def _from_aggregate(row: Any) -> OperatorMonth:
    def spread(values: Any) -> Spread:
        return Spread(*(None if v is None else round(v, 2) for v in (values or (None, None, None))))

    return OperatorMonth(row.samples, row.failed, spread(row.down), spread(row.up), spread(row.lat),
                         None if row.share is None else round(row.share, 4))


def _compute(store: CollectorStore, settings: CollectorSettings, month: str, commune_codes: list[str],
             provinces: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Figures per scope: in SQL where the database has percentiles (PostgreSQL), else from the rows."""
    threshold = settings.threshold_mbps
    aggregates = store.stats.aggregate_month(month, threshold, commune_codes, provinces)
    grouped: dict[str, dict[str, OperatorMonth]] = {c: {} for c in commune_codes}
    grouped.update({province_scope(p): {} for p in provinces})
    if aggregates is not None:
        for row in aggregates:
            grouped[row.scope][row.operator] = _from_aggregate(row)
    else:
        rows: dict[str, dict[str, list[Any]]] = {scope: defaultdict(list) for scope in grouped}
        if commune_codes:
            for row in store.stats.month_rows(month, commune_codes=commune_codes):
                rows[row.commune_code][row.operator].append(row)
        if provinces:
            for row in store.stats.month_rows(month, province=provinces):
                rows[province_scope(row.province_code)][row.operator].append(row)
        for scope, by_op in rows.items():
            grouped[scope] = {op: _operator_month(r, threshold) for op, r in by_op.items()}
    return {scope: [_stat_row(op, o) for op, o in sorted(ops.items())] for scope, ops in grouped.items()}


def refresh_month(store: CollectorStore, settings: CollectorSettings, month: str, province: str | None) -> int:
    """Recompute the cached figures that batches made stale (or that used another threshold); return how
    many scopes were recomputed. They come from the measurements themselves, so late arrivals count.

    A province's own figures (its province scope) are recomputed for that province's report; the whole country's
    report recomputes communes only, so a late batch never makes it read every province again."""
    stale = store.stats.stale_scopes(month, province)
    redo = {(s, p) for s, p, _ in stale} | store.stats.stale_by_threshold(month, province, settings.threshold_mbps)
    if province is None:
        redo = {(s, p) for s, p in redo if province_of_scope(s) is None}
    if not redo:
        return 0
    commune_codes = sorted(s for s, _ in redo if province_of_scope(s) is None)
    provinces = sorted(p for p in map(province_of_scope, (s for s, _ in redo)) if p is not None)
    figures = _compute(store, settings, month, commune_codes, provinces)
    province_of = dict(redo)
    scopes = {scope: (province_of[scope], rows) for scope, rows in figures.items()}
    store.stats.save(month, scopes, settings.threshold_mbps, [(s, v) for s, p, v in stale if (s, p) in redo])
    return len(redo)


def refresh_recent(store: CollectorStore, settings: CollectorSettings, now: dt.datetime) -> int:
    """Bring this month's and last month's cached figures up to date (communes, then provinces)."""
    this = month_of(now, settings.timezone)
    start, _ = month_bounds(this, settings.timezone)
    done = 0
    for month in (month_of(start - dt.timedelta(days=1), settings.timezone), this):
        done += refresh_month(store, settings, month, None)
        for province in store.stats.stale_provinces(month):
            done += refresh_month(store, settings, month, province)
    return done


def monthly_report(store: CollectorStore, settings: CollectorSettings, month: str, province: str,
                   now: dt.datetime, only_commune: str | None = None) -> MonthReport:
    """Every commune of the province (those with no sample too), for one local month; province "all" gives
    the whole country (its operator figures are per province only)."""
    code: str | None
    if province == "all":
        name, code, units = "Việt Nam", None, communes.all_communes()
    else:
        found = communes.province_name(province)
        if found is None:
            raise ValueError(f"{province!r} is not a province code in vietnam-provinces")
        name, code = found, communes.normalise_code(province)
        units = communes.communes_of(code)
    if only_commune is not None:
        units = [c for c in units if c.code == only_commune]
    refresh_month(store, settings, month, code)
    by_scope: dict[str, dict[str, OperatorMonth]] = defaultdict(dict)
    for row in store.stats.cached(month, code):
        by_scope[row.scope][row.operator] = _from_stat(row)
    share = elapsed_share(month, settings.timezone, now)
    left = days_left(month, settings.timezone, now)
    targets = store.devices.commune_targets()
    suspect = store.stats.suspect_counts(month)
    coverage = coverage_by_commune(
        store.sites.of_communes([u.code for u in units] if code is not None or only_commune else None),
        store.stats.site_counts(month, code), settings.concentration_percent, store.sites.min_residential())
    out = []
    for unit in units:
        operators = dict(sorted(by_scope.get(unit.code, {}).items()))
        samples = sum(o.samples for o in operators.values())
        failed = sum(o.failed for o in operators.values())
        target = targets.get(unit.code, settings.target)
        projected = samples if share >= 1 else (round(samples / share) if share > 0 else 0)
        status = "done" if samples >= target else "no_data" if samples + failed == 0 else \
            "on_track" if projected >= target else "behind"
        needed = needed_per_day(samples, target, left)
        out.append(CommuneMonth(unit.code, unit.name, samples, failed, target, round(100 * samples / target, 1),
                                projected, status, operators, suspect.get(unit.code, 0),
                                None if needed is None else round(needed, 1),
                                coverage.get(unit.code, Coverage())))
    if only_commune is not None:
        operators = out[0].operators if out else {}
    else:
        operators = dict(sorted(by_scope.get(province_scope(code), {}).items())) if code else {}
    return MonthReport(month, province if code is None else code, name, settings.threshold_mbps, out, operators,
                       settings.target, round(left, 3))
