"""Every connection one speedtest-cli run opens: made here, its answers bounded, cut at the deadline, counted by
the kernel, and reset when a direction ends so that nothing of it still crosses the link afterwards.

speedtest-cli reaches the network only through `opener(test)`: no answer is read past its planned size (a
random file's own size, a few KiB for an upload or latency answer, 1 MiB for speedtest.net's lists), nothing
arrives gzip-encoded, a file or an upload follows no redirect.

Files and uploads go over kept-alive connections (HTTP/1.1's default, as browsers send them): urllib, which
speedtest-cli is built on, asks `Connection: close` and opens a new connection for each of its ~90 requests, each
starting from TCP's initial window. A connection goes back to the test's idle ones once its answer is read to its
end, and is closed instead when speedtest-cli stops a file early, the server says it closes, or it has something
to read while idle (the server closed it). Kept alive alone they starved small files beside warm connections
(speedtest-cli joins its threads in order, so one such file held every new one): speedtest_client.busy runs the
requests so that a thread's next starts as soon as its own ends. The three latency.txt GETs still connect each
time (that is speedtest-cli's latency method). Through a proxy, urllib's own way.
"""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from xaprobe import __version__
from xaprobe.agent.engines.base import NETWORK_ERRORS, EngineError
from xaprobe.agent.engines.limits import (
    SMALL_ANSWER,
    Deadline,
    LimitExceeded,
    bound_next_answer,
    cut_socket,
    deadline_s,
)
from xaprobe.agent.engines.sockets import Arrivals, abort, tcp_counters
from xaprobe.agent.engines.speedtest_plan import LIST_ANSWER, answer_limit


def speedtest_module() -> ModuleType:
    """speedtest-cli, imported only when this engine runs: parsing a config imports the engine for its Settings,
    and a Pi should not load speedtest-cli unless the speedtest engine runs."""
    import speedtest

    return speedtest


def _dropped(sock: socket.socket) -> bool:
    """Whether an idle kept-alive connection has anything to read: its end (the server closed it), an error, or
    bytes nobody asked for; either way it is not reused. poll, not select: select cannot watch a descriptor
    numbered 1024 or more, which a long-running probe's may be."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class _KeptAnswer:
    """An answer on a kept-alive connection: read to its end, the connection goes back to the test's idle ones;
    closed before its end (speedtest-cli stops a file at its time limit), the connection is closed."""

    def __init__(self, response: http.client.HTTPResponse, give_back: Callable[[], None],
                 drop: Callable[[], None]):
        self._response, self._give_back, self._drop = response, give_back, drop
        self._settled = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)

    def _settle(self, whole: bool) -> None:
        if not self._settled:
            self._settled = True
            (self._give_back if whole else self._drop)()

    def read(self, amt: int | None = None) -> bytes:
        data = self._response.read(amt)
        if self._response.isclosed():  # http.client closes an answer once its last byte is read
            self._settle(True)
        return data

    def close(self) -> None:
        whole = self._response.isclosed()
        if not whole and self._response.length is not None and self._response.length <= SMALL_ANSWER:
            # an upload's answer ("size=N") of which speedtest-cli reads 11 bytes: the rest is read here
            with contextlib.suppress(*NETWORK_ERRORS, http.client.HTTPException):
                self._response.read()
                whole = self._response.isclosed()
        self._response.close()
        self._settle(whole)


class _WatchedHTTPS(http.client.HTTPSConnection):
    """A TLS connection whose socket, once wrapped, the test can still cut."""

    watch: Callable[[socket.socket], None]

    def connect(self) -> None:
        super().connect()
        self.watch(self.sock)


class Connections:
    """One speedtest-cli run's limits: every connection it opens is made here, watched, bounded and counted."""

    def __init__(self, where: str, source: str | None, timeout: float, transfer_s: float):
        self.source, self.timeout = ((source, 0) if source else None), timeout
        self.deadline = Deadline(deadline_s(transfer_s, timeout), where, self.cut)
        self.breach: EngineError | None = None
        self.crash: Exception | None = None  # a programming error met on one of speedtest-cli's threads
        self.received = 0  # bytes read through the test's answers, headers included
        self.user_agent = f"xaprobe/{__version__}"
        self._socks: list[socket.socket] = []
        # a second handle on every TCP socket of the test: the kernel's counts outlive speedtest-cli closing it.
        # It also keeps the connection open, so a file speedtest-cli stopped reading goes on arriving until
        # settle() resets it: each direction ends with settle()
        self._twins: list[socket.socket] = []
        self._settled = [0, 0]  # (acknowledged, received) of the connections settle() reset
        self._arrivals = Arrivals()  # and the data segments that arrived on every connection
        self._kernel = True
        # kept-alive connections between two answers, by (host, https): a file or an upload takes one when one is
        # idle, so each does not start a new TCP connection from its initial window (see _Handler)
        self._idle: dict[tuple[str, bool], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks = [s for s in self._socks if s.fileno() >= 0] + [sock]

    def cut(self) -> None:
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            cut_socket(sock)

    def breached(self, error: EngineError) -> None:
        """A server broke a limit: the test ends now (speedtest-cli would go on to its next file), every
        connection cut and no new one opened."""
        self.breach = self.breach or error
        self.cut()

    def count(self, n: int) -> None:
        self.received += n
        if self.breach is not None or self.deadline.expired.is_set():
            # a read on a connection the test cut: an I/O error, which speedtest-cli's threads end on quietly
            # (a bare end of stream makes http.client raise IncompleteRead, which they do not catch)
            raise LimitExceeded(str(self.breach) if self.breach else self.deadline.message)

    def _open_socket(self, address: tuple[str, int], timeout: object = None, source: object = None) -> socket.socket:
        if self.breach is not None:
            raise LimitExceeded(str(self.breach))
        sock = socket.create_connection(address, self.deadline.timeout(self.timeout), self.source)
        self.watch(sock)
        with self._lock:
            self._twins.append(sock.dup())
        return sock

    def kernel_counts(self) -> tuple[int, int] | None:
        """(bytes the servers acknowledged, bytes received) over every connection so far; None without TCP_INFO."""
        return self.reading()[0]

    def reading(self) -> tuple[tuple[int, int] | None, int | None]:
        """kernel_counts() and the data segments that arrived over every connection so far (None where a socket
        cannot say: rates.arrived then rates the download by its bytes), in one pass."""
        with self._lock:
            counts = [tcp_counters(twin) for twin in self._twins]
            if not self._kernel or any(c is None for c in counts):
                return None, None
            acked, received = self._settled
            segments = self._arrivals.over(self._twins)
        return (acked + sum(c[0] for c in counts if c), received + sum(c[1] for c in counts if c)), segments

    @property
    def mss(self) -> int:
        """The largest segment size a connection reported receiving."""
        return self._arrivals.mss

    def settle(self) -> None:
        """Reset every connection opened so far, its final counts kept: what speedtest-cli stopped reading or
        left in a send buffer no longer crosses the link (it would slow the next direction or the next test)."""
        with self._lock:
            for twin in self._twins:
                counts = tcp_counters(twin)
                if counts is None:
                    self._kernel = False
                else:
                    self._settled[0] += counts[0]
                    self._settled[1] += counts[1]
                self._arrivals.close(twin)
                abort(twin)
                twin.close()
            self._twins = []
            idle = [conn for conns in self._idle.values() for conn in conns]
            self._idle = {}
        for conn in idle:
            conn.close()

    def connection(self, host: str, https: bool, limit: int, what: str, **tls: Any) -> http.client.HTTPConnection:
        """A connection to host (host[:port]) whose answer is read `limit` bytes at most; cut at the deadline."""
        conn: http.client.HTTPConnection
        if https:
            conn = _WatchedHTTPS(host, timeout=self.timeout, context=tls.get("context"))
            conn.watch = self.watch
        else:
            conn = http.client.HTTPConnection(host, timeout=self.timeout)
        # http.client's own connect hook (private, so not in typeshed)
        conn._create_connection = self._open_socket  # type: ignore[attr-defined]
        bound_next_answer(conn, limit, what, self.count, self.breached)
        return conn

    def kept_connection(self, host: str, https: bool, limit: int, what: str) -> http.client.HTTPConnection:
        """An idle kept-alive connection to host that is still up, its next answer bounded anew, else a new one."""
        while True:
            with self._lock:
                idle = self._idle.get((host, https))
                conn = idle.pop() if idle else None
            if conn is None:
                return self.connection(host, https, limit, what)
            if conn.sock is not None and not _dropped(conn.sock):
                bound_next_answer(conn, limit, what, self.count, self.breached)
                return conn
            conn.close()

    def keep(self, host: str, https: bool, conn: http.client.HTTPConnection) -> None:
        """A connection whose answer was read to its end, for the next request to host (closed if the test is
        over or the server said it closes)."""
        if conn.sock is None or self.breach is not None or self.deadline.expired.is_set():
            conn.close()
            return
        with self._lock:
            self._idle.setdefault((host, https), []).append(conn)

    def check(self) -> None:
        """Raise what ended the test early: a programming error as itself, an answer past its limit, or the
        deadline."""
        if self.crash is not None:
            raise self.crash
        if self.breach is not None:
            raise EngineError(str(self.breach))
        if self.deadline.expired.is_set():
            raise EngineError(self.deadline.message)


class _Handler(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    """urllib's HTTP and HTTPS handling, every connection made by the test; asks for no compression (a gzip
    answer would be inflated whole in memory by speedtest-cli) and refuses one sent anyway."""

    def __init__(self, test: Connections):
        urllib.request.HTTPHandler.__init__(self)
        urllib.request.HTTPSHandler.__init__(self)
        self.test = test

    def _connect(self, req: urllib.request.Request, https: bool) -> Any:
        limit, what = answer_limit(req.get_method(), req.full_url)
        return lambda host, timeout=None, **tls: self.test.connection(host, https, limit, what, **tls)

    def _kept_open(self, req: urllib.request.Request, https: bool) -> Any:
        """urllib's do_open on a kept-alive connection: the same headers without its `Connection: close`."""
        limit, what = answer_limit(req.get_method(), req.full_url)
        host = req.host
        conn = self.test.kept_connection(host, https, limit, what)
        headers = dict(req.unredirected_hdrs)
        headers.update({k: v for k, v in req.headers.items() if k not in headers})
        headers = {name.title(): value for name, value in headers.items()}
        try:
            conn.request(req.get_method(), req.selector, req.data, headers,
                         encode_chunked=req.has_header("Transfer-encoding"))
            response = conn.getresponse()
        except OSError as e:
            conn.close()
            raise urllib.error.URLError(e) from e
        except BaseException:
            conn.close()
            raise
        response.url, response.msg = req.get_full_url(), response.reason  # type: ignore[assignment]
        return _KeptAnswer(response, lambda: self.test.keep(host, https, conn), conn.close)

    def _open(self, req: urllib.request.Request, https: bool) -> Any:
        try:
            if req.has_proxy():  # through a proxy: urllib's own way, a connection per request
                return self.do_open(self._connect(req, https), req)  # TLS: the default context, certificates checked
            return self._kept_open(req, https)
        except NETWORK_ERRORS:
            raise
        except speedtest_module().SpeedtestUploadTimeout:
            raise  # speedtest-cli's own end of an upload at its time limit, raised from its body's read()
        except Exception as e:
            # on speedtest-cli's threads a programming error would only be printed: the test raises it at the end
            self.test.crash = self.test.crash or e
            raise

    def http_open(self, req: urllib.request.Request) -> Any:
        return self._open(req, False)

    def https_open(self, req: urllib.request.Request) -> Any:
        return self._open(req, True)

    def _request(self, request: urllib.request.Request) -> urllib.request.Request:
        request = self.do_request_(request)
        request.remove_header("Accept-encoding")
        return request

    def _response(self, req: urllib.request.Request, resp: Any) -> Any:
        if resp.headers.get("Content-Encoding", "identity").lower() != "identity":
            breach = LimitExceeded(f"{urlsplit(req.full_url).path}: the server sent a compressed answer though "
                                   "none was asked for")
            self.test.breached(breach)
            raise breach
        return resp

    http_request = https_request = _request
    http_response = https_response = _response


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Redirects for speedtest.net's lists only: a file or an upload answered by a redirect ends the test (a
    test server that sends its files elsewhere is not the server being measured)."""

    def __init__(self, test: Connections):
        self.test = test

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> urllib.request.Request | None:
        if answer_limit(req.get_method(), req.full_url)[0] != LIST_ANSWER:
            where = urlsplit(req.full_url).path.rsplit("/", 1)[-1]
            self.test.breached(EngineError(f"{where}: the server answered {code} redirecting to {newurl[:200]}; "
                                           "a test file follows no redirect"))
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def opener(test: Connections, user_agent: str) -> urllib.request.OpenerDirector:
    """The only opener speedtest-cli is given: every request through the test's connections and limits."""
    director = urllib.request.OpenerDirector()
    director.addheaders = [("User-agent", user_agent)]
    for handler in (urllib.request.ProxyHandler(), _Handler(test), urllib.request.HTTPDefaultErrorHandler(),
                    _Redirects(test), urllib.request.HTTPErrorProcessor()):
        director.add_handler(handler)
    return director
