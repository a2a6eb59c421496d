"""The JSON API: what probes call (measurements, heartbeat; device token) and what staff's tools call
(report, fleet; admin token). Every refusal is a 4xx with {"detail": "..."} saying what to change."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from xaprobe import communes
from xaprobe.collector.body import read_json
from xaprobe.collector.deps import MONTH_PATTERN, PROVINCE_PATTERN, Services, admin_auth, device_auth, services
from xaprobe.collector.devices import Device
from xaprobe.collector.exports import render_report
from xaprobe.collector.fleet import fleet
from xaprobe.collector.ingest import batch_clock, ingest
from xaprobe.collector.reports import monthly_report
from xaprobe.collector.wire_schema import record_schema
from xaprobe.fields import WireError
from xaprobe.health import Heartbeat
from xaprobe.months import month_of

MEDIA = {"json": "application/json", "csv": "text/csv; charset=utf-8", "table": "text/plain; charset=utf-8",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
router = APIRouter()


class ItemResult(BaseModel):
    id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    reason: str | None


class IngestAnswer(BaseModel):
    results: list[ItemResult]


class HeartbeatAnswer(BaseModel):
    ok: bool
    settings: dict[str, Any]
    server_time: str


class Problem(BaseModel):
    detail: str


_MEASUREMENTS_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["measurements"],
    "properties": {"measurements": {"type": "array", "maxItems": 1000, "items": {"type": "object"}},
                   "sent_at": {"type": "string", "format": "date-time"}}}}}}}
_HEARTBEAT_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": record_schema(Heartbeat)}}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (400, 401, 403, 413, 415, 429)}


@router.post("/api/v1/measurements", response_model=IngestAnswer, responses=_ERRORS,
             openapi_extra=_MEASUREMENTS_BODY, tags=["probe"])
async def post_measurements(request: Request, device: Device = Depends(device_auth),
                            s: Services = Depends(services)) -> Any:
    settings = s.settings
    body = await read_json(request, settings.max_body_bytes, settings.max_inflated_bytes)
    if not isinstance(body, dict) or not isinstance(body.get("measurements"), list):
        raise HTTPException(400, 'body must be an object {"measurements": [...]}')
    items = body["measurements"]
    if len(items) > settings.max_items:
        raise HTTPException(413, f"{len(items)} items in one batch; at most {settings.max_items}")
    # a sent_at that cannot be read leaves the batch's clock unknown: each item is still judged alone
    batch = await run_in_threadpool(ingest, s.store, settings, device, items, s.clock(),
                                    batch_clock(body.get("sent_at")))
    s.metrics.count_items([r["status"] for r in batch.results])
    s.metrics.count_conflicts(batch.same_device_conflicts, batch.other_device_conflicts)
    return JSONResponse({"results": batch.results})  # already in the documented shape: no re-validation


@router.post("/api/v1/heartbeat", response_model=HeartbeatAnswer, responses=_ERRORS,
             openapi_extra=_HEARTBEAT_BODY, tags=["probe"])
async def post_heartbeat(request: Request, device: Device = Depends(device_auth),
                         s: Services = Depends(services)) -> Any:
    body = await read_json(request, 64 * 1024, 256 * 1024)
    try:
        heartbeat = Heartbeat.from_wire(body)
    except WireError as e:
        raise HTTPException(400, str(e)) from None  # names the field: "links[0].target: must be between ..."
    now = s.clock()
    centre = s.store.devices.record_heartbeat(device.id, heartbeat, now)
    return {"ok": True, "settings": centre.to_wire(), "server_time": now.isoformat()}


def _province_or_404(province: str) -> None:
    if communes.province_name(province) is None:
        raise HTTPException(404, f"{province!r} is not a province code in vietnam-provinces")


@router.get("/api/v1/report", tags=["reports"], responses={
    200: {"description": "The report", "content": {m.split(";")[0]: {} for m in MEDIA.values()}},
    401: {"model": Problem}, 404: {"model": Problem}})
def get_report(month: str | None = Query(None, pattern=MONTH_PATTERN),
               province: str | None = Query(None, pattern=PROVINCE_PATTERN),
               format: Literal["json", "csv", "xlsx", "table"] = "json",
               lang: Literal["vi", "en"] = "vi", _admin: str = Depends(admin_auth),
               s: Services = Depends(services)) -> Response:
    now = s.clock()
    _province_or_404(province or s.settings.province)
    report = monthly_report(s.store, s.settings, month or month_of(now, s.settings.timezone),
                            province or s.settings.province, now)
    return Response(render_report(report, format, lang, now, s.settings.timezone), media_type=MEDIA[format])


@router.get("/api/v1/fleet", tags=["reports"], responses={401: {"model": Problem}, 404: {"model": Problem}})
def get_fleet(province: str | None = Query(None, pattern=PROVINCE_PATTERN),
              _admin: str = Depends(admin_auth), s: Services = Depends(services)) -> list[dict[str, Any]]:
    if province is not None:
        _province_or_404(province)
    code = communes.normalise_code(province) if province else None
    return [h.to_json() for h in fleet(s.store, s.clock(), code, s.settings.timezone)]


class EnrolAnswer(BaseModel):
    device_id: str
    token: str
    commune_code: str
    commune_name: str
    province_name: str
    speedtest_url: str
    target: int | None
    site_id: str | None = None  # the site staff enrolled it for (`device add --site`)
    site_name: str | None = None


ENROL_PER_MINUTE = 10  # per client address: 40-bit codes, single use, 7 days, cannot be guessed at this rate
_ENROL_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["code"], "properties": {"code": {"type": "string", "maxLength": 20}}}}}}}


@router.post("/api/v1/enroll", response_model=EnrolAnswer, openapi_extra=_ENROL_BODY, tags=["probe"],
             responses={code: {"model": Problem} for code in (400, 403, 404, 413, 415, 429)})
async def post_enroll(request: Request) -> Any:
    """Redeem a one-time enrolment code for the device's identity and a fresh token (its old one ends)."""
    s = services(request)
    body = await read_json(request, 4096, 4096)
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str) or len(code) > 20:
        raise HTTPException(400, 'body must be {"code": "XXXX-XXXX"}')
    now = s.clock()
    client = (request.client.host if request.client else "?")[:56]
    if await run_in_threadpool(s.store.devices.count_request, f"enroll:{client}", int(now.timestamp() // 60)) \
            > ENROL_PER_MINUTE:
        raise HTTPException(429, f"more than {ENROL_PER_MINUTE} enrolment attempts a minute from {client}",
                            headers={"Retry-After": "60"})
    device_id = await run_in_threadpool(s.store.enrolment.redeem, code, now)
    device = None if device_id is None else await run_in_threadpool(s.store.devices.get, device_id)
    if device is None:
        raise HTTPException(404, "this enrolment code is unknown, used already, revoked or expired: ask the "
                                 "collector staff for a new one (xaprobe-collector device code ID)")
    if device.revoked_at is not None:
        raise HTTPException(403, f"device {device.id} was revoked")
    token = await run_in_threadpool(s.store.devices.rotate, device.id, now, dt.timedelta(0))
    unit = communes.commune(device.commune_code)
    site = await run_in_threadpool(s.store.sites.get, device.site_id) if device.site_id else None  # "": none
    return {"device_id": device.id, "token": token, "commune_code": device.commune_code,
            "commune_name": unit.name if unit else "", "province_name": unit.province_name if unit else "",
            "speedtest_url": str(request.base_url) + "speedtest/", "target": device.target,
            "site_id": site.id if site else None, "site_name": site.name if site else None}
