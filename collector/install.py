"""`xaprobe-collector init`: the database's schema, /etc/xaprobe/collector.toml naming it, and the first admin.

After init, every command and the unit find the database in collector.toml, so none of them needs --db: a
second, silent database (a SQLite file made because --db was left out once) cannot happen by accident.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import sqlalchemy as sa

from xaprobe.collector.db import open_engine, shown_url
from xaprobe.collector.settings import CollectorSettings, default_db_url, load_settings
from xaprobe.collector.store import CollectorStore
from xaprobe.errors import UserError
from xaprobe.months import utc_now


def collector_toml(db_url: str, defaults: CollectorSettings) -> str:
    """The collector.toml init writes: the database, then every other key at its default, commented out."""
    return f"""# xaprobe collector configuration, written by `xaprobe-collector init`.
# Every xaprobe-collector command and the systemd unit read this file; only root can read it (mode 0600),
# since the database URL may carry a password. The unit receives it as a systemd credential.
db = {json.dumps(db_url)}
# province = "{defaults.province}"          # the province the dashboard and reports open on
# timezone = "{defaults.timezone}"
# target = {defaults.target}               # samples per commune per month
# threshold_mbps = {defaults.threshold_mbps:g}         # the "share of samples at or above" download threshold
# clock_tolerance_s = {defaults.clock_tolerance_s:g}     # a probe clock further off than this is flagged
# rate_per_minute = {defaults.rate_per_minute}      # requests per device per minute before 429
# language = "{defaults.language}"
# refresh_every_s = {defaults.refresh_every_s:g}       # how often the report cache is brought up to date
"""


@dataclasses.dataclass(frozen=True)
class InitResult:
    db_url: str
    config: Path
    config_written: bool
    admin_token: str | None  # the first admin's token, shown once; None when admins existed already
    admins: int


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def init_collector(config: Path, db_url: str | None, admin_name: str) -> InitResult:
    """Create or migrate the database (db_url, else the one config names, else the default SQLite file),
    write config when it does not exist, and create the first admin when there is none."""
    existing = load_settings(config) if config.exists() else None
    if existing is not None and db_url and db_url != existing.db_url:
        raise UserError(f"{config} already names the database {shown_url(existing.db_url)}; edit its db = line "
                        f"(or remove the file) to use {shown_url(db_url)}")
    url = db_url or (existing.db_url if existing else default_db_url())
    try:
        engine = open_engine(url)
    except (sa.exc.OperationalError, sa.exc.ArgumentError, OSError) as e:
        raise UserError(f"cannot open the database {shown_url(url)}: {e}") from None
    store = CollectorStore(engine)
    written = existing is None
    if written:
        _write_private(config, collector_toml(url, CollectorSettings(db_url=url)))
    token = store.admins.add(admin_name, utc_now()) if store.admins.count_active() == 0 else None
    result = InitResult(url, config, written, token, store.admins.count_active())
    engine.dispose()
    return result

