"""The speedtest engine's upload on rate-shaped links: what the server received, nothing left in flight (root)."""

from __future__ import annotations

import os
import subprocess

import emulated
import netlab
import pytest
from emulated import EmulatedLab
from netlab import NetLab, ceiling_mbps
from test_netns import measure

if not netlab.available():
    if os.environ.get("CI"):
        raise RuntimeError("CI runs as root with iproute2 and tbf: the namespace tests must run there")
    pytest.skip("needs root, ip netns and tc tbf", allow_module_level=True)

pytestmark = [pytest.mark.netns, pytest.mark.slow]


@pytest.mark.parametrize("rate", [3, 12])
def test_upload_is_what_the_server_received_and_nothing_trails(tmp_path, rate):
    # before: 1.174 of the ceiling at 3 Mbit/s and 1.051 at 12 (bytes handed to the socket), and 8 sockets
    # in FIN-WAIT-1 still sending 641 KB after the engine returned
    with NetLab(4) as lab:
        url = lab.start_speedtest_server()
        lab.shape(rate)
        [m] = measure(lab, url, tmp_path / "p.db", "--engine", "speedtest")
        trailing = subprocess.run(["ip", "netns", "exec", lab.client_ns, "ss", "-tanH", "state", "fin-wait-1"],
                                  capture_output=True, text=True, timeout=10).stdout
    assert m["status"] == "ok", m["error"]
    assert m["method"]["bytes"] == "kernel"
    # never above what the server received (before: 1.174); at 3 Mbit/s single runs have read 0.959-1.0 of the
    # ceiling (issue #15 keeps the 0.97 goal open), so the guard against under-counting is set at 0.94
    assert 0.94 <= m["upload_mbps"] / ceiling_mbps(rate) <= 1.01, m["upload_mbps"] / ceiling_mbps(rate)
    assert trailing.strip() == "", trailing


@pytest.mark.skipif(not emulated.available(), reason="needs ethtool and gcc for the link emulator")
def test_on_a_long_link_the_engine_keeps_the_link_busy(tmp_path):
    # before, at 120 ms RTT and 40 Mbit/s (medians of 3 against iperf3): download 0.920, upload 0.774.
    # speedtest-cli opened a new connection from TCP's initial window for each of its ~90 files and uploads and
    # joined its threads in order (one starved file held every new one behind it); in-order bytes lagged behind
    # each loss. Now each thread starts its next request on a kept-alive connection as soon as its own ends and
    # downloads are rated by the segments that arrived
    with EmulatedLab(12, rate_mbit=40, rtt_ms=120) as lab:
        url = lab.start_speedtest_server()
        [m] = measure(lab, url, tmp_path / "p.db", "--engine", "speedtest", "--no-quiet-check")
    assert m["status"] == "ok", m["error"]
    assert m["method"]["download_rate"] == "segments"
    down, up = m["download_mbps"] / ceiling_mbps(40), m["upload_mbps"] / ceiling_mbps(40)
    # single runs after: 0.998-1.000 down, 0.937-0.960 up (the upload's request-answer round trip per body)
    assert 0.95 <= down <= 1.03, down
    assert 0.90 <= up <= 1.02, up
