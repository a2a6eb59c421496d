"""Measurement accuracy through real rate-shaped links: network namespaces, veth pairs and tbf (root)."""

from __future__ import annotations

import json
import os
import sys

import netlab
import pytest
from netlab import NetLab, ceiling_mbps

if not netlab.available():
    if os.environ.get("CI"):
        raise RuntimeError("CI runs as root with iproute2 and tbf: the namespace tests must run there")
    pytest.skip("needs root, ip netns and tc tbf", allow_module_level=True)

pytestmark = pytest.mark.netns


def measure(lab: NetLab, url: str, store, *extra: str) -> list[dict]:
    out, _, _ = lab.run_client([sys.executable, "-m", "xaprobe.agent", "--store", str(store), "measure",
                                "--server", url, "--json", *extra])
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_http_engine_lands_on_the_ceiling_at_20_mbit(tmp_path):
    with NetLab(1) as lab:
        url = lab.start_speedtest_server()
        lab.shape(20)
        [m] = measure(lab, url, tmp_path / "p.db", "--engine", "http", "--duration", "5")
    assert m["status"] == "ok", m["error"]
    ceiling = ceiling_mbps(20)
    assert 0.93 <= m["download_mbps"] / ceiling <= 1.03, m
    assert 0.93 <= m["upload_mbps"] / ceiling <= 1.03, m
    assert m["loaded_latency_ms"] > m["latency_ms"]  # the 50 ms tbf queue fills under load
    assert m["method"]["download_rate"] == "segments"  # full segments of a real link stand for its bytes


def test_byte_capped_test_stops_at_its_cap(tmp_path):
    with NetLab(2) as lab:
        url = lab.start_speedtest_server()
        lab.shape(20)
        [m] = measure(lab, url, tmp_path / "p.db", "--engine", "http", "--duration", "8", "--cap-mb", "8")
    assert m["status"] == "ok" and m["capped"] is True, m
    # downloads come in whole MiB (LibreSpeed's ckSize): at most the cap, at least a MiB under it
    assert 8_000_000 - 1024 * 1024 <= m["bytes_down"] <= 8_000_000 + 64 * 1024, m
    assert 7_000_000 <= m["bytes_up"] <= 8_000_000 + 64 * 1024, m
    assert m["duration_s"] < 12  # it stopped at the cap (about 3.3 s a way), not after 2 x 8 s
    assert 0.9 <= m["download_mbps"] / ceiling_mbps(20) <= 1.05, m  # still a valid sample
    assert 0.9 <= m["upload_mbps"] / ceiling_mbps(20) <= 1.05, m


def test_each_link_measures_its_own_rate(tmp_path):
    with NetLab(3, links=2) as lab:
        url = lab.start_speedtest_server()
        lab.shape(10, link=0)
        lab.shape(40, link=1)
        config = tmp_path / "agent.toml"
        config.write_text(f'''
[engines.http]
server = "{url}"
duration_s = 4
[[links]]
name = "viettel"
interface = "{lab.client_ifs[0]}"
operator = "Viettel"
[[links]]
name = "vnpt"
interface = "{lab.client_ifs[1]}"
operator = "VNPT"
''')
        out, _, _ = lab.run_client([sys.executable, "-m", "xaprobe.agent", "--config", str(config), "--store",
                                    str(tmp_path / "p.db"), "measure", "--json"])
        results = {m["link"]["name"]: m for m in map(json.loads, out.splitlines())}
        status_out, _, _ = lab.run_client([sys.executable, "-m", "xaprobe.agent", "--config", str(config),
                                           "--store", str(tmp_path / "p.db"), "status", "--json"])
    for name, rate in (("viettel", 10), ("vnpt", 40)):
        m = results[name]
        assert m["status"] == "ok", m["error"]
        assert m["link"]["interface"] == lab.client_ifs[0 if name == "viettel" else 1]
        assert 0.93 <= m["download_mbps"] / ceiling_mbps(rate) <= 1.03, (name, m["download_mbps"])
        assert 0.93 <= m["upload_mbps"] / ceiling_mbps(rate) <= 1.03, (name, m["upload_mbps"])
    status = json.loads(status_out)
    assert [(x["name"], x["samples"], x["target"]) for x in status["links"]] == [("viettel", 1, 300), ("vnpt", 1, 300)]
    assert status["links"][1]["last_result"]["download_mbps"] == results["vnpt"]["download_mbps"]


def test_a_link_with_no_service_is_a_failed_measurement_saying_so(tmp_path):
    with NetLab(4) as lab:
        url = lab.start_speedtest_server()
        config = tmp_path / "agent.toml"
        config.write_text(f'[engines.http]\nserver = "{url}"\nduration_s = 2\ntimeout_s = 3\n'
                          f'[[links]]\nname = "mobifone"\ninterface = "{lab.client_if}"\noperator = "MobiFone"\n')
        netlab.sh("ip", "-n", lab.client_ns, "link", "set", lab.client_if, "down")  # the modem lost service
        out, _, _ = lab.run_client([sys.executable, "-m", "xaprobe.agent", "--config", str(config), "--store",
                                    str(tmp_path / "p.db"), "measure", "--json"])
    [m] = [json.loads(line) for line in out.splitlines()]
    assert m["status"] == "failed" and m["link"]["operator"] == "MobiFone"
    assert m["error"] == f"no route to {lab.service_ip}:8080 (is the link up? no service?)"
    assert m["download_mbps"] is None and m["seq"] == 1  # stored: a failed test is data too
