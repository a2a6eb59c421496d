"""The collector's HTTP service: ingest and heartbeat API, reports, dashboard, and /speedtest/."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel

from xaprobe import __version__, communes
from xaprobe.collector.body import read_json
from xaprobe.collector.devices import Device
from xaprobe.collector.exports import render_report
from xaprobe.collector.fleet import fleet
from xaprobe.collector.ingest import ingest
from xaprobe.collector.metrics import Metrics, MetricsMiddleware
from xaprobe.collector.reports import monthly_report, refresh_recent
from xaprobe.collector.settings import CollectorSettings
from xaprobe.collector.speedtest_app import speedtest_app
from xaprobe.collector.store import CollectorStore
from xaprobe.months import month_of, parse_utc, utc_now

log = logging.getLogger("xaprobe.collector")
ADMIN_COOKIE = "xaprobe_admin"
MONTH_PATTERN = r"^2\d{3}-(0[1-9]|1[0-2])$"
MEDIA = {"json": "application/json", "csv": "text/csv; charset=utf-8", "table": "text/plain; charset=utf-8",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


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
_HEARTBEAT_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "additionalProperties": True}}}}}
_ERRORS = {400: {"model": Problem}, 401: {"model": Problem}, 403: {"model": Problem},
           413: {"model": Problem}, 415: {"model": Problem}, 429: {"model": Problem}}


def bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _refresher(store: CollectorStore, settings: CollectorSettings, clock: Callable[[], dt.datetime],
               stop: threading.Event) -> None:
    """Keep the report cache warm, so a report seldom has anything to recompute."""
    while not stop.wait(settings.refresh_every_s):
        try:
            refresh_recent(store, settings, clock())
        except Exception:  # noqa: BLE001 - the one guard of this job: a report recomputes what is left
            log.exception("refreshing the report cache failed")


def create_app(store: CollectorStore, settings: CollectorSettings,
               clock: Callable[[], dt.datetime] = utc_now) -> FastAPI:
    """Build the collector app over an open store; the clock is passed in so tests can freeze it."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):  # noqa: ANN202
        stop = threading.Event()
        thread = threading.Thread(target=_refresher, args=(store, settings, clock, stop), daemon=True)
        thread.start()
        yield
        stop.set()

    app = FastAPI(title="xaprobe collector", version=__version__, lifespan=lifespan,
                  description="Ingest of speed-test measurements from commune probes, reports and dashboard.")
    app.state.store, app.state.settings, app.state.clock = store, settings, clock
    metrics = Metrics()
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    def device_auth(request: Request) -> Device:
        token = bearer(request)
        if token is None:
            raise HTTPException(401, "missing Authorization: Bearer <device token>",
                                headers={"WWW-Authenticate": "Bearer"})
        device = store.devices.for_token(token, clock())
        if device is None:
            raise HTTPException(401, "this token is not known (enrol the device or check its token)",
                                headers={"WWW-Authenticate": "Bearer"})
        if device.revoked_at is not None:
            raise HTTPException(403, f"device {device.id} was revoked")
        now = clock().timestamp()
        if store.devices.count_request(device.id, int(now // 60)) > settings.rate_per_minute:
            wait = max(1, int(60 - now % 60) + 1)
            raise HTTPException(429, f"more than {settings.rate_per_minute} requests a minute from {device.id}",
                                headers={"Retry-After": str(wait)})
        return device

    def admin_auth(request: Request) -> str:
        token = bearer(request) or request.cookies.get(ADMIN_COOKIE)
        name = store.devices.admin_for_token(token) if token else None
        if name is None:
            raise HTTPException(401, "admin token required (Authorization: Bearer <admin token>)",
                                headers={"WWW-Authenticate": "Bearer"})
        return name

    app.state.admin_auth = admin_auth

    @app.get("/metrics", response_class=PlainTextResponse, tags=["ops"])
    def get_metrics() -> str:
        now = clock()
        return metrics.render({"1h": store.devices.seen_since(now - dt.timedelta(hours=1)),
                               "24h": store.devices.seen_since(now - dt.timedelta(days=1))})

    @app.get("/healthz", response_class=PlainTextResponse, tags=["ops"])
    def healthz() -> str:
        store.ping()
        return "ok"

    @app.post("/api/v1/measurements", response_model=IngestAnswer, responses=_ERRORS,
              openapi_extra=_MEASUREMENTS_BODY, tags=["probe"])
    async def post_measurements(request: Request, device: Device = Depends(device_auth)) -> Any:
        body = await read_json(request, settings.max_body_bytes, settings.max_inflated_bytes)
        if not isinstance(body, dict) or not isinstance(body.get("measurements"), list):
            raise HTTPException(400, 'body must be an object {"measurements": [...]}')
        items = body["measurements"]
        if len(items) > settings.max_items:
            raise HTTPException(413, f"{len(items)} items in one batch; at most {settings.max_items}")
        sent_at = None
        if isinstance(body.get("sent_at"), str):
            try:
                sent_at = parse_utc(body["sent_at"])
            except ValueError:
                raise HTTPException(400, "sent_at: not an ISO 8601 timestamp with offset") from None
        results = await run_in_threadpool(ingest, store, settings, device, items, clock(), sent_at)
        metrics.count_items([r["status"] for r in results])
        return JSONResponse({"results": results})  # already in the documented shape: no re-validation

    @app.post("/api/v1/heartbeat", response_model=HeartbeatAnswer, responses=_ERRORS,
              openapi_extra=_HEARTBEAT_BODY, tags=["probe"])
    async def post_heartbeat(request: Request, device: Device = Depends(device_auth)) -> Any:
        body = await read_json(request, 64 * 1024, 256 * 1024)
        if not isinstance(body, dict):
            raise HTTPException(400, "heartbeat body must be a JSON object")
        now = clock()
        body["received_at"] = now.isoformat()
        steer = store.devices.record_heartbeat(device.id, body, now)
        return {"ok": True, "settings": steer, "server_time": now.isoformat()}

    @app.get("/api/v1/report", tags=["reports"], responses={
        200: {"description": "The report", "content": {m.split(";")[0]: {} for m in MEDIA.values()}},
        401: {"model": Problem}, 404: {"model": Problem}})
    def get_report(month: str | None = Query(None, pattern=MONTH_PATTERN),
                   province: str | None = Query(None, pattern=r"^\d{1,3}$"),
                   format: Literal["json", "csv", "xlsx", "table"] = "json",
                   lang: Literal["vi", "en"] = "vi", _admin: str = Depends(admin_auth)) -> Response:
        now = clock()
        if communes.province_name(province or settings.province) is None:
            raise HTTPException(404, f"{province!r} is not a province code in vietnam-provinces")
        report = monthly_report(store, settings, month or month_of(now, settings.timezone),
                                province or settings.province, now)
        return Response(render_report(report, format, lang), media_type=MEDIA[format])

    @app.get("/api/v1/fleet", tags=["reports"], responses={401: {"model": Problem}, 404: {"model": Problem}})
    def get_fleet(province: str | None = Query(None, pattern=r"^\d{1,3}$"),
                  _admin: str = Depends(admin_auth)) -> list[dict[str, Any]]:
        if province is not None and communes.province_name(province) is None:
            raise HTTPException(404, f"{province!r} is not a province code in vietnam-provinces")
        code = communes.normalise_code(province) if province else None
        return [dataclasses.asdict(h) for h in fleet(store, clock(), code)]

    @app.exception_handler(HTTPException)
    async def problem(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    from xaprobe.collector.dashboard import router  # the dashboard needs the app's state set above

    app.include_router(router)
    app.mount("/speedtest", speedtest_app)
    return app
