"""Parse agent.toml once into frozen dataclasses, or raise ConfigError listing every bad key."""

from __future__ import annotations

import dataclasses
import datetime as dt
import tomllib
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from xaprobe import communes
from xaprobe.agent.paths import default_store_path
from xaprobe.errors import ConfigError
from xaprobe.months import DEFAULT_TZ
from xaprobe.secret import Secret
from xaprobe.tomlcheck import TableReader

ACCESS = ("ethernet", "wifi", "cellular", "other", "auto")
ENGINES = ("http", "speedtest")


@dataclasses.dataclass(frozen=True)
class LinkConfig:
    name: str
    interface: str = ""
    operator: str = ""
    access: str = "auto"
    target: int = 300
    budget_mb: float = 0.0  # 0: no budget
    source_address: str = ""


@dataclasses.dataclass(frozen=True)
class HttpEngineConfig:
    server: str = ""
    paths: str = "plain"
    streams: int = 4
    duration_s: float = 10.0
    cap_mb: float = 0.0
    latency_samples: int = 12
    timeout_s: float = 10.0


@dataclasses.dataclass(frozen=True)
class SpeedtestEngineConfig:
    server: str = ""
    server_ids: tuple[str, ...] = ()
    cap_mb: float = 0.0
    timeout_s: float = 10.0


@dataclasses.dataclass(frozen=True)
class UploadConfig:
    batch_size: int = 500
    backoff_base_s: float = 30.0
    backoff_cap_s: float = 600.0
    heartbeat_interval_s: float = 900.0
    timeout_s: float = 30.0
    retention_days: int = 90


@dataclasses.dataclass(frozen=True)
class PlannerConfig:
    min_gap_s: float = 30.0
    quiet_hours: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    device_id: str = ""
    token: Secret = Secret("")
    commune_code: str = ""
    collector_url: str = ""
    timezone: str = DEFAULT_TZ
    store: Path = dataclasses.field(default_factory=default_store_path)
    engine: str = "http"
    links: tuple[LinkConfig, ...] = (LinkConfig(name="default"),)
    http: HttpEngineConfig = HttpEngineConfig()
    speedtest: SpeedtestEngineConfig = SpeedtestEngineConfig()
    upload: UploadConfig = UploadConfig()
    planner: PlannerConfig = PlannerConfig()
    source: str = "(built-in defaults)"


def load_config(path: Path) -> AgentConfig:
    """Read and check the TOML file at path; raise ConfigError naming every bad key."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found (give another with --config PATH)"]) from None
    except OSError as e:
        raise ConfigError(str(path), [f"cannot read it: {e.strerror}"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(str(path), [f"not UTF-8 text (byte {e.start})"]) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(path), [f"not valid TOML: {e}"]) from None
    return parse_config(data, str(path), base_dir=path.parent)


def _url(r: TableReader, name: str, required: bool = False) -> str:
    value = r.text(name, required=required)
    if value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            r.fail(name, f'must be an http:// or https:// URL, got "{value}"')
    return value


def _token(r: TableReader, base_dir: Path) -> Secret:
    token = r.text("token")
    token_file = r.text("token_file")
    if token and token_file:
        r.fail("token", "give token or token_file, not both")
    if token_file:
        path = base_dir / token_file
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as e:
            r.fail("token_file", f"cannot read {path}: {e.strerror}")
        else:
            if not token:
                r.fail("token_file", f"{path} is empty")
    return Secret(token)


def _link(r: TableReader, default_target: int) -> LinkConfig:
    link = LinkConfig(
        name=r.text("name", required=True),
        interface=r.text("interface", required=True),
        operator=r.text("operator"),
        access=r.choice("access", ACCESS, "auto"),
        target=r.integer("target", default_target),
        budget_mb=r.number("budget_mb", 0.0),
        source_address=r.text("source_address"),
    )
    r.reject_unknown()
    return link


def _commune(r: TableReader) -> str:
    raw = r.raw("commune_code")
    if raw is None or raw == "":
        return ""
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        r.fail("commune_code", f"must be a numeric commune code, got {raw!r}")
        return ""
    try:
        code = communes.normalise_code(raw)
    except ValueError:
        r.fail("commune_code", f'must be a numeric commune code, got "{raw}"')
        return str(raw)
    if communes.is_commune_code(code) is False:
        r.fail("commune_code", f"{code} is not a commune in vietnam-provinces")
    return code


def _timezone(r: TableReader) -> str:
    tz = r.text("timezone", DEFAULT_TZ)
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        r.fail("timezone", f'unknown time zone "{tz}" (e.g. "Asia/Ho_Chi_Minh")')
        return DEFAULT_TZ
    return tz


def parse_quiet(window: str) -> tuple[dt.time, dt.time]:
    """Parse a quiet-hours window 'HH:MM-HH:MM' (local time; it may wrap past midnight)."""
    start, sep, end = window.partition("-")
    if not sep:
        raise ValueError(window)
    return dt.time.fromisoformat(start.strip()), dt.time.fromisoformat(end.strip())


def _quiet_hours(r: TableReader) -> tuple[str, ...]:
    windows = r.text_list("quiet_hours")
    for i, window in enumerate(windows):
        try:
            parse_quiet(window)
        except ValueError:
            r.fail(f"quiet_hours[{i}]", f'must look like "00:30-05:00", got "{window}"')
    return windows


def parse_config(data: dict, source: str, base_dir: Path = Path(".")) -> AgentConfig:
    """Check a parsed TOML document and return its AgentConfig; raise ConfigError on problems."""
    problems: list[str] = []
    r = TableReader(data, "", problems)
    target = r.integer("target", 300)
    store = r.text("store")
    engines = r.sub("engines")
    http = engines.sub("http")
    speed = engines.sub("speedtest")
    up = r.sub("upload")
    plan = r.sub("planner")
    links = tuple(_link(t, target) for t in r.tables("links")) or (LinkConfig(name="default", target=target),)
    names = [link.name for link in links]
    for i, name in enumerate(names):
        if name and names.index(name) != i:
            problems.append(f"links[{i}].name: \"{name}\" is used by links[{names.index(name)}] too")
    config = AgentConfig(
        device_id=r.text("device_id"),
        token=_token(r, base_dir),
        commune_code=_commune(r),
        collector_url=_url(r, "collector_url"),
        timezone=_timezone(r),
        store=(base_dir / store) if store else default_store_path(),
        engine=r.choice("engine", ENGINES, "http"),
        links=links,
        http=HttpEngineConfig(
            server=_url(http, "server"),
            paths=http.choice("paths", ("plain", "php"), "plain"),
            streams=http.integer("streams", 4, low=1, high=32),
            duration_s=http.number("duration_s", 10.0, low=1.0, high=120.0),
            cap_mb=http.number("cap_mb", 0.0),
            latency_samples=http.integer("latency_samples", 12, low=10, high=100),
            timeout_s=http.number("timeout_s", 10.0, low=1.0, high=120.0),
        ),
        speedtest=SpeedtestEngineConfig(
            server=_url(speed, "server"),
            server_ids=speed.text_list("server_ids"),
            cap_mb=speed.number("cap_mb", 0.0),
            timeout_s=speed.number("timeout_s", 10.0, low=1.0, high=120.0),
        ),
        upload=UploadConfig(
            batch_size=up.integer("batch_size", 500, low=1, high=1000),
            backoff_base_s=up.number("backoff_base_s", 30.0, low=0.01, high=86_400.0),
            backoff_cap_s=up.number("backoff_cap_s", 600.0, low=0.01, high=86_400.0),
            heartbeat_interval_s=up.number("heartbeat_interval_s", 900.0, low=1.0, high=86_400.0),
            timeout_s=up.number("timeout_s", 30.0, low=1.0, high=600.0),
            retention_days=up.integer("retention_days", 90, low=1, high=3650),
        ),
        planner=PlannerConfig(
            min_gap_s=plan.number("min_gap_s", 30.0, low=30.0, high=86_400.0),
            quiet_hours=_quiet_hours(plan),
        ),
        source=source,
    )
    for table in (http, speed, engines, up, plan, r):
        table.reject_unknown()
    if config.collector_url and not config.device_id:
        problems.append("device_id: required when collector_url is set")
    if config.collector_url and not config.token:
        problems.append("token: required when collector_url is set (give token or token_file)")
    if problems:
        raise ConfigError(source, problems)
    return config
