"""Turn one device's batch into stored rows and a per-item answer: accepted, duplicate or rejected."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from xaprobe import communes
from xaprobe.collector.devices import Device
from xaprobe.collector.settings import CollectorSettings
from xaprobe.collector.store import CollectorStore
from xaprobe.months import month_of
from xaprobe.wire import Measurement, WireError, from_wire, to_wire


def _row(m: Measurement, device: Device, commune: communes.Commune, now: dt.datetime,
         settings: CollectorSettings, clock_suspect: bool, body: str | None = None) -> dict[str, Any]:
    radio_operator = m.link.radio.operator if m.link.radio and m.link.radio.operator else ""
    return {
        "id": m.id, "device_id": device.id, "seq": m.seq, "commune_code": commune.code,
        "province_code": commune.province_code, "month": month_of(m.started_at, settings.timezone),
        "started_at": m.started_at, "received_at": now, "engine": m.engine, "status": m.status,
        "operator": (m.link.operator or radio_operator or "?")[:64], "link_name": m.link.name,
        "access": m.link.access or "", "download_mbps": m.download_mbps, "upload_mbps": m.upload_mbps,
        "latency_ms": m.latency_ms, "jitter_ms": m.jitter_ms, "bytes_down": m.bytes_down,
        "bytes_up": m.bytes_up, "clock_suspect": clock_suspect, "loaded_latency_ms": m.loaded_latency_ms,
        "capped": m.capped,
        "body": body if body is not None else json.dumps(to_wire(m), ensure_ascii=False),
    }


def _item_id(item: Any) -> str | None:
    return item.get("id") if isinstance(item, dict) and isinstance(item.get("id"), str) else None


def ingest(store: CollectorStore, settings: CollectorSettings, device: Device, items: list[Any],
           now: dt.datetime, sent_at: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Validate and store a device's items; return one result per item, in order."""
    tolerance = dt.timedelta(seconds=settings.clock_tolerance_s)
    batch_clock_off = sent_at is not None and abs(now - sent_at) > tolerance
    results: list[dict[str, Any]] = []
    rows: dict[str, dict[str, Any]] = {}
    seen_communes: dict[str, communes.Commune | None] = {}
    for item in items:
        try:
            m = from_wire(item)
            if m.device_id != device.id:
                raise WireError("device_id", f"{m.device_id!r} is not the device this token belongs to")
            code = m.commune_code or device.commune_code
            commune = seen_communes.get(code) or seen_communes.setdefault(code, communes.commune(code))
            if commune is None:
                raise WireError("commune_code", f"{m.commune_code} is not a commune in vietnam-provinces")
        except WireError as e:
            results.append({"id": _item_id(item), "status": "rejected", "reason": str(e)})
            continue
        if m.id in rows:
            results.append({"id": m.id, "status": "duplicate", "reason": None})
            continue
        suspect = batch_clock_off or m.started_at > now + tolerance
        # the item is kept as the probe sent it (validated above): newer probes' extra fields included
        rows[m.id] = _row(m, device, commune, now, settings, suspect, json.dumps(item, ensure_ascii=False))
        results.append({"id": m.id, "status": "pending", "reason": None})
    inserted = store.samples.insert(list(rows.values()), device.id, now)
    for result in results:
        if result["status"] == "pending":
            result["status"] = "accepted" if result["id"] in inserted else "duplicate"
            inserted.discard(result["id"])  # a repeat inside the batch is a duplicate of the first
    return results
