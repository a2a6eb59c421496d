"""Parse agent.toml once into frozen dataclasses, or raise ConfigError listing every bad key."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from xaprobe import communes, operators
from xaprobe.agent.engines import engine_names, settings_class
from xaprobe.agent.paths import default_store_path
from xaprobe.errors import ConfigError
from xaprobe.health import CentreSettings
from xaprobe.i18n import _
from xaprobe.months import DEFAULT_TZ
from xaprobe.secret import Secret
from xaprobe.sites import is_site_id, not_a_site_id
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
class QuietCheckConfig:
    """The [quiet_check] table: before each test, wait while other traffic crosses the link's interface."""

    enabled: bool = setting(True, "Before each test, watch the byte counters of the link's interface and wait while "
                                  "other traffic crosses it (a user's download, the last test's leftovers); the "
                                  "traffic seen is recorded with the result.")
    window_s: float = setting(2.0, "Seconds each look at the counters lasts.", low=0.5, high=30.0)
    busy_kbps: float = setting(200.0, "More than this many kbit/s (both directions together) is a busy link: an idle "
                                      "modem carries a few kbit/s, a video or a download far more.",
                               low=1.0, high=100_000.0)
    wait_s: float = setting(30.0, "While the link is busy, look again after this many seconds ...", low=1.0,
                            high=3600.0)
    max_waits: int = setting(10, "... at most this many times; then the test runs anyway, the traffic recorded "
                                 "(0: never wait, only record).", low=0, high=1000)


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """The whole of agent.toml; custom fields are read by the named functions below (source is not a key)."""

    device_id: str = setting("", "The device id the collector gave when it enrolled this probe.")
    token: Secret = setting(Secret(""), "The device token: put it here (token = ...), in a file of its own "
                                        "(token_file, a path relative to this file), or, for the service, in the "
                                        "systemd credential token_credential names (the unit loads /etc/xaprobe/token, "
                                        "a file only root can read; `xaprobe config install` puts it there).",
                            custom=True)
    commune_code: str = setting("", "The commune this probe counts for: its official code (see "
                                    "vietnam-provinces).", custom=True)
    site_id: str = setting("", "The site in the commune this probe measures from (the commune office, a school, a "
                               "hamlet's cultural house ...), as the collector staff named it (`xaprobe-collector "
                               "site list`); `xaprobe enroll` writes it. The collector's own setting for the probe, "
                               "when staff give one, wins.")
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
    quiet_check: QuietCheckConfig = setting(QuietCheckConfig(), "", custom=True)
    source: str = setting("(built-in defaults)", "", custom=True)
    token_from: Path | None = setting(None, "", custom=True)  # the file the token was read from
    token_key: str = setting("", "", custom=True)  # the key that gave it: token, token_file or token_credential

    def engine_settings(self, name: str) -> Any:
        """The named engine's settings: from [engines.<name>], else that engine's defaults."""
        settings = self.engines.get(name)
        return settings if settings is not None else settings_class(name)()


def site_of(config: AgentConfig, centre: CentreSettings) -> str:
    """The site this probe measures from: what the collector's staff last said ("" for none), else agent.toml's."""
    return centre.site_id if centre.site_id is not None else config.site_id


def load_config(path: Path) -> AgentConfig:
    """Read and check the TOML file at path; raise ConfigError naming every bad key."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), [_("file not found (give another with --config PATH)")]) from None
    except OSError as e:
        raise ConfigError(str(path), [_("cannot read it: {error}").format(error=e.strerror)]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(str(path), [_("not UTF-8 text (byte {n})").format(n=e.start)]) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(path), [_("not valid TOML: {error}").format(error=e)]) from None
    return parse_config(data, str(path), base_dir=path.parent)


def credential_path(name: str, base_dir: Path) -> Path:
    """Where the systemd credential `name` is: in $CREDENTIALS_DIRECTORY under the service, else the file of
    that name next to the config (the unit's LoadCredential= source: /etc/xaprobe/token beside agent.toml)."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    return (Path(directory) if directory else base_dir) / name


def _read_token(r: TableReader, key: str, path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        r.fail(key, _("cannot read {path}: {error}").format(path=path, error=e.strerror))
        return ""
    if not token:
        r.fail(key, _("{path} is empty").format(path=path))
    return token


def _token(r: TableReader, base_dir: Path, source: Path | None) -> tuple[Secret, Path | None, str]:
    """The token, the file it was read from (this config file, token_file, the credential) and its key."""
    given = {key: r.text(key) for key in ("token", "token_file", "token_credential")}
    keys = [key for key, value in given.items() if value]
    if len(keys) > 1:
        r.fail(keys[0], _("give one of token, token_file, token_credential, not {keys}").format(
            keys=_(" and ").join(keys)))
    if given["token_credential"]:
        name = given["token_credential"]
        if "/" in name or name in (".", ".."):
            r.fail("token_credential", _('must be a credential name (as in LoadCredential=NAME:PATH), got "{name}"')
                   .format(name=name))
            return Secret(""), None, "token_credential"
        path = credential_path(name, base_dir)
        return Secret(_read_token(r, "token_credential", path)), path, "token_credential"
    if given["token_file"]:
        path = base_dir / given["token_file"]
        return Secret(_read_token(r, "token_file", path)), path, "token_file"
    token = given["token"]
    return Secret(token), (source if token else None), ("token" if token else "")


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
    return [f"{config.token_key}: " + _("{path} holds the device token and other users can read it (mode {mode:04o}); "
                                        "run: chmod 600 {path}").format(path=path, mode=mode)]


def _others_can_read(path: Path) -> bool:
    """Whether a user who is neither the owner nor in the group can read path (its folders searchable too)."""
    try:
        if not path.stat().st_mode & 0o004:
            return False
        return all(folder.stat().st_mode & 0o001 for folder in path.resolve().parents)
    except OSError:
        return False


# what systemd/xaprobe-agent.service reads, and its StateDirectory=, the only place the service may write
SERVICE_CONFIG, SERVICE_STATE = Path("/etc/xaprobe/agent.toml"), Path("/var/lib/xaprobe")


def service_problems(config: AgentConfig) -> list[str]:
    """What the systemd service, which runs as a user of its own (DynamicUser=), could not read or write in
    this config, were it the service's; empty when it has everything. A token_credential is fine: systemd
    reads its file (/etc/xaprobe/token beside /etc/xaprobe/agent.toml) as root."""
    problems = []
    source = Path(config.source)
    if not _others_can_read(source):
        problems.append(_("the service runs as its own user and cannot read {path}: keep the token out of it "
                          '(token_credential = "token") and run: chmod 644 {path}').format(path=source))
    if config.token_key == "token_file" and config.token_from and not _others_can_read(config.token_from):
        problems.append("token_file: " + _('the service cannot read {path}; use token_credential = "token" instead '
                                           "(the unit loads /etc/xaprobe/token as root and hands it to the service)")
                        .format(path=config.token_from))
    if not config.store.is_relative_to(SERVICE_STATE):
        problems.append("store: " + _("the service can only write under {folder}, not {path}").format(
            folder=SERVICE_STATE, path=config.store))
    return problems


def _links(r: TableReader, target: int) -> tuple[LinkConfig, ...]:
    """Every [[links]] table (a link's target defaults to the top-level one); names must differ."""
    links = tuple(_operator(t, read_table(t, LinkConfig, defaults={"target": target})) for t in r.tables("links"))
    names = [link.name for link in links]
    for i, name in enumerate(names):
        if name and names.index(name) != i:
            r.fail(f"links[{i}].name", _('"{name}" is used by {other} too').format(
                name=name, other=f"links[{names.index(name)}]"))
    return links or (LinkConfig(name="default", target=target),)


def _operator(t: TableReader, link: LinkConfig) -> LinkConfig:
    """The link with its operator's canonical name; an unknown operator, or none on a cellular link, is a problem."""
    if not link.operator.strip():
        if link.access == "cellular":
            t.fail("operator", _("required on a cellular link: one of {names}, or other:<name>").format(
                names=operators.known_names()))
        return link
    name = operators.canonical(link.operator)
    if name is None:
        t.fail("operator", _('"{operator}" is not an operator xaprobe knows: write one of {names}, or other:<name>')
               .format(operator=link.operator, names=operators.known_names()))
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
        r.fail("commune_code", _("must be a numeric commune code, got {value!r}").format(value=raw))
        return ""
    try:
        code = communes.normalise_code(raw)
    except ValueError:
        r.fail("commune_code", _('must be a numeric commune code, got "{value}"').format(value=raw))
        return str(raw)
    if communes.is_commune_code(code) is False:
        r.fail("commune_code", _("{code} is not the code of a commune (xã/phường) since the 2025 reform: the "
                                 "collector staff find it with xaprobe-collector communes --search NAME").format(
            code=code))
    return code


def _check_timezone(r: TableReader, tz: str) -> None:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        r.fail("timezone", _('unknown time zone "{tz}" (e.g. "Asia/Ho_Chi_Minh")').format(tz=tz))


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
            r.fail(f"quiet_hours[{i}]", _('must look like "00:30-05:00", got "{value}"').format(value=window))
    return planner


def parse_config(data: dict, source: str, base_dir: Path = Path(".")) -> AgentConfig:
    """Check a parsed TOML document and return its AgentConfig; raise ConfigError on problems."""
    problems: list[str] = []
    r = TableReader(data, "", problems)
    # the top-level target is every link's default target, checked as a link's own would be
    target = read_value(r, declared(LinkConfig, "target"), int)
    token, token_from, token_key = _token(r, base_dir, Path(source) if Path(source).is_file() else None)
    config = read_table(r, AgentConfig, token=token, token_from=token_from, token_key=token_key,
                        commune_code=_commune(r),
                        store=_store(r, base_dir), links=_links(r, target), engines=_engines(r.sub("engines")),
                        upload=read_table(r.sub("upload"), UploadConfig), planner=_planner(r.sub("planner")),
                        quiet_check=read_table(r.sub("quiet_check"), QuietCheckConfig), source=source)
    _check_timezone(r, config.timezone)
    if config.site_id and not is_site_id(config.site_id):
        problems.append("site_id: " + not_a_site_id(config.site_id))
    if config.collector_url and not config.device_id:
        problems.append("device_id: " + _("required when collector_url is set"))
    if config.collector_url and not config.token:
        problems.append("token: " + _("required when collector_url is set (give token_credential, token_file or "
                                      "token)"))
    if problems:
        raise ConfigError(source, problems)
    return config
