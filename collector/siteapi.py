"""The sites API a probe calls with its device token: the sites of its own commune (GET), and a new one there
(POST, for a field session at a place staff did not list; a few per device and per commune, see core/sites.py).
Whether a site counts as residential follows its kind; only staff say otherwise (`site set`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from xaprobe import sites as kinds
from xaprobe.collector.api import Problem
from xaprobe.collector.body import read_json
from xaprobe.collector.deps import Services, device_auth, services
from xaprobe.collector.devices import Device
from xaprobe.collector.sites import Site, SiteError
from xaprobe.fields import WireError, check_number, check_text

router = APIRouter()
_NO_NUL = {"pattern": "^[^\\u0000]*$"}
# what the checks below accept, so the OpenAPI document promises no more (coordinates: Vietnam's box, both or none)
_SITE_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["name", "kind"], "properties": {
        "name": {"type": "string", "maxLength": 200, "allOf": [{"pattern": "[0-9A-Za-z]"}, _NO_NUL]},
        "kind": {"type": "string", "enum": list(kinds.KINDS)},
        "hamlet": {"type": "string", "maxLength": 200, **_NO_NUL},
        "lat": {"type": "number", "minimum": 8, "maximum": 24}, "lon": {"type": "number", "minimum": 102,
                                                                         "maximum": 110},
        },
    "dependentRequired": {"lat": ["lon"], "lon": ["lat"]}}}}}}
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": Problem} for code in (400, 401, 403, 413, 415, 429)}


def _site_from(body: Any, device: Device, now: Any, taken: set[str]) -> Site:
    """The site a probe asks for, checked field by field (WireError names the field)."""
    if not isinstance(body, dict):
        raise WireError("body", "must be an object")
    name = check_text(body.get("name"), "name", 200).strip()
    if not name:
        raise WireError("name", "required")
    kind = check_text(body.get("kind"), "kind", 20)
    if kind not in kinds.KINDS:
        raise WireError("kind", f"must be one of {', '.join(kinds.KINDS)}")
    lat = None if body.get("lat") is None else check_number(body["lat"], "lat", 90.0, -90.0)
    lon = None if body.get("lon") is None else check_number(body["lon"], "lon", 180.0, -180.0)
    site_id = base = kinds.suggested_id(device.commune_code, name)
    n = 2
    while site_id in taken:
        site_id, n = f"{base[:60]}-{n}", n + 1
    return Site(site_id, device.commune_code, name, kind, check_text(body.get("hamlet") or "", "hamlet", 200).strip(),
                lat, lon, kinds.residential_by_default(kind), now,
                f"device:{device.id}")


@router.get("/api/v1/sites", tags=["probe"], responses=_ERRORS)
def get_sites(device: Device = Depends(device_auth), s: Services = Depends(services)) -> Any:
    """The sites of the device's commune, and the one staff set for it."""
    return {"commune_code": device.commune_code, "site_id": device.site_id,
            "sites": [site.to_json() for site in s.store.sites.of_communes([device.commune_code])]}


@router.post("/api/v1/sites", tags=["probe"], openapi_extra=_SITE_BODY, status_code=201, responses=_ERRORS)
async def post_site(request: Request, device: Device = Depends(device_auth), s: Services = Depends(services)) -> Any:
    """Add a site in the device's commune (a field session's place); answer it with its id."""
    body = await read_json(request, 16 * 1024, 16 * 1024)
    existing = await run_in_threadpool(s.store.sites.of_communes, [device.commune_code])
    try:
        site = _site_from(body, device, s.clock(), {x.id for x in existing})
        same = [x for x in existing if x.name.casefold() == site.name.casefold() and x.hamlet == site.hamlet]
        if same:  # the same place asked for twice (a retry, a second laptop): the one already there
            return same[0].to_json()
        await run_in_threadpool(s.store.sites.add, site)
    except (WireError, SiteError) as e:
        raced = await run_in_threadpool(s.store.sites.get, site.id) if isinstance(e, SiteError) else None
        if raced is not None and raced.name == site.name and raced.hamlet == site.hamlet:
            return raced.to_json()  # the same place, added a moment ago by another request
        raise HTTPException(400, str(e)) from None
    return site.to_json()
