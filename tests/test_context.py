"""Network context: access type from sysfs, the modem's radio from ModemManager, the clock."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import fake_mmcli

from xaprobe.agent import context
from xaprobe.agent.config import LinkConfig
from xaprobe.agent.measure import link_context

FIXTURES = Path(__file__).parent / "fixtures" / "mmcli"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_lte_modem_is_read():
    radio = context.parse_mmcli_modem(load("modem-lte.json"), load("signal-lte.json"), load("location-lte.json"))
    assert radio.technology == "lte" and radio.operator == "Viettel"
    assert (radio.rsrp_dbm, radio.rsrq_db, radio.sinr_db, radio.rssi_dbm) == (-97.0, -11.0, 7.4, -68.0)
    assert radio.cell_id == "0A3C1F02" and radio.signal_percent == 61.0


def test_5g_nsa_prefers_the_nr_signal():
    radio = context.parse_mmcli_modem(load("modem-5g-nsa.json"), load("signal-5g-nsa.json"), None)
    assert radio.technology == "5gnr" and radio.operator == "MobiFone"  # by its MCC-MNC, 452-01
    assert (radio.rsrp_dbm, radio.rsrq_db, radio.sinr_db) == (-88.0, -12.0, 16.5)
    assert radio.cell_id is None


def test_missing_signal_is_none_not_an_error():
    radio = context.parse_mmcli_modem(load("modem-lte.json"), None, None)
    assert radio.rsrp_dbm is None and radio.technology == "lte"


def test_each_link_finds_its_own_modem(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{fake_mmcli(tmp_path)}:{os.environ['PATH']}")
    viettel = link_context(LinkConfig(name="a", interface="wwan0", access="cellular"))
    mobifone = link_context(LinkConfig(name="b", interface="wwan1", access="cellular", operator="MobiFone"))
    assert viettel.operator == "Viettel" and viettel.radio.rsrp_dbm == -97.0 and viettel.radio.cell_id == "0A3C1F02"
    assert mobifone.operator == "MobiFone"  # the config's name wins over the network's
    assert mobifone.radio.technology == "5gnr" and mobifone.radio.sinr_db == 16.5
    assert link_context(LinkConfig(name="c", interface="wwan7", access="cellular")).radio is None


def test_access_type_from_sysfs(tmp_path):
    def iface(name, kind, extra=(), device=True, uevent=""):
        d = tmp_path / name
        d.mkdir()
        (d / "type").write_text(f"{kind}\n")
        (d / "uevent").write_text(uevent)
        if device:
            (d / "device").mkdir()
        for e in extra:
            (d / e).mkdir()

    iface("eth0", 1)
    iface("wlan0", 1, extra=("wireless",))
    iface("wwan0", 519)
    iface("usb0", 1, uevent="DEVTYPE=wwan\n")
    iface("veth1", 1, device=False)
    assert context.access_type("eth0", tmp_path) == "ethernet"
    assert context.access_type("wlan0", tmp_path) == "wifi"
    assert context.access_type("wwan0", tmp_path) == "cellular"
    assert context.access_type("usb0", tmp_path) == "cellular"
    assert context.access_type("veth1", tmp_path) == "other"
    assert context.access_type("nothere", tmp_path) == ""


def test_clock_state_is_read_from_the_kernel():
    assert context.clock_synced() in (True, False)  # adjtimex answers on Linux; None only off Linux


def test_wifi_ssid_and_signal():
    wifi = FIXTURES.parent / "wifi"
    radio = context.parse_wifi((wifi / "iw-link.txt").read_text(), (wifi / "proc-net-wireless.txt").read_text(),
                               "wlan0")
    assert (radio.technology, radio.ssid, radio.rssi_dbm) == ("wifi", "UBND-CamXuyen", -61.0)
    only_proc = context.parse_wifi("", (wifi / "proc-net-wireless.txt").read_text(), "wlan0")
    assert only_proc.rssi_dbm == -61.0 and only_proc.ssid is None
    assert context.parse_wifi("Not connected.\n", "", "wlan0") is None
