#!/usr/bin/env python3
"""Idle footprint of `xaprobe run`: resident memory and CPU share while no test is due.

A real collector on loopback; a probe whose month's target is already met (so the planner waits),
with uploads and heartbeats on their schedules. Reads /proc for the daemon's RSS and CPU time.

    python bench/footprint.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import make_measurement, running_collector  # noqa: E402

from xaprobe.agent.store import Store  # noqa: E402
from xaprobe.months import utc_now  # noqa: E402
from xaprobe.wire import Link  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_collector(f"sqlite:///{tmp}/c.db") as collector:
        base, cstore = collector.base, collector.store
        token = cstore.devices.add("probe-1", "Footprint", "18673", None, utc_now())
        store = Store.open(Path(tmp) / "probe.db")
        store.add(make_measurement(device_id="probe-1", started_at=utc_now(), link=Link(name="office")))
        store.close()
        config = Path(tmp) / "agent.toml"
        config.write_text(f'device_id = "probe-1"\ntoken = "{token}"\ncommune_code = "18673"\n'
                          f'collector_url = "{base}/"\nstore = "probe.db"\ntarget = 1\n'
                          f'[engines.http]\nserver = "{base}/speedtest/"\n'
                          '[[links]]\nname = "office"\ninterface = "lo"\naccess = "ethernet"\n')
        proc = subprocess.Popen([sys.executable, "-m", "xaprobe.agent", "--config", str(config), "run"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(10)  # start-up, first heartbeat and upload
            start_cpu, start = cpu_seconds(proc.pid), time.monotonic()
            peak = rss_mb(proc.pid)
            while time.monotonic() - start < args.minutes * 60:
                time.sleep(5)
                peak = max(peak, rss_mb(proc.pid))
            used = cpu_seconds(proc.pid) - start_cpu
            wall = time.monotonic() - start
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    result = {"minutes": round(wall / 60, 2), "rss_mb": round(peak, 1), "cpu_seconds": round(used, 3),
              "cpu_percent_of_a_core": round(100 * used / wall, 3)}
    result["goals"] = {"rss_under_40mb": result["rss_mb"] < 40,
                       "cpu_under_half_percent": result["cpu_percent_of_a_core"] < 0.5}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
