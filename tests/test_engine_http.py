"""The http engine against real local servers: results, byte caps, failures as Measurements."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import free_port
from testserver import serving

from xaprobe.agent.engines import http as engine
from xaprobe.agent.engines import rates
from xaprobe.agent.engines.base import RunRequest, describe_error

FIXTURES = Path(__file__).parent / "fixtures"
FAST = engine.Settings(duration_s=1.0, streams=2, timeout_s=3)


def test_measures_both_directions_on_loopback(speedtest_server):
    m = engine.run(RunRequest(), FAST, speedtest_server)
    assert m.status == "ok", m.error
    assert m.download_mbps > 100 and m.upload_mbps > 100  # loopback carries gigabits
    assert m.bytes_down > m.download_mbps * 1e6 / 8 * 0.5  # at least half a second's worth was counted
    assert 0 < m.latency_ms < 50 and m.jitter_ms >= 0
    assert m.loaded_latency_ms is not None
    assert m.client_ip == "127.0.0.1"
    assert m.capped is False


def test_byte_cap_stops_the_test_at_the_cap(speedtest_server):
    cap = 8 * 1024 * 1024
    m = engine.run(RunRequest(cap_bytes=cap), engine.Settings(duration_s=5, streams=4), speedtest_server)
    assert m.status == "ok" and m.capped
    # what the kernel counted includes HTTP headers, nothing more than that beyond the cap
    assert cap * 0.85 <= m.bytes_down <= cap + 64 * 1024
    assert cap * 0.85 <= m.bytes_up <= cap + 64 * 1024
    assert m.duration_s < 5  # stopped at the cap, not at the deadline


def test_refused_connection_is_a_failed_measurement():
    port = free_port()
    m = engine.run(RunRequest(), FAST, f"http://127.0.0.1:{port}/speedtest/")
    assert m.status == "failed"
    assert m.error == f"connection refused by 127.0.0.1:{port} (is the server running?)"


def test_silent_server_times_out():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)  # accepts TCP, never answers HTTP
    port = listener.getsockname()[1]
    m = engine.run(RunRequest(), engine.Settings(duration_s=1, timeout_s=1), f"http://127.0.0.1:{port}/")
    listener.close()
    assert m.status == "failed" and m.error == f"no answer from 127.0.0.1:{port} in time (timeout)"


def test_reset_mid_test_is_a_failed_measurement():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    port = listener.getsockname()[1]

    def reset_everything():
        for _ in range(3):
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(1024)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            conn.close()

    threading.Thread(target=reset_everything, daemon=True).start()
    m = engine.run(RunRequest(), FAST, f"http://127.0.0.1:{port}/")
    listener.close()
    assert m.status == "failed"
    assert m.error.startswith(("connection reset by 127.0.0.1", "network error with 127.0.0.1",
                               "RemoteDisconnected"))


def test_server_error_status_is_named():
    import http.server

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_error(404, "Not Found")

        def log_message(self, *args):
            pass

    with serving(NotFound) as server:
        m = engine.run(RunRequest(), FAST, f"{server.base}/speedtest/")
    assert m.status == "failed"
    base = f"{server.base}/speedtest/"
    assert m.error == f"{base} is not a LibreSpeed server: 404 for /speedtest/empty and /speedtest/empty.php"


def test_php_layout_is_served_too(speedtest_server):
    m = engine.run(RunRequest(), engine.Settings(duration_s=1, streams=1, paths="php"), speedtest_server)
    assert m.status == "ok", m.error


def test_unknown_interface_is_named():
    m = engine.run(RunRequest(bind_interface="nosuchif0"), FAST, "http://127.0.0.1:9/")
    assert m.status == "failed"
    assert m.error in ("the link's interface does not exist (check links[].interface)",
                       "binding to an interface needs CAP_NET_RAW (run as root or through the systemd unit)")


def test_no_server_configured():
    m = engine.run(RunRequest(), engine.Settings(), None)
    assert m.status == "failed" and "no server given" in m.error


def test_describe_dns_failure():
    # the engines and the uploader word a network failure the same way: one piece of code (core/neterrors.py)
    assert describe_error(socket.gaierror(-2, "Name or service not known"), "x.example:80") == \
        "cannot resolve the name of x.example:80 (no DNS? is the address right?)"


def test_steady_rate_leaves_out_the_ramp():
    # 1 s of slow start at 10 Mbit/s, then 9 s at 100 Mbit/s, sampled every 50 ms
    samples, total = [(0.0, 0)], 0.0
    for i in range(1, 201):
        t = i * 0.05
        total += (10e6 if t <= 1.0 else 100e6) / 8 * 0.05
        samples.append((t, int(total)))
    assert rates.steady_mbps(samples) == pytest.approx(100, rel=0.002)
    assert rates.ramp_end(samples) == pytest.approx(1.0)
    # the stretch the rate covers (the bench compares it with the same stretch of a rate trace): after the ramp,
    # most of the transfer
    t0, t1, mbps = rates.steady_stretch(samples)
    assert 1.0 <= t0 < t1 <= 10.0 and t1 - t0 >= 0.5 * 9.0 and mbps == rates.steady_mbps(samples)
    assert rates.steady_stretch([]) == (0.0, 0.0, 0.0) and rates.steady_stretch(samples[:1])[2] == 0.0


def test_ramp_is_at_least_a_tenth_and_at_most_four_tenths():
    flat = [(i * 0.05, int(i * 0.05 * 1e6)) for i in range(201)]
    assert rates.ramp_end(flat) == pytest.approx(1.0)
    never_steady = [(i * 0.05, int((i * 0.05) ** 3 * 1e6)) for i in range(201)]
    assert rates.ramp_end(never_steady) <= 4.0


@pytest.mark.parametrize("seconds, lag, start, full, caught_up", [
    # 10 s; between 1.2 s and 1.9 s a lost segment holds back the in-order count by up to 300 kB, which then
    # arrives at once
    (10, 300_000, 1.2, 0.3, 1.9),
    # 3 s; from 0.1 s a busy receiver falls behind, by 250 kB at 0.4 s, and catches up at once at 1.3 s: the head
    # quarter of the steady part (0.5-1.13 s) lies wholly in the lag (the estimator before read 1.05)
    (3, 250_000, 0.1, 0.3, 1.3)])
def test_a_lagging_count_does_not_inflate_the_rate(seconds, lag, start, full, caught_up):
    # the link carries 20 Mbit/s throughout; the kernel's count falls behind it and catches up
    samples = []
    for i in range(int(seconds / 0.05) + 1):
        t = i * 0.05
        behind = lag * min(1.0, (t - start) / full) if start <= t < caught_up else 0
        samples.append((t, int(20e6 / 8 * t - behind)))
    assert rates.steady_mbps(samples) == pytest.approx(20, rel=0.005)


@pytest.mark.parametrize("name", sorted(p.name for p in (FIXTURES / "rates").glob("*.json")))
def test_recorded_short_downloads_read_the_link_ceiling(name):
    # real sample series (tests/fixtures/rates/: what and where each was recorded); the loaded ones lag by up to
    # 450 kB for up to a second and then catch up in 0.1 s (the estimator before read 1.072 and 1.059 of the
    # link, and 0.969 for the idle one whose count lagged near its end)
    recorded = json.loads((FIXTURES / "rates" / name).read_text())
    samples = [(t, b) for t, b in recorded["samples"]]
    assert rates.steady_mbps(samples) / recorded["ceiling_mbps"] == pytest.approx(1.0, abs=0.01), recorded["what"]


@pytest.mark.parametrize("name", sorted(p.name for p in (FIXTURES / "rates" / "arrivals").glob("*.json")))
def test_a_download_is_rated_by_the_segments_that_arrived(name):
    # real 10 s downloads through the emulated link at 120 ms (tests/fixtures/rates/arrivals/: what each is): the
    # kernel's in-order count lags by a megabyte for over a second after slow start's losses, and the bytes read
    # over the link (1.04-1.06 of its ceiling: #15's defect); the data segments that arrived read the link
    recorded = json.loads((FIXTURES / "rates" / "arrivals" / name).read_text())
    samples = [(t, b) for t, b in recorded["samples"]]
    ceiling = recorded["ceiling_mbps"]
    assert rates.steady_mbps(samples) / ceiling > 1.03, recorded["what"]  # what the bytes say: the defect
    series = rates.arrived(samples, recorded["segments"], recorded["mss"])
    assert series is not None
    assert rates.steady_mbps(series) / ceiling == pytest.approx(1.0, abs=0.01), recorded["what"]


def _lagging_download(seconds=10.0, mbit=20.0, per_segment=1448, mss=1448):
    """A download at mbit whose in-order count lags 1 MB from 1 s to 2.5 s: (samples, segments arrived)."""
    samples, segments = [], []
    for i in range(int(seconds / 0.05) + 1):
        t = i * 0.05
        moved = mbit * 1e6 / 8 * t
        samples.append((t, int(moved - (1e6 if 1.0 <= t < 2.5 else 0))))
        segments.append(int(moved / per_segment))
    return samples, segments


def test_segments_stand_for_bytes_only_where_they_are_full():
    samples, segments = _lagging_download()
    series = rates.arrived(samples, segments, 1448)
    assert series is not None and rates.steady_mbps(series) == pytest.approx(20, rel=0.005)
    # a server writing 500-byte pieces: as many segments would read nearly three times the rate
    assert rates.arrived(*_lagging_download(per_segment=500), 1448) is None
    # segments merged without their count (more bytes than full segments could carry): they would read low
    assert rates.arrived(*_lagging_download(per_segment=2896), 1448) is None
    # a socket that could not say, no segment size, or nothing arrived
    assert rates.arrived(samples, segments[:-1] + [None], 1448) is None
    assert rates.arrived(samples, segments, 0) is None
    assert rates.arrived(samples[:1], [0], 1448) is None


def test_the_meter_reads_segments_from_the_kernel_and_says_when_it_cannot(monkeypatch):
    from xaprobe.agent.engines import sockets

    listener = socket.create_server(("127.0.0.1", 0))
    sender = socket.create_connection(listener.getsockname())
    receiver, _ = listener.accept()
    meter = sockets.ByteMeter(upload=False)
    meter.attach(receiver)
    sender.sendall(b"x" * 2_000_000)
    got = 0
    while got < 2_000_000:
        got += len(receiver.recv(1 << 20))
    received, arrived = meter.reading()
    assert received == 2_000_000 and arrived and arrived > 0 and meter.mss > 0
    assert sockets.ByteMeter(upload=True).reading() == (0, None)  # an upload is rated by what was acknowledged
    monkeypatch.setattr(sockets, "tcp_arrivals", lambda sock: None)
    blind = sockets.ByteMeter(upload=False)
    blind.attach(receiver)
    assert blind.reading() == (2_000_000, None) and not blind.segments
    for s in (sender, receiver, listener):
        s.close()


def test_a_moving_rate_is_measured_over_most_of_a_long_transfer():
    # 10 s alternating 0.4 s at 30 Mbit/s and 0.4 s at 10 Mbit/s (mean 20): no lag to leave out, so the ends stay
    # near the ends and the rate is the mean, not a sub-stretch that happens to be fast or slow
    samples, total = [(0.0, 0)], 0.0
    for i in range(1, 201):
        t = i * 0.05
        total += (30e6 if int(t / 0.4) % 2 == 0 else 10e6) / 8 * 0.05
        samples.append((t, int(total)))
    assert rates.steady_mbps(samples) == pytest.approx(20, rel=0.06)


def test_latency_stats():
    assert rates.latency_stats([10, 12, 11, 30, 10]) == (11, pytest.approx((2 + 1 + 19 + 20) / 4))
    assert rates.latency_stats([]) == (None, None)


def test_measure_cli_json_works_without_config(speedtest_server, tmp_path):
    env_home = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "xaprobe.agent", "--store", str(tmp_path / "p.db"), "measure",
                           "--engine", "http", "--server", speedtest_server, "--duration", "1", "--streams", "2",
                           "--json"], capture_output=True, text=True, timeout=60,
                          env=env_home | {"XAPROBE_CONFIG": str(tmp_path / "none.toml"), "XAPROBE_LANG": "en"})
    assert done.returncode == 0, done.stderr
    assert "warning: no config file" in done.stderr
    m = json.loads(done.stdout)
    for key in ("download_mbps", "upload_mbps", "latency_ms", "jitter_ms", "bytes_down", "bytes_up", "status",
                "error"):
        assert key in m
    assert m["status"] == "ok" and m["device_id"] == "" and m["seq"] == 1
