"""When each link's next test runs, so that it reaches its monthly target spread over the month.

Stratified sampling: the time left in the month is cut into slots, one per sample still missing,
and each test starts at a random instant inside its slot. After every test the slot length is
recomputed from (target - samples stored this month) / (time left), so a probe that was offline
catches up, but a slot is never shorter than a third of the month's nominal slot (catch-up at
most 3x the nominal rate), and two tests on a link are never closer than the larger of 30 s and
one hour / max(2, 3x the nominal hourly rate), so no clock hour holds more than that many.
Everything comes from the store (samples, bytes, last test, the target the collector set, if any)
plus one persisted instant per link, the end of the current slot, so a restart continues the same
plan. A slot that passed while the probe was off is due at once; the next slot then starts at that
test. A clock that stepped back (the saved slot lies far ahead) is planned from the new now. The
random instant in a slot is a hash of (seed, link, month, attempt number): the same state always gives the same plan.

With a data budget the planner divides what is left of the budget by the samples still missing
and hands the engine that share as its byte cap, so the budget holds whatever the link's speed;
when not even a minimal test fits, the link stops until next month. A daily quota (many Vietnamese
plans throttle a SIM after so many MB a day) works the same way within the quota day: what is left
today is shared among the tests the slot rate expects before the quota resets, so the quota is not
spent early; when not even a minimal test fits, the next test waits for the reset.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Collection
from zoneinfo import ZoneInfo

from xaprobe.agent.config import AgentConfig, LinkConfig, parse_quiet
from xaprobe.agent.store import Store
from xaprobe.months import month_bounds, month_of

CATCH_UP_FACTOR = 3.0
MIN_TEST_BYTES = 4 * 1_000_000  # below this a test measures nothing useful: the budget is spent
OVERHEAD_BYTES = 200_000  # latency probes and HTTP headers beyond the payload cap
IP_OVERHEAD = 1.05  # engines count TCP payload; the SIM also bills IP and TCP headers (1514/1448)
FINISH_EARLY = dt.timedelta(days=2)
MAX_FAIL_SHARE = 0.5


@dataclasses.dataclass(frozen=True)
class LinkPlan:
    link: str
    month: str
    samples: int
    failed: int
    target: int
    target_from_collector: bool
    remaining: int
    slot_start: dt.datetime | None
    slot_end: dt.datetime | None
    next_at: dt.datetime | None
    cap_bytes: int  # per direction; 0: no cap
    bytes_used: int
    budget_spent: bool
    on_track: bool
    quota_left_bytes: int | None = None  # of today's quota (None: no daily quota)


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


def link_target(store: Store, link: LinkConfig) -> tuple[int, bool]:
    """The link's monthly target: the one staff set at the collector, else the config's; and whether it was set."""
    centre = store.centre_settings().target
    return (centre, True) if centre else (link.target, False)


def min_spacing_s(target: int, config: AgentConfig, month_seconds: float) -> float:
    nominal_per_hour = target / month_seconds * 3600
    return max(config.planner.min_gap_s, 3600 / max(2.0, CATCH_UP_FACTOR * nominal_per_hour))


def _cap(link: LinkConfig, remaining: int, used: int) -> tuple[int, bool]:
    """Return (per-direction byte cap or 0, budget spent) for the next test.

    With a budget every test gets the cap its share allows: a test smaller than its share never
    reaches the cap and is unchanged, and a link's first test can never burn the budget before its
    size has been learned.
    """
    if not link.budget_mb:
        return 0, False
    left = link.budget_mb * 1_000_000 - used * IP_OVERHEAD  # what the SIM was billed, headers included
    per_test = left / max(remaining, 1) / IP_OVERHEAD - OVERHEAD_BYTES
    if per_test < MIN_TEST_BYTES:
        return 0, True
    return int(per_test // 2), False


def quota_day(now: dt.datetime, reset_hour: int, tz: str) -> tuple[dt.datetime, dt.datetime]:
    """The UTC bounds of the quota day (from one local reset hour to the next) that now falls in."""
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    start = dt.datetime.combine(local.date(), dt.time(reset_hour), zone)
    if start > local:
        start = dt.datetime.combine(local.date() - dt.timedelta(days=1), dt.time(reset_hour), zone)
    end = dt.datetime.combine(start.date() + dt.timedelta(days=1), dt.time(reset_hour), zone)
    return start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)


def _daily(store: Store, link: LinkConfig, tz: str, now: dt.datetime, slot_s: float) -> tuple[int, int, dt.datetime]:
    """(per-direction cap or 0 when not even a minimal test fits, bytes left today, when the quota resets)."""
    start, end = quota_day(now, link.quota_reset_hour, tz)
    left = link.daily_quota_mb * 1_000_000 - store.bytes_between(link.name, start, end) * IP_OVERHEAD
    tests_left_today = max(1.0, (end - now).total_seconds() / slot_s)
    minimal = (MIN_TEST_BYTES + OVERHEAD_BYTES) * IP_OVERHEAD  # what the SIM bills for the smallest useful test
    per_test = max(left / tests_left_today, min(left, minimal)) / IP_OVERHEAD - OVERHEAD_BYTES
    return (int(per_test // 2) if per_test >= MIN_TEST_BYTES else 0), max(int(left), 0), end


def link_plan(store: Store, link: LinkConfig, config: AgentConfig, now: dt.datetime, seed: str = "") -> LinkPlan:
    """Return the link's plan at now: samples so far, the current slot, when to test next, byte cap."""
    tz = config.timezone
    month = month_of(now, tz)
    start, end = month_bounds(month, tz)
    history = store.link_history(link.name, month, tz)
    target, from_collector = link_target(store, link)
    remaining = max(target - history.samples, 0)
    elapsed = (now - start) / (end - start)
    on_track = history.samples >= int(target * elapsed) - 1
    cap, spent = _cap(link, remaining, history.bytes_used)
    base = LinkPlan(link.name, month, history.samples, history.failed, target, from_collector, remaining, None, None,
                    None, cap, history.bytes_used, spent, on_track)
    if remaining == 0 or spent:
        return base
    month_s = (end - start).total_seconds()
    min_slot = month_s / target / CATCH_UP_FACTOR
    saved = store.slot_end(link.name)
    slot_start = max(saved, start) if saved else start
    # aim to finish FINISH_EARLY before the month ends, and plan extra slots for the share of tests
    # that fail on this link (no service), so a failure late in the month does not miss the target
    fail_share = min(history.failed / max(history.samples + history.failed, 1), MAX_FAIL_SHARE)
    wanted = remaining / (1 - fail_share)
    slot = max((end - FINISH_EARLY - slot_start).total_seconds() / wanted, min_slot)
    slot_end = slot_start + dt.timedelta(seconds=slot)
    attempt = history.samples + history.failed
    next_at = slot_start + dt.timedelta(seconds=slot * _unit(seed or config.device_id, link.name, month, attempt))
    last = history.last_started
    if last is not None and last <= now:
        next_at = max(next_at, last + dt.timedelta(seconds=min_spacing_s(target, config, month_s)))
    quota_left = None
    if link.daily_quota_mb:
        daily_cap, quota_left, resets = _daily(store, link, tz, max(now, next_at), slot)
        if not daily_cap:  # today's quota cannot hold another test: the next one waits for the reset
            next_at = max(next_at, resets + dt.timedelta(seconds=min(slot, 1800) * _unit(seed, link.name, month,
                                                                                       attempt + 10**6)))
            daily_cap, quota_left, _ = _daily(store, link, tz, next_at, slot)
            if not daily_cap:  # a whole day's quota cannot hold one minimal test: never test uncapped
                return dataclasses.replace(base, budget_spent=True, quota_left_bytes=quota_left)
        cap = min(cap, daily_cap) if cap else daily_cap
    quiet = _quiet_end(next_at, config.planner.quiet_hours, tz)
    if quiet is not None:
        next_at = quiet + dt.timedelta(seconds=min(slot, 1800) * _unit(seed, link.name, month, -attempt - 1))
    return dataclasses.replace(base, slot_start=slot_start, slot_end=max(slot_end, next_at), next_at=next_at,
                               cap_bytes=cap, quota_left_bytes=quota_left)


def repair_clock_step(store: Store, link: LinkConfig, config: AgentConfig, now: dt.datetime) -> bool:
    """If the saved slot lies far in the future, the clock stepped back: plan from now (returns True)."""
    saved = store.slot_end(link.name)
    if saved is None:
        return False
    start, end = month_bounds(month_of(now, config.timezone), config.timezone)
    nominal = (end - start) / link_target(store, link)[0]
    if saved > now + 2 * nominal:
        store.set_slot_end(link.name, now)
        return True
    return False


def next_due(store: Store, config: AgentConfig, now: dt.datetime, seed: str = "",
             held: Collection[str] = ()) -> LinkPlan | None:
    """Return the plan of the link whose test is due soonest, links named in held left out (None when every
    other link is done or spent). A held link's plan is unchanged: its test stays due for when it is let go."""
    for link in config.links:
        repair_clock_step(store, link, config, now)
    plans = [(p.next_at, p) for p in (link_plan(store, link, config, now, seed) for link in config.links
                                      if link.name not in held) if p.next_at is not None]
    return min(plans, key=lambda pair: pair[0])[1] if plans else None


def close_slot(store: Store, plan: LinkPlan, tested_at: dt.datetime) -> None:
    """Remember that the plan's slot has had its test: the next slot starts where this one ends, or at
    the test itself when the slot had passed (the probe was off), so catching up never bursts."""
    if plan.slot_end is not None:
        store.set_slot_end(plan.link, max(plan.slot_end, tested_at))
