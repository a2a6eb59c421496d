"""The collector's tables (SQLAlchemy Core) and the migrations that bring any older database up to date."""

from __future__ import annotations

import sqlalchemy as sa

from xaprobe.errors import UserError

SCHEMA_VERSION = 8
metadata = sa.MetaData()

schema_info = sa.Table(
    "schema_info", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)

devices = sa.Table(
    "devices", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("commune_code", sa.String(10), nullable=False),
    sa.Column("target", sa.Integer, nullable=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("old_token_hash", sa.String(64), nullable=True, unique=True),
    sa.Column("old_token_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_heartbeat_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("heartbeat", sa.Text, nullable=True),
    sa.Column("settings", sa.Text, nullable=True),
    # items it sent under an id already stored with other content (its own or another device's)
    sa.Column("id_conflicts", sa.Integer, nullable=False, server_default="0"),
    # the site it measures from (sites.id); None: not said (its samples are "site unknown" unless they name one)
    sa.Column("site_id", sa.String(64), nullable=True),
)

# Where in a commune samples come from: a commune office, a school, a hamlet's cultural house, ...
sites = sa.Table(
    "sites", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("commune_code", sa.String(10), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("hamlet", sa.String(200), nullable=False, server_default=""),
    sa.Column("lat", sa.Float, nullable=True),
    sa.Column("lon", sa.Float, nullable=True),
    sa.Column("residential", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(80), nullable=False),  # "staff" or "device:<id>" (a field session)
)
sa.Index("sites_commune", sites.c.commune_code)

# The least share of a commune's month that must come from residential sites (only where staff set one)
commune_residential = sa.Table(
    "commune_residential", metadata,
    sa.Column("commune_code", sa.String(10), primary_key=True),
    sa.Column("min_percent", sa.Integer, nullable=False),
)

# Where each device stands: the commune it measures from `since` on (devices.commune_code is the latest).
# The first row also covers any earlier instant: a probe's clock may run behind its enrolment.
device_communes = sa.Table(
    "device_communes", metadata,
    sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id"), primary_key=True),
    sa.Column("since", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("commune_code", sa.String(10), nullable=False),
)

admins = sa.Table(
    "admins", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

# Dashboard sign-ins: the cookie carries a random id, the table only its SHA-256.
admin_sessions = sa.Table(
    "admin_sessions", metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("admin_id", sa.Integer, sa.ForeignKey("admins.id"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("admin_sessions_admin", admin_sessions.c.admin_id)

measurements = sa.Table(
    "measurements", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id"), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("commune_code", sa.String(10), nullable=False),
    sa.Column("province_code", sa.String(4), nullable=False),
    sa.Column("month", sa.String(7), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("engine", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("operator", sa.String(64), nullable=False),
    sa.Column("link_name", sa.String(64), nullable=False),
    sa.Column("access", sa.String(16), nullable=False),
    sa.Column("download_mbps", sa.Float, nullable=True),
    sa.Column("upload_mbps", sa.Float, nullable=True),
    sa.Column("latency_ms", sa.Float, nullable=True),
    sa.Column("jitter_ms", sa.Float, nullable=True),
    sa.Column("bytes_down", sa.BigInteger, nullable=False),
    sa.Column("bytes_up", sa.BigInteger, nullable=False),
    sa.Column("clock_suspect", sa.Boolean, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("loaded_latency_ms", sa.Float, nullable=True),
    sa.Column("capped", sa.Boolean, nullable=False, server_default=sa.false()),
    # why the plausibility gate stored this sample as status "suspect" (None for every other)
    sa.Column("flag", sa.String(300), nullable=True),
    # the site the probe said it measured from (checked: one of its commune's sites); None: site unknown
    sa.Column("site_id", sa.String(64), nullable=True),
)
sa.Index("measurements_province_month", measurements.c.province_code, measurements.c.month,
         measurements.c.commune_code)
sa.Index("measurements_device_seq", measurements.c.device_id, measurements.c.seq)
sa.Index("measurements_month_commune", measurements.c.month, measurements.c.commune_code)

# items the ingest refused, per device and local month of arrival, by the field (or gate) that refused them
rejections = sa.Table(
    "rejections", metadata,
    sa.Column("device_id", sa.String(64), primary_key=True),
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("reason", sa.String(64), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("last_detail", sa.String(300), nullable=False),
)

enrolment_codes = sa.Table(
    "enrolment_codes", metadata,
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)
sa.Index("enrolment_codes_device", enrolment_codes.c.device_id)

rate_windows = sa.Table(
    "rate_windows", metadata,
    sa.Column("device_id", sa.String(64), primary_key=True),
    sa.Column("window_start", sa.BigInteger, primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
)

commune_targets = sa.Table(
    "commune_targets", metadata,
    sa.Column("commune_code", sa.String(10), primary_key=True),
    sa.Column("target", sa.Integer, nullable=False),
)

# Cached monthly figures per commune and per province (scope: see collector/scope.py), recomputed from
# the measurements whenever a batch touches that month and scope (stale_months).
STAT_COLUMNS = ("samples", "failed", "down_p10", "down_p50", "down_p90", "up_p10", "up_p50", "up_p90",
                "lat_p10", "lat_p50", "lat_p90", "share_above")
month_stats = sa.Table(
    "month_stats", metadata,
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("scope", sa.String(16), primary_key=True),
    sa.Column("operator", sa.String(64), primary_key=True),
    sa.Column("province_code", sa.String(4), nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    *(sa.Column(name, sa.Integer if name in ("samples", "failed") else sa.Float, nullable=name in STAT_COLUMNS[2:])
      for name in STAT_COLUMNS),
)
sa.Index("month_stats_province", month_stats.c.month, month_stats.c.province_code)

stale_months = sa.Table(
    "stale_months", metadata,
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("scope", sa.String(10), primary_key=True),
    sa.Column("province_code", sa.String(4), nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
)

# Alerts sent ("đôn đốc"): one row per item (probe:ID, commune:CODE) and local day, so each goes out once a day.
alerts_sent = sa.Table(
    "alerts_sent", metadata,
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("item", sa.String(100), primary_key=True),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
)

# version -> statements that take a database from version-1 to version; a new database gets
# create_all of the current tables. Each statement is valid on SQLite (3.25 or later) and on PostgreSQL.
# They are history: they stay as they shipped ('p' || province_code is collector/scope.py's encoding).
MIGRATIONS: dict[int, list[str]] = {
    2: [
        "ALTER TABLE measurements ADD COLUMN loaded_latency_ms FLOAT",
        "ALTER TABLE measurements ADD COLUMN capped BOOLEAN NOT NULL DEFAULT FALSE",
        "CREATE INDEX measurements_month_commune ON measurements (month, commune_code)",
        "CREATE TABLE rate_windows (device_id VARCHAR(64) NOT NULL, window_start BIGINT NOT NULL,"
        " count INTEGER NOT NULL, PRIMARY KEY (device_id, window_start))",
        "CREATE TABLE commune_targets (commune_code VARCHAR(10) NOT NULL PRIMARY KEY, target INTEGER NOT NULL)",
        "CREATE TABLE month_stats (month VARCHAR(7) NOT NULL, scope VARCHAR(16) NOT NULL,"
        " operator VARCHAR(64) NOT NULL, province_code VARCHAR(4) NOT NULL, threshold FLOAT NOT NULL,"
        " samples INTEGER NOT NULL, failed INTEGER NOT NULL, down_p10 FLOAT, down_p50 FLOAT, down_p90 FLOAT,"
        " up_p10 FLOAT, up_p50 FLOAT,"
        " up_p90 FLOAT, lat_p10 FLOAT, lat_p50 FLOAT, lat_p90 FLOAT, share_above FLOAT,"
        " PRIMARY KEY (month, scope, operator))",
        "CREATE INDEX month_stats_province ON month_stats (month, province_code)",
        "CREATE TABLE stale_months (month VARCHAR(7) NOT NULL, commune_code VARCHAR(10) NOT NULL,"
        " province_code VARCHAR(4) NOT NULL, version BIGINT NOT NULL, PRIMARY KEY (month, commune_code))",
        # every month already stored must be computed once, per commune and per province
        "INSERT INTO stale_months (month, commune_code, province_code, version)"
        " SELECT DISTINCT month, commune_code, province_code, 1 FROM measurements",
        "INSERT INTO stale_months (month, commune_code, province_code, version)"
        " SELECT DISTINCT month, 'p' || province_code, province_code, 1 FROM measurements",
    ],
    3: [
        # the column holds province scopes too, not only commune codes
        "ALTER TABLE stale_months RENAME COLUMN commune_code TO scope",
    ],
    4: [
        # every device stood in its enrolled commune until now (the first row also covers earlier instants)
        "CREATE TABLE device_communes (device_id VARCHAR(64) NOT NULL REFERENCES devices (id),"
        " since TIMESTAMP WITH TIME ZONE NOT NULL, commune_code VARCHAR(10) NOT NULL,"
        " PRIMARY KEY (device_id, since))",
        "INSERT INTO device_communes (device_id, since, commune_code)"
        " SELECT id, created_at, commune_code FROM devices",
        "ALTER TABLE devices ADD COLUMN id_conflicts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE admins ADD COLUMN revoked_at TIMESTAMP WITH TIME ZONE",
        "CREATE TABLE admin_sessions (id_hash VARCHAR(64) NOT NULL PRIMARY KEY,"
        " admin_id INTEGER NOT NULL REFERENCES admins (id), created_at TIMESTAMP WITH TIME ZONE NOT NULL,"
        " last_used_at TIMESTAMP WITH TIME ZONE NOT NULL)",
        "CREATE INDEX admin_sessions_admin ON admin_sessions (admin_id)",
        # a target below 1 divided every report by zero or worse: back to the default
        "UPDATE devices SET target = NULL WHERE target < 1",
        "DELETE FROM commune_targets WHERE target < 1",
    ],
    5: [
        "CREATE TABLE enrolment_codes (code_hash VARCHAR(64) NOT NULL PRIMARY KEY,"
        " device_id VARCHAR(64) NOT NULL REFERENCES devices (id), created_at TIMESTAMP WITH TIME ZONE NOT NULL,"
        " expires_at TIMESTAMP WITH TIME ZONE NOT NULL, used_at TIMESTAMP WITH TIME ZONE,"
        " revoked_at TIMESTAMP WITH TIME ZONE)",
        "CREATE INDEX enrolment_codes_device ON enrolment_codes (device_id)",
    ],
    6: [
        "ALTER TABLE measurements ADD COLUMN flag VARCHAR(300)",
        "CREATE TABLE rejections (device_id VARCHAR(64) NOT NULL, month VARCHAR(7) NOT NULL,"
        " reason VARCHAR(64) NOT NULL, count INTEGER NOT NULL, last_detail VARCHAR(300) NOT NULL,"
        " PRIMARY KEY (device_id, month, reason))",
    ],
    7: [
        "CREATE TABLE alerts_sent (day VARCHAR(10) NOT NULL, item VARCHAR(100) NOT NULL,"
        " sent_at TIMESTAMP WITH TIME ZONE NOT NULL, PRIMARY KEY (day, item))",
    ],
    8: [
        # samples stored before sites existed keep site_id NULL: "site unknown"
        "ALTER TABLE devices ADD COLUMN site_id VARCHAR(64)",
        "ALTER TABLE measurements ADD COLUMN site_id VARCHAR(64)",
        "CREATE TABLE sites (id VARCHAR(64) NOT NULL PRIMARY KEY, commune_code VARCHAR(10) NOT NULL,"
        " name VARCHAR(200) NOT NULL, kind VARCHAR(20) NOT NULL, hamlet VARCHAR(200) NOT NULL DEFAULT '',"
        " lat FLOAT, lon FLOAT, residential BOOLEAN NOT NULL, created_at TIMESTAMP WITH TIME ZONE NOT NULL,"
        " created_by VARCHAR(80) NOT NULL)",
        "CREATE INDEX sites_commune ON sites (commune_code)",
        "CREATE TABLE commune_residential (commune_code VARCHAR(10) NOT NULL PRIMARY KEY,"
        " min_percent INTEGER NOT NULL)",
    ],
}


class SchemaTooNew(UserError):
    """The database was made by a newer collector than this one."""


def migrate(engine: sa.Engine) -> int:
    """Create or upgrade the schema in place, in one transaction per step; return the version."""
    with engine.begin() as conn:
        if not sa.inspect(conn).has_table("schema_info"):
            metadata.create_all(conn)
            conn.execute(schema_info.insert().values(id=1, version=SCHEMA_VERSION))
            return SCHEMA_VERSION
        version = conn.execute(sa.select(schema_info.c.version)).scalar_one()
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(f"the database has schema {version}, newer than this collector "
                           f"({SCHEMA_VERSION}): upgrade xaprobe")
    for step in range(version + 1, SCHEMA_VERSION + 1):
        with engine.begin() as conn:
            for statement in MIGRATIONS[step]:
                conn.execute(sa.text(statement))
            conn.execute(schema_info.update().values(version=step))
    return SCHEMA_VERSION
