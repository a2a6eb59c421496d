"""Store an ingested batch: insert the measurements whose id is new and mark the cached months they
change as stale, in one transaction, so a report never misses a batch that was accepted."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from xaprobe.collector.db import upsert
from xaprobe.collector.schema import devices, measurements, stale_months
from xaprobe.collector.scope import province_scope


class SampleStore:
    """The measurements table as ingest writes it."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def insert(self, rows: list[dict[str, Any]], device_id: str, now: dt.datetime) -> set[str]:
        """Insert rows whose id is new; return the ids actually inserted (the rest were duplicates)."""
        seen = devices.update().where(devices.c.id == device_id).values(last_seen_at=now)
        if not rows:
            with self.engine.begin() as conn:
                conn.execute(seen)
            return set()
        statement = upsert(self.engine, measurements).on_conflict_do_nothing(index_elements=["id"]) \
            .returning(measurements.c.id)
        with self.engine.begin() as conn:
            inserted = {r[0] for r in conn.execute(statement, rows)}
            conn.execute(seen)
            touched = {(r["month"], scope, r["province_code"]) for r in rows if r["id"] in inserted
                       for scope in (r["commune_code"], province_scope(r["province_code"]))}
            if touched:
                self._mark_stale(conn, touched)
        return inserted

    def _mark_stale(self, conn: sa.Connection, touched: set[tuple[str, str, str]]) -> None:
        # a version, not a flag: a refresh that read the old rows clears only the version it saw
        statement = upsert(self.engine, stale_months).on_conflict_do_update(
            index_elements=["month", "scope"], set_={"version": stale_months.c.version + 1})
        conn.execute(statement, [{"month": m, "scope": s, "province_code": p, "version": 1}
                                 for m, s, p in sorted(touched)])
