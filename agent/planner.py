"""When each link's next test runs, so that it reaches its monthly target spread over the month.

Stratified sampling: the time left in the month is cut into slots, one per sample still missing,
and each test starts at a random instant inside its slot. After every test the slot length is
recomputed from (target - samples stored this month) / (time left), so a probe that was offline
catches up, but a slot is never shorter than a third of the month's nominal slot (catch-up at
most 3x the nominal rate), and two tests on a link are never closer than the larger of 30 s and
one hour / max(2, 3x the nominal hourly rate), so no clock hour holds more than that many.
Everything comes from the store (samples, bytes, last test) plus one persisted number per link,
the end of the current slot, so a restart continues the same plan. The random instant in a slot
is a hash of (seed, link, month, attempt number): the same state always gives the same plan.

With a data budget the planner divides what is left of the budget by the samples still missing
and hands the engine that byte cap when a full-size test (learned from the link's history)
would not fit; when not even a minimal test fits, the link stops until next month.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from zoneinfo import ZoneInfo

from xaprobe.agent.config import AgentConfig, LinkConfig, parse_quiet
from xaprobe.agent.store import Store
from xaprobe.months import month_bounds, month_of

CATCH_UP_FACTOR = 3.0
MIN_TEST_BYTES = 4 * 1_000_000  # below this a test measures nothing useful: the budget is spent
OVERHEAD_BYTES = 200_000  # latency probes, HTTP headers, TCP/IP beyond the payload cap
DEFAULT_TEST_BYTES = 200 * 1_000_000  # until the link's history says otherwise


@dataclasses.dataclass(frozen=True)
class LinkPlan:
    link: str
    month: str
    samples: int
    failed: int
    target: int
    remaining: int
    slot_start: dt.datetime | None
    slot_end: dt.datetime | None
    next_at: dt.datetime | None
    cap_bytes: int  # per direction; 0: no cap
    bytes_used: int
    budget_spent: bool
    on_track: bool


def _unit(seed: str, link: str, month: str, attempt: int) -> float:
    digest = hashlib.sha256(f"{seed}|{link}|{month}|{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _quiet_end(at: dt.datetime, windows: tuple[str, ...], tz: str) -> dt.datetime | None:
    """If at falls in a quiet window (local time), return when that window ends, else None."""
    local = at.astimezone(ZoneInfo(tz))
    for window in windows:
        start, end = parse_quiet(window)
        t = local.timetz().replace(tzinfo=None)
        inside = start <= t < end if start < end else (t >= start or t < end)
        if inside:
            day = local.date() if (start < end or t < end) else local.date() + dt.timedelta(days=1)
            return dt.datetime.combine(day, end, ZoneInfo(tz)).astimezone(dt.timezone.utc)
    return None


def min_spacing_s(link: LinkConfig, config: AgentConfig, month_seconds: float) -> float:
    nominal_per_hour = link.target / month_seconds * 3600
    return max(config.planner.min_gap_s, 3600 / max(2.0, CATCH_UP_FACTOR * nominal_per_hour))


def _cap(link: LinkConfig, remaining: int, used: int, mean_bytes: float | None) -> tuple[int, bool]:
    """Return (per-direction byte cap or 0, budget spent) for the next test."""
    if not link.budget_mb:
        return 0, False
    left = link.budget_mb * 1_000_000 - used
    per_test = left / max(remaining, 1) - OVERHEAD_BYTES
    if per_test < MIN_TEST_BYTES:
        return 0, True
    full_size = mean_bytes or DEFAULT_TEST_BYTES
    if mean_bytes and full_size <= per_test:
        return 0, False
    return int(per_test // 2), False


def link_plan(store: Store, link: LinkConfig, config: AgentConfig, now: dt.datetime, seed: str = "") -> LinkPlan:
    """Return the link's plan at now: samples so far, the current slot, when to test next, byte cap."""
    tz = config.timezone
    month = month_of(now, tz)
    start, end = month_bounds(month, tz)
    history = store.link_history(link.name, month, tz)
    remaining = max(link.target - history.samples, 0)
    elapsed = (now - start) / (end - start)
    on_track = history.samples >= int(link.target * elapsed) - 1
    cap, spent = _cap(link, remaining, history.bytes_used, history.mean_test_bytes)
    base = LinkPlan(link.name, month, history.samples, history.failed, link.target, remaining, None, None, None,
                    cap, history.bytes_used, spent, on_track)
    if remaining == 0 or spent:
        return base
    month_s = (end - start).total_seconds()
    min_slot = month_s / link.target / CATCH_UP_FACTOR
    saved = store.get_state(f"slot_end.{link.name}")
    slot_start = dt.datetime.fromisoformat(saved) if saved else start
    if slot_start < start or slot_start > now + dt.timedelta(seconds=month_s / link.target * 2):
        slot_start = max(start, now)  # a new month, or the clock stepped back: plan from here
    if slot_start < now - dt.timedelta(seconds=min_slot):
        slot_start = now  # the slot passed while the probe was off: start the next one now
    slot = max((end - slot_start).total_seconds() / remaining, min_slot)
    slot_end = slot_start + dt.timedelta(seconds=slot)
    attempt = history.samples + history.failed
    next_at = slot_start + dt.timedelta(seconds=slot * _unit(seed or config.device_id, link.name, month, attempt))
    last = history.last_started
    if last is not None and last <= now:
        next_at = max(next_at, last + dt.timedelta(seconds=min_spacing_s(link, config, month_s)))
    quiet = _quiet_end(next_at, config.planner.quiet_hours, tz)
    if quiet is not None:
        next_at = quiet + dt.timedelta(seconds=min(slot, 1800) * _unit(seed, link.name, month, -attempt - 1))
    return dataclasses.replace(base, slot_start=slot_start, slot_end=max(slot_end, next_at), next_at=next_at)


def next_due(store: Store, config: AgentConfig, now: dt.datetime, seed: str = "") -> LinkPlan | None:
    """Return the plan of the link whose test is due soonest (None when every link is done or spent)."""
    plans = [p for p in (link_plan(store, link, config, now, seed) for link in config.links) if p.next_at]
    return min(plans, key=lambda p: p.next_at) if plans else None


def close_slot(store: Store, plan: LinkPlan) -> None:
    """Remember that the plan's slot has had its test, so the next slot starts where it ends."""
    if plan.slot_end is not None:
        store.set_state(f"slot_end.{plan.link}", plan.slot_end.isoformat())
