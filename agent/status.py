"""The probe's state for `xaprobe status` and the heartbeat: per link this month, backlog, uploads, clock, events."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from xaprobe.agent import context
from xaprobe.agent.config import AgentConfig
from xaprobe.agent.planner import link_plan
from xaprobe.agent.store import Store
from xaprobe.health import LastResult, LinkStatus, ProbeStatus
from xaprobe.months import month_of, utc_now
from xaprobe.wire import Measurement


def probe_status(config: AgentConfig, store: Store, now: dt.datetime | None = None) -> ProbeStatus:
    """Return the probe's status as the store and the planner see it at now."""
    now = now or utc_now()
    links = []
    for link in config.links:
        plan = link_plan(store, link, config, now)
        last = store.last_measurement(link.name)
        links.append(LinkStatus(
            name=link.name, interface=link.interface, operator=link.operator, samples=plan.samples,
            failed=plan.failed, target=plan.target, target_from_collector=plan.target_from_collector,
            on_track=plan.on_track, next_test_at=plan.next_at, budget_mb=link.budget_mb or None,
            bytes_used=plan.bytes_used, budget_spent=plan.budget_spent, cap_bytes=plan.cap_bytes,
            daily_quota_mb=link.daily_quota_mb or None, quota_left_bytes=plan.quota_left_bytes,
            last_result=None if last is None else LastResult(
                started_at=last.started_at, status=last.status, download_mbps=last.download_mbps,
                upload_mbps=last.upload_mbps, error=last.error)))
    backlog = store.backlog()
    upload = store.upload_record()
    return ProbeStatus(
        device_id=config.device_id, commune_code=config.commune_code, month=month_of(now, config.timezone),
        timezone=config.timezone, links=tuple(links), pending=backlog.pending, uploaded=backlog.uploaded,
        rejected=backlog.rejected,
        oldest_pending_age_s=round((now - backlog.oldest_pending).total_seconds()) if backlog.oldest_pending
        else None,
        last_upload_at=upload.last_success_at, last_upload_error=upload.last_error,
        token_refused=upload.refuses(config.token.fingerprint()), clock_synced=context.clock_synced(),
        centre=store.centre_settings(), events=tuple(store.events(last=5)),
    )


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:.1f} MB"


def local_time(instant: dt.datetime, tz: str) -> str:
    """An instant as people read it here: local time, to the minute, day first (30/11/2026 13:57)."""
    return instant.astimezone(ZoneInfo(tz)).strftime("%d/%m/%Y %H:%M")


CLOCK_HINT = ("the clock is not synchronised: tests are stamped with a wrong time. Fix: sudo timedatectl "
              "set-ntp true (Raspberry Pi OS: sudo apt install systemd-timesyncd)")


def _link_lines(s: ProbeStatus, link: LinkStatus) -> list[str]:
    when = lambda instant: local_time(instant, s.timezone)  # noqa: E731 - one short formatter
    state = "data budget spent until next month" if link.budget_spent else \
        ("on track" if link.on_track else "behind")
    target = f"target {link.target}" + (
        f", set by the collector on {when(s.centre.set_at)}" if link.target_from_collector and s.centre.set_at
        else ", set by the collector" if link.target_from_collector else "")
    nxt = when(link.next_test_at) if link.next_test_at else "-"
    data = f"data used this month {_mb(link.bytes_used)}" + (f" of {link.budget_mb:g} MB" if link.budget_mb else "")
    if link.daily_quota_mb and link.quota_left_bytes is not None:
        data += f"; today {_mb(link.quota_left_bytes)} left of the {link.daily_quota_mb:g} MB daily quota"
    lines = [f"  {link.name}: {link.samples} samples ({target}; {link.failed} failed), {state}; next test {nxt}",
             f"    {data}"]
    last = link.last_result
    if last:
        lines.append(f"    last test {when(last.started_at)}: "
                     + (f"down {last.download_mbps:.1f} Mbit/s, up {last.upload_mbps:.1f} Mbit/s"
                        if last.status == "ok" and last.download_mbps is not None and last.upload_mbps is not None
                        else f"failed: {last.error}"))
    return lines


def render_status(s: ProbeStatus) -> str:
    """Human-readable status lines (times in the probe's time zone)."""
    when = lambda instant: local_time(instant, s.timezone)  # noqa: E731 - one short formatter
    lines = [f"device {s.device_id or '(not configured)'} · commune {s.commune_code or '-'} · month {s.month}"]
    if s.centre.pause:
        lines.append("  PAUSED by the collector" + (f" on {when(s.centre.set_at)}" if s.centre.set_at else "")
                     + ": no tests until it resumes this probe")
    for link in s.links:
        lines += _link_lines(s, link)
    lines.append(f"  uploads: {s.pending} waiting"
                 + (f" (the oldest for {s.oldest_pending_age_s // 3600} h)" if s.oldest_pending_age_s else "")
                 + f", {s.uploaded} delivered, {s.rejected} rejected;"
                 + f" last delivery {when(s.last_upload_at) if s.last_upload_at else 'never'}")
    if s.token_refused:
        lines.append("  UPLOADS STOPPED: the collector refused this probe's token; "
                     "ask the collector staff for a new one")
    if s.last_upload_error:
        lines.append(f"  last upload error: {s.last_upload_error}")
    lines.append({True: "  clock: synchronised", False: f"  clock: {CLOCK_HINT}",
                  None: "  clock: cannot tell whether it is synchronised"}[s.clock_synced])
    for event in s.events:
        lines.append(f"  event {when(event.at)} {event.kind}: {event.detail}")
    return "\n".join(lines)


def summary_line(m: Measurement) -> str:
    """One line for a stored measurement: its speeds, or why it failed."""
    if m.status != "ok":
        return f"#{m.seq} {m.link.name or '-'}: FAILED: {m.error}"
    return (f"#{m.seq} {m.link.name or '-'}: down {m.download_mbps:.2f} Mbit/s, up {m.upload_mbps:.2f} Mbit/s, "
            f"latency {m.latency_ms:.1f} ms, jitter {m.jitter_ms:.1f} ms"
            + (" (capped)" if m.capped else "") + f", {(m.bytes_down + m.bytes_up) / 1e6:.1f} MB used")
