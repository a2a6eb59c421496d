"""The daemon's jobs with a frozen clock against the real collector; the real process under SIGTERM."""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.server
import random
import signal
import socket
import subprocess
import sys
import time

import requests
from conftest import make_measurement
from testserver import Server

from xaprobe.agent.config import AgentConfig, LinkConfig, UploadConfig
from xaprobe.agent.daemon import Probe
from xaprobe.agent.engines import http as http_engine
from xaprobe.agent.status import probe_status, render_status
from xaprobe.agent.store import Store
from xaprobe.months import DEFAULT_TZ, month_bounds, month_of
from xaprobe.secret import Secret

# the probe's frozen clock: now (a test's own time stamp comes from the real clock and must fall in the same
# month as the probe's plans and status), and at least a day into the month, so the month's first slot has passed
_REAL = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
NOW = max(_REAL, month_bounds(month_of(_REAL, DEFAULT_TZ), DEFAULT_TZ)[0] + dt.timedelta(days=1))


def probe_for(collector, token, tmp_path, **upload) -> Probe:
    config = AgentConfig(device_id="probe-1", token=Secret(token), commune_code="18673",
                         collector_url=collector.base + "/", store=tmp_path / "probe.db",
                         links=(LinkConfig(name="office", operator="VNPT"),),
                         engines={"http": http_engine.Settings(server=collector.base + "/speedtest/", duration_s=1,
                                                               streams=2)},
                         upload=UploadConfig(**upload))
    return Probe(config, Store.open(config.store), requests.Session(), clock=lambda: NOW, rng=random.Random(1))


def test_due_test_runs_then_is_uploaded_and_reported(sqlite_collector, tmp_path):
    probe = probe_for(sqlite_collector, sqlite_collector.enrol(), tmp_path)
    probe.test_if_due()  # the month's first slot has long passed at NOW: due at once
    [m] = list(probe.store.measurements())
    assert m.status == "ok" and m.device_id == "probe-1" and m.link.operator == "VNPT"
    assert probe.store.slot_end("office") is not None
    probe.test_if_due()  # the next one is planned later than NOW: nothing runs
    assert len(list(probe.store.measurements())) == 1
    probe.upload_if_due()
    assert probe.store.backlog().pending == 0 and sqlite_collector.store.stats.count_measurements() == 1
    probe.heartbeat()
    beat = sqlite_collector.store.devices.get("probe-1").heartbeat
    assert beat.backlog == 0 and beat.version and beat.links[0].samples == 1
    assert beat.disk_free_bytes > 0 and beat.disk_full is False


def test_backoff_after_failure_and_retry_after(tmp_path):
    class Busy(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(503)
            self.send_header("Retry-After", "900")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = Server(("127.0.0.1", 0), Busy).start()

    class Fake:
        base = server.base

    probe = probe_for(Fake, "xap_t", tmp_path, backoff_base_s=30, backoff_cap_s=600)
    probe.store.add(make_measurement(device_id="probe-1"))
    probe.upload_if_due()
    assert probe.health.next_upload_at == NOW + dt.timedelta(seconds=900)  # Retry-After beats the backoff
    assert "503" in probe.store.upload_record().last_error
    server.stop()
    probe.health.next_upload_at = None
    probe.destination = probe.destination.__class__("http://127.0.0.1:9", Secret("t"), 2)  # now down altogether
    probe.upload_if_due()
    delay = (probe.health.next_upload_at - NOW).total_seconds()
    assert 0 <= delay <= min(600, 30 * 2 ** probe.health.upload_attempt)
    assert probe.store.backlog().pending == 1


def test_refused_token_stops_uploads(sqlite_collector, tmp_path):
    probe = probe_for(sqlite_collector, "xap_not_a_token", tmp_path)
    probe.store.add(make_measurement(device_id="probe-1"))
    probe.upload_if_due()
    assert probe_status(probe.config, probe.store).token_refused is True
    attempts = probe.store.db.execute("SELECT upload_attempts FROM measurements").fetchone()[0]
    probe.health.next_upload_at = None
    probe.upload_if_due()  # nothing is sent any more until the token is fixed
    assert probe.store.backlog().pending == 1
    assert probe.store.db.execute("SELECT upload_attempts FROM measurements").fetchone()[0] == attempts
    restarted = Probe(probe.config, probe.store, requests.Session(), clock=lambda: NOW)
    restarted.upload_if_due()  # a restart does not forget it
    assert probe.store.db.execute("SELECT upload_attempts FROM measurements").fetchone()[0] == attempts
    fixed = dataclasses.replace(probe.config, token=Secret(sqlite_collector.enrol()))
    renewed = Probe(fixed, probe.store, requests.Session(), clock=lambda: NOW)
    assert probe_status(fixed, probe.store).token_refused is False
    renewed.upload_if_due()  # the new token from the collector staff: uploads resume
    assert probe.store.backlog().pending == 0


def test_heartbeat_settings_steer_the_probe_and_status_shows_them(sqlite_collector, tmp_path):
    token = sqlite_collector.enrol(target=450)
    probe = probe_for(sqlite_collector, token, tmp_path)
    probe.heartbeat()
    status = probe_status(probe.config, probe.store, NOW)
    assert status.links[0].target == 450 and status.links[0].target_from_collector and not status.centre.pause
    sqlite_collector.store.devices.steer("probe-1", pause=True, target=None, now=NOW)
    probe.heartbeat()
    assert probe.store.centre_settings().pause
    probe.test_if_due()  # paused from the centre: no test, though one is due
    assert list(probe.store.measurements()) == []
    sqlite_collector.store.devices.steer("probe-1", pause=False, target=600, now=NOW)
    probe.heartbeat()
    # a restarted daemon and `xaprobe status` plan with the target the collector set, not the config's 300
    restarted = Probe(probe.config, Store.open(probe.config.store), requests.Session(), clock=lambda: NOW)
    assert not restarted.store.centre_settings().pause
    shown = probe_status(restarted.config, restarted.store, NOW)
    assert shown.links[0].target == 600 and "target 600, set by the collector" in render_status(shown)
    restarted.test_if_due()
    assert len(list(restarted.store.measurements())) == 1


def test_guard_keeps_the_loop_alive(tmp_path):
    probe = Probe(AgentConfig(store=tmp_path / "p.db"), Store.open(tmp_path / "p.db"), requests.Session())

    def explode():
        raise ValueError("boom")

    probe.guarded(explode)()
    assert probe.health.last_error == "explode: ValueError: boom"


def test_run_notifies_systemd_and_stops_on_sigterm(sqlite_collector, tmp_path):
    token = sqlite_collector.enrol()
    config = tmp_path / "agent.toml"
    config.write_text(f'device_id = "probe-1"\ntoken = "{token}"\ncommune_code = "18673"\n'
                      f'collector_url = "{sqlite_collector.base}/"\nstore = "probe.db"\n'
                      f'[engines.http]\nserver = "{sqlite_collector.base}/speedtest/"\nduration_s = 1\n'
                      '[[links]]\nname = "office"\ninterface = "lo"\naccess = "ethernet"\n')
    notify = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(30)
    proc = subprocess.Popen([sys.executable, "-m", "xaprobe.agent", "--config", str(config), "run"],
                            env={"NOTIFY_SOCKET": str(notify), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                            stderr=subprocess.PIPE, text=True)
    try:
        assert sock.recv(100) == b"READY=1"
        assert sock.recv(100) == b"WATCHDOG=1"
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        messages = []
        sock.settimeout(1)
        try:
            while True:
                messages.append(sock.recv(100))
        except TimeoutError:
            pass
        assert messages[-1] == b"STOPPING=1"
    finally:
        proc.kill()
        sock.close()
    beat = sqlite_collector.store.devices.get("probe-1").heartbeat  # the first heartbeat goes out at start
    assert beat is not None and beat.device_id == "probe-1"
    s = Store.open(tmp_path / "probe.db")
    assert s.integrity() == "ok"
