"""Link detection: modems through ModemManager (recorded `mmcli -J` output), Ethernet and Wi-Fi from sysfs."""

from __future__ import annotations

import os

from conftest import fake_mmcli

from xaprobe.agent import links


def sysfs(tmp_path, *names_kinds):
    base = tmp_path / "net"
    for name, kind, wireless in names_kinds:
        d = base / name
        d.mkdir(parents=True)
        (d / "type").write_text(f"{kind}\n")
        (d / "uevent").write_text("")
        (d / "device").mkdir()
        if wireless:
            (d / "wireless").mkdir()
    (base / "lo").mkdir()
    (base / "lo" / "type").write_text("772\n")
    return base


def test_modems_are_found_with_their_operator_from_the_sim(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{fake_mmcli(tmp_path)}:{os.environ['PATH']}")
    net = sysfs(tmp_path, ("eth0", 1, False), ("wlan0", 1, True), ("wwan0", 519, False))
    found = links.detect(net)
    assert [(f.interface, f.access, f.operator) for f in found] == [
        ("wwan0", "cellular", "Viettel"),  # 452-04
        ("wwan1", "cellular", "MobiFone"),  # 452-01, though the network calls itself MOBIFONE
        ("eth0", "ethernet", None), ("wlan0", "wifi", None)]  # wwan0 is the modem's: not listed twice
    assert found[1].technology == "5gnr" and found[0].model == "Quectel EC25"
    assert [f.suggested_name for f in found] == ["viettel", "mobifone", "eth0", "wlan0"]


def test_without_modemmanager_only_interfaces_are_found(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    net = sysfs(tmp_path, ("eth0", 1, False))
    assert [(f.interface, f.access) for f in links.detect(net)] == [("eth0", "ethernet")]
