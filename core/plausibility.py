"""Whether a sample's own figures agree: the invariants every `ok` measurement satisfies, in one place for the
probe (which stores a disagreeing sample as failed, figures kept) and the collector (its ingest gate).

A rate and the bytes behind it imply a window: bytes × 8 / rate is how long the transfer ran at that rate.
- Each rate given has bytes behind it, and its window is at least MIN_WINDOW_S (5 ms). No engine times a
  real transfer in less: the http engine reads its byte count every 50 ms, speedtest-cli times a whole phase,
  thread starts and connections included. The least window the engines really produce is a capped
  speedtest-cli upload on loopback (1.5 MB handed to sendall into socket buffers: 6.7 ms); a capped http test
  on loopback is 50 ms, a 5 MB capped test at 300 Mbit/s 0.13 s, an uncapped one seconds. The sample in issue
  #17 (28189 Mbit/s from 2253 bytes) is 0.6 µs: thousands of times below.
- The windows of both directions fit in the test's duration, with DURATION_SLACK × duration +
  DURATION_ALLOWANCE_S: engines that leave out the ramp-up rate the steady part only, so when a link slows
  down during a test its bytes at the steady rate take longer than the transfer did (4 s at 100 then 6 s at
  20 Mbit/s rates 46.7 and its bytes take 11.1 s of a 10 s direction, 1.11×); the latency phase and the set-ups
  are part of the duration too, so 1.25× and 1 s leave room for twice that bias and still catch a rate that
  is a fraction of what the bytes say.
- Latency, jitter and loaded latency were observed within the test: none is longer than the whole test.
"""

from __future__ import annotations

import dataclasses

from xaprobe.wire import MAX_TEXT, Measurement

MIN_WINDOW_S = 0.005
DURATION_SLACK = 1.25
DURATION_ALLOWANCE_S = 1.0


def _window_s(mbps: float, moved: int) -> float:
    return moved * 8 / (mbps * 1e6)


def _rate_problems(m: Measurement) -> tuple[list[str], float]:
    """Problems of each direction's rate against its bytes, and the sum of the windows that agree."""
    problems: list[str] = []
    total = 0.0
    for name, mbps, moved in (("download", m.download_mbps, m.bytes_down), ("upload", m.upload_mbps, m.bytes_up)):
        if mbps is None:
            continue
        if mbps <= 0 or moved <= 0:
            problems.append(f"{name} {mbps:g} Mbit/s with {moved} bytes moved measures nothing")
            continue
        window = _window_s(mbps, moved)
        total += window
        if window < MIN_WINDOW_S:
            problems.append(f"{name} {mbps:g} Mbit/s from {moved} bytes is {window * 1000:.3g} ms of transfer, "
                            f"less than the {MIN_WINDOW_S * 1000:g} ms a rate needs")
    return problems, total


def disagreements(m: Measurement) -> list[str]:
    """Every way an ok measurement's figures disagree with each other, in words; empty when they agree (and for
    a failed measurement, whose figures claim nothing)."""
    if not m.ok:
        return []
    if m.download_mbps is None and m.upload_mbps is None:
        return ["an ok sample with neither a download nor an upload rate"]
    problems, windows = _rate_problems(m)
    if m.duration_s <= 0:
        problems.append(f"a test that lasted {m.duration_s:g} s measures nothing")
    elif windows > m.duration_s * DURATION_SLACK + DURATION_ALLOWANCE_S:
        problems.append(f"the bytes moved take {windows:.3g} s at the rates given, more than the {m.duration_s:g} s "
                        "the test lasted")
    for name, ms in (("latency", m.latency_ms), ("jitter", m.jitter_ms), ("loaded latency", m.loaded_latency_ms)):
        if ms is not None and (ms < 0 or ms > m.duration_s * 1000):
            problems.append(f"{name} {ms:g} ms was not observed within a {m.duration_s:g} s test")
    return problems


def checked(m: Measurement) -> Measurement:
    """The measurement as the probe stores it: ok only when its figures agree, else failed with the
    disagreement as its error and every figure kept, so the oddity is seen instead of counted."""
    problems = disagreements(m)
    if not problems:
        return m
    return dataclasses.replace(m, status="failed", error=("figures disagree: " + "; ".join(problems))[:MAX_TEXT])
