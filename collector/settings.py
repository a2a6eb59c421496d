"""Collector settings: built-in defaults, an optional TOML file, then command-line flags."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from xaprobe import communes
from xaprobe.collector.alert_config import AlertSettings, read_alerts
from xaprobe.collector.plausibility import AccessBounds, Plausibility
from xaprobe.collector.speedtest_app import SpeedtestLimits
from xaprobe.errors import ConfigError, UserError
from xaprobe.health import MAX_TARGET
from xaprobe.months import DEFAULT_TZ
from xaprobe.tomlcheck import TableReader

# What `xaprobe-collector init` writes and every later command reads when no --config is given; the unit
# reads the same file (as a credential, since a PostgreSQL URL may carry a password).
DEFAULT_CONFIG = Path("/etc/xaprobe/collector.toml")
# The unit's StateDirectory= (/var/lib/xaprobe-collector): the SQLite default for root and the service alike.
STATE_DIRECTORY = Path("/var/lib/xaprobe-collector")


def default_db_url() -> str:
    """A SQLite file in the service's state dir, the same dir for root, else the XDG data dir."""
    if os.environ.get("STATE_DIRECTORY"):
        base = Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    elif os.geteuid() == 0:
        base = STATE_DIRECTORY
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "xaprobe"
    return f"sqlite:///{base / 'collector.db'}"


def config_path(given: Path | None) -> Path | None:
    """The collector.toml in force: --config when given, else /etc/xaprobe/collector.toml when it exists."""
    if given is not None:
        return given
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def db_url_problem(url: str) -> str | None:
    """Why url cannot be the collector's database (a SQLite file or PostgreSQL), or None."""
    if not url.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://")):
        return f"must be sqlite:///PATH or postgresql://..., got {url[:80]!r}"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it checks it: a port out of range or not a number raises
    except ValueError as e:
        return f"not a database URL ({e})"
    return None


@dataclasses.dataclass(frozen=True)
class CollectorSettings:
    db_url: str = dataclasses.field(default_factory=default_db_url)
    province: str = "42"
    timezone: str = DEFAULT_TZ
    target: int = 300
    threshold_mbps: float = 10.0
    # a commune whose month has more than this share (%) of its samples from one site is flagged as concentrated
    concentration_percent: int = 80
    clock_tolerance_s: float = 300.0
    max_items: int = 1000
    max_body_bytes: int = 1 << 20
    max_inflated_bytes: int = 16 << 20
    rate_per_minute: int = 120
    language: str = "vi"
    refresh_every_s: float = 60.0
    speedtest: SpeedtestLimits = SpeedtestLimits()
    plausibility: Plausibility = Plausibility()
    alerts: AlertSettings = AlertSettings()


def _speedtest(r: TableReader, default: SpeedtestLimits) -> SpeedtestLimits:
    """The [speedtest] table: what one client may ask of /speedtest/."""
    return SpeedtestLimits(
        max_chunks=r.integer("max_chunks", default.max_chunks, high=1024),
        max_upload_mib=r.integer("max_upload_mib", default.max_upload_mib, high=4096),
        tests_per_client=r.integer("tests_per_client", default.tests_per_client, high=10_000))


def _plausibility(r: TableReader, default: Plausibility) -> Plausibility:
    """The [plausibility] table: [plausibility.cellular] (wifi, ethernet, other) bounds and min_duration_s."""
    def bounds(t: TableReader, d: AccessBounds) -> AccessBounds:
        b = AccessBounds(max_mbps=t.number("max_mbps", d.max_mbps, low=1.0, high=1e7),
                         suspect_mbps=t.number("suspect_mbps", d.suspect_mbps, low=1.0, high=1e7),
                         min_latency_ms=t.number("min_latency_ms", d.min_latency_ms, high=1e4),
                         suspect_latency_ms=t.number("suspect_latency_ms", d.suspect_latency_ms, high=1e4))
        t.reject_unknown()
        return b
    access = {name: bounds(r.sub(name), default.access.get(name, default.other))
              for name in ("cellular", "wifi", "ethernet")}
    other = bounds(r.sub("other"), default.other)
    result = Plausibility(access=access, other=other,
                          min_duration_s=r.number("min_duration_s", default.min_duration_s, high=3600.0))
    r.reject_unknown()
    return result


def _timezone_problem(name: str) -> str | None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f'"{name[:80]}" is not a time zone (e.g. "Asia/Ho_Chi_Minh")'
    return None


def load_settings(path: Path | None, db_url: str | None = None) -> CollectorSettings:
    """Read collector.toml (when given, else the default one when it exists) and apply --db; raise ConfigError
    naming each bad key."""
    settings = CollectorSettings()
    path = config_path(path)
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(str(path), ["file not found"]) from None
        except PermissionError:
            raise ConfigError(str(path), ["cannot read it: permission denied (run the command as root)"]) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(str(path), [f"not valid TOML: {e}"]) from None
        problems: list[str] = []
        r = TableReader(data, "", problems)
        speedtest = r.sub("speedtest")
        settings = CollectorSettings(
            db_url=r.text("db", settings.db_url),
            province=r.text("province", settings.province),
            timezone=r.text("timezone", settings.timezone),
            target=r.integer("target", settings.target, low=1, high=MAX_TARGET),
            threshold_mbps=r.number("threshold_mbps", settings.threshold_mbps, high=100_000.0),
            concentration_percent=r.integer("concentration_percent", settings.concentration_percent, low=1,
                                            high=100),
            clock_tolerance_s=r.number("clock_tolerance_s", settings.clock_tolerance_s, high=86_400.0 * 365),
            rate_per_minute=r.integer("rate_per_minute", settings.rate_per_minute, high=1_000_000),
            language=r.choice("language", ("vi", "en"), settings.language),
            refresh_every_s=r.number("refresh_every_s", settings.refresh_every_s, low=1.0, high=86_400.0),
            speedtest=_speedtest(speedtest, settings.speedtest),
            plausibility=_plausibility(r.sub("plausibility"), settings.plausibility),
            alerts=read_alerts(r.sub("alerts")),
        )
        speedtest.reject_unknown()
        r.reject_unknown()
        if (problem := _timezone_problem(settings.timezone)) is not None:
            problems.append(f"timezone: {problem}")
        if (problem := db_url_problem(settings.db_url)) is not None:
            problems.append(f"db: {problem}")
        if communes.province_name(settings.province) is None:
            problems.append(f'province: "{settings.province}" is not a province code in vietnam-provinces')
        if problems:
            raise ConfigError(str(path), problems)
    if db_url:
        if (problem := db_url_problem(db_url)) is not None:
            raise UserError(f"--db: {problem}")
        settings = dataclasses.replace(settings, db_url=db_url)
    return settings
