"""Fleet health: per device its commune, links, last contact and sample, backlog, clock, budget, status."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from xaprobe import communes
from xaprobe.collector.store import CollectorStore

SILENT_AFTER = dt.timedelta(hours=2)
STALE_AFTER = dt.timedelta(days=1)


@dataclasses.dataclass(frozen=True)
class DeviceHealth:
    id: str
    name: str
    commune_code: str
    commune_name: str
    links: list[dict[str, Any]]
    last_seen_at: dt.datetime | None
    last_heartbeat_at: dt.datetime | None
    last_sample_at: dt.datetime | None
    backlog: int | None
    oldest_pending_age_s: int | None
    clock_synced: bool | None
    disk_full: bool
    version: str | None
    last_error: str | None
    status: str  # ok, silent, stale, revoked


def device_status(revoked: bool, last_seen: dt.datetime | None, now: dt.datetime) -> str:
    """ok; silent after 2 hours without contact; stale after a day (or never seen); revoked."""
    if revoked:
        return "revoked"
    if last_seen is None or now - last_seen > STALE_AFTER:
        return "stale"
    if now - last_seen > SILENT_AFTER:
        return "silent"
    return "ok"


def fleet(store: CollectorStore, now: dt.datetime, province: str | None = None) -> list[DeviceHealth]:
    """Every enrolled device (of one province when given), silent and stale ones first."""
    last_samples = store.stats.last_sample_by_device()
    out = []
    for d in store.devices.all():
        unit = communes.commune(d.commune_code)
        if province is not None and (unit is None or unit.province_code != province):
            continue
        beat = d.heartbeat or {}
        out.append(DeviceHealth(
            id=d.id, name=d.name, commune_code=d.commune_code, commune_name=unit.name if unit else "?",
            links=[{k: link.get(k) for k in ("name", "samples", "target", "bytes_used", "budget_mb", "budget_spent")}
                   for link in beat.get("links", []) if isinstance(link, dict)],
            last_seen_at=d.last_seen_at, last_heartbeat_at=d.last_heartbeat_at,
            last_sample_at=last_samples.get(d.id), backlog=beat.get("backlog"),
            oldest_pending_age_s=beat.get("oldest_pending_age_s"), clock_synced=beat.get("clock_synced"),
            disk_full=bool(beat.get("disk_full")), version=beat.get("version"), last_error=beat.get("last_error"),
            status=device_status(d.revoked_at is not None, d.last_seen_at, now)))
    order = {"stale": 0, "silent": 1, "revoked": 3, "ok": 2}
    return sorted(out, key=lambda h: (order[h.status], h.id))
