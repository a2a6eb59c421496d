"""Every connection one speedtest-cli run opens: made here, its answers bounded, cut at the deadline, counted by
the kernel, and reset when a direction ends so that nothing of it still crosses the link afterwards.

speedtest-cli reaches the network only through `opener(test)`: no answer is read past its planned size (a
random file's own size, a few KiB for an upload or latency answer, 1 MiB for speedtest.net's lists), nothing
arrives gzip-encoded, a file or an upload follows no redirect.
"""

from __future__ import annotations

import http.client
import socket
import threading
import urllib.request
from collections.abc import Callable
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from xaprobe import __version__
from xaprobe.agent.engines.base import NETWORK_ERRORS, EngineError
from xaprobe.agent.engines.limits import Deadline, LimitExceeded, bound_next_answer, cut_socket, deadline_s
from xaprobe.agent.engines.sockets import abort, tcp_counters
from xaprobe.agent.engines.speedtest_plan import LIST_ANSWER, answer_limit


def speedtest_module() -> ModuleType:
    """speedtest-cli, imported only when this engine runs: parsing a config imports the engine for its Settings,
    and a Pi should not load speedtest-cli unless the speedtest engine runs."""
    import speedtest

    return speedtest


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
        self._kernel = True
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
        with self._lock:
            counts = [tcp_counters(twin) for twin in self._twins]
            acked, received = self._settled
            if not self._kernel or any(c is None for c in counts):
                return None
        return acked + sum(c[0] for c in counts if c), received + sum(c[1] for c in counts if c)

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
                abort(twin)
                twin.close()
            self._twins = []

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

    def _open(self, req: urllib.request.Request, https: bool) -> Any:
        try:
            return self.do_open(self._connect(req, https), req)  # TLS: the default context, certificates checked
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
