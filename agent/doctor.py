"""`xaprobe doctor`: every check that decides whether samples will flow, each with a verdict and the one
thing to do. Samples flow when no check fails; a warning is worth fixing but stops nothing."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import requests

from xaprobe.agent import context
from xaprobe.agent.config import AgentConfig, load_config, token_warnings
from xaprobe.agent.store import MIN_FREE_BYTES, Store, StoreError
from xaprobe.errors import ConfigError
from xaprobe.i18n import _, number
from xaprobe.uploader.upload import Destination, check_token

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
LOW_DISK = 200 * 1_000_000  # a month of rows and their WAL is a few MB; below this, ask for room early


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    verdict: str
    found: str
    todo: str = ""


def check_config(path: Path) -> tuple[list[Check], AgentConfig | None]:
    try:
        config = load_config(path)
    except ConfigError as e:
        return [Check("config", FAIL, f"{path}: " + "; ".join(e.problems),
                      _("fix each key named, then run: xaprobe config check {path}").format(path=path))], None
    checks = [Check("config", OK, _("{path} is a valid configuration ({n} link(s))").format(
        path=path, n=len(config.links)))]
    mode = path.stat().st_mode & 0o777
    if not mode & 0o004:  # the unit runs as a dynamic user: to it, the file belongs to "others"
        checks.append(Check("config-readable", FAIL,
                            _("the service cannot read {path} (mode {mode:04o})").format(path=path, mode=mode),
                            _("run: sudo chmod 644 {path} (keep the token in a file of its own, readable by "
                              "root)").format(path=path)))
    for warning in token_warnings(config):
        checks.append(Check("token-file", WARN, warning, _("keep the token where only root can read it")))
    return checks, config


def check_collector(config: AgentConfig, session: requests.Session) -> list[Check]:
    if not config.collector_url:
        return [Check("collector", FAIL, _("no collector_url: samples stay on this probe"),
                      _("enrol the probe: sudo xaprobe enroll https://<collector> <CODE>"))]
    checks = []
    if urlsplit(config.collector_url).scheme != "https":
        checks.append(Check("tls", WARN, _("{url} is not https: the token travels unencrypted").format(
            url=config.collector_url), _("ask the collector staff for its https:// address")))
    answer = check_token(session, Destination(config.collector_url, config.token, 15.0))
    if not answer.reached:
        return checks + [Check("collector", FAIL, answer.found,
                               _("check the probe's internet connection and collector_url"))]
    checks.append(Check("collector", OK, _("the collector at {url} answers").format(url=config.collector_url)))
    checks.append(Check("token", OK if answer.accepted else FAIL, answer.found,
                        "" if answer.accepted else _("ask the collector staff for a new token")))
    return checks


def check_clock(clock_synced: Callable[[], bool | None]) -> Check:
    synced = clock_synced()
    if synced:
        return Check("clock", OK, _("the clock is synchronised"))
    if synced is None:
        return Check("clock", WARN, _("cannot tell whether the clock is synchronised"),
                     _("run: timedatectl status (look for 'System clock synchronized: yes')"))
    return Check("clock", FAIL, _("the clock is not synchronised: tests are stamped with a wrong time"),
                 _("run: sudo timedatectl set-ntp true (Raspberry Pi OS: sudo apt install systemd-timesyncd; a "
                   "Raspberry Pi has no clock battery: it needs the network)"))


def _test_host(config: AgentConfig) -> str:
    settings = config.engine_settings(config.engine)
    return urlsplit(getattr(settings, "server", "") or config.collector_url).hostname or ""


def _route(host: str, interface: str) -> str | None:
    """Why no route through interface covers host (None when one does); reads the routing tables, sends nothing.

    A socket bound to an interface (as the engines bind) uses only the routes through it: `ip route get ... oif`
    would answer "on link" for any address, so the routes of the interface are read instead.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            address = ipaddress.ip_address(socket.getaddrinfo(host, None)[0][4][0])
        except (OSError, IndexError, ValueError):
            return _("cannot resolve {host}").format(host=host)
    if not shutil.which("ip"):
        return None  # cannot ask: the test itself will tell
    family = "-6" if address.version == 6 else "-4"
    done = subprocess.run(["ip", family, "-j", "route", "show", "table", "all", "dev", interface],
                          capture_output=True, text=True, timeout=5, check=False)
    try:
        routes = json.loads(done.stdout or "[]")
    except ValueError:
        return None
    for route in routes:
        dst = route.get("dst", "")
        try:
            if dst == "default" or address in ipaddress.ip_network(dst, strict=False):
                return None
        except ValueError:
            continue
    return _("the interface has no route there (no address or no default route: is its data connection up?)")


def check_links(config: AgentConfig) -> list[Check]:
    checks, host = [], _test_host(config)
    for link in config.links:
        name = f"link {link.name}"
        try:
            socket.if_nametoindex(link.interface)
        except OSError:
            checks.append(Check(name, FAIL, _("interface {name} does not exist").format(name=link.interface),
                                _("is the modem plugged in? `ip link` lists the interfaces: fix links[].interface")))
            continue
        problem = _route(host, link.interface) if host else None
        access = context.access_type(link.interface) if link.access == "auto" else link.access
        if problem:
            checks.append(Check(name, FAIL, _("no route from {interface} to the test server {host}: {problem}").format(
                interface=link.interface, host=host, problem=problem),
                _("is the SIM's data connection up? (mmcli -m 0; nmcli device)")))
        elif not link.operator and access == "cellular":
            checks.append(Check(name, FAIL, _("{interface} is cellular but its operator is not set").format(
                interface=link.interface), _("set links[].operator (Viettel, VNPT, MobiFone, ...)")))
        elif access == "cellular" and not (link.budget_mb or link.daily_quota_mb):
            checks.append(Check(name, WARN, _("{interface} ({operator}) has no data plan set: tests may use tens "
                                              "of MB each").format(interface=link.interface, operator=link.operator),
                                _("set links[].budget_mb and/or daily_quota_mb")))
        else:
            checks.append(Check(name, OK, _("{interface} ({operator}) reaches {host}").format(
                interface=link.interface, operator=link.operator or access, host=host or "-")))
    return checks


def check_disk_and_store(config: AgentConfig) -> list[Check]:
    folder = config.store.parent if config.store.parent.exists() else Path("/")
    free = shutil.disk_usage(folder).free
    verdict = FAIL if free < MIN_FREE_BYTES else WARN if free < LOW_DISK else OK
    checks = [Check("disk", verdict, _("{mb} MB free under {folder}").format(mb=number(free / 1e6, 0), folder=folder),
                    "" if verdict == OK else _("free some space (old logs, downloads) on this disk"))]
    if not config.store.exists():
        return checks + [Check("store", OK, _("{path} will be made by the first test").format(path=config.store))]
    try:
        store = Store.open(config.store, busy_timeout_s=5)
        healthy = store.integrity()
        store.close()
    except StoreError as e:
        return checks + [Check("store", FAIL, str(e), _("restart the service: sudo systemctl restart xaprobe-agent"))]
    return checks + [Check("store", OK if healthy == "ok" else FAIL, f"{config.store}: {healthy}")]


def check_service() -> Check:
    if not context.systemd_running():
        return Check("service", SKIP, _("systemd is not running here: the service was not checked"))
    state = subprocess.run(["systemctl", "is-active", "xaprobe-agent"], capture_output=True, text=True,
                           timeout=10, check=False).stdout.strip()
    return Check("service", OK if state == "active" else FAIL,
                 _("xaprobe-agent is {state}").format(state=state or "unknown"),
                 "" if state == "active" else _("run: sudo systemctl enable --now xaprobe-agent; "
                                                "journalctl -u xaprobe-agent says why it stopped"))


def run_checks(path: Path, session: requests.Session,
               clock_synced: Callable[[], bool | None] = context.clock_synced, service: bool = True) -> list[Check]:
    """Every check, in the order a person would fix them."""
    checks, config = check_config(path)
    if config is None:
        return checks
    checks += check_collector(config, session)
    checks.append(check_clock(clock_synced))
    checks += check_links(config)
    checks += check_disk_and_store(config)
    if service:
        checks.append(check_service())
    return checks


def flows(checks: list[Check]) -> bool:
    """Samples will flow when no check failed."""
    return not any(c.verdict == FAIL for c in checks)


MARKS = {OK: "  ok  ", WARN: " WARN ", FAIL: " FAIL ", SKIP: " skip "}


def render(checks: list[Check]) -> str:
    lines = [f"[{MARKS[c.verdict]}] {c.name}: {c.found}" + (f"\n         -> {c.todo}" if c.todo else "")
             for c in checks]
    lines.append(_("samples will flow") if flows(checks) else _("samples will NOT flow: fix each FAIL above"))
    return "\n".join(lines)


def as_json(checks: list[Check]) -> str:
    return json.dumps({"flows": flows(checks), "checks": [dataclasses.asdict(c) for c in checks]},
                      ensure_ascii=False)

