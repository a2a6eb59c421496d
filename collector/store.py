"""The collector's database: the only module on the server that talks SQL (SQLite or PostgreSQL)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from xaprobe.collector import schema
from xaprobe.collector.schema import (
    STAT_COLUMNS,
    admins,
    commune_targets,
    devices,
    measurements,
    month_stats,
    rate_windows,
    stale_months,
)

TOKEN_PREFIX = "xap_"


class StoreError(Exception):
    """A request the database cannot satisfy (unknown device, duplicate name, ...)."""


def hash_token(token: str) -> str:
    """Tokens carry 256 random bits, so a plain SHA-256 is enough to keep them unreadable at rest."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclasses.dataclass(frozen=True)
class Device:
    id: str
    name: str
    commune_code: str
    target: int | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    last_seen_at: dt.datetime | None
    last_heartbeat_at: dt.datetime | None
    heartbeat: dict[str, Any] | None
    settings: dict[str, Any]


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.timezone.utc)  # SQLite keeps no offset; everything stored is UTC


def _device(row: Any) -> Device:
    return Device(row.id, row.name, row.commune_code, row.target, _aware(row.created_at),
                  _aware(row.revoked_at), _aware(row.last_seen_at), _aware(row.last_heartbeat_at),
                  json.loads(row.heartbeat) if row.heartbeat else None,
                  json.loads(row.settings) if row.settings else {})


def open_engine(url: str) -> sa.Engine:
    """Connect to the database at url, creating or migrating its schema."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(conn, _record):  # noqa: ANN001
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
    else:
        engine = sa.create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
    schema.migrate(engine)
    return engine


class CollectorStore:
    """Devices, admins and measurements in one database."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.dialect = engine.dialect.name

    # --- devices ----------------------------------------------------------------------------

    def add_device(self, device_id: str, name: str, commune_code: str, target: int | None,
                   now: dt.datetime) -> str:
        """Enrol a device and return its token (kept only as a hash)."""
        token = new_token()
        with self.engine.begin() as conn:
            if conn.execute(sa.select(devices.c.id).where(devices.c.id == device_id)).first():
                raise StoreError(f"a device with id {device_id!r} exists already (choose another --id)")
            conn.execute(devices.insert().values(
                id=device_id, name=name, commune_code=commune_code, target=target,
                token_hash=hash_token(token), created_at=now, settings="{}"))
        return token

    def devices(self) -> list[Device]:
        with self.engine.connect() as conn:
            return [_device(r) for r in conn.execute(sa.select(devices).order_by(devices.c.id))]

    def device(self, device_id: str) -> Device | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(devices).where(devices.c.id == device_id)).first()
        return _device(row) if row else None

    def device_for_token(self, token: str, now: dt.datetime) -> Device | None:
        """Return the device this token belongs to (its current or still-valid old token), else None."""
        digest = hash_token(token)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(devices).where(
                (devices.c.token_hash == digest)
                | ((devices.c.old_token_hash == digest) & (devices.c.old_token_until > now)))).first()
        return _device(row) if row else None

    def revoke_device(self, device_id: str, now: dt.datetime) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(devices.update().where(devices.c.id == device_id)
                                .values(revoked_at=now, old_token_hash=None)).rowcount
        if not done:
            raise StoreError(f"no device {device_id!r} (see `xaprobe-collector device list`)")

    def rotate_device(self, device_id: str, now: dt.datetime, grace: dt.timedelta) -> str:
        """Give the device a new token; the old one stays valid for the grace period."""
        token = new_token()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(devices.c.token_hash).where(devices.c.id == device_id)).first()
            if row is None:
                raise StoreError(f"no device {device_id!r} (see `xaprobe-collector device list`)")
            conn.execute(devices.update().where(devices.c.id == device_id).values(
                token_hash=hash_token(token), old_token_hash=row.token_hash, old_token_until=now + grace))
        return token

    def steer_device(self, device_id: str, pause: bool | None, target: int | None) -> dict[str, Any]:
        """Set what the device's next heartbeat answer carries (pause, target); return its settings."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(devices.c.settings).where(devices.c.id == device_id)).first()
            if row is None:
                raise StoreError(f"no device {device_id!r} (see `xaprobe-collector device list`)")
            settings = json.loads(row.settings) if row.settings else {}
            if pause is not None:
                settings["pause"] = pause
            values: dict[str, Any] = {"settings": json.dumps(settings)}
            if target is not None:
                values["target"] = target
            conn.execute(devices.update().where(devices.c.id == device_id).values(**values))
        return settings

    def record_heartbeat(self, device_id: str, body: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
        """Keep the device's latest health report; return the settings staff set for it."""
        with self.engine.begin() as conn:
            conn.execute(devices.update().where(devices.c.id == device_id).values(
                heartbeat=json.dumps(body, ensure_ascii=False), last_heartbeat_at=now, last_seen_at=now))
            row = conn.execute(sa.select(devices.c.settings, devices.c.target)
                               .where(devices.c.id == device_id)).first()
        settings = json.loads(row.settings) if row and row.settings else {}
        if row and row.target:
            settings.setdefault("target", row.target)
        return settings

    def count_request(self, device_id: str, window_start: int) -> int:
        """Count one request of the device in its rate window; return the window's count so far."""
        insert = (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(rate_windows)
        statement = insert.values(device_id=device_id, window_start=window_start, count=1).on_conflict_do_update(
            index_elements=["device_id", "window_start"], set_={"count": rate_windows.c.count + 1}
        ).returning(rate_windows.c.count)
        with self.engine.begin() as conn:
            count = conn.execute(statement).scalar_one()
            if count == 1:  # a new window: forget the device's old ones
                conn.execute(rate_windows.delete().where((rate_windows.c.device_id == device_id)
                                                         & (rate_windows.c.window_start < window_start)))
        return count

    def set_commune_target(self, commune_code: str, target: int | None) -> None:
        """Set (or with None, clear) a commune's monthly target."""
        with self.engine.begin() as conn:
            conn.execute(commune_targets.delete().where(commune_targets.c.commune_code == commune_code))
            if target is not None:
                conn.execute(commune_targets.insert().values(commune_code=commune_code, target=target))

    def commune_targets(self) -> dict[str, int]:
        """Targets staff set per commune, else the highest set on one of the commune's devices."""
        with self.engine.connect() as conn:
            by_device = conn.execute(sa.select(devices.c.commune_code, sa.func.max(devices.c.target))
                                     .where(devices.c.target.is_not(None)).group_by(devices.c.commune_code))
            targets = {r[0]: r[1] for r in by_device}
            targets.update({r.commune_code: r.target for r in conn.execute(sa.select(commune_targets))})
        return targets

    def devices_seen_since(self, since: dt.datetime) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(devices)
                                .where(devices.c.last_seen_at >= since)).scalar_one()

    # --- admins -----------------------------------------------------------------------------

    def add_admin(self, name: str, now: dt.datetime) -> str:
        token = new_token()
        with self.engine.begin() as conn:
            conn.execute(admins.insert().values(name=name, token_hash=hash_token(token), created_at=now))
        return token

    def admin_for_token(self, token: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(admins.c.name)
                                .where(admins.c.token_hash == hash_token(token))).scalar_one_or_none()

    # --- measurements -----------------------------------------------------------------------

    def insert_measurements(self, rows: list[dict[str, Any]], device_id: str, now: dt.datetime) -> set[str]:
        """Insert rows whose id is new; return the ids actually inserted (the rest were duplicates)."""
        if not rows:
            with self.engine.begin() as conn:
                conn.execute(devices.update().where(devices.c.id == device_id).values(last_seen_at=now))
            return set()
        insert = (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(measurements)
        statement = insert.on_conflict_do_nothing(index_elements=["id"]).returning(measurements.c.id)
        with self.engine.begin() as conn:
            inserted = {r[0] for r in conn.execute(statement, rows)}
            conn.execute(devices.update().where(devices.c.id == device_id).values(last_seen_at=now))
            touched = {(r["month"], scope, r["province_code"]) for r in rows if r["id"] in inserted
                       for scope in (r["commune_code"], "p" + r["province_code"])}
            if touched:
                self._mark_stale(conn, touched)
        return inserted

    def _mark_stale(self, conn: sa.Connection, touched: set[tuple[str, str, str]]) -> None:
        insert = (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(stale_months)
        statement = insert.on_conflict_do_update(index_elements=["month", "commune_code"],
                                                 set_={"version": stale_months.c.version + 1})
        conn.execute(statement, [{"month": m, "commune_code": c, "province_code": p, "version": 1}
                                 for m, c, p in sorted(touched)])

    def stale_communes(self, month: str, province: str | None) -> list[tuple[str, str, int]]:
        """(commune, province, version) of the month whose cached figures are out of date."""
        query = sa.select(stale_months.c.commune_code, stale_months.c.province_code, stale_months.c.version
                          ).where(stale_months.c.month == month)
        if province is not None:
            query = query.where(stale_months.c.province_code == province)
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(query)]

    def stale_provinces(self, month: str) -> list[str]:
        """Provinces whose own figures for the month are out of date."""
        c = stale_months.c
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(c.province_code).where(
                (c.month == month) & c.commune_code.startswith("p")))]

    def stale_by_threshold(self, month: str, province: str | None, threshold: float) -> set[tuple[str, str]]:
        """(commune, province) whose cached figures were made with another download threshold."""
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
        ok = c.status == "ok"

        def spread(column):  # noqa: ANN001, ANN202
            return sa.func.percentile_cont(sa.literal([0.1, 0.5, 0.9], sa.ARRAY(sa.Float))).within_group(
                column).filter(ok)

        def figures(scope):  # noqa: ANN001, ANN202
            downloads = sa.func.count(c.download_mbps).filter(ok)
            return [scope.label("scope"), c.operator, sa.func.count().filter(ok).label("samples"),
                    sa.func.count().filter(c.status != "ok").label("failed"), spread(c.download_mbps).label("down"),
                    spread(c.upload_mbps).label("up"), spread(c.latency_ms).label("lat"),
                    (sa.cast(sa.func.count().filter(ok & (c.download_mbps >= threshold)), sa.Float)
                     / sa.func.nullif(downloads, 0)).label("share")]

        out: list[Any] = []
        with self.engine.connect() as conn:
            for i in range(0, len(commune_codes), 1000):
                chunk = commune_codes[i:i + 1000]
                out += conn.execute(sa.select(*figures(c.commune_code)).where(
                    (c.month == month) & c.commune_code.in_(chunk)).group_by(c.commune_code, c.operator)).all()
            if provinces:
                scope = sa.literal("p") + c.province_code
                out += conn.execute(sa.select(*figures(scope)).where(
                    (c.month == month) & c.province_code.in_(provinces)).group_by(c.province_code, c.operator)).all()
        return out

    def save_stats(self, month: str, scopes: dict[str, tuple[str, list[dict[str, Any]]]], threshold: float,
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
                    (stale_months.c.month == month) & (stale_months.c.commune_code == sa.bindparam("commune"))
                    & (stale_months.c.version == sa.bindparam("seen"))),
                    [{"commune": commune, "seen": version} for commune, version in done])

    def stats(self, month: str, province: str | None) -> list[Any]:
        """Cached figures of the month: (scope, operator, province_code, samples, failed, ...) rows."""
        c = month_stats.c
        query = sa.select(c.scope, c.operator, c.province_code, *(c[name] for name in STAT_COLUMNS)
                          ).where(c.month == month)
        if province is not None:
            query = query.where(c.province_code == province)
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def last_sample_by_device(self) -> dict[str, dt.datetime]:
        """When each device's latest measurement started."""
        c = measurements.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(c.device_id, sa.func.max(c.started_at)).group_by(c.device_id))
            return {r[0]: _aware(r[1]) for r in rows}

    def measurement_ids(self, device_id: str) -> list[str]:
        with self.engine.connect() as conn:
            query = sa.select(measurements.c.id).where(measurements.c.device_id == device_id)
            return [r[0] for r in conn.execute(query)]

    def ping(self) -> None:
        """Raise if the database does not answer."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def count_measurements(self, **where: Any) -> int:
        query = sa.select(sa.func.count()).select_from(measurements)
        for column, value in where.items():
            query = query.where(measurements.c[column] == value)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def month_rows(self, month: str, commune_codes: Iterable[str] | None = None,
                   province: str | Iterable[str] | None = None) -> list[Any]:
        """Return (commune_code, province_code, operator, status, download, upload, latency, started_at) rows."""
        c = measurements.c
        query = sa.select(c.commune_code, c.province_code, c.operator, c.status, c.download_mbps, c.upload_mbps,
                          c.latency_ms, c.started_at).where(c.month == month)
        if isinstance(province, str):
            query = query.where(c.province_code == province)
        elif province is not None:
            query = query.where(c.province_code.in_(list(province)))
        if commune_codes is not None:
            query = query.where(c.commune_code.in_(list(commune_codes)))
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def raw_rows(self, month: str, commune_code: str | None, province: str | None) -> list[Any]:
        c = measurements.c
        query = sa.select(c.id, c.device_id, c.seq, c.commune_code, c.started_at, c.received_at, c.engine,
                          c.status, c.operator, c.link_name, c.access, c.download_mbps, c.upload_mbps,
                          c.latency_ms, c.jitter_ms, c.bytes_down, c.bytes_up, c.clock_suspect
                          ).where(c.month == month).order_by(c.started_at)
        if commune_code:
            query = query.where(c.commune_code == commune_code)
        if province:
            query = query.where(c.province_code == province)
        with self.engine.connect() as conn:
            return list(conn.execute(query))
