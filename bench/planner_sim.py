#!/usr/bin/env python3
"""Simulate a month of the real planner and store with a frozen clock and a fake engine.

The fake engine moves a realistic number of bytes (a 10 s test each way on a 4G link: ~30 Mbit/s
down, ~10 Mbit/s up, less when the planner hands it a byte cap) and fails 5% of the time (no
service). The probe is off for --offline-days in the middle of the month. Prints one JSON line:
samples per link, the most tests on one link in one clock hour, the nominal hourly rate, the
smallest gap between two tests on a link, MB of TCP payload used per link, and whether every goal
held (the budget with the headers the SIM also bills, 5% on top of the payload).

    python bench/planner_sim.py --target 300 --days 30 --offline-days 3 --budget-mb 3000 --seed 7
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import random
import sys
from collections import Counter

from xaprobe.agent.config import AgentConfig, LinkConfig
from xaprobe.agent.planner import IP_OVERHEAD, close_slot, next_due, quota_day
from xaprobe.agent.store import Store
from xaprobe.months import month_bounds
from xaprobe.wire import Link, Measurement, new_id

TEST_SECONDS = 25


def fake_test(link: LinkConfig, at: dt.datetime, cap: int, rng: random.Random) -> Measurement:
    if rng.random() < 0.05:
        return Measurement(id=new_id(), started_at=at, engine="fake", status="failed", bytes_down=2_000,
                           link=Link(name=link.name), error="no service")
    down_full = int(rng.uniform(20, 40) * 1e6 / 8 * 10)
    up_full = int(rng.uniform(5, 15) * 1e6 / 8 * 10)
    down, up = (min(down_full, cap), min(up_full, cap)) if cap else (down_full, up_full)
    return Measurement(id=new_id(), started_at=at, engine="fake", status="ok", link=Link(name=link.name),
                       download_mbps=down * 8 / 10 / 1e6, upload_mbps=up * 8 / 10 / 1e6, bytes_down=down + 30_000,
                       bytes_up=up + 30_000, capped=bool(cap) and (down < down_full or up < up_full))


def simulate(target: int, days: float, offline_days: float, budget_mb: float, seed: int, links: int = 2,
             month: str = "2026-11", offline_start_day: float | None = None, daily_quota_mb: float = 0.0,
             quota_reset_hour: int = 0) -> dict:
    config = AgentConfig(links=tuple(LinkConfig(name=f"link{i + 1}", interface=f"wwan{i}", target=target,
                                                budget_mb=budget_mb, daily_quota_mb=daily_quota_mb,
                                                quota_reset_hour=quota_reset_hour) for i in range(links)),
                         device_id=f"sim-{seed}")
    start, end = month_bounds(month, config.timezone)
    stop = min(end, start + dt.timedelta(days=days))
    off_from = start + dt.timedelta(days=offline_start_day if offline_start_day is not None
                                    else random.Random(seed).uniform(2, max(2.0, days - offline_days - 2)))
    off_to = off_from + dt.timedelta(days=offline_days)
    rng = random.Random(seed)
    store = Store.open(":memory:")
    now = start
    tests: dict[str, list[dt.datetime]] = {link.name: [] for link in config.links}
    while now < stop:
        if off_from <= now < off_to:
            now = off_to  # the probe is off: nothing runs, nothing is planned
            continue
        plan = next_due(store, config, now, seed=str(seed))
        if plan is None:
            break
        if plan.next_at > now:
            now = plan.next_at
            continue
        link = next(x for x in config.links if x.name == plan.link)
        store.add(dataclasses.replace(fake_test(link, now, plan.cap_bytes, rng)))
        close_slot(store, plan, now)
        tests[link.name].append(now)
        now += dt.timedelta(seconds=TEST_SECONDS)  # one test at a time on the probe
    month_s = (end - start).total_seconds()
    nominal = target / month_s * 3600
    per_hour = max((max(Counter(t.replace(minute=0, second=0, microsecond=0) for t in ts).values(), default=0)
                    for ts in tests.values()), default=0)
    gaps = [(b - a).total_seconds() for ts in tests.values() for a, b in zip(ts, ts[1:])]
    samples, used = {}, {}
    for link in config.links:
        history = store.link_history(link.name, month, config.timezone)
        samples[link.name], used[link.name] = history.samples, round(history.bytes_used / 1e6, 1)
    day_mb = {link.name: max((store.bytes_between(link.name, *quota_day(start + dt.timedelta(days=d, hours=12),
                                                                         quota_reset_hour, config.timezone))
                              for d in range(int(days) + 1)), default=0) * IP_OVERHEAD / 1e6
              for link in config.links}
    result = {
        "samples": samples, "max_tests_in_hour": per_hour, "nominal_per_hour": round(nominal, 4),
        "min_gap_s": round(min(gaps), 1) if gaps else None, "mb_used": used,
        "max_mb_billed_in_a_quota_day": {k: round(v, 1) for k, v in day_mb.items()},
        "offline": [off_from.isoformat(), off_to.isoformat()],
    }
    result["goals"] = {
        "target_met": all(n >= target for n in samples.values()) if days >= (end - start).days else None,
        "hourly_ok": per_hour <= max(2, 3 * nominal),
        "gap_ok": (min(gaps) >= 30) if gaps else True,
        # engines count TCP payload; the SIM bills headers too (planner.IP_OVERHEAD)
        "budget_ok": all(v * IP_OVERHEAD <= budget_mb for v in used.values()) if budget_mb else True,
        "daily_quota_ok": all(v <= daily_quota_mb for v in day_mb.values()) if daily_quota_mb else True,
    }
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", type=int, default=300)
    p.add_argument("--days", type=float, default=30)
    p.add_argument("--offline-days", type=float, default=3)
    p.add_argument("--budget-mb", type=float, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--links", type=int, default=2)
    p.add_argument("--month", default="2026-11")
    p.add_argument("--daily-quota-mb", type=float, default=0)
    p.add_argument("--quota-reset-hour", type=int, default=0)
    args = p.parse_args()
    print(json.dumps(simulate(args.target, args.days, args.offline_days, args.budget_mb, args.seed, args.links,
                              args.month, daily_quota_mb=args.daily_quota_mb,
                              quota_reset_hour=args.quota_reset_hour)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
