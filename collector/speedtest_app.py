"""A raw ASGI app serving the speed-test protocols: LibreSpeed's and Speedtest Mini's.

LibreSpeed: `garbage` (ckSize MiB of random bytes, read as LibreSpeed's garbage.php reads it), `empty`
(discards a POST body), `getIP`. Speedtest Mini (what speedtest-cli speaks): `latency.txt`,
`random{N}x{N}.jpg`, `upload.php`. Each name also answers with a `.php` suffix and below any folder, so
any client layout works; a folder itself answers 200 (speedtest-cli's `--mini URL` checks it first).
Downloads stream one pre-generated random buffer; uploads are counted and dropped as they arrive.

A public collector is anyone's speed-test server, so each app has limits (SpeedtestLimits): the largest
download, the largest upload body (reading stops there: 413), and tests at once per client address (429).
`make_app(Behaviour(...))` builds the same app behaving as other servers do (closing after each answer
as PHP's built-in server does, a keep-alive limit, chunked answers, a server farther away): for the tests;
`speedtest_app` is the well-behaved one every command serves.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import os
import re
from urllib.parse import parse_qs

MIB = 1 << 20
MAX_CHUNKS = 1024
DEFAULT_CHUNKS = 4
_BUFFER = os.urandom(MIB)
# Ookla's random{N}x{N}.jpg sizes in bytes, so speedtest-cli reads what it would from a real server
MINI_SIZES = {350: 245388, 500: 505544, 750: 1118012, 1000: 1986284, 1500: 4468241, 2000: 7907740,
              2500: 12407926, 3000: 17816816, 3500: 24262167, 4000: 31625365}
_RANDOM_JPG = re.compile(r"random(\d+)x(\d+)\.jpg")
_COMMON = [(b"cache-control", b"no-store, no-cache, must-revalidate"),
           (b"access-control-allow-origin", b"*"),
           (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
           (b"access-control-allow-headers", b"Content-Encoding, Content-Type"),
           # cross-origin clients (LibreSpeed's page served elsewhere) may read precise timings of our answers
           (b"timing-allow-origin", b"*")]
_PHP_INT = re.compile(r"\s*[+-]?\d+")
_FOLDER_PAGE = b"<!doctype html><title>xaprobe speed-test server</title><p>A LibreSpeed and Speedtest Mini server.\n"


@dataclasses.dataclass(frozen=True)
class Behaviour:
    """How the app treats connections: as a good server (the default), or as other servers in the field do."""

    close_each: bool = False  # "Connection: close" on every answer (PHP's built-in server)
    keep_alive_max: int = 0  # close after this many answers on one connection (Apache's MaxKeepAliveRequests)
    chunked: bool = False  # no Content-Length on downloads: chunked bodies (PHP's flush() under a web server)
    one_at_a_time: bool = False  # one request served at a time, the others wait (`php -S` with one worker)
    empty_delay_s: float = 0.0  # each answer of empty waits this long (a server farther away: its pings read more)


@dataclasses.dataclass
class Served:
    """What the app took in and sent, for the tests to compare a client's counts with."""

    upload_bytes: int = 0  # request bodies of empty and upload.php, as they arrived
    download_bytes: int = 0  # bodies of garbage and random files handed to the server to send
    requests: int = 0
    refused: int = 0  # requests answered 429: more than tests_per_client at once from one address


def chunk_count(query: str) -> int:
    """The MiB garbage.php sends for its query, read as PHP's intval() reads ckSize: a missing, zero or
    non-numeric ckSize gives 4, a fraction its whole part, above 1024 gives 1024, below zero nothing."""
    raw = parse_qs(query, keep_blank_values=True).get("ckSize", [""])[0]
    found = _PHP_INT.match(raw)
    digits = found.group().strip() if found else "0"
    # a number of thousands of digits is clamped, not converted (Python refuses to convert it, PHP saturates)
    value = int(digits) if len(digits) <= 10 else (-1 if digits.startswith("-") else MAX_CHUNKS)
    return DEFAULT_CHUNKS if value == 0 else max(0, min(value, MAX_CHUNKS))


@dataclasses.dataclass(frozen=True)
class SpeedtestLimits:
    max_chunks: int = 100  # largest download, in MiB (LibreSpeed's ckSize is clamped to it)
    max_upload_mib: int = 64  # largest upload body
    # requests at once from one client address (per process). Twice the 8 streams of speedtest-cli and of the http
    # engine at its most: an 8-stream test also pings while it loads the link, and a client's next request arrives
    # as the last byte of its previous one does, before the server has counted that one finished (at 8, every
    # 8-stream http test had a request refused, and tests right after one were refused while its reset
    # connections were still being counted)
    tests_per_client: int = 16


class _App:
    """One app instance: its behaviour, and what it served."""

    def __init__(self, behaviour: Behaviour, limits: SpeedtestLimits):
        self.behaviour, self.limits = behaviour, limits
        self.running: collections.Counter[str] = collections.Counter()  # one event loop: no lock needed
        self.served = Served()
        self._answers: dict[tuple, int] = {}  # answers given per client connection (address, port)
        self._one: asyncio.Lock | None = None  # made inside the server's event loop, on first use

    def _closing(self, scope) -> list[tuple[bytes, bytes]]:
        b = self.behaviour
        if b.close_each:
            return [(b"connection", b"close")]
        if b.keep_alive_max:
            key = tuple(scope.get("client") or ())
            self._answers[key] = self._answers.get(key, 0) + 1
            if self._answers[key] >= b.keep_alive_max:
                del self._answers[key]
                return [(b"connection", b"close")]
        return []

    async def _start(self, scope, send, status: int, content_type: bytes, length: int | None) -> None:
        headers = _COMMON + [(b"content-type", content_type)] + self._closing(scope)
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})

    async def _text(self, scope, send, status: int, body: bytes, content_type: bytes = b"text/plain",
                    close: bool = False) -> None:
        # close: the rest of the request body is not read, so the connection cannot carry another request
        headers = _COMMON + [(b"content-type", content_type), (b"content-length", str(len(body)).encode())] \
            + ([(b"connection", b"close")] if close else self._closing(scope))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _stream(self, scope, send, receive, size: int) -> None:
        """Send size random bytes; stop as soon as the client goes away (tests end by hanging up)."""
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        try:
            await self._start(scope, send, 200, b"application/octet-stream", None if self.behaviour.chunked else size)
            view = memoryview(_BUFFER)
            while size > 0 and not gone.is_set():
                n = min(size, MIB)
                size -= n
                self.served.download_bytes += n
                await send({"type": "http.response.body", "body": _BUFFER if n == MIB else bytes(view[:n]),
                            "more_body": size > 0})
        finally:
            watcher.cancel()

    async def _drain(self, receive) -> int | None:
        """Read and drop the body; return its size, or None as soon as it passes the upload limit."""
        limit, total = self.limits.max_upload_mib * MIB, 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return total
            n = len(message.get("body", b""))
            total += n
            self.served.upload_bytes += n
            if total > limit:
                return None
            if not message.get("more_body"):
                return total

    async def __call__(self, scope, receive, send) -> None:
        """Serve one request of either protocol; a folder answers 200, unknown names 404."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        self.served.requests += 1
        client = (scope.get("client") or ("", 0))[0]
        if self.running[client] >= self.limits.tests_per_client:
            self.served.refused += 1
            await self._text(scope, send, 429, f"more than {self.limits.tests_per_client} speed tests at once "
                                               "from one address".encode())
            return
        self.running[client] += 1
        try:
            if self.behaviour.one_at_a_time:
                self._one = self._one or asyncio.Lock()
                async with self._one:
                    await self._serve(scope, receive, send)
            else:
                await self._serve(scope, receive, send)
        finally:
            self.running[client] -= 1
            if not self.running[client]:
                del self.running[client]

    async def _serve(self, scope, receive, send) -> None:
        name = scope["path"].rsplit("/", 1)[-1]
        name = name[:-4] if name.endswith(".php") and name != "upload.php" else name
        if scope["method"] == "OPTIONS":
            await self._text(scope, send, 204, b"")
        elif name == "garbage":
            chunks = min(chunk_count(scope.get("query_string", b"").decode("latin-1")), self.limits.max_chunks)
            await self._stream(scope, send, receive, chunks * MIB)
        elif name in ("empty", "upload.php"):
            size = await self._drain(receive)
            if self.behaviour.empty_delay_s:
                await asyncio.sleep(self.behaviour.empty_delay_s)
            if size is None:
                await self._text(scope, send, 413, f"upload body over {self.limits.max_upload_mib} MiB".encode(),
                                 close=True)
            else:
                await self._text(scope, send, 200, f"size={size}".encode() if name == "upload.php" else b"")
        elif name == "getIP":
            client = (scope.get("client") or ("", 0))[0]
            body = json.dumps({"processedString": client, "rawIspInfo": ""}).encode()
            await self._text(scope, send, 200, body, b"application/json")
        elif name == "latency.txt":
            await self._text(scope, send, 200, b"test=test")
        elif (m := _RANDOM_JPG.fullmatch(name)) and m[1] == m[2] and int(m[1]) in MINI_SIZES:
            await self._stream(scope, send, receive, MINI_SIZES[int(m[1])])
        elif name in ("", "index.html") and scope["method"] in ("GET", "HEAD"):
            await self._text(scope, send, 200, _FOLDER_PAGE, b"text/html; charset=utf-8")
        else:
            await self._text(scope, send, 404, b"not a speed-test endpoint")


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def make_app(behaviour: Behaviour = Behaviour(), limits: SpeedtestLimits = SpeedtestLimits()) -> _App:
    """An ASGI app serving both protocols within its limits, behaving as told; its `served` says what it took
    in and sent."""
    return _App(behaviour, limits)


speedtest_app = make_app()  # the standalone server's and the tests': default limits
