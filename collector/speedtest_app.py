"""A raw ASGI app serving the speed-test protocols: LibreSpeed's and Speedtest Mini's.

LibreSpeed: `garbage` (ckSize MiB of random bytes), `empty` (discards a POST body), `getIP`.
Speedtest Mini (what speedtest-cli speaks): `latency.txt`, `random{N}x{N}.jpg`, `upload.php`.
Each name also answers with a `.php` suffix and below any folder, so any client layout works.
Downloads stream one pre-generated random buffer; uploads are counted and dropped as they arrive.
A public collector is anyone's speed-test server, so each app has limits (SpeedtestLimits): the largest
download, the largest upload body (reading stops there: 413), and tests at once per client address (429).
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
_BUFFER = os.urandom(MIB)
# Ookla's random{N}x{N}.jpg sizes in bytes, so speedtest-cli reads what it would from a real server
MINI_SIZES = {350: 245388, 500: 505544, 750: 1118012, 1000: 1986284, 1500: 4468241, 2000: 7907740,
              2500: 12407926, 3000: 17816816, 3500: 24262167, 4000: 31625365}
_RANDOM_JPG = re.compile(r"random(\d{1,5})x(\d{1,5})\.jpg")
_COMMON = [(b"cache-control", b"no-store, no-cache, must-revalidate"),
           (b"access-control-allow-origin", b"*"),
           (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
           (b"access-control-allow-headers", b"Content-Encoding, Content-Type")]


async def _start(send, status: int, content_type: bytes, length: int) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": _COMMON + [(b"content-type", content_type),
                                      (b"content-length", str(length).encode())]})


async def _text(send, status: int, body: bytes, content_type: bytes = b"text/plain",
                close: bool = False) -> None:
    headers = _COMMON + [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    # close: the rest of the request body is not read, so the connection cannot carry another request
    await send({"type": "http.response.start", "status": status,
                "headers": headers + ([(b"connection", b"close")] if close else [])})
    await send({"type": "http.response.body", "body": body})


async def _stream(send, receive, size: int) -> None:
    """Send size random bytes; stop as soon as the client goes away (tests end by hanging up)."""
    gone = asyncio.Event()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.create_task(watch())
    try:
        await _start(send, 200, b"application/octet-stream", size)
        view = memoryview(_BUFFER)
        while size > 0 and not gone.is_set():
            n = min(size, MIB)
            size -= n
            await send({"type": "http.response.body", "body": _BUFFER if n == MIB else bytes(view[:n]),
                        "more_body": size > 0})
    finally:
        watcher.cancel()


@dataclasses.dataclass(frozen=True)
class SpeedtestLimits:
    max_chunks: int = 100  # largest download, in MiB (LibreSpeed's ckSize is clamped to it)
    max_upload_mib: int = 64  # largest upload body
    tests_per_client: int = 8  # requests at once from one client address (per process)


async def _drain(receive, limit: int) -> int | None:
    """Read and drop the body; return its size, or None as soon as it passes limit bytes."""
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return total
        total += len(message.get("body", b""))
        if total > limit:
            return None
        if not message.get("more_body"):
            return total


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class SpeedtestApp:
    """The speed-test endpoints as an ASGI app, within its limits."""

    def __init__(self, limits: SpeedtestLimits = SpeedtestLimits()):
        self.limits = limits
        self.running: collections.Counter[str] = collections.Counter()  # one event loop: no lock needed

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        client = (scope.get("client") or ("", 0))[0]
        if self.running[client] >= self.limits.tests_per_client:
            await _text(send, 429, f"more than {self.limits.tests_per_client} speed tests at once "
                                   "from one address".encode())
            return
        self.running[client] += 1
        try:
            await self._serve(scope, receive, send, client)
        finally:
            self.running[client] -= 1
            if not self.running[client]:
                del self.running[client]

    async def _serve(self, scope, receive, send, client: str) -> None:
        """Serve one request of either protocol; unknown names get 404."""
        name = scope["path"].rsplit("/", 1)[-1]
        name = name[:-4] if name.endswith(".php") and name != "upload.php" else name
        if scope["method"] == "OPTIONS":
            await _text(send, 204, b"")
        elif name == "garbage":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            text = query.get("ckSize", ["4"])[0]
            if not (text.isdigit() and len(text) <= 9):
                await _text(send, 400, b"ckSize must be a whole number of MiB")
                return
            await _stream(send, receive, min(max(int(text), 1), self.limits.max_chunks) * MIB)
        elif name in ("empty", "upload.php"):
            size = await _drain(receive, self.limits.max_upload_mib * MIB)
            if size is None:
                await _text(send, 413, f"upload body over {self.limits.max_upload_mib} MiB".encode(), close=True)
            else:
                await _text(send, 200, f"size={size}".encode() if name == "upload.php" else b"")
        elif name == "getIP":
            body = json.dumps({"processedString": client, "rawIspInfo": ""}).encode()
            await _text(send, 200, body, b"application/json")
        elif name == "latency.txt":
            await _text(send, 200, b"test=test")
        elif (m := _RANDOM_JPG.fullmatch(name)) and m[1] == m[2] and int(m[1]) in MINI_SIZES:
            await _stream(send, receive, MINI_SIZES[int(m[1])])
        else:
            await _text(send, 404, b"not a speed-test endpoint")


speedtest_app = SpeedtestApp()  # the standalone server's and the tests': default limits
