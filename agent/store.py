"""The probe's SQLite file: the only module on the probe that touches SQLite.

Each measurement row is also its own outbox entry (upload_state pending/uploaded/rejected; the
store is the uploader's `Outbox`) and carries a per-device sequence number that survives restarts.
The store is also the one owner of the probe's other state, as typed records: each link's current
planner slot, how delivery last went, the settings the collector sent, and events. The file runs in WAL mode with
synchronous=FULL so a power cut loses nothing that `add` returned for. A corrupt file found at
open is moved aside (never deleted) and a fresh store started; the event is kept for the heartbeat.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from xaprobe.errors import UserError
from xaprobe.fields import WireError
from xaprobe.health import CentreSettings, ProbeEvent
from xaprobe.i18n import _
from xaprobe.months import format_utc, month_bounds, parse_utc, utc_now
from xaprobe.uploader.outbox import REJECTED, UPLOADED, UploadRecord
from xaprobe.wire import Measurement, from_wire, to_wire

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
PENDING = "pending"
# the rows of `meta` that hold probe state; no other module spells these
_SLOT_END = "state.slot_end."  # + link name: end of the link's current planner slot
_LAST_UPLOAD_AT, _LAST_UPLOAD_ERROR = "state.last_upload_at", "state.last_upload_error"
_TOKEN_REFUSED = "state.token_refused"  # fingerprint of the token the collector refused
_CENTRE_SETTINGS = "state.centre_settings"  # JSON of the last CentreSettings the collector sent


class StoreError(UserError):
    """The store cannot do what was asked; the message says why and what to do."""


class StoreFull(StoreError):
    """The disk under the store is full; nothing was written."""


class StoreBroken(StoreError):
    """The store's file is corrupt, was deleted, or its disk fails: a running daemon exits so systemd restarts it."""


class StoreCorrupt(StoreBroken):
    """SQLite says the file is not a (healthy) database; at open it is moved aside, never deleted."""


# SQLite's primary result codes (https://sqlite.org/rescode.html); an error is classified by its code, never by text
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR, SQLITE_CORRUPT = 5, 6, 8, 10, 11
SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 13, 14, 26
SQLITE_HEADER = b"SQLite format 3\x00"
MIN_FREE_BYTES = 4 << 20  # below this a test's row (and its WAL frames) may not fit: no test is started


class _FailedCheck(sqlite3.DatabaseError):
    """quick_check found damage (SQLite itself raised nothing)."""


def classify(error: sqlite3.Error, path: Path, doing: str) -> StoreError:
    """The StoreError that says what this SQLite error means for the store at path."""
    code = (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF
    if code == SQLITE_FULL:
        return StoreFull(_("the disk under {path} is full: {doing}").format(path=path, doing=doing))
    if code in (SQLITE_BUSY, SQLITE_LOCKED):
        return StoreError(_("the store {path} is locked by another process (is another xaprobe running?): {doing}")
                          .format(path=path, doing=doing))
    if code == SQLITE_IOERR:
        return StoreBroken(_("disk I/O error on {path} (the SD card or disk may be failing): {doing}").format(
            path=path, doing=doing))
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB) or isinstance(error, _FailedCheck):
        return StoreCorrupt(_("the store {path} is corrupt ({error}): {doing}").format(path=path, error=error,
                                                                                       doing=doing))
    if code in (SQLITE_CANTOPEN, SQLITE_READONLY):
        return StoreError(_("cannot write the store {path} ({error}): check the folder's owner and permissions")
                          .format(path=path, error=error))
    return StoreBroken(_("the store {path} failed ({error}): {doing}").format(path=path, error=error, doing=doing))


@dataclasses.dataclass(frozen=True)
class Backlog:
    pending: int
    uploaded: int
    rejected: int
    oldest_pending: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class LinkHistory:
    """What the planner needs to know about one link in one month."""

    samples: int
    failed: int
    bytes_used: int
    last_started: dt.datetime | None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS measurements (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    started_at TEXT NOT NULL,
    link TEXT NOT NULL,
    engine TEXT NOT NULL,
    status TEXT NOT NULL,
    bytes_total INTEGER NOT NULL,
    body TEXT NOT NULL,
    upload_state TEXT NOT NULL DEFAULT 'pending',
    reject_reason TEXT,
    uploaded_at TEXT,
    created_at TEXT NOT NULL,
    upload_attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS measurements_state ON measurements (upload_state, seq);
CREATE INDEX IF NOT EXISTS measurements_link_time ON measurements (link, started_at);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    reported INTEGER NOT NULL DEFAULT 0
);
"""


# version -> statements taking a store from version-1 to version; a fresh store is made by _SCHEMA
MIGRATIONS = {
    2: ["ALTER TABLE measurements ADD COLUMN upload_attempts INTEGER NOT NULL DEFAULT 0"],
}


class Store:
    """A probe store on one SQLite file; open it with `Store.open(path)`."""

    def __init__(self, db: sqlite_utils.Database, path: Path):
        self.db = db
        self.path = path
        self._inode = _inode(path)

    # --- opening ----------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str, busy_timeout_s: float = 30.0) -> "Store":
        """Open (creating or migrating) the store at path; move a corrupt file aside and start anew.

        Only corruption moves a file aside: a locked store, a full disk or a failing disk is an error
        that says so, and the file (with its outbox) stays where it is.
        """
        path = Path(path)
        if str(path) != ":memory:":
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(_("cannot create the folder for the store {path}: {error}").format(
                    path=path, error=e.strerror)) from None
        try:
            return cls._open_checked(path, busy_timeout_s)
        except sqlite3.Error as e:
            problem = classify(e, path, _("cannot open it"))
            if str(path) == ":memory:" or not isinstance(problem, StoreCorrupt):
                raise problem from None
            aside = _move_aside(path)
            store = cls._open_checked(path, busy_timeout_s)
            store.record_event("store_corrupt", f"{path} could not be read ({e}); moved to {aside}")
            log.error("%s", _("store {path} was corrupt ({error}); moved to {aside} and started a fresh one")
                      .format(path=path, error=e, aside=aside))
            return store

    @classmethod
    def _open_checked(cls, path: Path, busy_timeout_s: float = 30.0) -> "Store":
        conn = sqlite3.connect(str(path), timeout=busy_timeout_s, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise _FailedCheck(f"integrity check: {check}")
            db = sqlite_utils.Database(conn)
            store = cls(db, path)
            store._migrate()
        except BaseException:
            conn.close()
            raise
        return store

    def _migrate(self) -> None:
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise StoreError(_("the store {path} was written by a newer xaprobe (schema {version}); upgrade xaprobe")
                             .format(path=self.path, version=version))
        if version == SCHEMA_VERSION:
            return
        with self.db.atomic():  # one transaction: a power cut leaves the old schema or the new one
            if version == 0:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
            else:
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS[step]:
                        self.db.execute(statement)
                    log.info("store %s migrated to schema %d", self.path, step)
            self._set_meta("schema_version", str(SCHEMA_VERSION))

    def schema_version(self) -> int:
        if "meta" not in self.db.table_names():
            return 0
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.db.close()

    # --- writing ----------------------------------------------------------------------------

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def add(self, m: Measurement) -> Measurement:
        """Store a measurement with the next sequence number; return it as stored (durable on return)."""
        try:
            with self.db.atomic():
                seq = int(self._meta("next_seq") or 1)
                stored = dataclasses.replace(m, seq=seq)
                self.db.execute(
                    "INSERT INTO measurements (id, seq, started_at, link, engine, status, bytes_total, body,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (stored.id, seq, format_utc(stored.started_at), stored.link.name, stored.engine,
                     stored.status, stored.bytes_down + stored.bytes_up,
                     json.dumps(to_wire(stored), ensure_ascii=False), format_utc(utc_now())))
                self._set_meta("next_seq", str(seq + 1))
        except sqlite3.Error as e:
            raise classify(e, self.path, _("measurement {id} not stored").format(id=m.id)) from None
        return stored

    @contextlib.contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Within the block, any SQLite error becomes the StoreError that says what it means (by its code)."""
        try:
            yield
        except sqlite3.Error as e:
            raise classify(e, self.path, doing) from e

    def has_room(self) -> bool:
        """True when the disk under the store has room for another test's row (checked before a test runs)."""
        try:
            return shutil.disk_usage(self.path.parent).free >= MIN_FREE_BYTES
        except OSError:
            return True  # cannot tell: let the write itself say

    def check_file(self) -> None:
        """Raise StoreBroken when the store's file was deleted, replaced or overwritten under the running process.

        SQLite keeps pages cached and in WAL mode does not reread the file's header, so a store that was
        deleted (rows would go to an unlinked inode) or overwritten would otherwise go unnoticed for long.
        """
        if self._inode is None:
            return
        if _inode(self.path) != self._inode:
            raise StoreBroken(_("the store file {path} was deleted or replaced while xaprobe ran; restarting opens "
                                "it afresh").format(path=self.path))
        try:
            with open(self.path, "rb") as f:
                header = f.read(len(SQLITE_HEADER))
        except OSError as e:
            raise StoreBroken(_("the store file {path} cannot be read ({error})").format(path=self.path,
                                                                                        error=e.strerror)) from None
        if header != SQLITE_HEADER:
            raise StoreCorrupt(_("the store {path} is corrupt: its header is no longer SQLite's").format(
                path=self.path))

    def count_attempt(self, ids: list[str]) -> None:
        """Note that these rows were sent once more (the collector's answer may not have come back)."""
        with self.db.atomic():
            for mid in ids:
                self.db.execute("UPDATE measurements SET upload_attempts = upload_attempts + 1 WHERE id = ?", (mid,))

    def mark(self, results: dict[str, tuple[str, str | None]], now: dt.datetime | None = None) -> None:
        """Record the collector's answer per id: (UPLOADED, None) or (REJECTED, reason)."""
        stamp = format_utc(now or utc_now())
        with self.db.atomic():
            for mid, (state, reason) in results.items():
                self.db.execute(
                    "UPDATE measurements SET upload_state = ?, reject_reason = ?, uploaded_at = ? "
                    "WHERE id = ? AND upload_state = 'pending'", (state, reason, stamp, mid))

    def record_event(self, kind: str, detail: str) -> None:
        """Keep an event (corrupt store, disk full, token refused) for status and the next heartbeat."""
        self.db.execute("INSERT INTO events (at, kind, detail) VALUES (?, ?, ?)",
                        (format_utc(utc_now()), kind, detail))

    def prune_uploaded(self, older_than: dt.datetime) -> int:
        """Delete uploaded rows started before older_than; pending and rejected rows are kept."""
        cur = self.db.execute("DELETE FROM measurements WHERE upload_state = 'uploaded' AND started_at < ?",
                              (format_utc(older_than),))
        return cur.rowcount

    # --- reading ----------------------------------------------------------------------------

    def pending(self, limit: int) -> list[tuple[str, str]]:
        """Return up to limit pending rows, oldest first, as (id, wire JSON text)."""
        rows = self.db.execute("SELECT id, body FROM measurements WHERE upload_state = 'pending' "
                               "ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [(r[0], r[1]) for r in rows]

    def get(self, mid: str) -> Measurement | None:
        row = self.db.execute("SELECT body FROM measurements WHERE id = ?", (mid,)).fetchone()
        return from_wire(json.loads(row[0])) if row else None

    def upload_state(self, mid: str) -> tuple[str, str | None] | None:
        row = self.db.execute("SELECT upload_state, reject_reason FROM measurements WHERE id = ?",
                              (mid,)).fetchone()
        return (row[0], row[1]) if row else None

    def measurements(self) -> Iterator[Measurement]:
        """Yield every stored measurement in sequence order."""
        for row in self.db.execute("SELECT body FROM measurements ORDER BY seq"):
            yield from_wire(json.loads(row[0]))

    def backlog(self) -> Backlog:
        counts = dict(self.db.execute("SELECT upload_state, count(*) FROM measurements "
                                      "GROUP BY upload_state").fetchall())
        oldest = self.db.execute("SELECT min(started_at) FROM measurements "
                                 "WHERE upload_state = 'pending'").fetchone()[0]
        return Backlog(counts.get(PENDING, 0), counts.get(UPLOADED, 0), counts.get(REJECTED, 0),
                       parse_utc(oldest) if oldest else None)

    def link_history(self, link: str, month: str, tz: str) -> LinkHistory:
        """Summarise one link's tests in a local month (samples are successful tests)."""
        start, end = month_bounds(month, tz)
        row = self.db.execute(
            "SELECT sum(status = 'ok'), sum(status != 'ok'), coalesce(sum(bytes_total), 0), max(started_at) "
            "FROM measurements WHERE link = ? AND started_at >= ? AND started_at < ?",
            (link, format_utc(start), format_utc(end))).fetchone()
        return LinkHistory(int(row[0] or 0), int(row[1] or 0), int(row[2]),
                           parse_utc(row[3]) if row[3] else None)

    def bytes_between(self, link: str, start: dt.datetime, end: dt.datetime) -> int:
        """Bytes the link's tests moved (both directions) that started in [start, end)."""
        row = self.db.execute("SELECT coalesce(sum(bytes_total), 0) FROM measurements WHERE link = ? "
                              "AND started_at >= ? AND started_at < ?",
                              (link, format_utc(start), format_utc(end))).fetchone()
        return int(row[0])

    def last_measurement(self, link: str) -> Measurement | None:
        row = self.db.execute("SELECT body FROM measurements WHERE link = ? ORDER BY started_at DESC LIMIT 1",
                              (link,)).fetchone()
        return from_wire(json.loads(row[0])) if row else None

    def events(self, unreported_only: bool = False, last: int | None = None) -> list[ProbeEvent]:
        """Events oldest first (only the last `last` when given; only those no heartbeat carried yet)."""
        sql = "SELECT id, at, kind, detail FROM events" + (" WHERE reported = 0" if unreported_only else "")
        rows = self.db.execute(sql + " ORDER BY id DESC LIMIT ?", (-1 if last is None else last,)).fetchall()
        return [ProbeEvent(id=r[0], at=parse_utc(r[1]), kind=r[2], detail=r[3]) for r in reversed(rows)]

    def mark_events_reported(self, ids: list[int]) -> None:
        with self.db.atomic():
            for event_id in ids:
                self.db.execute("UPDATE events SET reported = 1 WHERE id = ?", (event_id,))

    # --- probe state ------------------------------------------------------------------------

    def slot_end(self, link: str) -> dt.datetime | None:
        """When the link's current planner slot ends (None: no slot yet)."""
        value = self._meta(_SLOT_END + link)
        return parse_utc(value) if value else None

    def set_slot_end(self, link: str, at: dt.datetime) -> None:
        self._set_meta(_SLOT_END + link, format_utc(at))

    def upload_record(self) -> UploadRecord:
        """How delivery to the collector last went (kept across restarts)."""
        at = self._meta(_LAST_UPLOAD_AT)
        return UploadRecord(last_success_at=parse_utc(at) if at else None,
                            last_error=self._meta(_LAST_UPLOAD_ERROR) or None,
                            refused_token=self._meta(_TOKEN_REFUSED) or "")

    def save_upload_record(self, record: UploadRecord) -> None:
        with self.db.atomic():
            self._set_meta(_LAST_UPLOAD_AT, format_utc(record.last_success_at) if record.last_success_at else "")
            self._set_meta(_LAST_UPLOAD_ERROR, record.last_error or "")
            self._set_meta(_TOKEN_REFUSED, record.refused_token)

    def centre_settings(self) -> CentreSettings:
        """The settings the collector last sent (defaults when it never sent any)."""
        value = self._meta(_CENTRE_SETTINGS)
        if not value:
            return CentreSettings()
        try:
            return CentreSettings.from_wire(json.loads(value))
        except (ValueError, WireError):  # written by this module from a checked record: unreadable only if edited
            log.warning("the stored collector settings could not be read; using the defaults")
            return CentreSettings()

    def save_centre_settings(self, settings: CentreSettings) -> None:
        self._set_meta(_CENTRE_SETTINGS, json.dumps(settings.to_wire()))

    def integrity(self) -> str:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]


def _inode(path: Path) -> tuple[int, int] | None:
    if str(path) == ":memory:":
        return None
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1)
    return (st.st_dev, st.st_ino)


def _move_aside(path: Path) -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while aside.exists():
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    os.replace(path, aside)
    for suffix in ("-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            os.replace(side, Path(str(aside) + suffix))
    return aside
