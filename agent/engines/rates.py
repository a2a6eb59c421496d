"""Throughput over the steady part of a transfer, and latency statistics: pure functions.

The ramp-up rule: cut the transfer into 0.5 s windows and take the median window rate R. The
ramp-up ends at the start of the first window that, together with the next one, runs at 90% of R
or more; it is never shorter than 10% nor longer than 40% of the transfer. The rate is the bytes
moved after that instant divided by the time after it, each end placed where the kernel's count
lags least (see steady_mbps).
It leaves out TCP slow start and a rate shaper's initial burst, and still measures most of the
transfer. A download is rated by the data segments that arrived (see arrived) where they can stand for
its bytes, since the kernel's count of bytes received lags through every loss recovery.
"""

from __future__ import annotations

import statistics

WINDOW_S = 0.5
STEADY_SHARE = 0.9
MIN_RAMP_SHARE = 0.1
MAX_RAMP_SHARE = 0.4
ENDS_SHARE = 0.25
ENDS_MIN_S = 1.0
MIN_SPAN_SHARE = 0.5
FULL_SEGMENT_SHARE = 0.9
OVER_FULL_SHARE = 1.01


def bytes_at(samples: list[tuple[float, int]], t: float) -> float:
    """Bytes moved by time t, interpolated linearly between (time, cumulative bytes) samples."""
    if t <= samples[0][0]:
        return float(samples[0][1])
    for (t0, b0), (t1, b1) in zip(samples, samples[1:]):
        if t0 <= t <= t1:
            return b0 + (b1 - b0) * ((t - t0) / (t1 - t0) if t1 > t0 else 1.0)
    return float(samples[-1][1])


def ramp_end(samples: list[tuple[float, int]]) -> float:
    """Return when the ramp-up ends, by the rule in this module's docstring."""
    start, end = samples[0][0], samples[-1][0]
    length = end - start
    count = int(length / WINDOW_S)
    lo, hi = start + MIN_RAMP_SHARE * length, start + MAX_RAMP_SHARE * length
    if count < 3:
        return lo
    rates = window_rates(samples)
    reference = statistics.median(rates)
    for k in range(count - 1):
        if rates[k] >= STEADY_SHARE * reference and rates[k + 1] >= STEADY_SHARE * reference:
            return min(max(start + k * WINDOW_S, lo), hi)
    return hi


def window_rates(samples: list[tuple[float, int]]) -> list[float]:
    """Bytes per second in consecutive 0.5 s windows from the first sample."""
    start = samples[0][0]
    count = int((samples[-1][0] - start) / WINDOW_S)
    return [(bytes_at(samples, start + (k + 1) * WINDOW_S) - bytes_at(samples, start + k * WINDOW_S)) / WINDOW_S
            for k in range(count)]


def steady_mbps(samples: list[tuple[float, int]]) -> float:
    """Return the steady-state rate in Mbit/s of cumulative (time s, bytes) samples (steady_stretch)."""
    return steady_stretch(samples)[2]


def steady_stretch(samples: list[tuple[float, int]]) -> tuple[float, float, float]:
    """Return (start s, end s, Mbit/s) of the stretch the steady-state rate of cumulative (time s, bytes)
    samples is measured over.

    The kernel counts bytes received in order, and only once it has processed them, so while a lost
    segment is recovered, or while a busy board has not yet handled what arrived, the count lags
    behind what the link carried and then jumps: a stretch that starts in such a lag reads high, one
    that ends in it reads low. Each end of the measured stretch is therefore the sample that lies
    highest above the steady line (the least lag) near its end of the time after the ramp-up: within
    a quarter of that time, or 1 s when a quarter is shorter (half the time at most), the two ends at
    least half the time apart. A lag of up to a second at either end is left out of short transfers
    as well as long ones (a 3 s download on a loaded 2-core machine read 1.07 of a 20 Mbit/s link
    with a quarter of 0.45 s: tests/fixtures/rates/), while the measured stretch stays most of a long
    transfer on a link whose rate moves.
    """
    if len(samples) < 2 or samples[-1][0] <= samples[0][0]:
        return (samples[0][0], samples[-1][0], 0.0) if samples else (0.0, 0.0, 0.0)
    t_s, t_e = ramp_end(samples), samples[-1][0]
    windows = window_rates(samples)
    steady = statistics.median(windows) if windows else (samples[-1][1] - samples[0][1]) / (t_e - samples[0][0])
    span = t_e - t_s
    ends = min(max(span * ENDS_SHARE, ENDS_MIN_S), span / 2)
    # an interpolated point has fractional bytes, so the points are (s, bytes) as floats
    points: list[tuple[float, float]] = [(t_s, bytes_at(samples, t_s))] + [p for p in samples if p[0] > t_s]
    above = [b - steady * t for t, b in points]
    best_after = list(range(len(points)))  # best_after[k]: the index from k on that lies highest above the line
    for k in range(len(points) - 2, -1, -1):
        if above[best_after[k + 1]] > above[k]:
            best_after[k] = best_after[k + 1]
    choice: tuple[float, int, int] | None = None
    k = 0
    for i, (t0, _) in enumerate(points):
        if t0 > t_s + ends:
            break
        while k < len(points) and points[k][0] < max(t_e - ends, t0 + span * MIN_SPAN_SHARE):
            k += 1
        if k == len(points):
            break
        j = best_after[k]
        if choice is None or above[i] + above[j] > choice[0]:
            choice = (above[i] + above[j], i, j)
    if choice is None:
        return t_s, t_e, (samples[-1][1] - points[0][1]) * 8 / span / 1e6
    (t0, b0), (t1, b1) = points[choice[1]], points[choice[2]]
    return t0, t1, (b1 - b0) * 8 / (t1 - t0) / 1e6


def arrived(samples: list[tuple[float, int]], segments: list[int | None],
            mss: int) -> list[tuple[float, int]] | None:
    """A download's cumulative (time s, bytes) as its segments arrived (data segments x the peer's segment
    size), or None where segments cannot stand for its bytes: a count missing, segments that carried on
    average under 90% of a full one (a server writing small pieces; a link duplicating many), or more than
    a full one (a network card merging segments without saying how many).

    The kernel counts bytes received only once they are in order. After a loss, everything that arrives
    behind the hole waits uncounted until the retransmission fills it, a round trip or more; at 120 ms
    after slow start overshot a queue that was a megabyte lagging for over a second, then a jump (0.25 s
    windows at 87-90 Mbit/s on a 38 Mbit/s link), and a stretch starting in such a lag read 1.04-1.06 of
    the link. Data segments count as they arrive: on the same recorded transfers (one is in
    tests/fixtures/rates/arrivals/) their rate held within 1% of the link second by second while the bytes'
    swung between 0.5 and 1.5 of it.
    """
    if mss <= 0 or len(segments) != len(samples) or not segments or any(n is None for n in segments):
        return None
    full = mss * ((segments[-1] or 0) - (segments[0] or 0))
    if not full or not FULL_SEGMENT_SHARE * full <= samples[-1][1] - samples[0][1] <= OVER_FULL_SHARE * full:
        return None
    return [(t, n * mss) for (t, _), n in zip(samples, segments) if n is not None]


def last_change(samples: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """Drop trailing samples after the byte count stopped growing (a capped transfer ended early)."""
    final = samples[-1][1]
    for i, (_, b) in enumerate(samples):
        if b == final:
            return samples[: max(i + 1, 2)]
    return samples


def latency_stats(rtts_ms: list[float]) -> tuple[float | None, float | None]:
    """Return (median RTT, jitter) in ms; jitter is the mean absolute difference of consecutive RTTs."""
    if not rtts_ms:
        return None, None
    jitter = (statistics.fmean(abs(b - a) for a, b in zip(rtts_ms, rtts_ms[1:]))
              if len(rtts_ms) > 1 else 0.0)
    return statistics.median(rtts_ms), jitter
