"""The figures reports are made of: the cached monthly statistics (which are stale, computing them in
PostgreSQL, saving them) and the measurement rows behind them (month rows, raw exports, counts)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from xaprobe.collector.db import aware
from xaprobe.collector.schema import STAT_COLUMNS, measurements, month_stats, rejections, stale_months
from xaprobe.collector.scope import province_scope


def _percentiles(column: Any, ok: Any) -> Any:
    return sa.func.percentile_cont(sa.literal([0.1, 0.5, 0.9], sa.ARRAY(sa.Float))).within_group(column).filter(ok)


def _figures(scope: Any, threshold: float) -> list[Any]:
    """The select list of one scope's aggregate: samples, failed, spreads and the share above threshold."""
    c = measurements.c
    ok = c.status == "ok"
    downloads = sa.func.count(c.download_mbps).filter(ok)
    return [scope.label("scope"), c.operator, sa.func.count().filter(ok).label("samples"),
            sa.func.count().filter(c.status == "failed").label("failed"),
            _percentiles(c.download_mbps, ok).label("down"), _percentiles(c.upload_mbps, ok).label("up"),
            _percentiles(c.latency_ms, ok).label("lat"),
            (sa.cast(sa.func.count().filter(ok & (c.download_mbps >= threshold)), sa.Float)
             / sa.func.nullif(downloads, 0)).label("share")]


class StatsStore:
    """Cached monthly figures and the measurement rows they are computed from."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.dialect = engine.dialect.name

    def stale_scopes(self, month: str, province: str | None) -> list[tuple[str, str, int]]:
        """(scope, province, version) of the month whose cached figures are out of date."""
        query = sa.select(stale_months.c.scope, stale_months.c.province_code, stale_months.c.version
                          ).where(stale_months.c.month == month)
        if province is not None:
            query = query.where(stale_months.c.province_code == province)
        with self.engine.connect() as conn:
            return [(r[0], r[1], r[2]) for r in conn.execute(query)]

    def stale_provinces(self, month: str) -> list[str]:
        """Provinces whose own figures for the month are out of date."""
        c = stale_months.c
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(c.province_code).where(
                (c.month == month) & (c.scope == province_scope(c.province_code))))]

    def stale_by_threshold(self, month: str, province: str | None, threshold: float) -> set[tuple[str, str]]:
        """(scope, province) whose cached figures were made with another download threshold."""
        c = month_stats.c
        query = sa.select(c.scope, c.province_code).where((c.month == month) & (c.threshold != threshold)).distinct()
        if province is not None:
            query = query.where(c.province_code == province)
        with self.engine.connect() as conn:
            return {(r[0], r[1]) for r in conn.execute(query)}

    def aggregate_month(self, month: str, threshold: float, commune_codes: list[str],
                        provinces: list[str]) -> list[Any] | None:
        """Per (scope, operator): samples, failed, [p10, p50, p90] of download/upload/latency and the share
        at or above threshold, computed by PostgreSQL; None on a database without percentile_cont."""
        if self.dialect != "postgresql":
            return None
        c = measurements.c
        out: list[Any] = []
        with self.engine.connect() as conn:
            for i in range(0, len(commune_codes), 1000):
                chunk = commune_codes[i:i + 1000]
                out += conn.execute(sa.select(*_figures(c.commune_code, threshold)).where(
                    (c.month == month) & c.commune_code.in_(chunk)).group_by(c.commune_code, c.operator)).all()
            if provinces:
                out += conn.execute(sa.select(*_figures(province_scope(c.province_code), threshold)).where(
                    (c.month == month) & c.province_code.in_(provinces)).group_by(c.province_code, c.operator)).all()
        return out

    def save(self, month: str, scopes: dict[str, tuple[str, list[dict[str, Any]]]], threshold: float,
             done: list[tuple[str, int]]) -> None:
        """Replace the cached figures of each scope (scope -> (province, rows)); clear the markers done
        (a marker whose version moved on meanwhile stays: a batch arrived while this was computed)."""
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":  # one writer of the cache at a time across processes: no deadlocks
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7371)"))
            names = sorted(scopes)
            for i in range(0, len(names), 500):  # a bounded IN list per statement
                conn.execute(month_stats.delete().where((month_stats.c.month == month)
                                                        & month_stats.c.scope.in_(names[i:i + 500])))
            rows = [{"month": month, "scope": scope, "province_code": province, "threshold": threshold, **row}
                    for scope, (province, scope_rows) in scopes.items() for row in scope_rows]
            if rows:
                conn.execute(month_stats.insert(), rows)
            if done:
                conn.execute(stale_months.delete().where(
                    (stale_months.c.month == month) & (stale_months.c.scope == sa.bindparam("stale"))
                    & (stale_months.c.version == sa.bindparam("seen"))),
                    [{"stale": scope, "seen": version} for scope, version in done])

    def cached(self, month: str, province: str | None) -> list[Any]:
        """Cached figures of the month: (scope, operator, province_code, samples, failed, ...) rows."""
        c = month_stats.c
        query = sa.select(c.scope, c.operator, c.province_code, *(c[name] for name in STAT_COLUMNS)
                          ).where(c.month == month)
        if province is not None:
            query = query.where(c.province_code == province)
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def month_rows(self, month: str, commune_codes: Iterable[str] | None = None,
                   province: str | Iterable[str] | None = None) -> list[Any]:
        """Return (commune_code, province_code, operator, status, download, upload, latency, started_at, site_id)
        rows."""
        c = measurements.c
        query = sa.select(c.commune_code, c.province_code, c.operator, c.status, c.download_mbps, c.upload_mbps,
                          c.latency_ms, c.started_at, c.site_id).where(c.month == month)
        if isinstance(province, str):
            query = query.where(c.province_code == province)
        elif province is not None:
            query = query.where(c.province_code.in_(list(province)))
        if commune_codes is not None:
            query = query.where(c.commune_code.in_(list(commune_codes)))
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def site_counts(self, month: str, province: str | None) -> list[Any]:
        """(commune_code, site_id, ok, failed) of the month, per commune and site (site_id None: unknown)."""
        c = measurements.c
        query = sa.select(c.commune_code, c.site_id, sa.func.sum(sa.case((c.status == "ok", 1), else_=0)).label("ok"),
                          sa.func.sum(sa.case((c.status == "failed", 1), else_=0)).label("failed")
                          ).where(c.month == month).group_by(c.commune_code, c.site_id)
        if province is not None:
            query = query.where(c.province_code == province)
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def raw_rows(self, month: str, commune_code: str | None, province: str | None) -> list[Any]:
        """Every measurement of the month (of a commune, or a province), oldest first, for raw exports."""
        c = measurements.c
        query = sa.select(c.id, c.device_id, c.seq, c.commune_code, c.started_at, c.received_at, c.engine,
                          c.status, c.operator, c.link_name, c.access, c.download_mbps, c.upload_mbps,
                          c.latency_ms, c.jitter_ms, c.bytes_down, c.bytes_up, c.clock_suspect, c.site_id
                          ).where(c.month == month).order_by(c.started_at)
        if commune_code:
            query = query.where(c.commune_code == commune_code)
        if province:
            query = query.where(c.province_code == province)
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def last_sample_by_device(self) -> dict[str, dt.datetime]:
        """When each device's latest measurement started."""
        c = measurements.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(c.device_id, sa.func.max(c.started_at)).group_by(c.device_id))
            return {r[0]: aware(r[1]) for r in rows}

    def measurement_ids(self, device_id: str) -> list[str]:
        with self.engine.connect() as conn:
            query = sa.select(measurements.c.id).where(measurements.c.device_id == device_id)
            return [r[0] for r in conn.execute(query)]

    def count_measurements(self, **where: Any) -> int:
        """How many measurements are stored (those whose columns equal where's values)."""
        query = sa.select(sa.func.count()).select_from(measurements)
        for column, value in where.items():
            query = query.where(measurements.c[column] == value)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def suspect_counts(self, month: str, by: str = "commune_code") -> dict[str, int]:
        """Samples stored as suspect in the month, per commune (or per device_id)."""
        c = measurements.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(c[by], sa.func.count()).where((c.month == month) & (c.status == "suspect"))
                                .group_by(c[by]))
            return {r[0]: int(r[1]) for r in rows}

    def rejection_counts(self, month: str) -> dict[str, dict[str, tuple[int, str]]]:
        """Items refused in the month, per device: reason -> (count, the last refusal's words)."""
        out: dict[str, dict[str, tuple[int, str]]] = {}
        with self.engine.connect() as conn:
            c = rejections.c
            for device, reason, count, detail in conn.execute(
                    sa.select(c.device_id, c.reason, c["count"], c.last_detail).where(c.month == month)):
                out.setdefault(device, {})[reason] = (int(count), detail)
        return out
