"""The probe's state for `xaprobe status` and the heartbeat: per link this month, backlog, uploads, clock, events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

from xaprobe.agent import context
from xaprobe.agent.config import AgentConfig, site_of
from xaprobe.agent.planner import link_plan
from xaprobe.agent.store import Store
from xaprobe.health import LastResult, LinkStatus, ProbeStatus
from xaprobe.i18n import _, number
from xaprobe.months import month_of, utc_now
from xaprobe.wire import Measurement


def probe_status(config: AgentConfig, store: Store, now: dt.datetime | None = None,
                 clock_synced: Callable[[], bool | None] = context.clock_synced) -> ProbeStatus:
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
        token_refused=upload.refuses(config.token.fingerprint()), clock_synced=clock_synced(),
        centre=(centre := store.centre_settings()), site_id=site_of(config, centre),
        events=tuple(store.events(last=5)),
    )


def _mb(n_bytes: float) -> str:
    return _("{mb} MB").format(mb=number(n_bytes / 1e6))


def local_time(instant: dt.datetime, tz: str) -> str:
    """An instant as people read it here: local time, to the minute, day first (30/11/2026 13:57)."""
    return instant.astimezone(ZoneInfo(tz)).strftime("%d/%m/%Y %H:%M")


def clock_hint() -> str:
    return _("the clock is not synchronised: tests are stamped with a wrong time. Fix: sudo timedatectl "
             "set-ntp true (Raspberry Pi OS: sudo apt install systemd-timesyncd)")


def _state(link: LinkStatus) -> str:
    if link.budget_spent:
        return _("data budget spent until next month")
    return _("on track") if link.on_track else _("behind")


def _target(s: ProbeStatus, link: LinkStatus) -> str:
    if link.target_from_collector and s.centre.set_at:
        return _("target {n}, set by the collector on {when}").format(n=link.target,
                                                                      when=local_time(s.centre.set_at, s.timezone))
    if link.target_from_collector:
        return _("target {n}, set by the collector").format(n=link.target)
    return _("target {n}").format(n=link.target)


def _data(link: LinkStatus) -> str:
    data = _("data used this month {used}").format(used=_mb(link.bytes_used))
    if link.budget_mb:
        data += " " + _("of {budget} MB").format(budget=number(link.budget_mb, 0))
    if link.daily_quota_mb and link.quota_left_bytes is not None:
        data += "; " + _("today {left} left of the {quota} MB daily quota").format(
            left=_mb(link.quota_left_bytes), quota=number(link.daily_quota_mb, 0))
    return data


def _last(s: ProbeStatus, last: LastResult) -> str:
    if last.status == "ok" and last.download_mbps is not None and last.upload_mbps is not None:
        result = _("down {down} Mbit/s, up {up} Mbit/s").format(down=number(last.download_mbps),
                                                                 up=number(last.upload_mbps))
    else:
        result = _("failed: {error}").format(error=last.error)
    return _("last test {when}: {result}").format(when=local_time(last.started_at, s.timezone), result=result)


def _link_lines(s: ProbeStatus, link: LinkStatus) -> list[str]:
    nxt = local_time(link.next_test_at, s.timezone) if link.next_test_at else "-"
    lines = ["  " + _("{name}: {samples} samples ({target}; {failed} failed), {state}; next test {next}").format(
                 name=link.name, samples=link.samples, target=_target(s, link), failed=link.failed,
                 state=_state(link), next=nxt),
             "    " + _data(link)]
    if link.last_result:
        lines.append("    " + _last(s, link.last_result))
    return lines


def _uploads(s: ProbeStatus) -> str:
    text = _("uploads: {waiting} waiting").format(waiting=s.pending)
    if s.oldest_pending_age_s:
        text += " " + _("(the oldest for {hours} h)").format(hours=s.oldest_pending_age_s // 3600)
    last = local_time(s.last_upload_at, s.timezone) if s.last_upload_at else _("never")
    return text + _(", {delivered} delivered, {rejected} rejected; last delivery {when}").format(
        delivered=s.uploaded, rejected=s.rejected, when=last)


def render_status(s: ProbeStatus) -> str:
    """Human-readable status lines (times in the probe's time zone)."""
    lines = [_("device {device} · commune {commune} · month {month}").format(
        device=s.device_id or _("(not configured)"), commune=s.commune_code or "-", month=s.month)]
    if s.site_id:
        name = f" ({s.centre.site_name})" if s.centre.site_id == s.site_id and s.centre.site_name else ""
        lines.append("  " + _("site {site}{name}").format(site=s.site_id, name=name))
    if s.centre.pause:
        since = " " + _("on {when}").format(when=local_time(s.centre.set_at, s.timezone)) if s.centre.set_at else ""
        lines.append("  " + _("PAUSED by the collector{since}: no tests until it resumes this probe").format(
            since=since))
    for link in s.links:
        lines += _link_lines(s, link)
    lines.append("  " + _uploads(s))
    if s.token_refused:
        lines.append("  " + _("UPLOADS STOPPED: the collector refused this probe's token; "
                              "ask the collector staff for a new one"))
    if s.last_upload_error:
        lines.append("  " + _("last upload error: {error}").format(error=s.last_upload_error))
    clock = {True: _("synchronised"), False: clock_hint(), None: _("cannot tell whether it is synchronised")}
    lines.append("  " + _("clock: {state}").format(state=clock[s.clock_synced]))
    for event in s.events:
        lines.append("  " + _("event {when} {kind}: {detail}").format(when=local_time(event.at, s.timezone),
                                                                       kind=event.kind, detail=event.detail))
    return "\n".join(lines)


def summary_line(m: Measurement) -> str:
    """One line for a stored measurement: its speeds, or why it failed."""
    name = m.link.name or "-"
    if m.status != "ok":
        return _("#{seq} {link}: FAILED: {error}").format(seq=m.seq, link=name, error=m.error)
    figures = _("down {down} Mbit/s, up {up} Mbit/s, latency {latency} ms, jitter {jitter} ms").format(
        down=number(m.download_mbps or 0, 2), up=number(m.upload_mbps or 0, 2), latency=number(m.latency_ms or 0),
        jitter=number(m.jitter_ms or 0))
    capped = " " + _("(capped)") if m.capped else ""
    return f"#{m.seq} {name}: {figures}{capped}, " + _("{mb} used").format(mb=_mb(m.bytes_down + m.bytes_up))
