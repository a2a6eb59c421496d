"""The engines against servers that behave as real peers do: closing after every answer (PHP's built-in
server), a keep-alive limit (Apache), chunked answers, a wrong URL; and our own server as a peer."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator

import pytest

from xaprobe.agent.engines import http as engine
from xaprobe.agent.engines.base import RunRequest
from xaprobe.agent.engines.librespeed import ClientInfo, parse_get_ip
from xaprobe.agent.engines.speedtest import public_config as st_public_config
from xaprobe.collector.server import serve_in_thread
from xaprobe.collector.speedtest_app import Behaviour, Served, chunk_count, make_app

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


def run_against(behaviours: dict, path: str = "/", **settings: object):
    from hostile import HostileServer

    with HostileServer(behaviours) as server:
        start = time.monotonic()
        m = engine.run(RunRequest(), dataclasses.replace(FAST, **settings), server.url + path)  # type: ignore[arg-type]
        return m, time.monotonic() - start, server.seen


def test_a_url_naming_garbage_php_is_not_a_librespeed_server():
    # PHP runs garbage.php for /backend/garbage.php/empty too (PATH_INFO): every "ping" was 4 MiB, and the
    # test was "ok" with 11,696 ms latency after 168 s
    from hostile import garbage

    m, took, _ = run_against({"/backend/garbage.php*": garbage()}, "/backend/garbage.php")
    assert m.status == "failed" and took < 5
    assert "is not a LibreSpeed server" in m.error and "give the folder that holds it" in m.error, m.error


def test_a_web_page_is_not_a_librespeed_server():
    from hostile import answer

    page = answer(200, b"<html><body>Router login</body></html>" * 40, {"Content-Type": "text/html"})
    m, _, _ = run_against({"*": page})
    assert m.status == "failed" and "is not a LibreSpeed server" in m.error and "text/html" in m.error, m.error


def test_a_garbage_answer_that_is_not_whole_mib_fails():
    from hostile import answer, blob

    m, _, _ = run_against({"/empty": answer(200), "/garbage": blob(1000, 1000), "/getIP": answer(404)})
    assert m.status == "failed" and "/garbage answered 1000 bytes for" in m.error, m.error


def test_php_layout_is_found_and_isp_asked():
    from hostile import answer, garbage

    ip = answer(200, b'{"processedString": "127.0.0.1 - Viettel, VN (12 km)", "rawIspInfo": {}}')
    m, _, seen = run_against({"/b/empty.php": answer(200), "/b/garbage.php": garbage(), "/b/getIP.php": ip}, "/b/")
    assert m.status == "ok", m.error
    assert m.method is not None and m.method.layout == "php"
    assert m.client_ip == "127.0.0.1" and m.isp == "Viettel, VN (12 km)"
    assert any(r.startswith("GET /b/getIP.php?isp=true&") for r in seen.requests), seen.requests


@pytest.mark.parametrize("body, ip, isp", [
    (b'{"processedString": "203.0.113.9 - VNPT", "rawIspInfo": ""}', "203.0.113.9", "VNPT"),
    (b"203.0.113.9\n", "203.0.113.9", ""),
    (b"<html>hello</html>", "", ""),
    (b'["203.0.113.9"]', "", ""),
])
def test_get_ip_answers_are_parsed(body, ip, isp):
    assert parse_get_ip(body) == ClientInfo(ip, isp)


@pytest.mark.parametrize("query, mib", [("", 4), ("ckSize=0", 4), ("ckSize=abc", 4), ("ckSize=1.5", 1),
                                        ("ckSize=7", 7), ("ckSize=5000", 1024), ("ckSize=-3", 0)])
def test_cksize_is_read_as_librespeeds_garbage_php_reads_it(query, mib):
    # garbage.php: intval($_GET['ckSize']), empty() gives 4, above 1024 gives 1024
    assert chunk_count(query) == mib


def test_our_server_is_a_good_peer_for_browsers_and_speedtest_cli():
    import requests
    import speedtest

    with peer() as (url, _):
        root = url.removesuffix("speedtest/")
        folder = requests.get(root, timeout=5)
        assert folder.status_code == 200  # speedtest-cli --mini checks the folder first
        assert requests.get(url + "empty", timeout=5).headers["Timing-Allow-Origin"] == "*"
        assert len(requests.get(url + "garbage.php?ckSize=0", timeout=5).content) == 4 << 20

        class Offline(speedtest.Speedtest):
            def get_config(self):  # speedtest.net is not reachable from here: its public values instead
                self.config.update(st_public_config())
                self.lat_lon = (0.0, 0.0)
                return self.config

        client = Offline(timeout=5)
        client.set_mini_server(root)  # what `speedtest-cli --mini URL` does
        client.get_best_server(client.servers)
        assert client.download() > 0 and client.upload() > 0
