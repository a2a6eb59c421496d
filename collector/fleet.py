"""Fleet health: per device its commune, links, last contact and sample, backlog, clock, budget, status,
read from the typed heartbeat each device last sent."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from xaprobe import communes
from xaprobe.collector.devices import Device
from xaprobe.collector.store import CollectorStore
from xaprobe.health import LinkHealth
from xaprobe.months import DEFAULT_TZ, month_of

SILENT_AFTER = dt.timedelta(hours=2)
STALE_AFTER = dt.timedelta(days=1)


@dataclasses.dataclass(frozen=True)
class DeviceHealth:
    id: str
    name: str
    commune_code: str
    commune_name: str
    links: tuple[LinkHealth, ...]
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
    id_conflicts: int = 0  # items it sent under an id already stored with other content
    rejected_this_month: int = 0  # items the collector refused (they are not stored)
    suspect_this_month: int = 0  # samples stored as suspect: kept, not counted
    rejected_why: tuple[str, ...] = ()  # the last words of each kind of refusal, most frequent first
    site_id: str | None = None  # the site staff set for it

    def to_json(self) -> dict[str, Any]:
        """The JSON form (times as ISO 8601) that /api/v1/fleet and `fleet --json` print."""
        return {k: v.isoformat() if isinstance(v, dt.datetime) else v
                for k, v in dataclasses.asdict(self).items()} | {"links": [dataclasses.asdict(x) for x in self.links]}


def device_status(revoked: bool, last_seen: dt.datetime | None, now: dt.datetime) -> str:
    """ok; silent after 2 hours without contact; stale after a day (or never seen); revoked."""
    if revoked:
        return "revoked"
    if last_seen is None or now - last_seen > STALE_AFTER:
        return "stale"
    if now - last_seen > SILENT_AFTER:
        return "silent"
    return "ok"


def _health(d: Device, unit: communes.Commune | None, last_sample: dt.datetime | None,
            now: dt.datetime, rejected: dict[str, tuple[int, str]], suspect: int) -> DeviceHealth:
    beat = d.heartbeat  # None: no heartbeat yet (or one an older collector kept in another shape)
    return DeviceHealth(
        id=d.id, name=d.name, commune_code=d.commune_code, commune_name=unit.name if unit else "?",
        links=beat.links if beat else (), last_seen_at=d.last_seen_at, last_heartbeat_at=d.last_heartbeat_at,
        last_sample_at=last_sample, backlog=beat.backlog if beat else None,
        oldest_pending_age_s=beat.oldest_pending_age_s if beat else None,
        clock_synced=beat.clock_synced if beat else None, disk_full=beat.disk_full if beat else False,
        version=beat.version if beat else None, last_error=beat.last_error if beat else None,
        status=device_status(d.revoked_at is not None, d.last_seen_at, now), id_conflicts=d.id_conflicts,
        rejected_this_month=sum(n for n, _ in rejected.values()), suspect_this_month=suspect,
        rejected_why=tuple(detail for _, detail in sorted(rejected.values(), key=lambda x: -x[0])),
        site_id=d.site_id)


def fleet(store: CollectorStore, now: dt.datetime, province: str | None = None,
          timezone: str = DEFAULT_TZ) -> list[DeviceHealth]:
    """Every enrolled device (of one province when given), silent and stale ones first."""
    last_samples = store.stats.last_sample_by_device()
    month = month_of(now, timezone)
    rejected, suspect = store.stats.rejection_counts(month), store.stats.suspect_counts(month, by="device_id")
    out = []
    for d in store.devices.all():
        unit = communes.commune(d.commune_code)
        if province is not None and (unit is None or unit.province_code != province):
            continue
        out.append(_health(d, unit, last_samples.get(d.id), now, rejected.get(d.id, {}), suspect.get(d.id, 0)))
    order = {"stale": 0, "silent": 1, "revoked": 3, "ok": 2}
    return sorted(out, key=lambda h: (order[h.status], h.id))
