"""A field session's sites: ask the collector for the sites of this probe's commune, or add the place the
officer stands at as a new one; every answer is checked entry by entry (a bad entry is left out, not trusted)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import requests

from xaprobe.agent.config import AgentConfig
from xaprobe.errors import UserError
from xaprobe.fields import WireError, check_number, check_text
from xaprobe.i18n import _
from xaprobe.sites import KINDS, is_site_id
from xaprobe.uploader.transport import TransportError, json_object, request

SITES_PATH = "/api/v1/sites"
MAX_ANSWER = 1 << 20


@dataclasses.dataclass(frozen=True)
class FieldSite:
    id: str
    name: str
    kind: str
    hamlet: str = ""
    residential: bool = False
    lat: float | None = None
    lon: float | None = None


def _site(entry: Any) -> FieldSite:
    """One site of the collector's answer; WireError when it is not one."""
    if not isinstance(entry, dict):
        raise WireError("sites[]", "must be an object")
    site_id = check_text(entry.get("id"), "id", 64)
    if not is_site_id(site_id):
        raise WireError("id", f"{site_id!r} is not a site id")
    kind = check_text(entry.get("kind") or "other", "kind", 20)
    lat, lon = entry.get("lat"), entry.get("lon")
    return FieldSite(site_id, check_text(entry.get("name") or "", "name", 200), kind if kind in KINDS else "other",
                     check_text(entry.get("hamlet") or "", "hamlet", 200), entry.get("residential") is True,
                     None if lat is None else check_number(lat, "lat", 90.0, -90.0),
                     None if lon is None else check_number(lon, "lon", 180.0, -180.0))


def _call(config: AgentConfig, session: requests.Session, method: str, body: dict[str, Any] | None) -> Any:
    if not config.collector_url or not config.token:
        raise UserError(_("this probe is not enrolled (no collector_url or token in {source}): run xaprobe enroll "
                          "first").format(source=config.source))
    url = config.collector_url.rstrip("/") + SITES_PATH
    headers = {"Authorization": f"Bearer {config.token.reveal()}", "Content-Type": "application/json"}
    try:
        answer = request(session, method, url, None if body is None else json.dumps(body).encode(), headers,
                         config.upload.timeout_s, MAX_ANSWER)
    except TransportError as e:
        raise UserError(_("cannot reach the collector: {error}").format(error=e)) from None
    parsed = json_object(answer)
    if answer.status not in (200, 201) or parsed is None:
        detail = parsed.get("detail") if parsed else None
        raise UserError(_("the collector answered {status}: {detail}").format(
            status=answer.status, detail=str(detail or "-")[:300]))
    return parsed


def list_sites(config: AgentConfig, session: requests.Session) -> tuple[list[FieldSite], str | None, int]:
    """The sites of this probe's commune, the one staff set for it, and how many entries were left out."""
    answer = _call(config, session, "GET", None)
    entries = answer.get("sites") if isinstance(answer.get("sites"), list) else []
    found, bad = [], 0
    for entry in entries[:1000]:
        try:
            found.append(_site(entry))
        except WireError:
            bad += 1
    own = answer.get("site_id")
    return found, own if isinstance(own, str) and is_site_id(own) else None, bad


def add_site(config: AgentConfig, session: requests.Session, name: str, kind: str, hamlet: str,
             lat: float | None, lon: float | None) -> FieldSite:
    """Add the place as a site of this probe's commune (or get the one of that name and hamlet); whether it is
    residential follows its kind (staff may say otherwise at the collector)."""
    body: dict[str, Any] = {"name": name, "kind": kind, "hamlet": hamlet}
    if lat is not None and lon is not None:
        body |= {"lat": lat, "lon": lon}
    try:
        return _site(_call(config, session, "POST", body))
    except WireError as e:
        raise UserError(_("the collector's answer is not usable ({error})").format(error=e)) from None
