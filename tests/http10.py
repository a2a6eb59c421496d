"""An HTTP/1.0 LibreSpeed-compatible server, as old proxies, busybox httpd and PHP CGI set-ups are: every answer
is `HTTP/1.0 200 OK` and the connection closes after it (no keep-alive, whatever the client asks), and with
`lengths=False` no answer has a Content-Length (a body ends when the connection closes).

Serves `empty` (GET or POST: the body read and dropped, nothing answered), `garbage?ckSize=N` (N MiB, read as
LibreSpeed's garbage.php reads ckSize) and `getIP`, each also with a `.php` suffix; 404 for anything else.
Bounded: each connection times out after 10 s of silence, and the whole server stops after `seconds`.

Run in a namespace: `python tests/http10.py --port 8080 [--no-lengths] [--seconds 120]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.server
import json
import os
import threading

from testserver import Server

from xaprobe.collector.speedtest_app import chunk_count

MIB = 1 << 20
MAX_SECONDS = 120.0
_BUFFER = os.urandom(MIB)


@dataclasses.dataclass
class Served:
    """What the server took in and sent (bodies only), and the requests it answered."""

    upload_bytes: int = 0
    download_bytes: int = 0
    requests: list[str] = dataclasses.field(default_factory=list)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the status line says so, and the connection closes after each answer
    timeout = 10
    server: "_Server"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._serve()

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self._serve()

    def _serve(self) -> None:
        path, _, query = self.path.partition("?")
        name = path.rsplit("/", 1)[-1].removesuffix(".php")
        with self.server.lock:
            self.server.served.requests.append(f"{self.command} {self.path}")
        if name == "empty":
            self._drain()
            self._answer(b"")
        elif name == "getIP":
            self._answer(json.dumps({"processedString": self.client_address[0], "rawIspInfo": ""}).encode(),
                         "application/json")
        elif name == "garbage":
            self._garbage(chunk_count(query) * MIB)
        else:
            self._answer(b"not a speed-test endpoint", status=404)

    def _drain(self) -> None:
        left = int(self.headers.get("Content-Length") or 0)
        while left > 0:
            piece = self.rfile.read(min(left, MIB))
            if not piece:
                return
            left -= len(piece)
            with self.server.lock:
                self.server.served.upload_bytes += len(piece)

    def _head(self, status: int, kind: str, length: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Cache-Control", "no-store")
        if self.server.lengths:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _answer(self, body: bytes, kind: str = "text/plain", status: int = 200) -> None:
        self._head(status, kind, len(body))
        self.wfile.write(body)

    def _garbage(self, size: int) -> None:
        self._head(200, "application/octet-stream", size)
        view = memoryview(_BUFFER)
        while size > 0 and not self.server.stopping.is_set():
            # each send counted as the kernel took it: a write cut by the client's reset still counts what it sent
            n = self.connection.send(view[:min(size, 64 * 1024)])
            size -= n
            with self.server.lock:
                self.server.served.download_bytes += n


class _Server(Server):
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], lengths: bool):
        super().__init__(address, _Handler)
        self.lengths = lengths
        self.served = Served()
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that resets mid-answer (every test ends so) is not news


class Http10Server:
    """The server on host:port (0: any free port) in a background thread, for seconds at most; `url` is its
    base, `served` what it took in and sent."""

    def __init__(self, lengths: bool = True, host: str = "127.0.0.1", port: int = 0, seconds: float = MAX_SECONDS):
        self._server = _Server((host, port), lengths)
        self.served = self._server.served
        self.url = f"http://{host}:{self._server.server_address[1]}/"
        self._timer = threading.Timer(seconds, self.close)
        self._timer.daemon = True
        self._server.start()
        self._timer.start()

    def close(self) -> None:
        self._timer.cancel()
        self._server.stopping.set()
        self._server.stop()

    def wait(self) -> None:
        self._server.wait()

    def __enter__(self) -> "Http10Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--no-lengths", dest="lengths", action="store_false", help="no Content-Length on answers")
    parser.add_argument("--seconds", type=float, default=MAX_SECONDS)
    args = parser.parse_args()
    Http10Server(args.lengths, args.host, args.port, args.seconds).wait()


if __name__ == "__main__":
    main()
