"""The `http` engine: LibreSpeed's open protocol, several TCP streams, kernel-counted bytes.

Download: parallel GETs of `garbage?ckSize=N` (N MiB of random bytes). Upload: parallel POSTs to
`empty`. Latency: small GETs to `empty` on one kept-alive connection, idle and during the download.
Bytes are what the kernel says the peer acknowledged (upload) or what arrived (download), so data
still sitting in a send buffer is never counted as sent. Every answer is read through a byte ceiling
(what was asked for, or a few KiB for a ping or getIP) and counts against the cap; the whole test
ends by its deadline (agent/engines/limits.py), whatever the server does.
"""

from __future__ import annotations

import dataclasses
import functools
import http.client
import json
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from xaprobe import __version__
from xaprobe.agent.engines import rates
from xaprobe.agent.engines.base import NETWORK_ERRORS, EngineError, RunRequest, describe_error
from xaprobe.agent.engines.limits import HEAD_ROOM, SMALL_ANSWER, Deadline, LimitExceeded, bound_next_answer, deadline_s
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

    def __init__(self, cap: int, streams: int, moved: Callable[[], int] | None = None):
        self.cap = cap
        self.left = cap
        self.hit = False
        self.piece = max(MIB, cap // (streams * 4)) if cap else 0
        self.moved = moved  # what the kernel says arrived: bytes a server sent past its answers count too
        self._lock = threading.Lock()

    def claim(self, want: int, unit: int = 1) -> int:
        """Grant up to want bytes (a multiple of unit), in small pieces when capped; 0 once spent."""
        if not self.cap:
            return want
        arrived = self.moved() if self.moved else 0
        with self._lock:
            grant = min(want, self.piece, self.left, max(0, self.cap - arrived)) // unit * unit
            self.left -= grant
            if grant == 0:
                self.hit = True  # a stream wanted more and the cap said no: the test stopped at the cap
            return grant

    def refund(self, n: int) -> None:
        """Give back what a granted answer did not bring (a server may send less than asked)."""
        if self.cap:
            with self._lock:
                self.left = min(self.cap, self.left + n)

    def charge(self, n: int) -> None:
        """Count bytes read outside the granted pieces (pings, getIP, upload answers) against the cap."""
        if self.cap:
            with self._lock:
                self.left = max(0, self.left - n)

    @property
    def spent(self) -> bool:
        return bool(self.cap) and self.left <= 0


class _Session:
    """Connections for one test, all bound to the link, each followed through a second handle on its socket
    (the kernel's counters outlive http.client closing it); aborted all at once at the end of each phase
    and when the test's deadline passes, after which no new connection opens."""

    def __init__(self, ep: Endpoints, request: RunRequest, timeout: float, deadline: float, cap: int, streams: int):
        self.ep = ep
        self.timeout = timeout
        # the download direction's cap: every answer's bytes count against it, and so does whatever the kernel
        # took in beyond them (a server that sends more than its Content-Length, into a socket then closed)
        self.received = _Budget(cap, streams, self.kernel_received)
        self.connector = bound_connector(request.bind_interface, request.source_address, "cubic")
        self.deadline = Deadline(deadline, ep.where, self.abort_all)
        self.stop = threading.Event()
        self._conns: list[http.client.HTTPConnection] = []
        self._twins: list[tuple[socket.socket, ByteMeter | None]] = []
        self._lock = threading.Lock()
        self.errors: list[str] = []
        self.crash: BaseException | None = None
        self.bytes_down = 0  # over every connection of the test, as the kernel counted them
        self.bytes_up = 0

    def connection(self, meter: ByteMeter | None = None) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.ep.scheme == "https" else http.client.HTTPConnection
        conn = cls(self.ep.host, self.ep.port, timeout=self.timeout)
        # every socket of this connection, reconnects included, is opened through the session (http.client's
        # own connect hook: private, so not in typeshed)
        conn._create_connection = functools.partial(self._open_socket, meter, [])  # type: ignore[attr-defined]
        with self._lock:
            self._conns.append(conn)
        conn.connect()
        return conn

    def _open_socket(self, meter: ByteMeter | None, previous: list[socket.socket], address: tuple[str, int],
                     timeout: float | None = None, source: object = None) -> socket.socket:
        # http.client reconnects by itself after a server closed following its answer; by then the last
        # socket is done: its counters are kept and its second handle let go
        for twin in previous:
            self._retire(twin, cut=False)
        previous.clear()
        sock = self.connector(address, self.deadline.timeout(timeout))
        twin = sock.dup()
        with self._lock:
            self._twins.append((twin, meter))
        if meter is not None:
            meter.attach(twin)
        previous.append(twin)
        return sock

    def kernel_received(self) -> int:
        """Bytes the kernel took in over every connection of the test so far."""
        with self._lock:
            live = [tcp_counters(twin) for twin, _ in self._twins]
            return self.bytes_down + sum(c[1] for c in live if c)

    def _retire(self, twin: socket.socket, cut: bool) -> None:
        with self._lock:
            entry = next((e for e in self._twins if e[0] is twin), None)
            if entry is None:
                return
            self._twins.remove(entry)
            counters = tcp_counters(twin)
            if counters:
                self.bytes_up += counters[0]
                self.bytes_down += counters[1]
        if entry[1] is not None:
            entry[1].detach(twin, counters)
        if cut:
            abort(twin)
        twin.close()

    def fail(self, error: BaseException) -> None:
        """A stream failed: the test ends now, every connection cut at once so that no more bytes arrive for
        it (a server past its limit keeps sending until the connection is reset)."""
        if not self.stop.is_set():
            self.errors.append(describe_error(error, self.ep.where))
        self.abort_all()

    def crashed(self, error: BaseException) -> None:
        """A programming error in a stream: the test stops and run() raises it, never stored as data."""
        self.crash = self.crash or error
        self.stop.set()

    def abort_all(self) -> None:
        """Reset every connection now (from any thread: the readers see the end at once); close them once the
        threads that used them are done (close_all), since http.client objects are not for two threads."""
        self.stop.set()
        with self._lock:
            twins = [twin for twin, _ in self._twins]
        for twin in twins:
            self._retire(twin, cut=True)

    def close_all(self) -> None:
        self.abort_all()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()

    def raise_crash(self) -> None:
        if self.crash is not None:
            raise self.crash

    def check(self) -> None:
        """Raise what ended the test early: a programming error as itself, a passed deadline as its reason."""
        self.raise_crash()
        if self.deadline.expired.is_set():
            raise EngineError(self.deadline.message)


_HEADERS = {"User-Agent": USER_AGENT, "Cache-Control": "no-cache"}


def _require_ok(resp: http.client.HTTPResponse, path: str) -> None:
    if resp.status != 200:
        raise EngineError(f"server answered {resp.status} {resp.reason} for {path}")


def _open_get(conn: http.client.HTTPConnection, path: str, limit: int, what: str, query: str = "",
              on_read: Callable[[int], None] | None = None) -> http.client.HTTPResponse:
    """Send a GET (never cached on the way) whose answer is read `limit` bytes at most; return it once 200."""
    if on_read is None:
        bound_next_answer(conn, limit, what)
    else:
        bound_next_answer(conn, limit, what, on_read)
    conn.request("GET", f"{path}?{query}r={random.random()}", headers=_HEADERS)
    resp = conn.getresponse()
    _require_ok(resp, path)
    return resp


def _get_small(s: _Session, conn: http.client.HTTPConnection, path: str, what: str) -> bytes:
    """A small answer (ping, getIP): a few KiB at most, counted against the cap."""
    return _open_get(conn, path, SMALL_ANSWER, f"{path} ({what})", on_read=s.received.charge).read()


def _ping(s: _Session, conn: http.client.HTTPConnection) -> float:
    start = time.perf_counter()
    _get_small(s, conn, s.ep.empty, "a ping answer")
    return (time.perf_counter() - start) * 1000


def _read_download(s: _Session, conn: http.client.HTTPConnection, meter: ByteMeter, chunks: int) -> None:
    asked = chunks * MIB
    resp = _open_get(conn, s.ep.garbage, asked + HEAD_ROOM, f"{s.ep.garbage} ({chunks} MiB asked)",
                     f"ckSize={chunks}&")
    got = 0
    while not s.stop.is_set() and not resp.isclosed():
        data = resp.read1(READ_SIZE)
        if not data:
            break
        got += len(data)
        meter.count_app(len(data))
    if not s.stop.is_set():
        resp.read()  # read1 leaves a fully read body open; this ends it so the next GET can go
        s.received.refund(asked - got)  # a server may send less than asked (its own ckSize limit)


def _download_stream(s: _Session, meter: ByteMeter) -> None:
    try:
        conn = s.connection(meter)
        while not s.stop.is_set():
            chunks = s.received.claim(DOWNLOAD_CHUNKS * MIB, MIB) // MIB
            if not chunks:
                return
            _read_download(s, conn, meter, chunks)
    except NETWORK_ERRORS as e:
        s.fail(e)
    except Exception as e:  # noqa: BLE001 - not caught: handed to run(), which raises it
        s.crashed(e)


@functools.cache
def _payload() -> bytes:
    """Incompressible upload bytes, made on the first upload (not at import: parsing a config imports this
    module) and shared by every stream after it."""
    return os.urandom(MIB)


def _post(s: _Session, conn: http.client.HTTPConnection, meter: ByteMeter, size: int) -> bool:
    """Send one upload body of size bytes; return False when the test stopped before it was answered."""
    payload = memoryview(_payload())
    bound_next_answer(conn, SMALL_ANSWER, f"{s.ep.empty} (an upload answer)", s.received.charge)
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
        return False
    resp = conn.getresponse()
    resp.read()
    _require_ok(resp, s.ep.empty)
    return True


def _upload_stream(s: _Session, meter: ByteMeter, budget: _Budget) -> None:
    try:
        conn = s.connection(meter)
        while not s.stop.is_set():
            size = budget.claim(UPLOAD_BODY, WRITE_SIZE)
            if not size or not _post(s, conn, meter, size):
                return
    except NETWORK_ERRORS as e:
        s.fail(e)
    except Exception as e:  # noqa: BLE001 - not caught: handed to run(), which raises it
        s.crashed(e)


def _pinger(s: _Session, conn: http.client.HTTPConnection, out: list[float], until: threading.Event) -> None:
    try:
        while not until.wait(PING_EVERY_S) and not s.stop.is_set() and not s.received.spent:
            out.append(_ping(s, conn))
    except NETWORK_ERRORS:
        pass  # a lost loaded-latency sample is not a failed test
    except Exception as e:  # noqa: BLE001 - not caught: handed to run(), which raises it
        s.crashed(e)


def _sample(s: _Session, meter: ByteMeter, threads: list[threading.Thread], duration: float) -> list[tuple[float, int]]:
    """Cumulative (s, bytes) readings every SAMPLE_EVERY_S until duration, the streams' end or a stop."""
    start = time.perf_counter()
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
    return samples


def _transfer(s: _Session, upload: bool, streams: int, duration: float, cap: int,
              rtts_loaded: list[float] | None = None) -> tuple[float, int, bool]:
    """Run one direction; return (steady Mbit/s, bytes the app moved, capped)."""
    s.check()
    s.stop.clear()
    meter = ByteMeter(upload)
    budget = _Budget(cap, streams) if upload else s.received
    threads = [threading.Thread(target=_upload_stream, args=(s, meter, budget), daemon=True) if upload else
               threading.Thread(target=_download_stream, args=(s, meter), daemon=True) for _ in range(streams)]
    done = threading.Event()
    pinger = None
    if rtts_loaded is not None:
        pinger = threading.Thread(target=_pinger, args=(s, s.connection(), rtts_loaded, done), daemon=True)
    for t in threads + ([pinger] if pinger else []):
        t.start()
    samples = _sample(s, meter, threads, duration)
    done.set()
    s.abort_all()
    for t in threads + ([pinger] if pinger else []):
        t.join(timeout=5)
    s.close_all()
    s.check()
    if s.errors:
        raise EngineError(s.errors[0])
    if budget.hit:
        samples = rates.last_change(samples)
    mbps = rates.steady_mbps(samples)
    if round(mbps, 3) <= 0:  # under 1 kbit/s (a drip of header bytes) is stored as 0: nothing measured
        way = "was taken by" if upload else "arrived from"
        raise EngineError(f"nothing {way} {s.ep.where} in {duration:g} s of {'upload' if upload else 'download'}")
    return mbps, meter.app_bytes, budget.hit


_INFO_ERRORS: tuple[type[Exception], ...] = (*NETWORK_ERRORS, ValueError)  # ValueError: getIP not JSON


def _client_info(s: _Session) -> tuple[str, str]:
    try:
        body = _get_small(s, s.connection(), s.ep.get_ip, "a getIP answer")
        info = json.loads(body.decode("utf-8", "replace"))
        text = str(info.get("processedString", "")) if isinstance(info, dict) else ""
    except LimitExceeded:
        raise  # a getIP answer of megabytes is a server that lies, not a missing endpoint
    except _INFO_ERRORS:
        s.check()
        return "", ""  # the client's address is context, not the measurement
    ip, _, isp = text.partition(" - ")
    return ip.strip()[:64], isp.strip()[:200]


@dataclasses.dataclass(frozen=True)
class _Figures:
    down: float
    up: float
    latency: float | None
    jitter: float | None
    loaded: float | None
    capped: bool
    ip: str
    isp: str
    app_down: int  # what the app read and wrote, for systems without kernel counters
    app_up: int


def _measure(s: _Session, settings: Settings, cap: int) -> _Figures:
    conn = s.connection()
    _ping(s, conn)  # warm-up: connection set-up is not latency
    idle = [_ping(s, conn) for _ in range(settings.latency_samples)]
    s.close_all()
    latency, jitter = rates.latency_stats(idle)
    ip, isp = _client_info(s)
    loaded: list[float] = []
    down, app_down, cap_down = _transfer(s, False, settings.streams, settings.duration_s, cap, loaded)
    time.sleep(0.2)  # let the download's last packets drain before the upload starts
    up, app_up, cap_up = _transfer(s, True, settings.streams, settings.duration_s, cap)
    loaded_latency, _ = rates.latency_stats(loaded)
    return _Figures(down, up, latency, jitter, loaded_latency, cap_down or cap_up, ip, isp, app_down, app_up)


def _rounded(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def run(request: RunRequest, settings: Settings, server: str | None = None) -> Measurement:
    """Measure latency, download and upload against a LibreSpeed server within one deadline; network
    failures are Measurements, programming errors are raised."""
    started = utc_now()
    clock = time.perf_counter()
    url = server or settings.server
    cap = request.cap_bytes or int(settings.cap_mb * 1_000_000)
    base = Measurement(id=new_id(), started_at=started, engine="http", status="failed",
                       server=Server(url=url, name=urlsplit(url).hostname or ""), link=request.link,
                       agent_version=__version__)
    if not url:
        return dataclasses.replace(base, error="no server given (set engines.http.server or use --server URL)")
    try:
        ep = Endpoints.from_url(url, settings.paths)
    except EngineError as e:
        return dataclasses.replace(base, error=str(e))
    s = _Session(ep, request, settings.timeout_s, deadline_s(2 * settings.duration_s, settings.timeout_s),
                 cap, settings.streams)
    with s.deadline.running():
        try:
            f = _measure(s, settings, cap)
        except NETWORK_ERRORS as e:
            s.close_all()
            s.raise_crash()  # a programming error in a stream is raised even when the network failed too
            error = s.deadline.message if s.deadline.expired.is_set() else describe_error(e, ep.where)
            return dataclasses.replace(base, error=error, bytes_down=s.bytes_down, bytes_up=s.bytes_up,
                                       duration_s=round(time.perf_counter() - clock, 3))
        finally:
            s.close_all()
    return dataclasses.replace(
        base, status="ok", download_mbps=round(f.down, 3), upload_mbps=round(f.up, 3),
        latency_ms=_rounded(f.latency), jitter_ms=_rounded(f.jitter), loaded_latency_ms=_rounded(f.loaded),
        bytes_down=s.bytes_down or f.app_down, bytes_up=s.bytes_up or f.app_up, capped=f.capped,
        client_ip=f.ip, isp=f.isp, duration_s=round(time.perf_counter() - clock, 3))
