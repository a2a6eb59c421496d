"""Open the collector's database (SQLite or PostgreSQL, schema created or migrated) and the few helpers
that the device, ingest and statistics stores share; nothing outside those stores talks SQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, overload

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from xaprobe.collector import schema


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


@overload
def aware(value: dt.datetime) -> dt.datetime: ...
@overload
def aware(value: dt.datetime | None) -> dt.datetime | None: ...
def aware(value: dt.datetime | None) -> dt.datetime | None:
    """The stored time as an aware UTC datetime (SQLite keeps no offset; everything stored is UTC)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.timezone.utc)


def upsert(engine: sa.Engine, table: sa.Table) -> Any:
    """An INSERT that can take ON CONFLICT clauses, in the engine's dialect (both spell it alike)."""
    return (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(table)


def shown_url(url: str) -> str:
    """The database URL as it may be printed: any password masked (and nothing of a URL that does not parse)."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return "(the URL given)"
