"""A hostile HTTP server on loopback: each path misbehaves in one chosen way (endless, chunked, dripping,
redirecting, lying, resetting), counting what it sent. Bounded: every answer stops by itself.

Paths are matched exactly, else by the longest key ending in "*" that prefixes them ("*" alone: any path)."""

from __future__ import annotations

import dataclasses
import socket
import struct
import threading
import time
from collections.abc import Callable

MAX_SECONDS = 120.0  # no behaviour runs longer than this, whatever the client does
MAX_BYTES = 4 << 30  # nor sends more than this
ACCEPT_TIMEOUT_S = 0.5  # the accept loop looks this often whether the server was closed


@dataclasses.dataclass
class Seen:
    requests: list[str] = dataclasses.field(default_factory=list)
    bytes_sent: int = 0
    bodies: list[bytes] = dataclasses.field(default_factory=list)


Behaviour = Callable[["_Conn", str], None]


class _Conn:
    def __init__(self, sock: socket.socket, seen: Seen, lock: threading.Lock, request_line: str = ""):
        self.sock, self.seen, self.lock, self.request_line = sock, seen, lock, request_line
        self.started = time.monotonic()

    def send(self, data: bytes) -> bool:
        """Send data; False once the client has gone or a bound is reached."""
        if time.monotonic() - self.started > MAX_SECONDS or self.seen.bytes_sent > MAX_BYTES:
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        with self.lock:
            self.seen.bytes_sent += len(data)
        return True


def answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Behaviour:
    """A complete, well-formed answer (whatever it says)."""
    def run(c: _Conn, _path: str) -> None:
        head = {"Content-Length": str(len(body)), "Connection": "close", **(headers or {})}
        c.send(f"HTTP/1.1 {status} X\r\n".encode() + b"".join(f"{k}: {v}\r\n".encode() for k, v in head.items())
               + b"\r\n" + body)
    return run


def redirect(location: str, status: int = 307) -> Behaviour:
    return answer(status, b"", {"Location": location})


def endless(chunked: bool = False, headers: str = "Content-Type: application/octet-stream\r\n",
            limit: int = MAX_BYTES) -> Behaviour:
    """A 200 whose body never ends (until the client leaves, or limit bytes on this connection): plain to
    close, or chunked."""
    def run(c: _Conn, _path: str) -> None:
        head = "Transfer-Encoding: chunked\r\n" if chunked else "Connection: close\r\n"
        if not c.send(f"HTTP/1.1 200 OK\r\n{headers}{head}\r\n".encode()):
            return
        block = b"0" * 65536
        piece = b"10000\r\n" + block + b"\r\n" if chunked else block
        sent = 0
        while sent < limit and c.send(piece):
            sent += len(piece)
    return run


def drip(every_s: float = 1.0, headers_too: bool = True) -> Behaviour:
    """Send one byte at a time, every_s apart: first the status line and headers (if headers_too), then a body."""
    def run(c: _Conn, _path: str) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\nContent-Type: application/json\r\n\r\n"
        if not headers_too and not c.send(head):
            return
        for byte in (head if headers_too else b"") + b"{" + b" " * 999_999:
            if not c.send(bytes([byte])):
                return
            time.sleep(every_s)
    return run


def blob(size: int, content_length: int | None = None, headers: str = "") -> Behaviour:
    """A 200 with size bytes of body, then close; Content-Length only when given, and it may lie (more or
    less than size). With none the body ends at close, which is legal HTTP/1.1."""
    def run(c: _Conn, _path: str) -> None:
        length = f"Content-Length: {content_length}\r\n" if content_length is not None else ""
        if not c.send(f"HTTP/1.1 200 OK\r\n{headers}{length}Connection: close\r\n\r\n".encode()):
            return
        block = b"x" * 65536
        left = size
        while left > 0 and c.send(block[:left]):
            left -= 65536
    return run


def garbage() -> Behaviour:
    """What a well-behaved LibreSpeed server answers to garbage?ckSize=N: N MiB, with their length (at most 4)."""
    def run(c: _Conn, path: str) -> None:
        query = c.request_line.split(" ")[1].partition("?")[2] if " " in c.request_line else ""
        size = next((p.split("=")[1] for p in query.split("&") if p.startswith("ckSize=")), "4")
        mib = min(int(size), 4) if size.isdigit() else 4
        blob(mib << 20, mib << 20)(c, path)
    return run


def endless_headers() -> Behaviour:
    """A 200 whose header lines never end (each under http.client's 64 KiB line limit)."""
    def run(c: _Conn, _path: str) -> None:
        if not c.send(b"HTTP/1.1 200 OK\r\n"):
            return
        line = b"X-Pad: " + b"p" * 60000 + b"\r\n"
        while c.send(line):
            pass
    return run


def reset() -> Behaviour:
    """Read the request, then reset the connection (RST, not FIN)."""
    def run(c: _Conn, _path: str) -> None:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return run


class HostileServer:
    """Serve `behaviours` (path -> behaviour; "*" for any other path) on 127.0.0.1 in background threads."""

    def __init__(self, behaviours: dict[str, Behaviour]):
        """Serve on 127.0.0.1 at once; `url` is where."""
        self.behaviours = behaviours
        self.seen = Seen()
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(ACCEPT_TIMEOUT_S)  # close() does not wake a blocked accept(): its thread would stay
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                piece = conn.recv(65536)
                if not piece:
                    return
                data += piece
            head, _, body = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            received = len(body)
            while received < min(length, 1 << 30):  # an upload is read whole (the client gets its answer)
                piece = conn.recv(1 << 20)
                if not piece:
                    break
                received += len(piece)
                if len(body) < 16 << 20:
                    body += piece
            request_line = head.split(b"\r\n")[0].decode("latin-1")
            path = request_line.split(" ")[1].split("?")[0] if " " in request_line else "/"
            with self.lock:
                self.seen.requests.append(request_line)
                self.seen.bodies.append(body)
            behaviour = self._behaviour(path)
            behaviour(_Conn(conn, self.seen, self.lock, request_line), path)
        except OSError:
            pass
        finally:
            conn.close()

    def _behaviour(self, path: str) -> Behaviour:
        if path in self.behaviours:
            return self.behaviours[path]
        prefixes = [k for k in self.behaviours if k.endswith("*") and path.startswith(k[:-1])]
        return self.behaviours[max(prefixes, key=len)] if prefixes else answer(404)

    def close(self) -> None:
        self._stop = True
        self.sock.close()

    def __enter__(self) -> "HostileServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
