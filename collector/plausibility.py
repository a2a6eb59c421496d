"""The collector's plausibility gate at ingest: the probe's own invariants (core/plausibility.py), plus bounds
by access type. Impossible -> the item is rejected with the reason; suspect -> stored as `suspect`, which
reports leave out of samples and medians and count apart; plausible -> stored as sent.

The default bounds, per access type (configurable in collector.toml's [plausibility]):
- a rate above `max_mbps` is impossible (no cellular link moves 10 Gbit/s: LTE-A peaks near 1, 5G NR below
  5 on today's spectrum), above `suspect_mbps` suspect (a real 5G cell seldom gives one user 3 Gbit/s);
- a latency below `min_latency_ms` is impossible over a radio (the air interface alone takes milliseconds),
  below `suspect_latency_ms` suspect;
- a test shorter than `min_duration_s` (1 s) is suspect: no rate settles in less.
"""

from __future__ import annotations

import dataclasses

from xaprobe.plausibility import disagreements
from xaprobe.wire import Measurement

IMPOSSIBLE, SUSPECT = "impossible", "suspect"


@dataclasses.dataclass(frozen=True)
class AccessBounds:
    max_mbps: float
    suspect_mbps: float
    min_latency_ms: float
    suspect_latency_ms: float


@dataclasses.dataclass(frozen=True)
class Plausibility:
    """What the gate accepts; `access` maps an access type (cellular, wifi, ethernet, other, "") to its bounds."""

    access: dict[str, AccessBounds] = dataclasses.field(default_factory=lambda: {
        "cellular": AccessBounds(max_mbps=10_000.0, suspect_mbps=3_000.0, min_latency_ms=0.1,
                                 suspect_latency_ms=3.0),
        "wifi": AccessBounds(max_mbps=50_000.0, suspect_mbps=10_000.0, min_latency_ms=0.0, suspect_latency_ms=0.0),
        "ethernet": AccessBounds(max_mbps=400_000.0, suspect_mbps=100_000.0, min_latency_ms=0.0,
                                 suspect_latency_ms=0.0),
    })
    other: AccessBounds = AccessBounds(max_mbps=400_000.0, suspect_mbps=100_000.0, min_latency_ms=0.0,
                                       suspect_latency_ms=0.0)
    min_duration_s: float = 1.0


def judge(m: Measurement, rules: Plausibility) -> tuple[str | None, str]:
    """(IMPOSSIBLE, why) / (SUSPECT, why) / (None, "") for one measurement; a failed one claims nothing."""
    if not m.ok:
        return None, ""
    problems = disagreements(m)
    if problems:
        return IMPOSSIBLE, "figures disagree: " + "; ".join(problems)
    bounds = rules.access.get(m.link.access, rules.other)
    access = m.link.access or "unknown access"
    fastest = max(m.download_mbps or 0.0, m.upload_mbps or 0.0)
    if fastest > bounds.max_mbps:
        return IMPOSSIBLE, f"{fastest:g} Mbit/s is beyond any {access} link (at most {bounds.max_mbps:g})"
    if m.latency_ms is not None and m.latency_ms < bounds.min_latency_ms:
        return IMPOSSIBLE, (f"latency {m.latency_ms:g} ms is below what a {access} link can do "
                            f"({bounds.min_latency_ms:g})")
    if fastest > bounds.suspect_mbps:
        return SUSPECT, f"{fastest:g} Mbit/s is more than a {access} link gives (above {bounds.suspect_mbps:g})"
    if m.latency_ms is not None and m.latency_ms < bounds.suspect_latency_ms:
        return SUSPECT, f"latency {m.latency_ms:g} ms is below what a {access} link usually does"
    if m.duration_s < rules.min_duration_s:
        return SUSPECT, f"a test of {m.duration_s:g} s is too short for a rate to settle"
    return None, ""
