"""The quiet check's arithmetic and decisions over a sysfs tree in a temp directory, with a fake sleep and clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_measurement

from xaprobe.agent.config import QuietCheckConfig
from xaprobe.agent.quiet import NOT_CHECKED, Counters, Quiet, look, stamped, wait_for_quiet
from xaprobe.months import month_of
from xaprobe.wire import Method, from_wire, to_wire


class FakeLink:
    """A sysfs root holding one interface whose counters move by the next of `moves` (rx, tx bytes) each sleep."""

    def __init__(self, root: Path, moves: list[tuple[int, int]], name: str = "wwan0"):
        self.base = root / name / "statistics"
        self.base.mkdir(parents=True)
        self.rx = self.tx = 0
        self.now = 100.0
        self.moves = list(moves)
        self.slept: list[float] = []
        self.write()

    def write(self) -> None:
        (self.base / "rx_bytes").write_text(f"{self.rx}\n")
        (self.base / "tx_bytes").write_text(f"{self.tx}\n")

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        if seconds <= 5 and self.moves:  # a look's window moves the counters; a wait between looks does not count
            rx, tx = self.moves.pop(0)
            self.rx, self.tx = self.rx + rx, self.tx + tx
            self.write()

    def counters(self, root: Path) -> Counters:
        return Counters(sys_net=root, sleep=self.sleep, clock=lambda: self.now)


SETTINGS = QuietCheckConfig(window_s=2.0, busy_kbps=200.0, wait_s=30.0, max_waits=3)


def test_rate_is_both_directions_over_the_window(tmp_path):
    link = FakeLink(tmp_path, [(250_000, 12_500)])
    # (250,000 + 12,500) bytes * 8 / 2 s = 1,050,000 bit/s
    assert link.counters(tmp_path).kbps("wwan0", 2.0) == pytest.approx(1050.0)
    assert link.slept == [2.0]


@pytest.mark.parametrize("interface", ["", "eth9", "../wwan0"])
def test_no_interface_or_no_counters_is_none_not_zero(tmp_path, interface):
    FakeLink(tmp_path, [(1000, 1000)])
    assert Counters(sys_net=tmp_path, sleep=lambda s: None).kbps(interface, 2.0) is None


def test_unreadable_or_restarted_counters_are_none(tmp_path):
    link = FakeLink(tmp_path, [])
    (link.base / "tx_bytes").write_text("garbage\n")
    assert link.counters(tmp_path).kbps("wwan0", 2.0) is None
    link.write()
    link.rx = 10_000_000
    link.write()
    restarted = Counters(sys_net=tmp_path, sleep=lambda s: (link.base / "rx_bytes").write_text("5\n"),
                         clock=lambda: link.now)
    assert restarted.kbps("wwan0", 2.0) is None  # the modem re-enumerated: its counters began again


def test_busy_link_waits_then_tests_once_quiet(tmp_path):
    link = FakeLink(tmp_path, [(500_000, 20_000), (300_000, 10_000), (2_000, 500)])
    said: list[Quiet] = []
    quiet = wait_for_quiet("wwan0", SETTINGS, link.counters(tmp_path), said.append)
    assert quiet == Quiet(kbps=pytest.approx(10.0), waits=2)  # the last look: 2,500 B in 2 s
    assert [q.waits for q in said] == [0, 1] and said[0].kbps == pytest.approx(2080.0)
    assert link.slept == [2.0, 30.0, 2.0, 30.0, 2.0]  # three looks, two waits between them


def test_busy_after_max_waits_runs_anyway_with_the_traffic_recorded(tmp_path):
    link = FakeLink(tmp_path, [(500_000, 0)] * 10)
    quiet = wait_for_quiet("wwan0", SETTINGS, link.counters(tmp_path), lambda q: None)
    assert quiet.waits == 3 and quiet.kbps == pytest.approx(2000.0) and quiet.busy(SETTINGS)
    assert not quiet.waits_more(SETTINGS)


def test_exactly_the_threshold_is_quiet(tmp_path):
    link = FakeLink(tmp_path, [(50_000, 0)])  # 200 kbit/s
    assert wait_for_quiet("wwan0", SETTINGS, link.counters(tmp_path), lambda q: None) == Quiet(200.0, 0)


def test_disabled_check_neither_looks_nor_records(tmp_path):
    link = FakeLink(tmp_path, [(500_000, 0)])
    off = QuietCheckConfig(enabled=False)
    assert look("wwan0", off, link.counters(tmp_path), 0) is NOT_CHECKED and link.slept == []


def test_stamped_merges_into_the_engines_method_and_survives_the_wire():
    m = make_measurement(method=Method(bytes="kernel", latency="http-keepalive", candidates=2))
    out = stamped(m, Quiet(kbps=1234.5678, waits=2))
    assert out.method == Method(bytes="kernel", latency="http-keepalive", candidates=2, cross_traffic_kbps=1234.6,
                                quiet_waits=2)
    assert from_wire(to_wire(out)).method == out.method
    assert stamped(make_measurement(), Quiet(0.0, 0)).method == Method(cross_traffic_kbps=0.0)  # quiet is zero
    assert stamped(m, NOT_CHECKED) is m  # not looked at: nothing said, not zero


def quiet_probe(collector, tmp_path, moves: list[tuple[int, int]], max_waits: int = 5):
    """A daemon over the real collector whose link (bound to lo) has counters in a temp sysfs; clock frozen."""
    import datetime as dt
    import random

    import requests

    from xaprobe.agent.config import AgentConfig, LinkConfig
    from xaprobe.agent.daemon import Probe
    from xaprobe.agent.engines import http as http_engine
    from xaprobe.agent.store import Store

    root = tmp_path / "sys-class-net"
    link = FakeLink(root, moves, name="lo")
    now = [dt.datetime(2026, 11, 20, 5, 0, tzinfo=dt.timezone.utc)]
    config = AgentConfig(device_id="probe-1", store=tmp_path / "probe.db",
                         links=(LinkConfig(name="office", interface="lo", operator="VNPT"),),
                         engines={"http": http_engine.Settings(server=collector.base + "/speedtest/", duration_s=1,
                                                               streams=2)},
                         quiet_check=QuietCheckConfig(window_s=0.5, wait_s=60.0, max_waits=max_waits))
    probe = Probe(config, Store.open(config.store), requests.Session(), clock=lambda: now[0], rng=random.Random(1),
                  counters=link.counters(root))
    return probe, link, now


def test_daemon_defers_a_busy_link_keeping_its_slot_then_tests_once_quiet(sqlite_collector, tmp_path, caplog):
    import datetime as dt
    import logging

    from xaprobe.agent.planner import next_due

    caplog.set_level(logging.INFO)
    probe, link, now = quiet_probe(sqlite_collector, tmp_path, [(500_000, 0), (400_000, 0), (1_000, 0)])
    due = next_due(probe.store, probe.config, now[0])
    probe.test_if_due()  # 8,000 kbit/s: waits
    assert list(probe.store.measurements()) == [] and probe.store.slot_end("office") is None
    assert probe.health.quiet_waits == {"office": 1} and probe.health.last_error is None
    assert next_due(probe.store, probe.config, now[0]) == due  # still due, same slot: nothing counted
    probe.test_if_due()  # within wait_s: the link is not even looked at
    assert len(link.slept) == 1
    now[0] += dt.timedelta(seconds=61)
    probe.test_if_due()  # still busy: a second wait
    assert probe.health.quiet_waits == {"office": 2} and list(probe.store.measurements()) == []
    now[0] += dt.timedelta(seconds=61)
    probe.test_if_due()  # quiet: the test runs
    [m] = list(probe.store.measurements())
    assert m.status == "ok", m.error
    assert m.method.quiet_waits == 2 and m.method.cross_traffic_kbps == 16.0  # 1,000 B in 0.5 s
    assert m.method.bytes == "kernel"  # the engine's own Method is kept
    tz = probe.config.timezone
    history = probe.store.link_history("office", month_of(m.started_at, tz), tz)  # the engine's clock is real
    assert (history.samples, history.failed) == (1, 0)
    assert probe.store.slot_end("office") is not None  # the slot closed by the test, not by the waits
    assert probe.health.quiet_waits == {} and probe.health.quiet_until == {}
    said = [r.getMessage() for r in caplog.records if r.name == "xaprobe.agent"]
    waiting = [line for line in said if "is busy" in line]
    assert len(waiting) == 1 and "8,000 kbit/s" in waiting[0] and "at most 5 waits" in waiting[0]  # said once
    assert any("link office is quiet after 2 waits: testing" in line for line in said)


def test_daemon_tests_anyway_after_max_waits_recording_the_traffic(sqlite_collector, tmp_path, caplog):
    import datetime as dt
    import logging

    caplog.set_level(logging.INFO)
    probe, link, now = quiet_probe(sqlite_collector, tmp_path, [(500_000, 0)] * 5, max_waits=1)
    probe.test_if_due()
    assert list(probe.store.measurements()) == []
    now[0] += dt.timedelta(seconds=61)
    probe.test_if_due()
    [m] = list(probe.store.measurements())
    assert m.method.quiet_waits == 1 and m.method.cross_traffic_kbps == 8000.0
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("still so after 1 waits: testing anyway" in line for line in warned)


def test_a_link_without_interface_is_not_checked(sqlite_collector, tmp_path):
    import dataclasses

    probe, link, now = quiet_probe(sqlite_collector, tmp_path, [(500_000, 0)])
    probe.config = dataclasses.replace(probe.config, links=(dataclasses.replace(probe.config.links[0],
                                                                                interface=""),))
    probe.test_if_due()
    [m] = list(probe.store.measurements())
    assert m.method.cross_traffic_kbps is None and m.method.quiet_waits == 0 and link.slept == []
