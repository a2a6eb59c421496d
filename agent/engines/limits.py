"""A test's hard limits, whatever the server does: answers that cannot be read past a byte ceiling (status
line and headers included), and one overall deadline after which every socket of the test is cut."""

from __future__ import annotations

import contextlib
import functools
import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from xaprobe.agent.engines.base import EngineError

HEAD_ROOM = 16 * 1024  # status line and headers of one answer: LibreSpeed and Ookla servers send well under 1 KiB
SMALL_ANSWER = 8 * 1024  # a ping, getIP, upload or latency.txt answer: headers and a few bytes of body
GRACE_S = 10.0  # beyond the transfers: a dozen idle round trips, connection set-ups, the joins after each direction


def deadline_s(transfer_s: float, timeout_s: float) -> float:
    """Seconds a whole test may take: its transfers, a fixed grace, and two operation timeouts (so one slow
    connect and one slow answer still fit on a poor link)."""
    return transfer_s + GRACE_S + 2 * timeout_s


class LimitExceeded(EngineError, OSError):
    """A server sent more than the test allows. An OSError too, so a library that unwinds on I/O errors
    (speedtest-cli's threads) stops quietly; the engine keeps the reason and reports it."""


class DeadlinePassed(EngineError, TimeoutError):
    """The test's deadline passed before this operation could start (an OSError for the same reason)."""


def _ignore(_n: int) -> None:
    pass


class _LimitedReader:
    """A response's byte stream that counts every byte read from it and raises past `limit`."""

    def __init__(self, fp: Any, limit: int, what: str, on_read: Callable[[int], None],
                 on_breach: Callable[[LimitExceeded], None] | None):
        self._fp, self.limit, self.what, self.on_read, self.on_breach = fp, limit, what, on_read, on_breach
        self.count = 0

    def _room(self, n: int | None) -> int:
        left = self.limit - self.count + 1  # one byte more than allowed, to see that the server went over
        return left if n is None or n < 0 else min(n, left)

    def _took(self, n: int) -> None:
        self.count += n
        self.on_read(n)
        if self.count > self.limit:
            breach = LimitExceeded(f"{self.what}: the server sent more than {self.limit} bytes; stopped reading")
            if self.on_breach is not None:
                self.on_breach(breach)  # for callers whose library swallows I/O errors
            raise breach

    def read(self, n: int | None = -1) -> bytes:
        data = self._fp.read(self._room(n))
        self._took(len(data))
        return data

    def read1(self, n: int = -1) -> bytes:
        data = self._fp.read1(self._room(n))
        self._took(len(data))
        return data

    def readline(self, n: int = -1) -> bytes:
        data = self._fp.readline(self._room(n))
        self._took(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        got = self._fp.readinto(view[: self._room(len(view))])
        self._took(got or 0)
        return got

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fp, name)  # close, fileno, peek, flush: nothing read past the limit through them


class BoundedResponse(http.client.HTTPResponse):
    """http.client's answer, read through a _LimitedReader: `limit` bytes at most, headers included."""

    def __init__(self, sock: socket.socket, *args: Any, limit: int, what: str,
                 on_read: Callable[[int], None] = _ignore,
                 on_breach: Callable[[LimitExceeded], None] | None = None, **kwargs: Any):
        super().__init__(sock, *args, **kwargs)
        self.fp = _LimitedReader(self.fp, limit, what, on_read, on_breach)  # type: ignore[assignment]


def bound_next_answer(conn: http.client.HTTPConnection, limit: int, what: str,
                      on_read: Callable[[int], None] = _ignore,
                      on_breach: Callable[[LimitExceeded], None] | None = None) -> None:
    """Read the connection's next answer `limit` bytes at most, headers included, each byte told to on_read."""
    # http.client builds each answer with response_class(sock, method=...): any callable serves (typeshed
    # says a class)
    conn.response_class = functools.partial(  # type: ignore[assignment]
        BoundedResponse, limit=limit, what=what, on_read=on_read, on_breach=on_breach)


class Deadline:
    """One test's overall deadline: when it passes, `cut` runs once (it shuts the test's sockets down, so a
    blocked read returns at once) and `expired` is set; `message` says so in the user's terms."""

    def __init__(self, seconds: float, where: str, cut: Callable[[], None]):
        self.seconds, self.where, self._cut = seconds, where, cut
        self.expired = threading.Event()
        self._ends_at = time.monotonic() + seconds
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def _expire(self) -> None:
        self.expired.set()
        self._cut()

    def remaining(self) -> float:
        return max(0.0, self._ends_at - time.monotonic())

    def timeout(self, per_operation: float | None) -> float:
        """A socket timeout that ends by the deadline; raise EngineError once it has passed."""
        if self.expired.is_set() or self.remaining() <= 0:
            raise DeadlinePassed(self.message)
        return min(per_operation or self.seconds, self.remaining())

    @property
    def message(self) -> str:
        return (f"the test against {self.where} did not end within its deadline of {self.seconds:g} s "
                "(the server answered too slowly or never finished); stopped")

    @contextlib.contextmanager
    def running(self) -> Iterator["Deadline"]:
        self._ends_at = time.monotonic() + self.seconds
        self._timer.start()
        try:
            yield self
        finally:
            self._timer.cancel()


def cut_socket(sock: socket.socket | None) -> None:
    """Shut a connection down from another thread (its reader returns at once), through a second handle on
    its descriptor so a TLS socket's state is left alone; a socket already closed is left as it is."""
    if sock is None:
        return
    with contextlib.suppress(OSError, ValueError):
        fd = sock.fileno()
        if fd < 0:
            return
        twin = socket.fromfd(fd, sock.family, sock.type)
        try:
            twin.shutdown(socket.SHUT_RDWR)
        finally:
            twin.close()
