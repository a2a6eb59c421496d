"""The probe's state for `xaprobe status`: per link this month, backlog, uploads, clock, events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from xaprobe.agent import context
from xaprobe.agent.config import AgentConfig
from xaprobe.agent.planner import link_plan
from xaprobe.agent.store import Store
from xaprobe.months import format_utc, month_of, utc_now
from xaprobe.wire import Measurement


def probe_status(config: AgentConfig, store: Store, now: dt.datetime | None = None) -> dict[str, Any]:
    """Return the probe's status as plain data (what --json prints)."""
    now = now or utc_now()
    month = month_of(now, config.timezone)
    links = []
    for link in config.links:
        plan = link_plan(store, link, config, now)
        last = store.last_measurement(link.name)
        links.append({
            "name": link.name, "interface": link.interface, "operator": link.operator,
            "samples": plan.samples, "failed": plan.failed, "target": link.target,
            "on_track": plan.on_track, "next_test_at": format_utc(plan.next_at) if plan.next_at else None,
            "budget_mb": link.budget_mb or None, "bytes_used": plan.bytes_used,
            "used_mb": round(plan.bytes_used / 1e6, 1),
            "budget_spent": plan.budget_spent, "cap_mb": round(plan.cap_bytes / 1e6, 1) if plan.cap_bytes else None,
            "last_result": None if last is None else {
                "started_at": format_utc(last.started_at), "status": last.status,
                "download_mbps": last.download_mbps, "upload_mbps": last.upload_mbps, "error": last.error},
        })
    backlog = store.backlog()
    return {
        "device_id": config.device_id, "commune_code": config.commune_code, "month": month, "links": links,
        "pending": backlog.pending, "uploaded": backlog.uploaded, "rejected": backlog.rejected,
        "oldest_pending_age_s": round((now - backlog.oldest_pending).total_seconds()) if backlog.oldest_pending
        else None,
        "last_upload_at": store.get_state("last_upload_at"),
        "last_upload_error": store.get_state("last_upload_error"),
        "token_refused": bool(store.get_state("token_refused"))
        and store.get_state("token_refused") == config.token.fingerprint(),
        "clock_synced": context.clock_synced(),
        "events": store.events()[-5:],
    }


def render_status(s: dict[str, Any]) -> str:
    """Human-readable status lines."""
    lines = [f"device {s['device_id'] or '(not configured)'} · commune {s['commune_code'] or '-'} · {s['month']}"]
    for link in s["links"]:
        state = "budget spent until next month" if link["budget_spent"] else \
            ("on track" if link["on_track"] else "behind")
        budget = f", {link['used_mb']}/{link['budget_mb']} MB" if link["budget_mb"] else f", {link['used_mb']} MB"
        lines.append(f"  {link['name']}: {link['samples']}/{link['target']} samples ({link['failed']} failed), "
                     f"{state}{budget}, next test {link['next_test_at'] or '-'}")
        last = link["last_result"]
        if last:
            lines.append(f"    last: {last['started_at']} {last['status']}"
                         + (f" down {last['download_mbps']} up {last['upload_mbps']} Mbit/s" if last["status"] == "ok"
                            else f": {last['error']}"))
    lines.append(f"  uploads: {s['pending']} pending"
                 + (f" (oldest {s['oldest_pending_age_s'] // 3600} h)" if s["oldest_pending_age_s"] else "")
                 + f", {s['uploaded']} uploaded, {s['rejected']} rejected;"
                 + f" last upload {s['last_upload_at'] or 'never'}")
    if s["token_refused"]:
        lines.append("  UPLOADS STOPPED: the collector refused this probe's token; ask for a new one")
    if s["last_upload_error"]:
        lines.append(f"  last upload error: {s['last_upload_error']}")
    clock = {True: "synchronised", False: "NOT synchronised", None: "unknown"}[s["clock_synced"]]
    lines.append(f"  clock: {clock}")
    for event in s["events"]:
        lines.append(f"  event {event['at']} {event['kind']}: {event['detail']}")
    return "\n".join(lines)


def summary_line(m: Measurement) -> str:
    """One line for a stored measurement: its speeds, or why it failed."""
    if m.status != "ok":
        return f"#{m.seq} {m.link.name or '-'}: FAILED: {m.error}"
    return (f"#{m.seq} {m.link.name or '-'}: down {m.download_mbps:.2f} Mbit/s, up {m.upload_mbps:.2f} Mbit/s, "
            f"latency {m.latency_ms:.1f} ms, jitter {m.jitter_ms:.1f} ms"
            + (" (capped)" if m.capped else "") + f", {(m.bytes_down + m.bytes_up) / 1e6:.1f} MB used")
