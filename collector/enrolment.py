"""One-time enrolment codes: staff issue one with `device add` (or `device code`), the probe redeems it once
within 7 days for its identity and a fresh token; a new code or `--revoke` ends the ones before it."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from xaprobe import enrolment
from xaprobe.collector.db import aware
from xaprobe.collector.devices import hash_token
from xaprobe.collector.schema import enrolment_codes

VALID_FOR = dt.timedelta(days=7)


class EnrolmentStore:
    """The codes in the collector's database, kept hashed like tokens."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def issue(self, device_id: str, now: dt.datetime) -> tuple[str, dt.datetime]:
        """A new code for the device (its earlier open codes revoked); return it and when it expires."""
        code = enrolment.new_code()
        c = enrolment_codes.c
        with self.engine.begin() as conn:
            conn.execute(enrolment_codes.update().where((c.device_id == device_id) & c.used_at.is_(None)
                                                        & c.revoked_at.is_(None)).values(revoked_at=now))
            conn.execute(enrolment_codes.insert().values(code_hash=hash_token(code), device_id=device_id,
                                                         created_at=now, expires_at=now + VALID_FOR))
        return code, now + VALID_FOR

    def revoke(self, device_id: str, now: dt.datetime) -> int:
        """End the device's open codes; return how many there were."""
        c = enrolment_codes.c
        with self.engine.begin() as conn:
            return conn.execute(enrolment_codes.update().where(
                (c.device_id == device_id) & c.used_at.is_(None) & c.revoked_at.is_(None)).values(revoked_at=now)
            ).rowcount

    def redeem(self, code: str, now: dt.datetime) -> str | None:
        """Use the code once: the device it was issued for, or None (unknown, used, revoked or expired)."""
        try:
            digest = hash_token(enrolment.normalise(code))
        except ValueError:
            return None
        c = enrolment_codes.c
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(c.device_id, c.expires_at).where(
                (c.code_hash == digest) & c.used_at.is_(None) & c.revoked_at.is_(None))).first()
            expires = aware(row.expires_at) if row else None
            if row is None or expires is None or expires <= now:
                return None
            used = conn.execute(enrolment_codes.update().where((c.code_hash == digest) & c.used_at.is_(None))
                                .values(used_at=now)).rowcount  # a second redeemer racing this one gets 0
        return str(row.device_id) if used == 1 else None
