"""`xaprobe ARGS...` as a user runs it, also writing where each direction's rate was measured: for each direction
in order, the CLOCK_MONOTONIC seconds (the emulator's clock) of the stretch its steady rate covers. On a link
whose rate moves, bench/accuracy_emulated.py compares that stretch with the same stretch of the trace.

    python bench/measure_windows.py OUT.json ARGS...
"""

from __future__ import annotations

import json
import sys
import time

from xaprobe.agent import cli
from xaprobe.agent.engines import http, rates, speedtest_client

starts: list[float] = []
stretches: list[tuple[float, float]] = []


def _started(sampler):
    """The sampler, noting when it starts: its sample times count from that instant (time.perf_counter is
    CLOCK_MONOTONIC on Linux, as time.monotonic is)."""
    def wrapped(*args, **kwargs):
        starts.append(time.monotonic())
        return sampler(*args, **kwargs)
    return wrapped


def _rated(samples):
    t0, t1, mbps = rates.steady_stretch(samples)
    stretches.append((t0, t1))
    return mbps


def main() -> int:
    out = sys.argv[1]
    # both engines sample through these module attributes and rate through rates.steady_mbps
    http._sample = _started(http._sample)
    speedtest_client.sampled = _started(speedtest_client.sampled)
    rates.steady_mbps = _rated
    try:
        return cli.main(sys.argv[2:])
    finally:
        windows = ([[start + t0, start + t1] for start, (t0, t1) in zip(starts, stretches)]
                   if len(starts) == len(stretches) else [])
        with open(out, "w") as f:
            json.dump({"windows": windows}, f)


if __name__ == "__main__":
    sys.exit(main())
