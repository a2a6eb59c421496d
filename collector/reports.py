"""The monthly commune report: samples by operator against the target, projection, quality figures."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import defaultdict
from typing import Any

from xaprobe import communes
from xaprobe.collector.settings import CollectorSettings
from xaprobe.collector.store import CollectorStore
from xaprobe.months import month_bounds

STATUSES = ("behind", "no_data", "on_track")


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
    status: str
    operators: dict[str, OperatorMonth]


@dataclasses.dataclass(frozen=True)
class MonthReport:
    month: str
    province: str
    province_name: str
    threshold_mbps: float
    communes: list[CommuneMonth]
    operators: dict[str, OperatorMonth]  # the whole province (or the one commune asked for)

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def elapsed_share(month: str, tz: str, now: dt.datetime) -> float:
    """How much of the local month has passed at now: 0 before it, 1 after it."""
    start, end = month_bounds(month, tz)
    return min(max((now - start) / (end - start), 0.0), 1.0)


def _operator_month(rows: list[Any], threshold: float) -> OperatorMonth:
    ok = [r for r in rows if r.status == "ok"]
    downloads = [r.download_mbps for r in ok if r.download_mbps is not None]
    return OperatorMonth(
        samples=len(ok), failed=len(rows) - len(ok),
        download_mbps=Spread.of(downloads),
        upload_mbps=Spread.of([r.upload_mbps for r in ok if r.upload_mbps is not None]),
        latency_ms=Spread.of([r.latency_ms for r in ok if r.latency_ms is not None]),
        share_above_threshold=round(sum(d >= threshold for d in downloads) / len(downloads), 4)
        if downloads else None)


def commune_targets(store: CollectorStore) -> dict[str, int]:
    """A commune's target: the one staff set for it, else the highest set on one of its devices."""
    targets: dict[str, int] = {}
    for device in store.devices():
        if device.target:
            targets[device.commune_code] = max(targets.get(device.commune_code, 0), device.target)
    targets.update(store.commune_targets())
    return targets


def monthly_report(store: CollectorStore, settings: CollectorSettings, month: str, province: str,
                   now: dt.datetime, only_commune: str | None = None) -> MonthReport:
    """Every commune of the province (those with no sample too), for one local month."""
    name = communes.province_name(province)
    if name is None:
        raise ValueError(f"{province!r} is not a province code in vietnam-provinces")
    province = communes.normalise_code(province)
    units = communes.communes_of(province)
    if only_commune is not None:
        units = [c for c in units if c.code == only_commune]
    by_commune: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    by_operator: dict[str, list[Any]] = defaultdict(list)
    for row in store.month_rows(month, province=province,
                                commune_codes=[only_commune] if only_commune else None):
        by_commune[row.commune_code][row.operator].append(row)
        by_operator[row.operator].append(row)
    share = elapsed_share(month, settings.timezone, now)
    targets = commune_targets(store)
    out = []
    for unit in units:
        operators = {op: _operator_month(rows, settings.threshold_mbps)
                     for op, rows in sorted(by_commune.get(unit.code, {}).items())}
        samples = sum(o.samples for o in operators.values())
        failed = sum(o.failed for o in operators.values())
        target = targets.get(unit.code, settings.target)
        projected = samples if share >= 1 else (round(samples / share) if share > 0 else 0)
        status = "no_data" if samples + failed == 0 else ("on_track" if projected >= target else "behind")
        out.append(CommuneMonth(unit.code, unit.name, samples, failed, target,
                                round(100 * samples / target, 1), projected, status, operators))
    operators = {op: _operator_month(rows, settings.threshold_mbps) for op, rows in sorted(by_operator.items())}
    return MonthReport(month, province, name, settings.threshold_mbps, out, operators)
