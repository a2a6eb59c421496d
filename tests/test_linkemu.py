"""The link emulator's own accuracy (tests/linkemu.c): RTT as asked, rate as asked against iperf3 on the same
path, loss as asked (root, gcc, ethtool, iperf3)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import emulated
import pytest
from emulated import EmulatedLab, lte_trace, trace_ceiling, trace_mean_mbit
from netlab import ceiling_mbps

if not emulated.available() or not shutil.which("iperf3"):
    if os.environ.get("CI") and os.geteuid() == 0:
        raise RuntimeError("ethtool or iperf3 is missing: .ci/run installs Debian's ethtool and iperf3 packages")
    pytest.skip("needs root, ip, ethtool, gcc and iperf3", allow_module_level=True)

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def iperf3(lab: EmulatedLab, seconds: int = 6, streams: int = 4, reverse: bool = False, omit: int = 2) -> float:
    """Mbit/s iperf3 received over the path after its first `omit` s (slow start) are left out."""
    server = lab.spawn(lab.server_ns, ["iperf3", "-s", "-1"], stdout=subprocess.DEVNULL)
    time.sleep(0.3)
    out, _, _ = lab.run_client(["iperf3", "-c", lab.server_ip, "-P", str(streams), "-t", str(seconds), "-O", str(omit),
                                "-J", *(["-R"] if reverse else [])], timeout=seconds + 30)
    server.wait(timeout=15)  # iperf3 -s -1 leaves after its one test: the next one may then listen
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6


def connect_ms(lab: EmulatedLab) -> float:
    lab.spawn(lab.server_ns, [sys.executable, "-c", "import socket,time; s=socket.create_server(('0.0.0.0', 9));"
                              "time.sleep(20)"])
    time.sleep(0.5)
    code = ("import socket,time,statistics; t=[]\n"
            "for _ in range(5):\n"
            f"    a=time.perf_counter(); socket.create_connection(('{lab.server_ip}', 9), 5).close()\n"
            "    t.append((time.perf_counter()-a)*1000); time.sleep(0.05)\n"
            "print(statistics.median(t))")
    out, _, _ = lab.run_client([sys.executable, "-c", code])
    return float(out)


@pytest.mark.parametrize("rate", [12, 40])
def test_rate_and_rtt_are_as_asked(rate):
    with EmulatedLab(8, rate_mbit=rate, rtt_ms=20) as lab:
        assert 19.5 <= connect_ms(lab) <= 24
        for reverse in (False, True):
            # A stall of the machine (a VM not scheduled for a moment: CI once read 0.887 at 40 Mbit/s, where
            # every run here reads 1.000, with or without both cores busy) can only lower a reading, never raise
            # it: the emulator is held to its rate by the best of up to 3 runs, and never over it in any run.
            runs: list[float] = []
            while len(runs) < 3 and (not runs or runs[-1] < 0.97):
                runs.append(iperf3(lab, reverse=reverse) / ceiling_mbps(rate))
                # up to 1.5 % over: iperf3's receiver also counts what was in flight when its sender's -t ended
                # (CI once read 1.0107 at 12 Mbit/s)
                assert runs[-1] <= 1.015, (reverse, runs)
            assert max(runs) >= 0.97, (reverse, runs)


def test_an_lte_like_trace_gives_its_mean_rate():
    trace = lte_trace(seconds=10)
    with EmulatedLab(9, trace=trace, rtt_ms=40) as lab:
        got = iperf3(lab, seconds=12)
    # iperf3 fills most of a rate that moves every few hundred ms, never more than the trace gives
    assert 0.85 <= got / ceiling_mbps(trace_mean_mbit(trace)) <= 1.005, got


def test_a_trace_restarts_from_its_first_step():
    # each run of bench/accuracy.py restarts the trace, so an engine and iperf3 see the same rates from their start
    with EmulatedLab(11, trace=[(4000, 4), (4000, 40)], rtt_ms=2) as lab:
        time.sleep(4.5)  # now in the 40 Mbit/s step
        asked = time.monotonic()
        restarted = lab.restart_trace()
        assert asked <= restarted <= time.monotonic()  # when, on the emulator's clock (the bench aligns by it)
        got = iperf3(lab, seconds=2, omit=0)
    assert got <= ceiling_mbps(4) * 1.05, got


def test_a_traces_ceiling_is_the_rate_it_gives_over_the_stretch_asked():
    # the bench compares an engine's measured stretch of a trace with the same stretch's ceiling (and iperf3's)
    trace = [(4000, 4), (4000, 40)]
    assert trace_ceiling(trace, 1, 3) == pytest.approx(ceiling_mbps(4))
    assert trace_ceiling(trace, 2, 6) == pytest.approx(ceiling_mbps(22))  # 2 s at 4, 2 s at 40
    assert trace_ceiling(trace, 7, 9) == pytest.approx(ceiling_mbps(22))  # across the turn: 40, then 4 again
    assert trace_ceiling(trace, 16, 20) == pytest.approx(ceiling_mbps(4))  # the third turn


def test_loss_is_as_asked():
    with EmulatedLab(10, rate_mbit=40, rtt_ms=20, loss=0.01) as lab:
        iperf3(lab, seconds=4)
        ways = lab.stop_emulator()
    sent = ways[0]  # client to server: iperf3's data
    assert sent["frames"] > 10_000
    assert 0.008 <= sent["lost"] / sent["frames"] <= 0.012, sent
