"""Shared fixtures: a real collector on loopback (SQLite and PostgreSQL), the speed-test server, stores."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import ipaddress
import os
import secrets
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# the checkout's folders and the packages they install as (setup.cfg's package_dir)
SOURCES = {"core": "xaprobe", "agent": "xaprobe.agent", "uploader": "xaprobe.uploader",
           "collector": "xaprobe.collector"}


def checkout_problem() -> str | None:
    """Why the imported xaprobe is not this checkout's code, or None when every module resolves here."""
    import importlib.util

    for folder, package in SOURCES.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            name = ".".join((package, *parts[:-1]) if parts[-1] == "__init__" else (package, *parts))
            spec = importlib.util.find_spec(name)
            if spec is None or spec.origin is None:
                return f"{path.relative_to(REPO)} is not importable as {name}: run `make dev` again"
            if Path(spec.origin).resolve() != path:
                return (f"{name} is imported from {spec.origin}, not from this checkout ({path.relative_to(REPO)}): "
                        "install with `make dev` (an editable install)")
    return None


def pytest_configure(config):
    problem = checkout_problem()
    if problem:
        pytest.exit(f"the tests would not test this checkout: {problem}", returncode=4)


def _local_names() -> set[str]:
    """Host names this machine answers from /etc/hosts (and its own name): resolving them sends nothing."""
    names = {"localhost", socket.gethostname()}
    with contextlib.suppress(OSError):
        for line in Path("/etc/hosts").read_text().splitlines():
            names.update(line.split("#", 1)[0].split()[1:])
    return {name.lower() for name in names}


class _NameGuard:
    """The suite's network wall: a name lookup that would ask a DNS server (the only way out to the internet
    from this process's own sockets, since every test server is an IP literal) fails at once, and the test that
    made it fails, instead of waiting on whatever the machine's network answers (a CI run once hung 80 min in a
    test that, by all signs, had gone out that way). Tests marked `internet` are let through."""

    def __init__(self) -> None:
        self.local = _local_names()
        self.open = False
        self.blocked: list[str] = []

    def allowed(self, host: object) -> bool:
        if host is None:
            return True
        name = (host.decode(errors="replace") if isinstance(host, bytes) else str(host)).strip("[]").lower()
        try:
            ipaddress.ip_address(name.split("%", 1)[0])
            return True
        except ValueError:
            return name in self.local

    def __call__(self, event: str, args: tuple) -> None:
        if self.open or event not in ("socket.getaddrinfo", "socket.gethostbyname"):
            return
        if not self.allowed(args[0]):
            self.blocked.append(str(args[0]))
            raise socket.gaierror(socket.EAI_NONAME, f"tests: looking up {args[0]!r} is blocked (no test may "
                                                     "leave this machine; mark it `internet` if it must)")


_NAME_GUARD = _NameGuard()
sys.addaudithook(_NAME_GUARD)  # audit hooks cannot be removed: the guard is opened per test instead


@pytest.fixture(autouse=True)
def no_name_lookups(request):
    """Fails a test that tried to resolve a host name (see _NameGuard), even if the code swallowed the error."""
    _NAME_GUARD.open = request.node.get_closest_marker("internet") is not None
    _NAME_GUARD.blocked.clear()
    yield _NAME_GUARD
    blocked, _NAME_GUARD.blocked = list(_NAME_GUARD.blocked), []
    _NAME_GUARD.open = False
    if blocked:
        pytest.fail(f"the test tried to resolve {sorted(set(blocked))}: tests must not leave this machine")


PG_ADMIN_URL = os.environ.get("XAPROBE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database made for this test and dropped afterwards."""
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not running on 127.0.0.1:5432 (.ci/run should have started it)")
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    import psycopg

    name = f"xaprobe_t_{secrets.token_hex(6)}"
    admin = PG_ADMIN_URL.replace("postgresql://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """Both collector back ends: a SQLite file and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'collector.db'}"
    return request.getfixturevalue("pg_url")


@dataclasses.dataclass
class RunningCollector:
    base: str
    store: object
    admin_token: str

    def enrol(self, device_id: str = "probe-1", commune: str = "18673", target: int | None = None) -> str:
        from xaprobe.months import utc_now

        return self.store.devices.add(device_id, f"Probe {device_id}", commune, target, utc_now())


@contextlib.contextmanager
def running_collector(db_url: str, province: str = "42", clock=None) -> Iterator[RunningCollector]:
    """The real collector app over a fresh database at db_url, served by uvicorn on 127.0.0.1 (with the
    given clock, e.g. a frozen one, else the real one)."""
    from xaprobe.collector.app import create_app
    from xaprobe.collector.db import open_engine
    from xaprobe.collector.server import serve_in_thread
    from xaprobe.collector.settings import CollectorSettings
    from xaprobe.collector.store import CollectorStore
    from xaprobe.months import utc_now

    store = CollectorStore(open_engine(db_url))
    try:
        app = create_app(store, CollectorSettings(db_url=db_url, province=province), clock=clock or utc_now)
        with serve_in_thread(app) as base:
            yield RunningCollector(base, store, store.admins.add("tests", utc_now()))
    finally:
        store.engine.dispose()


@pytest.fixture
def collector(db_url):
    """A real collector app served by uvicorn on 127.0.0.1, over a fresh database (SQLite and PostgreSQL)."""
    with running_collector(db_url) as running:
        yield running


@pytest.fixture
def sqlite_collector(tmp_path):
    """The collector on SQLite only, for probe-side tests that do not depend on the back end."""
    with running_collector(f"sqlite:///{tmp_path / 'collector.db'}") as running:
        yield running


@pytest.fixture
def speedtest_server():
    """The standalone speed-test app (LibreSpeed and Speedtest Mini endpoints) on 127.0.0.1."""
    from xaprobe.collector.server import serve_in_thread
    from xaprobe.collector.speedtest_app import speedtest_app

    with serve_in_thread(speedtest_app) as base:
        yield base + "/speedtest/"


@pytest.fixture
def store(tmp_path):
    from xaprobe.agent.store import Store

    s = Store.open(tmp_path / "probe.db")
    yield s
    s.close()


def make_measurement(**overrides):
    """A plausible successful Measurement; override any field. A rate given without its bytes gets the bytes
    of 10 s at that rate, so the sample's figures still agree (core/plausibility.py)."""
    from xaprobe.wire import Link, Measurement, Server, new_id

    base = dict(id=new_id(), started_at=dt.datetime.now(dt.timezone.utc), engine="http", status="ok",
                device_id="probe-1", commune_code="18673", server=Server(url="http://127.0.0.1/speedtest/"),
                link=Link(name="viettel", interface="wwan0", access="cellular", operator="Viettel"),
                download_mbps=42.5, upload_mbps=12.25, latency_ms=31.0, jitter_ms=2.5, bytes_down=50_000_000,
                bytes_up=15_000_000, duration_s=21.5, agent_version="0.1.0")
    base.update(overrides)
    for rate, moved in (("download_mbps", "bytes_down"), ("upload_mbps", "bytes_up")):
        if rate in overrides and moved not in overrides and overrides[rate]:
            base[moved] = int(overrides[rate] * 1e6 / 8 * 10)
    return Measurement(**base)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def have_netns() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None and shutil.which("tc") is not None \
        and subprocess.run(["ip", "netns", "list"], capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs: a disk that fills up for real."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill_disk(folder: Path) -> Path:
    """Fill the disk under folder with one file until the kernel says it is full; return that file."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass  # the disk is full
    return filler


def fake_mmcli(tmp_path: Path) -> Path:
    """A stand-in for mmcli (no modem exists here) printing the recorded output for each call."""
    script = tmp_path / "mmcli"
    script.write_text(f"""#!{sys.executable}
import sys
args = sys.argv[1:]
files = {{("-J", "-L"): "list-two.json", ("-J", "-m", "0"): "modem-lte.json",
          ("-J", "-m", "0", "--signal-get"): "signal-lte.json",
          ("-J", "-m", "0", "--location-get"): "location-lte.json",
          ("-J", "-m", "1"): "modem-5g-nsa.json", ("-J", "-m", "1", "--signal-get"): "signal-5g-nsa.json"}}
name = files.get(tuple(args))
if name is None:
    sys.exit(1)
print(open({str(REPO / 'tests' / 'fixtures' / 'mmcli')!r} + "/" + name).read())
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return tmp_path
