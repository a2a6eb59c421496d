"""The `http` engine: LibreSpeed's open protocol, several TCP streams, kernel-counted bytes.

Download: parallel GETs of `garbage?ckSize=N` (N MiB of random bytes). Upload: parallel POSTs to
`empty`. Latency: small GETs to `empty` on one kept-alive connection, idle and during the download.
Bytes are what the kernel says the peer acknowledged (upload) or what arrived (download), so data
still sitting in a send buffer is never counted as sent.
"""

from __future__ import annotations

import dataclasses
import functools
import http.client
import json
import os
import random
import threading
import time
from urllib.parse import urlsplit

from xaprobe import __version__
from xaprobe.agent.engines import rates
from xaprobe.agent.engines.base import EngineError, RunRequest, describe_error
from xaprobe.agent.engines.sockets import ByteMeter, abort, bound_connector, tcp_counters
from xaprobe.months import utc_now
from xaprobe.tomlschema import setting
from xaprobe.wire import Measurement, Server, new_id

MIB = 1 << 20
READ_SIZE = 256 * 1024
WRITE_SIZE = 128 * 1024
UPLOAD_BODY = 32 * MIB
DOWNLOAD_CHUNKS = 100
SAMPLE_EVERY_S = 0.05
MAX_SAMPLE_SPREAD_S = 0.002
PING_EVERY_S = 0.2
USER_AGENT = f"xaprobe/{__version__}"


@dataclasses.dataclass(frozen=True)
class Settings:
    """The [engines.http] table of agent.toml."""

    server: str = setting("", "A LibreSpeed-compatible server: the collector's own /speedtest/, a provincial "
                              "server, ...", url=True)
    paths: str = setting("plain", '"plain" for /garbage, /empty, /getIP; "php" for LibreSpeed\'s garbage.php, '
                                  "empty.php, getIP.php.", choices=("plain", "php"))
    streams: int = setting(4, "Parallel TCP streams per direction.", low=1, high=32)
    duration_s: float = setting(10.0, "Seconds per direction.", low=1.0, high=120.0)
    cap_mb: float = setting(0.0, "At most this many MB per direction per test (0: no cap). The planner caps tests "
                                 "by itself when a link's monthly budget runs short.")
    latency_samples: int = setting(12, "Idle latency round trips.", low=10, high=100)
    timeout_s: float = setting(10.0, "Timeout in seconds for each network operation.", low=1.0, high=120.0)


@dataclasses.dataclass(frozen=True)
class Endpoints:
    """Where a LibreSpeed-compatible server answers, derived from its base URL."""

    scheme: str
    host: str
    port: int
    garbage: str
    empty: str
    get_ip: str

    @classmethod
    def from_url(cls, url: str, style: str = "plain") -> "Endpoints":
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EngineError(f"server must be an http:// or https:// URL, got {url!r}")
        base = parts.path if parts.path.endswith("/") else parts.path + "/"
        ext = ".php" if style == "php" else ""
        return cls(parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                   base + "garbage" + ext, base + "empty" + ext, base + "getIP" + ext)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


class _Budget:
    """A byte allowance shared fairly by the streams of one direction; 0 means unlimited."""

    def __init__(self, cap: int, streams: int):
        self.cap = cap
        self.left = cap
        self.hit = False
        self.piece = max(MIB, cap // (streams * 4)) if cap else 0
        self._lock = threading.Lock()

    def claim(self, want: int, unit: int = 1) -> int:
        """Grant up to want bytes (a multiple of unit), in small pieces when capped; 0 once spent."""
        if not self.cap:
            return want
        with self._lock:
            grant = min(want, self.piece, self.left) // unit * unit
            self.left -= grant
            if grant == 0:
                self.hit = True  # a stream wanted more and the cap said no: the test stopped at the cap
            return grant


class _Session:
    """Connections for one test, all bound to the link; aborts them all at once when asked."""

    def __init__(self, ep: Endpoints, request: RunRequest, timeout: float):
        self.ep = ep
        self.timeout = timeout
        self.connector = bound_connector(request.bind_interface, request.source_address, "cubic")
        self.stop = threading.Event()
        self._conns: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self.errors: list[str] = []
        self.bytes_down = 0  # over every connection of the test, as the kernel counted them
        self.bytes_up = 0

    def connection(self, meter: ByteMeter | None = None) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.ep.scheme == "https" else http.client.HTTPConnection
        conn = cls(self.ep.host, self.ep.port, timeout=self.timeout)
        # bind every socket to the link through http.client's own connect hook (private, so not in typeshed)
        conn._create_connection = self.connector  # type: ignore[attr-defined]
        conn.connect()
        if meter is not None:
            meter.attach(conn.sock)
        with self._lock:
            self._conns.append(conn)
        return conn

    def fail(self, error: BaseException) -> None:
        if not self.stop.is_set():
            self.errors.append(describe_error(error, self.ep.where))
        self.stop.set()

    def abort_all(self, meters: tuple[ByteMeter, ...] = ()) -> None:
        self.stop.set()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            if conn.sock is not None:
                counters = tcp_counters(conn.sock)
                for meter in meters:
                    meter.detach(conn.sock, counters)
                if counters:
                    self.bytes_up += counters[0]
                    self.bytes_down += counters[1]
            abort(conn.sock)
            conn.close()


_HEADERS = {"User-Agent": USER_AGENT, "Cache-Control": "no-cache"}


def _require_ok(resp: http.client.HTTPResponse, path: str) -> None:
    if resp.status != 200:
        raise EngineError(f"server answered {resp.status} {resp.reason} for {path}")


def _open_get(conn: http.client.HTTPConnection, path: str, query: str = "") -> http.client.HTTPResponse:
    """Send a GET (never cached on the way) and return its response once the status is 200."""
    conn.request("GET", f"{path}?{query}r={random.random()}", headers=_HEADERS)
    resp = conn.getresponse()
    _require_ok(resp, path)
    return resp


def _get(conn: http.client.HTTPConnection, path: str) -> bytes:
    return _open_get(conn, path).read()


def _ping(conn: http.client.HTTPConnection, path: str) -> float:
    start = time.perf_counter()
    _get(conn, path)
    return (time.perf_counter() - start) * 1000


def _download_stream(s: _Session, meter: ByteMeter, budget: _Budget) -> None:
    try:
        conn = s.connection(meter)
        while not s.stop.is_set():
            chunks = budget.claim(DOWNLOAD_CHUNKS * MIB, MIB) // MIB
            if not chunks:
                return
            resp = _open_get(conn, s.ep.garbage, f"ckSize={chunks}&")
            while not s.stop.is_set() and not resp.isclosed():
                data = resp.read1(READ_SIZE)
                if not data:
                    break
                meter.count_app(len(data))
            if not s.stop.is_set():
                resp.read()  # read1 leaves a fully read body open; this ends it so the next GET can go
    except Exception as e:  # noqa: BLE001 - any stream failure ends the test with its reason
        s.fail(e)


@functools.cache
def _payload() -> bytes:
    """Incompressible upload bytes, made on the first upload (not at import: parsing a config imports this
    module) and shared by every stream after it."""
    return os.urandom(MIB)


def _upload_stream(s: _Session, meter: ByteMeter, budget: _Budget) -> None:
    payload = memoryview(_payload())
    try:
        conn = s.connection(meter)
        while not s.stop.is_set():
            size = budget.claim(UPLOAD_BODY, WRITE_SIZE)
            if not size:
                return
            conn.putrequest("POST", f"{s.ep.empty}?r={random.random()}", skip_accept_encoding=True)
            conn.putheader("User-Agent", USER_AGENT)
            conn.putheader("Content-Type", "application/octet-stream")
            conn.putheader("Content-Length", str(size))
            conn.endheaders()
            sent = 0
            while sent < size and not s.stop.is_set():
                n = min(WRITE_SIZE, size - sent)
                offset = sent % (len(payload) - WRITE_SIZE)
                conn.send(payload[offset:offset + n])
                sent += n
                meter.count_app(n)
            if s.stop.is_set():
                return
            resp = conn.getresponse()
            resp.read()
            _require_ok(resp, s.ep.empty)
    except Exception as e:  # noqa: BLE001
        s.fail(e)


def _pinger(s: _Session, conn: http.client.HTTPConnection, out: list[float], until: threading.Event) -> None:
    try:
        while not until.wait(PING_EVERY_S) and not s.stop.is_set():
            out.append(_ping(conn, s.ep.empty))
    except Exception:  # noqa: BLE001 - a lost loaded-latency sample is not a failed test
        pass


def _transfer(s: _Session, upload: bool, streams: int, duration: float, cap: int,
              rtts_loaded: list[float] | None = None) -> tuple[float, int, bool]:
    """Run one direction; return (steady Mbit/s, bytes the app moved, capped)."""
    s.stop.clear()
    meter, budget = ByteMeter(upload), _Budget(cap, streams)
    target = _upload_stream if upload else _download_stream
    threads = [threading.Thread(target=target, args=(s, meter, budget), daemon=True) for _ in range(streams)]
    done = threading.Event()
    pinger = None
    if rtts_loaded is not None:
        ping_conn = s.connection()
        pinger = threading.Thread(target=_pinger, args=(s, ping_conn, rtts_loaded, done), daemon=True)
    start = time.perf_counter()
    for t in threads:
        t.start()
    if pinger:
        pinger.start()
    samples = [(0.0, 0)]
    deadline = start + duration
    while (now := time.perf_counter()) < deadline and not s.stop.is_set():
        time.sleep(min(SAMPLE_EVERY_S, max(0.0, deadline - now)))
        before = time.perf_counter()
        total = meter.total()
        after = time.perf_counter()
        # a sample whose reading took long (the sampler was descheduled on a busy board) cannot say
        # when its bytes were counted: it is left out rather than skew the rate
        if after - before <= MAX_SAMPLE_SPREAD_S:
            samples.append(((before + after) / 2 - start, total))
        if not any(t.is_alive() for t in threads):
            break
    done.set()
    s.abort_all((meter,))
    for t in threads + ([pinger] if pinger else []):
        t.join(timeout=5)
    if s.errors:
        raise EngineError(s.errors[0])
    if budget.hit:
        samples = rates.last_change(samples)
    return rates.steady_mbps(samples), meter.app_bytes, budget.hit


def _client_info(s: _Session) -> tuple[str, str]:
    try:
        body = _get(s.connection(), s.ep.get_ip)
        info = json.loads(body.decode("utf-8", "replace"))
        text = str(info.get("processedString", "")) if isinstance(info, dict) else ""
    except Exception:  # noqa: BLE001 - the client's address is context, not the measurement
        return "", ""
    ip, _, isp = text.partition(" - ")
    return ip.strip()[:64], isp.strip()[:200]


def run(request: RunRequest, settings: Settings, server: str | None = None) -> Measurement:
    """Measure latency, download and upload against a LibreSpeed server; failures are Measurements."""
    started = utc_now()
    clock = time.perf_counter()
    url = server or settings.server
    cap = request.cap_bytes or int(settings.cap_mb * 1_000_000)
    base = Measurement(id=new_id(), started_at=started, engine="http", status="failed",
                       server=Server(url=url, name=urlsplit(url).hostname or ""), link=request.link,
                       agent_version=__version__)
    if not url:
        return dataclasses.replace(base, error="no server given (set engines.http.server or use --server URL)")
    used_down = used_up = 0
    s = None
    try:
        ep = Endpoints.from_url(url, settings.paths)
        s = _Session(ep, request, settings.timeout_s)
        conn = s.connection()
        _ping(conn, ep.empty)  # warm-up: connection set-up is not latency
        idle = [_ping(conn, ep.empty) for _ in range(settings.latency_samples)]
        s.abort_all()
        latency, jitter = rates.latency_stats(idle)
        ip, isp = _client_info(s)
        loaded: list[float] = []
        down, app_down, cap_down = _transfer(s, False, settings.streams, settings.duration_s, cap, loaded)
        time.sleep(0.2)  # let the download's last packets drain before the upload starts
        up, app_up, cap_up = _transfer(s, True, settings.streams, settings.duration_s, cap)
        used_down, used_up = s.bytes_down or app_down, s.bytes_up or app_up  # app counts only off Linux
    except Exception as e:  # noqa: BLE001 - every failure becomes a failed Measurement
        if s is not None:
            s.abort_all()
        where = f"{urlsplit(url).hostname}:{urlsplit(url).port or ''}".rstrip(":")
        return dataclasses.replace(base, error=describe_error(e, where), bytes_down=s.bytes_down if s else 0,
                                   bytes_up=s.bytes_up if s else 0, duration_s=round(time.perf_counter() - clock, 3))
    loaded_latency, _ = rates.latency_stats(loaded)
    return dataclasses.replace(
        base, status="ok", download_mbps=round(down, 3), upload_mbps=round(up, 3),
        latency_ms=round(latency, 3) if latency is not None else None,
        jitter_ms=round(jitter, 3) if jitter is not None else None,
        loaded_latency_ms=round(loaded_latency, 3) if loaded_latency is not None else None,
        bytes_down=used_down, bytes_up=used_up, capped=cap_down or cap_up, client_ip=ip, isp=isp,
        duration_s=round(time.perf_counter() - clock, 3))
