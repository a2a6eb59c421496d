"""Latency samples for the http engine, taken the most honest way the server allows.

On a server that keeps connections alive, a sample is one small GET of `empty` on a connection already
open ("http-keepalive"); when a keep-alive limit closed it, the next connection is opened before the clock
starts, so set-up is never inside a sample. A server that closes after every answer (PHP's built-in server)
would put a TCP handshake in every GET, and one that serves one request at a time would queue the GET behind
a download: there a sample is the TCP handshake alone ("tcp-connect"), which the server's kernel answers
whatever its workers are doing.
"""

from __future__ import annotations

import contextlib
import http.client
import time

from xaprobe.agent.engines.httpsession import Session, get_small
from xaprobe.agent.engines.sockets import abort

KEEPALIVE = "http-keepalive"
TCP_CONNECT = "tcp-connect"


class Pinger:
    """One series of latency samples against the session's server, by `method` (found by `warm_up`)."""

    def __init__(self, s: Session, method: str = KEEPALIVE):
        self.s = s
        self.method = method
        self.conn: http.client.HTTPConnection | None = s.connection() if method == KEEPALIVE else None

    def warm_up(self) -> None:
        """One untimed GET (connection set-up is not latency); it tells whether the server keeps connections."""
        assert self.conn is not None
        get_small(self.s, self.conn, self.s.ep.empty, "a ping answer")
        if self.conn.sock is None:  # http.client closed it: the server said "Connection: close"
            self.method = TCP_CONNECT
            self.conn.close()
            self.conn = None

    def sample(self) -> float:
        """One round trip in ms."""
        if self.conn is None:
            return self._connect_ms()
        if self.conn.sock is None:
            self.conn.connect()  # a keep-alive limit closed the last one: opened before the clock starts
        start = time.perf_counter()
        get_small(self.s, self.conn, self.s.ep.empty, "a ping answer")
        return (time.perf_counter() - start) * 1000

    def _connect_ms(self) -> float:
        s = self.s
        start = time.perf_counter()
        sock = s.connector((s.ep.host, s.ep.port), s.deadline.timeout(s.timeout))
        took = (time.perf_counter() - start) * 1000
        with contextlib.closing(sock):
            abort(sock)  # nothing was sent: a reset leaves no TIME-WAIT behind on either side
        return took
