"""Sockets bound to a link, and the kernel's own byte counters for them (Linux TCP_INFO)."""

from __future__ import annotations

import socket
import struct
import threading

_TCP_INFO_LEN = 232
_BYTES_ACKED = struct.Struct("=Q")  # struct tcp_info: tcpi_bytes_acked at offset 120
_BYTES_ACKED_OFF = 120
_BYTES_RECEIVED_OFF = 128
_U32 = struct.Struct("=I")
_RCV_MSS_OFF = 20  # tcpi_rcv_mss: the size of the peer's full segments
_DATA_SEGS_IN_OFF = 152  # tcpi_data_segs_in (Linux 4.6 on)
_SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


def bound_connector(interface: str, source_address: str, congestion: str = ""):
    """Return a create_connection-like callable that binds to the interface and/or source address."""

    def connect(address, timeout=None, source=None):
        host, port = address
        error: OSError | None = None
        for family, kind, proto, _, sockaddr in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
            sock = socket.socket(family, kind, proto)
            try:
                if interface:
                    sock.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, interface.encode() + b"\0")
                if source_address:
                    sock.bind((source_address, 0))
                if congestion:
                    try:
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, congestion.encode())
                    except OSError:
                        pass  # not available or not allowed: the system default serves
                sock.settimeout(timeout)
                sock.connect(sockaddr)
                return sock
            except OSError as e:
                sock.close()
                error = e
        raise error or OSError(f"no address for {host}")

    return connect


def _tcp_info(sock: socket.socket, needed: int) -> bytes | None:
    """The socket's struct tcp_info, or None off Linux or where the kernel's is shorter than needed."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
    except (OSError, AttributeError):
        return None
    return info if len(info) >= needed else None


def tcp_counters(sock: socket.socket) -> tuple[int, int] | None:
    """Return (bytes acked by the peer, bytes received) from TCP_INFO, or None off Linux."""
    info = _tcp_info(sock, _BYTES_RECEIVED_OFF + 8)
    if info is None:
        return None
    return (_BYTES_ACKED.unpack_from(info, _BYTES_ACKED_OFF)[0],
            _BYTES_ACKED.unpack_from(info, _BYTES_RECEIVED_OFF)[0])


def tcp_arrivals(sock: socket.socket) -> tuple[int, int] | None:
    """Return (data segments that arrived, the peer's segment size) from TCP_INFO, or None where the kernel
    does not say. Segments count as they arrive, out of order and duplicates included, while the bytes
    received count only once they are in order: during loss recovery the bytes lag, the segments do not."""
    info = _tcp_info(sock, _DATA_SEGS_IN_OFF + 4)
    if info is None:
        return None
    return _U32.unpack_from(info, _DATA_SEGS_IN_OFF)[0], _U32.unpack_from(info, _RCV_MSS_OFF)[0]


def abort(sock: socket.socket | None) -> None:
    """Reset the connection now, dropping unsent data, so no traffic trails into the next test."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Arrivals:
    """The data segments that arrived over a test's sockets (tcp_arrivals), the closed ones' final counts kept,
    and the largest segment size any reported; `known` turns False for good once a socket could not say. Its
    owner holds its own lock around every call."""

    def __init__(self) -> None:
        self.closed = 0
        self.mss = 0
        self.known = True

    def over(self, socks: list[socket.socket]) -> int | None:
        """The closed sockets' segments plus those that arrived on socks so far; None once any could not say."""
        total = self.closed
        for sock in socks:
            arrivals = tcp_arrivals(sock) if self.known else None
            if arrivals is None:
                self.known = False
                return None
            self.mss = max(self.mss, arrivals[1])
            total += arrivals[0]
        return total

    def close(self, sock: socket.socket) -> None:
        """Keep the final count of a socket about to close."""
        total = self.over([sock])
        if total is not None:
            self.closed = total


class ByteMeter:
    """Sum one direction's bytes over several sockets: kernel counters, else what the app moved; for a
    download also the data segments that arrived (tcp_arrivals), while every socket can say."""

    def __init__(self, upload: bool):
        self._index = 0 if upload else 1
        self._lock = threading.Lock()
        self._live: list[socket.socket] = []
        self._closed = 0
        self._app = 0
        self.kernel = True
        self._arrivals = Arrivals()
        self._upload = upload

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._live.append(sock)

    def detach(self, sock: socket.socket, counters: tuple[int, int] | None) -> None:
        """Stop following a socket about to close; its final counters (tcp_counters) are kept."""
        with self._lock:
            if sock in self._live:
                self._closed += counters[self._index] if counters else 0
                if not self._upload:
                    self._arrivals.close(sock)
                self._live.remove(sock)

    @property
    def segments(self) -> bool:
        """Whether a download's segments are still known (False for an upload, or once a socket could not say)."""
        return not self._upload and self._arrivals.known

    @property
    def mss(self) -> int:
        """The largest segment size a socket reported receiving."""
        return self._arrivals.mss

    def count_app(self, n: int) -> None:
        with self._lock:
            self._app += n

    @property
    def app_bytes(self) -> int:
        return self._app

    def reading(self) -> tuple[int, int | None]:
        """(bytes so far, data segments arrived so far or None where the sockets cannot say or for an upload)."""
        with self._lock:
            total = self._closed
            for sock in self._live:
                counters = tcp_counters(sock)
                if counters is None:
                    self.kernel = False
                    break
                total += counters[self._index]
            segments = self._arrivals.over(self._live) if self.kernel and not self._upload else None
            return (total if self.kernel else self._app), segments
