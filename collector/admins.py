"""Staff who may read reports: admins with their tokens (kept hashed), and the dashboard's server-side
sessions, each a random id stored hashed that ends after 12 hours idle, 7 days in all, at sign-out, or
when its admin is revoked."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets

import sqlalchemy as sa

from xaprobe.collector.db import aware
from xaprobe.collector.devices import DeviceError, hash_token, new_token
from xaprobe.collector.schema import admin_sessions, admins

SESSION_IDLE = dt.timedelta(hours=12)
SESSION_MAX = dt.timedelta(days=7)


class AdminError(DeviceError):
    """Staff asked for something about an admin that cannot be: an unknown name, a name taken already."""


@dataclasses.dataclass(frozen=True)
class Admin:
    name: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    sessions: int  # sessions open now


class AdminStore:
    """Admins and their dashboard sessions in the collector's database."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def add(self, name: str, now: dt.datetime) -> str:
        """Create an admin and return their token (kept only as a hash); names are unique among active admins."""
        token = new_token()
        with self.engine.begin() as conn:
            if conn.execute(sa.select(admins.c.id).where((admins.c.name == name)
                                                         & admins.c.revoked_at.is_(None))).first():
                raise AdminError(f"an admin named {name!r} exists already (choose another --name)")
            conn.execute(admins.insert().values(name=name, token_hash=hash_token(token), created_at=now))
        return token

    def count_active(self) -> int:
        """How many admins can sign in (not revoked)."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(admins)
                                .where(admins.c.revoked_at.is_(None))).scalar_one()

    def for_token(self, token: str) -> str | None:
        """The name of the active admin whose token this is, else None."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(admins.c.name).where(
                (admins.c.token_hash == hash_token(token)) & admins.c.revoked_at.is_(None))).scalar_one_or_none()

    def all(self, now: dt.datetime) -> list[Admin]:
        live = _live(now)
        with self.engine.connect() as conn:
            counts: dict[int, int] = dict(conn.execute(sa.select(admin_sessions.c.admin_id, sa.func.count())
                                       .where(live).group_by(admin_sessions.c.admin_id)).tuples().all())
            rows = conn.execute(sa.select(admins).order_by(admins.c.name, admins.c.id)).all()
        return [Admin(r.name, aware(r.created_at), aware(r.revoked_at), counts.get(r.id, 0)) for r in rows]

    def revoke(self, name: str, now: dt.datetime) -> int:
        """Refuse the admin's token and end their sessions; return how many sessions ended."""
        with self.engine.begin() as conn:
            ids = conn.execute(sa.select(admins.c.id).where((admins.c.name == name)
                                                            & admins.c.revoked_at.is_(None))).scalars().all()
            if not ids:
                raise AdminError(f"no active admin named {name!r} (see `xaprobe-collector admin list`)")
            conn.execute(admins.update().where(admins.c.id.in_(ids)).values(revoked_at=now))
            return conn.execute(admin_sessions.delete().where(admin_sessions.c.admin_id.in_(ids))).rowcount

    def open_session(self, token: str, now: dt.datetime) -> str | None:
        """Sign in with an admin token: return a new session id for the cookie, or None for a bad token."""
        session = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            admin_id = conn.execute(sa.select(admins.c.id).where(
                (admins.c.token_hash == hash_token(token)) & admins.c.revoked_at.is_(None))).scalar_one_or_none()
            if admin_id is None:
                return None
            # sign-ins are rare: the moment to forget sessions that ended by themselves
            conn.execute(admin_sessions.delete().where(~_live(now)))
            conn.execute(admin_sessions.insert().values(id_hash=hash_token(session), admin_id=admin_id,
                                                        created_at=now, last_used_at=now))
        return session

    def session_admin(self, session: str, now: dt.datetime) -> str | None:
        """The admin a live session belongs to (its idle clock restarted), else None."""
        digest = hash_token(session)
        with self.engine.begin() as conn:
            name = conn.execute(sa.select(admins.c.name).join(admin_sessions, admin_sessions.c.admin_id == admins.c.id)
                                .where((admin_sessions.c.id_hash == digest) & _live(now)
                                       & admins.c.revoked_at.is_(None))).scalar_one_or_none()
            if name is not None:
                conn.execute(admin_sessions.update().where(admin_sessions.c.id_hash == digest)
                             .values(last_used_at=now))
        return name

    def end_session(self, session: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(admin_sessions.delete().where(admin_sessions.c.id_hash == hash_token(session)))


def _live(now: dt.datetime) -> sa.ColumnElement[bool]:
    return (admin_sessions.c.last_used_at > now - SESSION_IDLE) & (admin_sessions.c.created_at > now - SESSION_MAX)
