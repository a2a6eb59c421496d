"""Turn one device's batch into stored rows and a per-item answer: accepted, duplicate or rejected, each
item judged alone, so no item can fail its batch, and none counts for a commune its device did not stand in."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from xaprobe import communes
from xaprobe.collector.devices import CommuneHistory, Device
from xaprobe.collector.plausibility import IMPOSSIBLE, SUSPECT, judge
from xaprobe.collector.samples import ACCEPTED, CONFLICT, TAKEN
from xaprobe.collector.schema import measurements
from xaprobe.collector.settings import CollectorSettings
from xaprobe.collector.store import CollectorStore
from xaprobe.fields import WireError, check_time
from xaprobe.months import month_of
from xaprobe.wire import Measurement, from_wire, to_wire

# what a hostile item can make validation or row building raise: WireError and UnicodeEncodeError are
# ValueErrors, OverflowError comes from date arithmetic, RecursionError from absurdly nested JSON
ITEM_ERRORS = (ValueError, OverflowError, RecursionError)
SUSPECT_STATUS = "suspect"  # a stored status beside ok and failed: kept, shown, never counted
_LIMITS = {c.name: c.type.length for c in measurements.columns
           if isinstance(c.type, sa.String) and c.type.length is not None}


@dataclasses.dataclass(frozen=True)
class Batch:
    """What ingest made of one batch: the per-item answers, and how many items reused an id for other
    content, sent by this device before (same_device) or stored for another device (other_device)."""

    results: list[dict[str, Any]]
    same_device_conflicts: int
    other_device_conflicts: int


def batch_clock(sent_at: Any) -> dt.datetime | None:
    """The probe's clock when it sent the batch, or None when unknown: absent, unreadable, or outside the
    years any item may carry (a clock that says 9999 tells nothing of how far off it is)."""
    if sent_at is None:
        return None
    try:
        return check_time(sent_at, "sent_at")
    except ITEM_ERRORS:
        return None


def _row(m: Measurement, device: Device, commune: communes.Commune, now: dt.datetime,
         settings: CollectorSettings, clock_suspect: bool, body: str, site: str | None) -> dict[str, Any]:
    radio_operator = m.link.radio.operator if m.link.radio and m.link.radio.operator else ""
    row: dict[str, Any] = {
        "id": m.id, "device_id": device.id, "seq": m.seq, "commune_code": commune.code,
        "province_code": commune.province_code, "month": month_of(m.started_at, settings.timezone),
        "started_at": m.started_at, "received_at": now, "engine": m.engine, "status": m.status,
        "operator": (m.link.operator or radio_operator or "?")[:64], "link_name": m.link.name,
        "access": m.link.access or "", "download_mbps": m.download_mbps, "upload_mbps": m.upload_mbps,
        "latency_ms": m.latency_ms, "jitter_ms": m.jitter_ms, "bytes_down": m.bytes_down,
        "bytes_up": m.bytes_up, "clock_suspect": clock_suspect, "loaded_latency_ms": m.loaded_latency_ms,
        "capped": m.capped, "body": body, "flag": None, "site_id": site,
    }
    for name, limit in _LIMITS.items():  # PostgreSQL would refuse the whole batch for one long value
        if isinstance(row[name], str) and len(row[name]) > limit:
            raise WireError(name, f"longer than {limit} characters")
    return row


def _commune(m: Measurement, device: Device, history: CommuneHistory) -> communes.Commune:
    """The item's commune: its own code, or the device's where it stood then; it must be that one."""
    home = history.at(m.started_at)
    commune = communes.commune(m.commune_code or home)
    if commune is None:
        raise WireError("commune_code", f"{m.commune_code} is not a commune in vietnam-provinces")
    if commune.code != home:
        raise WireError("commune_code", f"{commune.code} is not the commune of device {device.id} at "
                        f"{m.started_at:%Y-%m-%d %H:%M} UTC ({home}); a moved probe is re-pointed with "
                        "`xaprobe-collector device set ID --commune CODE`")
    return commune


def _site(m: Measurement, device: Device, commune: communes.Commune,
          site_communes: dict[str, str]) -> tuple[str | None, str | None]:
    """The site to store for the item and, when it is not the one the item names, why. A site the item names must
    be one of its commune's, and the device's own when staff set one; otherwise the sample still counts for its
    commune (its token vouches for that) and is stored as "site unknown", the site it claimed kept in its body."""
    if not m.site_id:
        return None, None
    where = site_communes.get(m.site_id)
    if where is None:
        why = f"{m.site_id} is not a site this collector knows (`xaprobe-collector site list --commune CODE`)"
    elif where != commune.code:
        why = f"site {m.site_id} is in commune {where}, not in {commune.code} where the sample was made"
    elif device.site_id and m.site_id != device.site_id:
        why = f"device {device.id} measures from site {device.site_id} (`xaprobe-collector device set --site`)"
    else:
        return m.site_id, None
    return None, f"site_id: {why}; stored as site unknown"


def _site_ids(items: list[Any]) -> set[str]:
    return {i["site_id"] for i in items if isinstance(i, dict) and isinstance(i.get("site_id"), str)
            and 0 < len(i["site_id"]) <= 64}


def _judge(item: Any, device: Device, history: CommuneHistory, now: dt.datetime,
           settings: CollectorSettings, batch_clock_off: bool,
           site_communes: dict[str, str]) -> tuple[dict[str, Any], str | None]:
    """The row for one item (its "note": why its site was not taken); raise one of ITEM_ERRORS saying why it cannot
    be stored."""
    m = from_wire(item)
    if m.device_id != device.id:
        raise WireError("device_id", f"{m.device_id!r} is not the device this token belongs to")
    commune = _commune(m, device, history)
    site, note = _site(m, device, commune, site_communes)
    verdict, why = judge(m, settings.plausibility)
    if verdict == IMPOSSIBLE:
        raise WireError("item", f"implausible: {why}")
    suspect = batch_clock_off or m.started_at > now + dt.timedelta(seconds=settings.clock_tolerance_s)
    # kept as validated (control characters gone), newer probes' extra fields included; one with a lone
    # surrogate in a field this collector does not know cannot be UTF-8 and is refused here
    body = json.dumps(to_wire(m), ensure_ascii=False)
    body.encode("utf-8")
    row = _row(m, device, commune, now, settings, suspect, body, site)
    if verdict == SUSPECT:  # stored and seen, but not counted: reports leave it out of samples and medians
        row.update(status=SUSPECT_STATUS, flag=why[:300])
    return row, note


def _reason(error: BaseException) -> str:
    if isinstance(error, WireError):
        return str(error)
    if isinstance(error, UnicodeError):
        return "item: contains a lone surrogate (not Unicode text)"
    return f"item: cannot be stored ({type(error).__name__}: {error})"[:300]


def _item_id(item: Any) -> str | None:
    value = item.get("id") if isinstance(item, dict) else None
    try:  # the id goes back to the probe in JSON: only as text that UTF-8 can carry
        return value if isinstance(value, str) and len(value) <= 64 and value.encode("utf-8") else None
    except UnicodeError:
        return None


def ingest(store: CollectorStore, settings: CollectorSettings, device: Device, items: list[Any],
           now: dt.datetime, sent_at: dt.datetime | None = None) -> Batch:
    """Validate and store a device's items; return one result per item, in order."""
    batch_clock_off = sent_at is not None and abs(now - sent_at) > dt.timedelta(seconds=settings.clock_tolerance_s)
    history = store.devices.history(device.id)
    site_communes = store.sites.communes_of(_site_ids(items))
    results: list[dict[str, Any]] = []
    rows: dict[str, dict[str, Any]] = {}
    repeats = 0
    for item in items:
        try:
            row, note = _judge(item, device, history, now, settings, batch_clock_off, site_communes)
        except ITEM_ERRORS as e:
            results.append({"id": _item_id(item), "status": "rejected", "reason": _reason(e)})
            continue
        if row["id"] in rows:  # a repeat inside the batch is a duplicate of the first
            repeats += rows[row["id"]]["body"] != row["body"]
            results.append({"id": row["id"], "status": "duplicate", "reason": None})
            continue
        rows[row["id"]] = row
        results.append({"id": row["id"], "status": "pending", "reason": note})
    outcome = store.samples.insert(list(rows.values()), device.id, now, repeats)
    for result in results:
        if result["status"] == "pending":
            kind = outcome[result["id"]]
            if kind == TAKEN:
                result.update(status="rejected", reason="id: already stored for another device")
            else:
                result["status"] = "accepted" if kind == ACCEPTED else "duplicate"
                if kind != ACCEPTED:
                    result["reason"] = None
    refused = [r["reason"] for r in results if r["status"] == "rejected" and r["reason"]]
    store.samples.count_rejections(device.id, month_of(now, settings.timezone), refused)
    kinds = list(outcome.values())
    return Batch(results, repeats + kinds.count(CONFLICT), kinds.count(TAKEN))

