"""Who may talk to the collector and what staff set for them: enrolled devices with their tokens, the
communes they stood in and since when, heartbeats, centre settings, request-rate windows and targets."""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import hashlib
import json
import secrets
from typing import Any

import sqlalchemy as sa

from xaprobe.collector.db import aware, upsert
from xaprobe.collector.schema import commune_targets, device_communes, devices, rate_windows, sites
from xaprobe.errors import UserError
from xaprobe.health import CentreSettings, Heartbeat

TOKEN_PREFIX = "xap_"


class DeviceError(UserError):
    """Staff asked for something about a device that cannot be: an unknown id, an id taken already."""


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
    last_heartbeat_at: dt.datetime | None  # when the collector received heartbeat
    heartbeat: Heartbeat | None  # the latest, as the probe sent it; None: none yet, or one we cannot read
    settings: CentreSettings  # what staff set for it (`device set`); its next heartbeat answer
    id_conflicts: int = 0  # items it sent under an id already stored with other content
    site_id: str | None = None  # the site it measures from (staff set it); "": staff said none; None: not said


@dataclasses.dataclass(frozen=True)
class CommuneHistory:
    """Where a device stood: (since, commune code) in time order; the first also covers earlier instants."""

    spans: tuple[tuple[dt.datetime, str], ...]

    def at(self, instant: dt.datetime) -> str:
        """The commune the device stood in at instant."""
        i = bisect.bisect_right([since for since, _ in self.spans], instant)
        return self.spans[max(i - 1, 0)][1]


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _heartbeat(text: str | None) -> Heartbeat | None:
    """The stored heartbeat; one an older collector kept in another shape reads as none, never an error."""
    try:
        return Heartbeat.from_wire(_json(text)) if text else None
    except ValueError:
        return None


def _centre(text: str | None, target: int | None) -> CentreSettings:
    """Staff's settings: pause and set_at kept as JSON; the target in its own column (targets read it)."""
    try:
        kept = CentreSettings.from_wire(_json(text))
    except ValueError:  # a row we cannot read steers nothing, rather than failing every heartbeat
        kept = CentreSettings()
    return dataclasses.replace(kept, target=target or None)


def _device(row: Any) -> Device:
    return Device(row.id, row.name, row.commune_code, row.target, aware(row.created_at),
                  aware(row.revoked_at), aware(row.last_seen_at), aware(row.last_heartbeat_at),
                  _heartbeat(row.heartbeat), _centre(row.settings, row.target), row.id_conflicts or 0,
                  row.site_id)


def _unknown(device_id: str) -> DeviceError:
    return DeviceError(f"no device {device_id!r} (see `xaprobe-collector device list`)")


class DeviceStore:
    """Devices and admins in the collector's database."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def add(self, device_id: str, name: str, commune_code: str, target: int | None, now: dt.datetime) -> str:
        """Enrol a device and return its token (kept only as a hash)."""
        token = new_token()
        with self.engine.begin() as conn:
            if conn.execute(sa.select(devices.c.id).where(devices.c.id == device_id)).first():
                raise DeviceError(f"a device with id {device_id!r} exists already (choose another --id)")
            conn.execute(devices.insert().values(
                id=device_id, name=name, commune_code=commune_code, target=target,
                token_hash=hash_token(token), created_at=now, settings="{}"))
            conn.execute(device_communes.insert().values(device_id=device_id, since=now, commune_code=commune_code))
        return token

    def move(self, device_id: str, commune_code: str, since: dt.datetime) -> None:
        """Record that the device measures for commune_code from since on; items started before keep the
        commune it stood in then. Its site, in the commune it left, is forgotten ("" = staff said none)."""
        with self.engine.begin() as conn:
            done = conn.execute(devices.update().where(devices.c.id == device_id)
                                .values(commune_code=commune_code, site_id="")).rowcount
            if not done:
                raise _unknown(device_id)
            later = conn.execute(sa.select(device_communes.c.since).where(device_communes.c.device_id == device_id)
                                 .order_by(device_communes.c.since.desc()).limit(1)).scalar_one_or_none()
            if later is not None and aware(later) >= since:
                raise DeviceError(f"{device_id} was already moved at {aware(later).isoformat()}, "
                                  "later than the time given")
            conn.execute(device_communes.insert().values(device_id=device_id, since=since,
                                                         commune_code=commune_code))

    def history(self, device_id: str) -> CommuneHistory:
        """The communes the device stood in, in time order (the enrolled one when none was recorded)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(device_communes.c.since, device_communes.c.commune_code)
                                .where(device_communes.c.device_id == device_id)
                                .order_by(device_communes.c.since)).all()
            if not rows:  # a device enrolled by hand in the table: its one commune covers all time
                rows = conn.execute(sa.select(devices.c.created_at, devices.c.commune_code)
                                    .where(devices.c.id == device_id)).all()
        if not rows:
            raise _unknown(device_id)
        return CommuneHistory(tuple((aware(since), code) for since, code in rows))

    def all(self) -> list[Device]:
        with self.engine.connect() as conn:
            return [_device(r) for r in conn.execute(sa.select(devices).order_by(devices.c.id))]

    def get(self, device_id: str) -> Device | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(devices).where(devices.c.id == device_id)).first()
        return _device(row) if row else None

    def for_token(self, token: str, now: dt.datetime) -> Device | None:
        """Return the device this token belongs to (its current or still-valid old token), else None."""
        digest = hash_token(token)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(devices).where(
                (devices.c.token_hash == digest)
                | ((devices.c.old_token_hash == digest) & (devices.c.old_token_until > now)))).first()
        return _device(row) if row else None

    def revoke(self, device_id: str, now: dt.datetime) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(devices.update().where(devices.c.id == device_id)
                                .values(revoked_at=now, old_token_hash=None)).rowcount
        if not done:
            raise _unknown(device_id)

    def rotate(self, device_id: str, now: dt.datetime, grace: dt.timedelta) -> str:
        """Give the device a new token; its old one keeps working until now + grace."""
        token = new_token()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(devices.c.token_hash).where(devices.c.id == device_id)).first()
            if row is None:
                raise _unknown(device_id)
            conn.execute(devices.update().where(devices.c.id == device_id).values(
                token_hash=hash_token(token), old_token_hash=row.token_hash, old_token_until=now + grace))
        return token

    def steer(self, device_id: str, pause: bool | None, target: int | None, now: dt.datetime) -> CentreSettings:
        """Set what the device's next heartbeat answer carries (pause and target, when given, and now as
        when staff set them); return the device's settings."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(devices.c.settings, devices.c.target)
                               .where(devices.c.id == device_id)).first()
            if row is None:
                raise _unknown(device_id)
            old = _centre(row.settings, row.target)
            new = CentreSettings(pause=old.pause if pause is None else pause,
                                 target=old.target if target is None else target, set_at=now)
            kept = {k: v for k, v in new.to_wire().items() if k not in ("target", "site_id", "site_name")}
            conn.execute(devices.update().where(devices.c.id == device_id).values(
                settings=json.dumps(kept), target=new.target))
        return new

    def record_heartbeat(self, device_id: str, heartbeat: Heartbeat, now: dt.datetime) -> CentreSettings:
        """Keep the device's latest heartbeat (received now); return the settings staff set for it."""
        with self.engine.begin() as conn:
            conn.execute(devices.update().where(devices.c.id == device_id).values(
                # ASCII JSON: a lone surrogate (valid JSON, checked text) cannot be encoded as UTF-8
                heartbeat=json.dumps(heartbeat.to_wire()), last_heartbeat_at=now,
                last_seen_at=now))
            row = conn.execute(sa.select(devices.c.settings, devices.c.target, devices.c.site_id, sites.c.name)
                               .select_from(devices.outerjoin(sites, sites.c.id == devices.c.site_id))
                               .where(devices.c.id == device_id)).first()
        if row is None:
            return CentreSettings()
        return dataclasses.replace(_centre(row.settings, row.target), site_id=row.site_id, site_name=row.name)

    def count_request(self, device_id: str, window_start: int) -> int:
        """Count one request of the device in its rate window; return the window's count so far."""
        statement = upsert(self.engine, rate_windows).values(
            device_id=device_id, window_start=window_start, count=1).on_conflict_do_update(
            index_elements=["device_id", "window_start"], set_={"count": rate_windows.c.count + 1}
        ).returning(rate_windows.c.count)
        with self.engine.begin() as conn:
            count: int = conn.execute(statement).scalar_one()
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

    def seen_since(self, since: dt.datetime) -> int:
        """How many devices sent anything at or after since."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(devices)
                                .where(devices.c.last_seen_at >= since)).scalar_one()
