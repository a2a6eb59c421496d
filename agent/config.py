"""Parse agent.toml once into frozen dataclasses, or raise ConfigError listing every bad key."""

from __future__ import annotations

import dataclasses
import datetime as dt
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from xaprobe import communes, operators
from xaprobe.agent.engines import engine_names, settings_class
from xaprobe.agent.paths import default_store_path
from xaprobe.errors import ConfigError
from xaprobe.months import DEFAULT_TZ
from xaprobe.secret import Secret
from xaprobe.tomlcheck import TableReader
from xaprobe.tomlschema import declared, read_table, read_value, setting

ACCESS = ("ethernet", "wifi", "cellular", "other", "auto")


@dataclasses.dataclass(frozen=True)
class LinkConfig:
    """One [[links]] table: a network the probe measures (a USB modem, the office line, ...)."""

    name: str = setting("", "A name for this link, unique in this file.", required=True)
    interface: str = setting("", "The network interface, as `ip link` shows it.", required=True)
    operator: str = setting("", "Who provides this link: Viettel, VNPT, MobiFone, Vietnamobile, Gmobile, I-Telecom, "
                                "Reddi, FPT, CMC, SCTV, or other:<name>. Required on a cellular link.")
    access: str = setting("auto", 'How the link reaches the internet; "auto" reads it from sysfs.', choices=ACCESS)
    target: int = setting(300, "Samples wanted per link per month (the province asks for at least 300).")
    budget_mb: float = setting(0.0, "Monthly data budget of this link in MB (0: no budget).")
    daily_quota_mb: float = setting(0.0, "Daily high-speed data of this SIM in MB, after which the operator "
                                         "throttles it (0: none). Tests never spend more than this in a day, and "
                                         "spread it over the day.")
    quota_reset_hour: int = setting(0, "The local hour at which the daily quota starts afresh.", low=0, high=23)
    source_address: str = setting("", "Send tests from this local address (empty: the interface's own).")


@dataclasses.dataclass(frozen=True)
class UploadConfig:
    """The [upload] table: how measurements and heartbeats reach the collector."""

    batch_size: int = setting(500, "Measurements per request.", low=1, high=1000)
    backoff_base_s: float = setting(30.0, "After a failed upload, wait a full-jitter exponential backoff starting "
                                          "at this many seconds ...", low=0.01, high=86_400.0)
    backoff_cap_s: float = setting(600.0, "... and never longer than this.", low=0.01, high=86_400.0)
    heartbeat_interval_s: float = setting(900.0, "Seconds between heartbeats.", low=1.0, high=86_400.0)
    timeout_s: float = setting(30.0, "Timeout in seconds for each request to the collector.", low=1.0, high=600.0)
    retention_days: int = setting(90, "Uploaded rows are pruned after this many days; pending rows never are.",
                                  low=1, high=3650)


@dataclasses.dataclass(frozen=True)
class PlannerConfig:
    """The [planner] table: when tests may run."""

    min_gap_s: float = setting(30.0, "Never two tests on one link closer than this many seconds.",
                               low=30.0, high=86_400.0)
    quiet_hours: tuple[str, ...] = setting((), 'Local times with no tests, e.g. ["00:30-05:00"].')


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """The whole of agent.toml; custom fields are read by the named functions below (source is not a key)."""

    device_id: str = setting("", "The device id the collector gave when it enrolled this probe.")
    token: Secret = setting(Secret(""), "The device token: put it here (token = ...), or in a file of its own "
                                        "(token_file, safer; a path relative to this file).", custom=True)
    commune_code: str = setting("", "The commune this probe counts for: its official code (see "
                                    "vietnam-provinces).", custom=True)
    collector_url: str = setting("", "Where the central collector is.", url=True)
    timezone: str = setting(DEFAULT_TZ, "A month is a calendar month in this time zone.")
    store: Path = dataclasses.field(default_factory=default_store_path, metadata={
        "custom": True, "help": "The probe's SQLite file (default /var/lib/xaprobe/probe.db, or $STATE_DIRECTORY "
                                "under systemd; a path relative to this file)."})
    engine: str = setting("http", "The engine used for planned tests.", choices=engine_names)
    links: tuple[LinkConfig, ...] = setting((LinkConfig(name="default"),), "One [[links]] per network the probe "
                                            "measures: one USB modem per operator, the office line, ...",
                                            custom=True)
    # engine name -> its Settings; an engine missing here runs with its defaults (see engine_settings)
    engines: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False, metadata={"custom": True})
    upload: UploadConfig = setting(UploadConfig(), "", custom=True)
    planner: PlannerConfig = setting(PlannerConfig(), "", custom=True)
    source: str = setting("(built-in defaults)", "", custom=True)
    token_from: Path | None = setting(None, "", custom=True)  # the file the token was read from

    def engine_settings(self, name: str) -> Any:
        """The named engine's settings: from [engines.<name>], else that engine's defaults."""
        settings = self.engines.get(name)
        return settings if settings is not None else settings_class(name)()


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


def _token(r: TableReader, base_dir: Path, source: Path | None) -> tuple[Secret, Path | None]:
    """The token, and the file it was read from (this config file, or token_file)."""
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
        return Secret(token), path
    return Secret(token), (source if token else None)


def token_warnings(config: AgentConfig) -> list[str]:
    """Why the token may be read by other users of this machine (empty when only its owner can read it)."""
    path = config.token_from
    if path is None:
        return []
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return []
    if not mode & 0o044:
        return []
    where = "token_file" if path.resolve() != Path(config.source).resolve() else "token"
    return [f"{where}: {path} holds the device token and other users can read it (mode {mode:04o}); "
            f"run: chmod 600 {path}"]


def _links(r: TableReader, target: int) -> tuple[LinkConfig, ...]:
    """Every [[links]] table (a link's target defaults to the top-level one); names must differ."""
    links = tuple(_operator(t, read_table(t, LinkConfig, defaults={"target": target})) for t in r.tables("links"))
    names = [link.name for link in links]
    for i, name in enumerate(names):
        if name and names.index(name) != i:
            r.fail(f"links[{i}].name", f'"{name}" is used by links[{names.index(name)}] too')
    return links or (LinkConfig(name="default", target=target),)


def _operator(t: TableReader, link: LinkConfig) -> LinkConfig:
    """The link with its operator's canonical name; an unknown operator, or none on a cellular link, is a problem."""
    if not link.operator.strip():
        if link.access == "cellular":
            t.fail("operator", f"required on a cellular link: one of {operators.known_names()}, or other:<name>")
        return link
    name = operators.canonical(link.operator)
    if name is None:
        t.fail("operator", f'"{link.operator}" is not an operator xaprobe knows: write one of '
                           f"{operators.known_names()}, or other:<name>")
        return link
    return dataclasses.replace(link, operator=name)


def _engines(r: TableReader) -> dict[str, Any]:
    """Each registered engine's Settings from its [engines.<name>] table (defaults where absent)."""
    engines: dict[str, Any] = {name: read_table(r.sub(name), settings_class(name)) for name in engine_names()}
    r.reject_unknown()
    return engines


def _store(r: TableReader, base_dir: Path) -> Path:
    store = r.text("store")
    return (base_dir / store) if store else default_store_path()


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


def _check_timezone(r: TableReader, tz: str) -> None:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        r.fail("timezone", f'unknown time zone "{tz}" (e.g. "Asia/Ho_Chi_Minh")')


def parse_quiet(window: str) -> tuple[dt.time, dt.time]:
    """Parse a quiet-hours window 'HH:MM-HH:MM' (local time; it may wrap past midnight)."""
    start, sep, end = window.partition("-")
    if not sep:
        raise ValueError(window)
    return dt.time.fromisoformat(start.strip()), dt.time.fromisoformat(end.strip())


def _planner(r: TableReader) -> PlannerConfig:
    planner = read_table(r, PlannerConfig)
    for i, window in enumerate(planner.quiet_hours):
        try:
            parse_quiet(window)
        except ValueError:
            r.fail(f"quiet_hours[{i}]", f'must look like "00:30-05:00", got "{window}"')
    return planner


def parse_config(data: dict, source: str, base_dir: Path = Path(".")) -> AgentConfig:
    """Check a parsed TOML document and return its AgentConfig; raise ConfigError on problems."""
    problems: list[str] = []
    r = TableReader(data, "", problems)
    # the top-level target is every link's default target, checked as a link's own would be
    target = read_value(r, declared(LinkConfig, "target"), int)
    token, token_from = _token(r, base_dir, Path(source) if Path(source).is_file() else None)
    config = read_table(r, AgentConfig, token=token, token_from=token_from, commune_code=_commune(r),
                        store=_store(r, base_dir), links=_links(r, target), engines=_engines(r.sub("engines")),
                        upload=read_table(r.sub("upload"), UploadConfig), planner=_planner(r.sub("planner")),
                        source=source)
    _check_timezone(r, config.timezone)
    if config.collector_url and not config.device_id:
        problems.append("device_id: required when collector_url is set")
    if config.collector_url and not config.token:
        problems.append("token: required when collector_url is set (give token or token_file)")
    if problems:
        raise ConfigError(source, problems)
    return config
