"""Threaded HTTP servers for tests that always stop: `stop()` returns however clients behaved.

`http.server.ThreadingHTTPServer.shutdown()` waits for `serve_forever` to go round its loop. That loop can sit
in a blocking `accept()` forever when `select()` called the listening socket ready for a connection that was
gone before it was taken (seen on this project's CI machine: the run hung in `shutdown()` until pytest-timeout
stopped it). Here `accept()` gives up after a second, the loop goes on, and `stop()` returns.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator

ACCEPT_TIMEOUT_S = 1.0


class Server(http.server.ThreadingHTTPServer):
    """A ThreadingHTTPServer whose accept() waits a second at most; connections it takes are blocking as usual
    (Python gives an accepted socket no timeout while the default is none)."""

    daemon_threads = True

    def server_activate(self) -> None:
        super().server_activate()
        self.socket.settimeout(ACCEPT_TIMEOUT_S)

    def start(self) -> Server:
        """Serve in a background thread; return self."""
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (connections being answered finish on their own)."""
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)

    def wait(self) -> None:
        """Until stopped (by another thread)."""
        self._thread.join()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextlib.contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[Server]:
    """A Server on a free loopback port answering with handler, stopped on leaving."""
    server = Server(("127.0.0.1", 0), handler).start()
    try:
        yield server
    finally:
        server.stop()
