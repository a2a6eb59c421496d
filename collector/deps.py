"""What the collector's routes share: the services kept on the app (store, settings, clock, metrics),
the device and admin checks as FastAPI dependencies (with the per-device rate limit), and query patterns."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from fastapi import HTTPException, Request

from xaprobe.collector.devices import Device
from xaprobe.collector.metrics import Metrics
from xaprobe.collector.settings import CollectorSettings
from xaprobe.collector.store import CollectorStore

ADMIN_COOKIE = "xaprobe_session"
MONTH_PATTERN = r"^2\d{3}-(0[1-9]|1[0-2])$"
PROVINCE_PATTERN = r"^\d{1,3}$"
COMMUNE_PATTERN = r"^\d{1,6}$"


@dataclasses.dataclass(frozen=True)
class Services:
    """What every route of one collector app uses; create_app keeps it on app.state."""

    store: CollectorStore
    settings: CollectorSettings
    clock: Callable[[], dt.datetime]
    metrics: Metrics


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def device_auth(request: Request) -> Device:
    """The device whose token the request carries: 401 unknown, 403 revoked, 429 over its rate a minute."""
    s = services(request)
    token = bearer(request)
    if token is None:
        raise HTTPException(401, "missing Authorization: Bearer <device token>",
                            headers={"WWW-Authenticate": "Bearer"})
    device = s.store.devices.for_token(token, s.clock())
    if device is None:
        raise HTTPException(401, "this token is not known (enrol the device or check its token)",
                            headers={"WWW-Authenticate": "Bearer"})
    if device.revoked_at is not None:
        raise HTTPException(403, f"device {device.id} was revoked")
    now = s.clock().timestamp()
    if s.store.devices.count_request(device.id, int(now // 60)) > s.settings.rate_per_minute:
        wait = max(1, int(60 - now % 60) + 1)
        raise HTTPException(429, f"more than {s.settings.rate_per_minute} requests a minute from {device.id}",
                            headers={"Retry-After": str(wait)})
    return device


def admin_auth(request: Request) -> str:
    """The admin whose token the request carries as a bearer, else whose dashboard session its cookie names;
    401 without either."""
    s = services(request)
    token = bearer(request)
    session = request.cookies.get(ADMIN_COOKIE)
    name = s.store.admins.for_token(token) if token else \
        s.store.admins.session_admin(session, s.clock()) if session else None
    if name is None:
        raise HTTPException(401, "admin token required (Authorization: Bearer <admin token>)",
                            headers={"WWW-Authenticate": "Bearer"})
    return name
