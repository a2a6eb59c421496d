"""`xaprobe doctor` through each failing check, against a real collector on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
import requests
from conftest import have_netns

from xaprobe.agent.doctor import FAIL, OK, WARN, flows, render, run_checks


def write_config(tmp_path, collector_url: str, token: str, link: str = "", mode: int = 0o644):
    path = tmp_path / "agent.toml"
    (tmp_path / "token").write_text(token + "\n")
    os.chmod(tmp_path / "token", 0o600)
    path.write_text(f'device_id = "probe-1"\ntoken_file = "token"\ncommune_code = "18673"\n'
                    f'collector_url = "{collector_url}/"\nstore = "probe.db"\n'
                    f'[engines.http]\nserver = "{collector_url}/speedtest/"\n'
                    + (link or '[[links]]\nname = "office"\ninterface = "lo"\naccess = "ethernet"\n'
                                'operator = "VNPT"\n'))
    os.chmod(path, mode)
    return path


def verdicts(checks) -> dict[str, str]:
    return {c.name: c.verdict for c in checks}


def test_a_healthy_probe_flows(sqlite_collector, tmp_path):
    path = write_config(tmp_path, sqlite_collector.base, sqlite_collector.enrol())
    checks = run_checks(path, requests.Session(), clock_synced=lambda: True, service=False)
    assert flows(checks), render(checks)
    assert verdicts(checks)["collector"] == OK and verdicts(checks)["link office"] == OK
    assert set(verdicts(checks).values()) <= {OK, WARN}  # http:// on loopback is a warning (no TLS)
    assert "samples will flow" in render(checks)


def test_a_wrong_token_fails_with_what_to_do(sqlite_collector, tmp_path):
    path = write_config(tmp_path, sqlite_collector.base, "xap_wrong")
    checks = run_checks(path, requests.Session(), clock_synced=lambda: True, service=False)
    [token] = [c for c in checks if c.name == "token"]
    assert token.verdict == FAIL and "refused" in token.found and "new token" in token.todo
    assert not flows(checks)


def test_an_unreachable_collector(tmp_path):
    path = write_config(tmp_path, "http://127.0.0.1:9", "xap_t")
    [check] = [c for c in run_checks(path, requests.Session(), lambda: True, service=False) if c.name == "collector"]
    assert check.verdict == FAIL and "connection refused" in check.found


def test_a_stale_clock_fails_with_the_fix(sqlite_collector, tmp_path):
    path = write_config(tmp_path, sqlite_collector.base, sqlite_collector.enrol())
    [clock] = [c for c in run_checks(path, requests.Session(), lambda: False, service=False) if c.name == "clock"]
    assert clock.verdict == FAIL and "timedatectl set-ntp true" in clock.todo


def test_a_config_the_service_cannot_read(sqlite_collector, tmp_path):
    path = write_config(tmp_path, sqlite_collector.base, sqlite_collector.enrol(), mode=0o600)
    checks = run_checks(path, requests.Session(), lambda: True, service=False)
    assert verdicts(checks)["config-readable"] == FAIL and not flows(checks)


def test_an_unknown_operator_is_named(tmp_path):
    link = '[[links]]\nname = "m"\ninterface = "lo"\naccess = "cellular"\noperator = "viettel 4G"\n'
    path = write_config(tmp_path, "http://127.0.0.1:9", "xap_t", link=link)
    [check] = run_checks(path, requests.Session(), lambda: True, service=False)
    assert check.verdict == FAIL and '"viettel 4G" is not an operator' in check.found


def test_a_cellular_link_without_a_data_plan_is_a_warning(sqlite_collector, tmp_path):
    link = '[[links]]\nname = "m"\ninterface = "lo"\naccess = "cellular"\noperator = "Viettel"\n'
    path = write_config(tmp_path, sqlite_collector.base, sqlite_collector.enrol(), link=link)
    checks = run_checks(path, requests.Session(), lambda: True, service=False)
    [check] = [c for c in checks if c.name == "link m"]
    assert check.verdict == WARN and "no data plan" in check.found and flows(checks)


def test_a_missing_interface(tmp_path):
    link = '[[links]]\nname = "m"\ninterface = "wwan7"\naccess = "cellular"\noperator = "Viettel"\n'
    path = write_config(tmp_path, "http://127.0.0.1:9", "xap_t", link=link)
    [check] = [c for c in run_checks(path, requests.Session(), lambda: True, service=False) if c.name == "link m"]
    assert check.verdict == FAIL and "does not exist" in check.found and "plugged in" in check.todo


@pytest.mark.netns
@pytest.mark.skipif(not have_netns(), reason="needs root, ip netns and tc")
def test_no_route_from_the_link_to_the_test_server(tmp_path):
    ns = f"xapdoc{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for cmd in (["link", "add", "v0", "type", "veth", "peer", "name", "v1"], ["link", "set", "v0", "up"],
                    ["link", "set", "lo", "up"]):
            subprocess.run(["ip", "-n", ns, *cmd], check=True)
        link = '[[links]]\nname = "m"\ninterface = "v0"\naccess = "cellular"\noperator = "Viettel"\n'
        path = write_config(tmp_path, "http://10.77.0.1:8080", "xap_t", link=link)
        done = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "xaprobe.agent", "--lang", "en",
                               "--config", str(path), "doctor", "--json"], capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    assert done.returncode == 1, done.stderr
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["link m"]["verdict"] == FAIL and "no route from v0 to the test server 10.77.0.1" in \
        checks["link m"]["found"]


def test_doctor_cli_exit_code(tmp_path):
    path = write_config(tmp_path, "http://127.0.0.1:9", "xap_t")
    done = subprocess.run([sys.executable, "-m", "xaprobe.agent", "--lang", "en", "--config", str(path), "doctor"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "samples will NOT flow" in done.stdout and "Traceback" not in done.stderr
