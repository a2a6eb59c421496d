"""Store an ingested batch: insert the measurements whose id is new, say of each other id whether it is
the same item again, other content from the same device, or another device's, and mark the cached months
the batch changes as stale, in one transaction, so a report never misses a batch that was accepted."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from xaprobe.collector.db import upsert
from xaprobe.collector.schema import devices, measurements, rejections, stale_months
from xaprobe.collector.scope import province_scope

ACCEPTED, DUPLICATE, CONFLICT, TAKEN = "accepted", "duplicate", "conflict", "taken"


def _same(stored_body: str, new_body: str) -> bool:
    """Same content: equal as JSON (a probe may order keys or space its JSON differently)."""
    try:
        return bool(json.loads(stored_body) == json.loads(new_body))
    except ValueError:
        return False


class SampleStore:
    """The measurements table as ingest writes it."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def insert(self, rows: list[dict[str, Any]], device_id: str, now: dt.datetime,
               conflicts_seen: int = 0) -> dict[str, str]:
        """Insert rows whose id is new; return per id ACCEPTED, DUPLICATE (stored before, same content),
        CONFLICT (stored before by this device, other content) or TAKEN (stored for another device).
        The device's conflict count grows by its conflicts here, taken ids and conflicts_seen."""
        with self.engine.begin() as conn:
            outcome = self._insert(conn, rows, device_id) if rows else {}
            conflicts = conflicts_seen + sum(k in (CONFLICT, TAKEN) for k in outcome.values())
            conn.execute(devices.update().where(devices.c.id == device_id).values(
                last_seen_at=now, id_conflicts=devices.c.id_conflicts + conflicts))
            touched = {(r["month"], scope, r["province_code"]) for r in rows if outcome[r["id"]] == ACCEPTED
                       for scope in (r["commune_code"], province_scope(r["province_code"]))}
            if touched:
                self._mark_stale(conn, touched)
        return outcome

    def count_rejections(self, device_id: str, month: str, reasons: list[str]) -> None:
        """Count the device's refused items of this batch by reason ("field: problem" -> field)."""
        if not reasons:
            return
        by_kind: dict[str, str] = {}
        counts: dict[str, int] = {}
        for reason in reasons:
            kind = (reason.split(":", 1)[0] or "item")[:64]
            counts[kind] = counts.get(kind, 0) + 1
            by_kind[kind] = reason[:300]
        statement = upsert(self.engine, rejections)
        statement = statement.on_conflict_do_update(
            index_elements=["device_id", "month", "reason"],
            set_={"count": rejections.c.count + statement.excluded.count,
                  "last_detail": statement.excluded.last_detail})
        with self.engine.begin() as conn:
            conn.execute(statement, [{"device_id": device_id, "month": month, "reason": kind, "count": n,
                                      "last_detail": by_kind[kind]} for kind, n in sorted(counts.items())])

    def _insert(self, conn: sa.Connection, rows: list[dict[str, Any]], device_id: str) -> dict[str, str]:
        statement = upsert(self.engine, measurements).on_conflict_do_nothing(index_elements=["id"]) \
            .returning(measurements.c.id)
        inserted = {r[0] for r in conn.execute(statement, rows)}
        outcome = dict.fromkeys(inserted, ACCEPTED)
        others = {r["id"]: r["body"] for r in rows if r["id"] not in inserted}
        for i in range(0, len(others), 500):
            chunk = list(others)[i:i + 500]
            for mid, owner, body in conn.execute(sa.select(measurements.c.id, measurements.c.device_id,
                                                           measurements.c.body).where(measurements.c.id.in_(chunk))):
                outcome[mid] = TAKEN if owner != device_id else DUPLICATE if _same(body, others[mid]) else CONFLICT
        return outcome

    def _mark_stale(self, conn: sa.Connection, touched: set[tuple[str, str, str]]) -> None:
        # a version, not a flag: a refresh that read the old rows clears only the version it saw
        statement = upsert(self.engine, stale_months).on_conflict_do_update(
            index_elements=["month", "scope"], set_={"version": stale_months.c.version + 1})
        conn.execute(statement, [{"month": m, "scope": s, "province_code": p, "version": 1}
                                 for m, s, p in sorted(touched)])
