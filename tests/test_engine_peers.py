"""The engines against servers that behave as real peers do: closing after every answer (PHP's built-in
server), a keep-alive limit (Apache), chunked answers, a wrong URL; and our own server as a peer."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from xaprobe.agent.engines import http as engine
from xaprobe.agent.engines.base import RunRequest
from xaprobe.collector.server import serve_in_thread
from xaprobe.collector.speedtest_app import Behaviour, Served, make_app

FAST = engine.Settings(duration_s=1.5, streams=2, timeout_s=3)


@contextlib.contextmanager
def peer(**behaviour: object) -> Iterator[tuple[str, Served]]:
    """Our speed-test app behaving as told, on loopback: its base URL and what it took in and sent."""
    app = make_app(Behaviour(**behaviour))  # type: ignore[arg-type]
    with serve_in_thread(app) as base:
        yield base + "/speedtest/", app.served


@pytest.mark.parametrize("behaviour", [{"close_each": True}, {"keep_alive_max": 3}, {"chunked": True}, {}],
                         ids=["close-each", "keep-alive-3", "chunked", "good"])
def test_bytes_are_the_kernels_over_every_connection(behaviour):
    # small upload bodies, so that a server closing after each answer makes the test reconnect many times
    with peer(**behaviour) as (url, served):
        m = engine.run(RunRequest(cap_bytes=0), FAST, url)
    assert m.status == "ok", m.error
    assert m.method is not None and m.method.bytes == "kernel"
    # what the server read (bodies only) against what its kernel acknowledged (headers too; the last
    # milliseconds' ACKs may still be on their way at gigabits on loopback): the same within 1 %
    assert served.upload_bytes * 0.99 <= m.bytes_up <= served.upload_bytes * 1.01 + 64 * 1024, (m.bytes_up, served)
    assert m.bytes_down <= served.download_bytes + 64 * 1024
    assert m.bytes_down >= m.download_mbps * 1e6 / 8 * FAST.duration_s * 0.5


def test_without_kernel_counts_the_result_says_so(monkeypatch):
    # a system without TCP_INFO: every figure comes from what the test read and wrote, and the result says so
    from xaprobe.agent.engines import httpsession, sockets

    monkeypatch.setattr(sockets, "tcp_counters", lambda sock: None)
    monkeypatch.setattr(httpsession, "tcp_counters", lambda sock: None)
    with peer(close_each=True) as (url, served):
        m = engine.run(RunRequest(), FAST, url)
    assert m.status == "ok", m.error
    assert m.method is not None and m.method.bytes == "app"
    # what was handed to send() includes what sat in socket buffers when the test cut its connections
    assert 0.99 * served.upload_bytes <= m.bytes_up <= served.upload_bytes + 4 * 8 << 20
    assert 0 < m.bytes_down <= served.download_bytes


def test_pings_on_a_kept_alive_connection_when_the_server_allows():
    with peer(keep_alive_max=3) as (url, served):
        m = engine.run(RunRequest(), FAST, url)
    assert m.status == "ok", m.error
    assert m.method is not None and m.method.latency == "http-keepalive"
    assert m.latency_ms is not None and m.latency_ms < 50 and m.loaded_latency_ms is not None


def test_pings_against_a_server_that_closes_each_time_are_tcp_handshakes():
    # PHP's built-in server: a new connection per answer, one request at a time. An HTTP ping would wait
    # behind a download stream's 100 MiB answer; a TCP handshake is answered by the server's kernel at once.
    with peer(close_each=True, one_at_a_time=True) as (url, served):
        m = engine.run(RunRequest(), engine.Settings(duration_s=2, streams=2, timeout_s=5), url)
    assert m.status == "ok", m.error
    assert m.method is not None and m.method.latency == "tcp-connect"
    assert m.latency_ms is not None and m.latency_ms < 20
    assert m.loaded_latency_ms is not None and m.loaded_latency_ms < 20, m
