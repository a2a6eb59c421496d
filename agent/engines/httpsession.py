"""One http-engine test's connections and byte allowance: every socket it opens, reconnects included, bound to
the link and followed through a second handle so that the kernel's counts of each are summed when it closes.

When a socket cannot give the kernel's counts (no TCP_INFO), the session says so (`kernel_counts` False) and
the test reports what the program read and wrote instead, for every figure, never a mix of the two.
"""

from __future__ import annotations

import dataclasses
import functools
import http.client
import random
import socket
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from xaprobe import __version__
from xaprobe.agent.engines.base import EngineError, RunRequest, describe_error
from xaprobe.agent.engines.limits import SMALL_ANSWER, Deadline, bound_next_answer
from xaprobe.agent.engines.sockets import ByteMeter, abort, bound_connector, tcp_counters

MIB = 1 << 20
USER_AGENT = f"xaprobe/{__version__}"


@dataclasses.dataclass(frozen=True)
class Endpoints:
    """Where a LibreSpeed-compatible server answers: derived from its base URL, or named one by one (a
    server list's dlURL, ulURL, pingURL, getIpURL). `empty` is what pings GET, `upload` what uploads POST to."""

    scheme: str
    host: str
    port: int
    garbage: str
    empty: str
    get_ip: str
    upload: str

    @classmethod
    def from_url(cls, url: str, style: str = "plain") -> "Endpoints":
        base = _folder(url)
        ext = ".php" if style == "php" else ""
        return cls.at(url, base + "garbage" + ext, base + "empty" + ext, base + "getIP" + ext, base + "empty" + ext)

    @classmethod
    def at(cls, url: str, garbage: str, empty: str, get_ip: str, upload: str) -> "Endpoints":
        """The server at url (its scheme, host and port) answering on these paths."""
        _folder(url)
        parts = urlsplit(url)
        return cls(parts.scheme, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80),
                   garbage, empty, get_ip, upload)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def _folder(url: str) -> str:
    """The path of the folder a server URL names, ending in "/"; raise EngineError unless an http(s) URL."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        raise EngineError(f"server must be an http:// or https:// URL, got {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EngineError(f"server must be an http:// or https:// URL, got {url!r}")
    return parts.path if parts.path.endswith("/") else parts.path + "/"


class Budget:
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


class Session:
    """Connections for one test, all bound to the link, each followed through a second handle on its socket
    (the kernel's counters outlive http.client closing it); aborted all at once at the end of each phase
    and when the test's deadline passes, after which no new connection opens."""

    def __init__(self, ep: Endpoints, request: RunRequest, timeout: float, deadline: float, cap: int, streams: int):
        self.ep = ep
        self.timeout = timeout
        # the download direction's cap: every answer's bytes count against it, and so does whatever the kernel
        # took in beyond them (a server that sends more than its Content-Length, into a socket then closed)
        self.received = Budget(cap, streams, self.kernel_received)
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
        self.kernel_counts = True  # False once a socket could not say (no TCP_INFO): the test reports app counts
        self.app_down = 0  # what the test read and wrote itself, answers and bodies, for that case
        self.app_up = 0

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
            else:
                self.kernel_counts = False
        if entry[1] is not None:
            entry[1].detach(twin, counters)
        if cut:
            abort(twin)
        twin.close()

    def count_app(self, down: int = 0, up: int = 0) -> None:
        with self._lock:
            self.app_down += down
            self.app_up += up

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


HEADERS = {"User-Agent": USER_AGENT, "Cache-Control": "no-cache"}


def require_ok(resp: http.client.HTTPResponse, path: str) -> None:
    if resp.status != 200:
        raise EngineError(f"server answered {resp.status} {resp.reason} for {path}")


def open_get(conn: http.client.HTTPConnection, path: str, limit: int, what: str, query: str = "",
              on_read: Callable[[int], None] | None = None) -> http.client.HTTPResponse:
    """Send a GET (never cached on the way) whose answer is read `limit` bytes at most; return it once 200."""
    if on_read is None:
        bound_next_answer(conn, limit, what)
    else:
        bound_next_answer(conn, limit, what, on_read)
    conn.request("GET", f"{path}?{query}r={random.random()}", headers=HEADERS)
    resp = conn.getresponse()
    require_ok(resp, path)
    return resp


def get_small(s: Session, conn: http.client.HTTPConnection, path: str, what: str) -> bytes:
    """A small answer (ping, getIP): a few KiB at most, counted against the cap."""
    return open_get(conn, path, SMALL_ANSWER, f"{path} ({what})", on_read=s.received.charge).read()


class Tally:
    """The bytes of every session one run opened (fetching its server list, pinging the candidates, the test
    itself), summed for its result: what the link carried for the test, as the monthly budget must count it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.down = self.up = self.app_down = self.app_up = 0
        self.kernel_counts = True

    def add(self, s: Session) -> None:
        """Keep a finished session's counts (after its close_all)."""
        with self._lock:
            self.down += s.bytes_down
            self.up += s.bytes_up
            self.app_down += s.app_down
            self.app_up += s.app_up
            self.kernel_counts = self.kernel_counts and s.kernel_counts
