"""What a probe says about itself: its status (`xaprobe status`), the heartbeat the collector keeps,
and the settings the collector sends back. Records with `to_wire` / `from_wire` like Measurement:
`from_wire` checks every field and raises WireError naming it; unknown heartbeat fields are kept.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from xaprobe.fields import WireError, decode, encode
from xaprobe.sites import is_site_id

MAX_TARGET = 10_000  # samples a month on one link: one test every 4.5 minutes, far above any province's ask
MAX_LINKS = 16
MAX_EVENTS = 50


def _limit(limit: float, **more: Any) -> dict[str, Any]:
    return {"limit": limit, **more}


@dataclasses.dataclass(frozen=True)
class CentreSettings:
    """What staff set for this probe at the collector (`device set`); the probe keeps the last it received."""

    pause: bool = False
    target: int | None = dataclasses.field(default=None, metadata=_limit(MAX_TARGET, low=1))
    set_at: dt.datetime | None = None  # when staff last changed them at the collector (None: never)
    # the site staff say the probe measures from (`device set --site`); "" when they said none (`--no-site`),
    # None when they said nothing (agent.toml's, if any)
    site_id: str | None = dataclasses.field(default=None, metadata=_limit(64))
    site_name: str | None = dataclasses.field(default=None, metadata=_limit(200))

    def to_wire(self) -> dict[str, Any]:
        return encode(self)

    @classmethod
    def from_wire(cls, obj: Any) -> "CentreSettings":
        """Check the settings a collector sent back; raise WireError naming a bad field."""
        settings: CentreSettings = decode(cls, {} if obj is None else obj, "settings.")
        if settings.site_id and not is_site_id(settings.site_id):
            raise WireError("settings.site_id", f"{settings.site_id!r} is not a site id")
        return settings


@dataclasses.dataclass(frozen=True)
class LastResult:
    started_at: dt.datetime
    status: str = dataclasses.field(metadata=_limit(16))
    download_mbps: float | None = None
    upload_mbps: float | None = None
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class ProbeEvent:
    """Something the probe noticed and keeps for status and the next heartbeat (corrupt store, disk full)."""

    id: int
    at: dt.datetime
    kind: str = dataclasses.field(metadata=_limit(64))
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class LinkStatus:
    """One link this month: samples against its target, the next test, data used."""

    name: str = dataclasses.field(metadata=_limit(64))
    interface: str = dataclasses.field(default="", metadata=_limit(64))
    operator: str = dataclasses.field(default="", metadata=_limit(64))
    samples: int = 0
    failed: int = 0
    target: int = dataclasses.field(default=300, metadata=_limit(MAX_TARGET, low=1))
    target_from_collector: bool = False
    on_track: bool = True
    next_test_at: dt.datetime | None = None
    budget_mb: float | None = None
    bytes_used: int = 0
    budget_spent: bool = False
    cap_bytes: int = 0
    daily_quota_mb: float | None = None
    quota_left_bytes: int | None = None
    last_result: LastResult | None = None


@dataclasses.dataclass(frozen=True)
class ProbeStatus:
    """The probe's whole state as `xaprobe status` shows it; the heartbeat is built from it."""

    device_id: str = dataclasses.field(metadata=_limit(64))
    commune_code: str = dataclasses.field(metadata=_limit(10))
    month: str = dataclasses.field(metadata=_limit(7))
    timezone: str = dataclasses.field(default="Asia/Ho_Chi_Minh", metadata=_limit(64))
    links: tuple[LinkStatus, ...] = dataclasses.field(default=(), metadata={"items": MAX_LINKS})
    pending: int = 0
    uploaded: int = 0
    rejected: int = 0
    oldest_pending_age_s: int | None = None
    last_upload_at: dt.datetime | None = None
    last_upload_error: str | None = None
    token_refused: bool = False
    clock_synced: bool | None = None
    centre: CentreSettings = CentreSettings()
    site_id: str = dataclasses.field(default="", metadata=_limit(64))  # where its tests are stamped as made
    events: tuple[ProbeEvent, ...] = dataclasses.field(default=(), metadata={"items": MAX_EVENTS})

    def to_wire(self) -> dict[str, Any]:
        return encode(self)

    @classmethod
    def from_wire(cls, obj: Any) -> "ProbeStatus":
        return decode(cls, obj)


@dataclasses.dataclass(frozen=True)
class LinkHealth:
    """One link as the heartbeat reports it."""

    name: str = dataclasses.field(metadata=_limit(64))
    samples: int = 0
    failed: int = 0
    target: int = dataclasses.field(default=300, metadata=_limit(MAX_TARGET, low=1))
    bytes_used: int = 0
    budget_mb: float | None = None
    budget_spent: bool = False


@dataclasses.dataclass(frozen=True)
class Heartbeat:
    """The probe's health as the collector receives and keeps it (POST /api/v1/heartbeat)."""

    device_id: str = dataclasses.field(metadata=_limit(64))
    version: str = dataclasses.field(metadata=_limit(32))
    sent_at: dt.datetime
    backlog: int = 0
    rejected: int = 0
    oldest_pending_age_s: int | None = None
    disk_free_bytes: int | None = None
    disk_full: bool = False
    clock_synced: bool | None = None
    paused: bool = False
    last_error: str | None = None
    links: tuple[LinkHealth, ...] = dataclasses.field(default=(), metadata={"items": MAX_LINKS})
    events: tuple[ProbeEvent, ...] = dataclasses.field(default=(), metadata={"items": MAX_EVENTS})
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)

    def to_wire(self) -> dict[str, Any]:
        return encode(self)

    @classmethod
    def from_wire(cls, obj: Any) -> "Heartbeat":
        """Check a heartbeat body field by field; raise WireError naming the first bad one."""
        return decode(cls, obj)

    @classmethod
    def from_status(cls, status: ProbeStatus, version: str, now: dt.datetime, disk_free_bytes: int | None,
                    disk_full: bool, last_error: str | None) -> "Heartbeat":
        """The heartbeat of a probe in this status, plus what only the running daemon knows."""
        return cls(
            device_id=status.device_id, version=version, sent_at=now, backlog=status.pending,
            rejected=status.rejected, oldest_pending_age_s=status.oldest_pending_age_s,
            disk_free_bytes=disk_free_bytes, disk_full=disk_full, clock_synced=status.clock_synced,
            paused=status.centre.pause, last_error=last_error,
            links=tuple(LinkHealth(name=link.name, samples=link.samples, failed=link.failed, target=link.target,
                                   bytes_used=link.bytes_used, budget_mb=link.budget_mb,
                                   budget_spent=link.budget_spent) for link in status.links),
            events=tuple(e for e in status.events)[-MAX_EVENTS:],
        )


__all__ = ["CentreSettings", "Heartbeat", "LastResult", "LinkHealth", "LinkStatus", "ProbeEvent", "ProbeStatus",
           "WireError"]
