"""An HTTP proxy on loopback that misbehaves on purpose: drops requests, cuts answers mid-body, delays."""

from __future__ import annotations

import http.server
import queue
import random
import threading

import requests
from testserver import Server


class _QuietServer(Server):
    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)  # a probe killed mid-answer is the point


class FaultyProxy:
    """Forward to upstream; drop `drop` of requests unanswered, cut `cut` of answers halfway, delay answers."""

    def __init__(self, upstream: str, drop: float = 0.0, cut: float = 0.0, delay_s: float = 0.0, seed: int = 1):
        self.upstream = upstream.rstrip("/")
        self.drop, self.cut, self.delay_s = drop, cut, delay_s
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.counts = {"dropped": 0, "cut": 0, "passed": 0}
        self.holds: queue.Queue[bytes] = queue.Queue()  # each answer held back (delay_s), put as the hold begins
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy.lock:
                    roll = proxy.rng.random()
                if roll < proxy.drop:
                    with proxy.lock:
                        proxy.counts["dropped"] += 1
                    self.close_connection = True  # the request is lost on the way: no answer at all
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = requests.post(proxy.upstream + self.path, data=body, headers=headers, timeout=30)
                if proxy.delay_s:
                    proxy.holds.put(answer.content)  # committed upstream, not yet answered: a test may kill now
                    threading.Event().wait(proxy.delay_s)
                payload = answer.content
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if roll < proxy.drop + proxy.cut:
                    with proxy.lock:
                        proxy.counts["cut"] += 1
                    self.wfile.write(payload[: len(payload) // 2])  # the link dies mid-answer
                    self.wfile.flush()
                    self.close_connection = True
                    return
                with proxy.lock:
                    proxy.counts["passed"] += 1
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = self.server.base
        self.server.start()

    def close(self) -> None:
        self.server.stop()
