"""The speedtest engine (speedtest-cli) offline against a local Speedtest-Mini-like server."""

from __future__ import annotations

import contextlib
import http.server
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from testserver import Server

from xaprobe.agent.engines import speedtest as engine
from xaprobe.agent.engines.base import RunRequest
from xaprobe.agent.engines.speedtest_connections import speedtest_module

_OPEN_STATES = {"01", "04", "05", "08"}  # /proc/net/tcp: established, fin-wait-1, fin-wait-2, close-wait


def connections_to(port: int) -> list[str]:
    """This host's IPv4 TCP connections to a remote port that are still open, as /proc/net/tcp lists them."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return [row for row in rows if int(row.split()[2].split(":")[1], 16) == port and row.split()[3] in _OPEN_STATES]


def test_runs_against_a_local_mini_server(speedtest_server):
    m = engine.run(RunRequest(), engine.Settings(), speedtest_server)
    assert m.status == "ok", m.error
    assert m.engine == "speedtest"
    assert m.download_mbps > 50 and m.upload_mbps > 50
    files = 4 * sum(engine.DOWNLOAD_BYTES.values())  # every file, as speedtest-cli reads them
    # the kernel's count: the files, their headers and the latency and upload answers
    assert m.method is not None and m.method.bytes == "kernel"
    assert files <= m.bytes_down <= files + 256 * 1024, m.bytes_down - files
    assert m.server.url == speedtest_server + "upload.php"


def test_no_download_connection_is_open_when_the_upload_starts(speedtest_server, monkeypatch):
    # before: the engine's second handle on every socket (for its kernel counts) kept each download connection open
    # after speedtest-cli closed it, so a file it stopped reading at its 10 s went on arriving during the upload;
    # at 120 ms RTT and 40 Mbit/s up to 13 MB did, the upload's acknowledgements queued behind it (upload 0.61 of
    # iperf3, 0.87 once each direction ends with its connections reset)
    port = urlsplit(speedtest_server).port
    speedtest_cli = speedtest_module()
    real, seen = speedtest_cli.Speedtest.upload, []

    def upload(self, *args, **kwargs):
        seen.append(connections_to(port))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(speedtest_cli.Speedtest, "upload", upload)
    m = engine.run(RunRequest(), engine.Settings(), speedtest_server)
    assert m.status == "ok", m.error
    assert seen == [[]]
    assert connections_to(port) == []  # nor any upload connection once the engine returned


def test_byte_cap_holds(speedtest_server):
    cap = 20_000_000
    m = engine.run(RunRequest(cap_bytes=cap), engine.Settings(), speedtest_server)
    assert m.status == "ok" and m.capped
    assert 0 < m.bytes_down <= cap and 0 < m.bytes_up <= cap


@pytest.mark.parametrize("cap", [1, 300_000, 5_000_000, 50_000_000, 400_000_000])
def test_cap_config_never_plans_more_than_the_cap(cap):
    config = engine.cap_config(engine.public_config(), cap)
    down = config["counts"]["download"] * sum(engine.DOWNLOAD_BYTES[s] for s in config["sizes"]["download"])
    order = [s for s in config["sizes"]["upload"] for _ in range(config["counts"]["upload"])]
    up = sum(order[: config["upload_max"]])
    smallest = engine.DOWNLOAD_BYTES[350]
    assert down <= max(cap, smallest) and up <= max(cap, order[0])


class _Refuse(http.server.BaseHTTPRequestHandler):
    """Refuses with `status`, then waits for the client to hang up: a server that closes first can have its
    answer reset under it on this sandbox's network stack (CI once read `Connection reset by peer` here)."""

    status = 403

    def do_GET(self):  # noqa: N802
        body = b"refused\n"
        self.send_response(self.status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.connection.settimeout(10)
        with contextlib.suppress(OSError):
            while self.connection.recv(4096):
                pass

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status", [403, 429])
def test_speedtest_net_refusing_its_configuration_is_a_clean_failure(status, monkeypatch):
    # speedtest.net cannot be reached here: a local server answers for it the way it often does. speedtest-cli's
    # own URLs are pointed at it (no proxy from the environment, no name to look up: nothing can leave loopback)
    speedtest_cli = speedtest_module()
    # its accept() gives up after a second, so that stop() returns (CI hung 600 s in this test's shutdown())
    refuse = Server(("127.0.0.1", 0), type("Refuse", (_Refuse,), {"status": status})).start()
    asked: list[str] = []

    def build_request(url, *args, **kwargs):
        asked.append(url)
        return real_build_request(url.replace("://www.speedtest.net/", f"://127.0.0.1:{refuse.server_port}/"),
                                  *args, **kwargs)

    real_build_request = speedtest_cli.build_request
    monkeypatch.setattr(speedtest_cli, "build_request", build_request)
    for name in [name for name in os.environ if name.lower().endswith("_proxy")]:
        monkeypatch.delenv(name)
    try:
        m = engine.run(RunRequest(), engine.Settings(timeout_s=3), None)
    finally:
        refuse.stop()
    assert asked == ["://www.speedtest.net/speedtest-config.php"]
    assert m.status == "failed"
    assert m.error.startswith(f"cannot fetch speedtest.net's configuration (HTTP Error {status}")
    assert m.error.endswith("set engines.speedtest.server to test against a known server")


def test_unreachable_mini_server_is_a_clean_failure():
    m = engine.run(RunRequest(), engine.Settings(timeout_s=2), "http://127.0.0.1:9/speedtest/")
    assert m.status == "failed"
    assert m.error == "the server 127.0.0.1:9 did not answer latency.txt (is it a Speedtest server?)"


def test_interface_address_of_loopback():
    assert engine.interface_address("lo") == "127.0.0.1"
    with pytest.raises(engine.EngineError, match="interface nosuch0 has no IPv4 address"):
        engine.interface_address("nosuch0")
