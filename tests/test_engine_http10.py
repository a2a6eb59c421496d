"""The http engine against an HTTP/1.0 server (old proxies, busybox httpd, PHP CGI): `HTTP/1.0 200 OK`, a new
connection for every answer, and (lengths=False) bodies without Content-Length that end when the server closes.
On loopback the counts are checked against what the server took in and sent; in a tbf-shaped namespace lab the
rates against the link's ceiling."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import netlab
import pytest
from http10 import MIB, Http10Server
from netlab import NetLab, ceiling_mbps

from xaprobe.agent.engines import http as engine
from xaprobe.agent.engines.base import RunRequest

FAST = engine.Settings(duration_s=1.5, streams=2, timeout_s=3)
HEADERS_MOST = 1024  # one request's or answer's status line and headers, as either side writes them
LENGTHS = pytest.mark.parametrize("lengths", [True, False], ids=["content-length", "ended-by-close"])


def _asked_mib(requests: list[str]) -> int:
    return sum(int(m[1]) for r in requests if (m := re.search(r"garbage\?ckSize=(\d+)&", r)))


@LENGTHS
def test_every_connection_counted_and_pings_are_handshakes(lengths):
    with Http10Server(lengths) as server:
        m = engine.run(RunRequest(), FAST, server.url)
    served = server.served
    assert m.status == "ok", m.error
    assert m.method is not None and m.method.bytes == "kernel"
    posts = sum(r.startswith("POST ") for r in served.requests)
    downloads = sum(r.startswith("GET /garbage") for r in served.requests)
    assert posts > FAST.streams and downloads > FAST.streams  # each stream reconnected: one connection an answer
    # the upload: what the server read (bodies only) against what its kernel acknowledged (request heads too;
    # the last ACKs may still be on their way at gigabits on loopback)
    assert served.upload_bytes * 0.99 <= m.bytes_up <= served.upload_bytes + posts * HEADERS_MOST, (m.bytes_up, posts)
    assert m.upload_mbps is not None and m.upload_mbps > 0
    # the download: never more than the server sent, never much less (the last answers are cut mid-body)
    sent = served.download_bytes + len(served.requests) * HEADERS_MOST
    assert sent * 0.9 <= m.bytes_down <= sent, (m.bytes_down, served.download_bytes)
    # a server that closes after every answer cannot carry a kept-alive ping: each sample is a TCP handshake,
    # and says so. Its only HTTP pings are the two untimed ones (the layout found, the warm-up that saw the
    # close); had a timed sample been an HTTP GET, it would be here with its connection set-up inside.
    assert m.method.latency == "tcp-connect"
    assert sum(r.startswith("GET /empty") for r in served.requests) == 2, served.requests
    assert m.latency_ms is not None and m.latency_ms < 20
    assert m.loaded_latency_ms is not None and m.loaded_latency_ms < 50
    assert m.client_ip == "127.0.0.1"
    # no read waited for a timeout (a body without Content-Length ends at the server's close, not later)
    assert m.duration_s is not None and m.duration_s < 2 * FAST.duration_s + FAST.timeout_s


@LENGTHS
def test_a_capped_test_gets_every_mib_it_asked_for(lengths):
    # with a cap every garbage answer is read whole before the test stops: what arrived is what was asked,
    # over as many connections as answers, plus their heads and the pings'
    with Http10Server(lengths) as server:
        m = engine.run(RunRequest(cap_bytes=20_000_000), FAST, server.url)
    served = server.served
    assert m.status == "ok" and m.capped, m.error
    asked = _asked_mib(served.requests) * MIB
    assert asked > 20_000_000 - MIB and served.download_bytes == asked, (asked, served.download_bytes)
    assert asked <= m.bytes_down <= asked + len(served.requests) * HEADERS_MOST, (m.bytes_down, asked)
    posts = sum(r.startswith("POST ") for r in served.requests)
    assert served.upload_bytes <= m.bytes_up <= served.upload_bytes + posts * HEADERS_MOST, (m.bytes_up, served)


def _lab_available() -> bool:
    if netlab.available():
        return True
    if os.environ.get("CI"):
        raise RuntimeError("CI runs as root with iproute2 and tbf: the namespace tests must run there")
    return False


@pytest.mark.netns
@pytest.mark.slow
@pytest.mark.skipif(not _lab_available(), reason="needs root, ip netns and tc tbf")
@LENGTHS
def test_on_a_shaped_link_an_http10_server_reads_the_ceiling(tmp_path, lengths):
    from test_netns import measure

    rate = 20
    with NetLab(6) as lab:
        url = lab.start_server([sys.executable, str(Path(__file__).with_name("http10.py")), "--port", "8080",
                                "--seconds", "60", *([] if lengths else ["--no-lengths"])], 8080)
        lab.shape(rate)
        [m] = measure(lab, url, tmp_path / "p.db", "--engine", "http", "--duration", "5")
    assert m["status"] == "ok", m["error"]
    assert m["method"]["bytes"] == "kernel" and m["method"]["latency"] == "tcp-connect"
    # the bands our own server reads within on the same link (test_netns)
    assert 0.93 <= m["download_mbps"] / ceiling_mbps(rate) <= 1.03, m
    assert 0.93 <= m["upload_mbps"] / ceiling_mbps(rate) <= 1.03, m
    assert m["loaded_latency_ms"] > m["latency_ms"]  # the handshakes wait in the 50 ms tbf queue under load
