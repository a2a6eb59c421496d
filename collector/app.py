"""The collector's HTTP service assembled: the probe and report API, ops endpoints, the dashboard with its
stylesheet and /speedtest/, over one store, every answer with security headers, and a background thread
that keeps the report cache warm."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from xaprobe import __version__
from xaprobe.collector import api, dashboard, ops, siteapi
from xaprobe.collector.deps import Services
from xaprobe.collector.headers import SecurityHeaders
from xaprobe.collector.metrics import Metrics, MetricsMiddleware
from xaprobe.collector.reports import refresh_recent
from xaprobe.collector.settings import CollectorSettings
from xaprobe.collector.speedtest_app import make_app as speedtest
from xaprobe.collector.store import CollectorStore
from xaprobe.months import utc_now

log = logging.getLogger("xaprobe.collector")


def _refresher(s: Services, stop: threading.Event) -> None:
    """Keep the report cache warm, so a report seldom has anything to recompute."""
    while not stop.wait(s.settings.refresh_every_s):
        try:
            refresh_recent(s.store, s.settings, s.clock())
        except Exception:  # noqa: BLE001 - the one guard of this job: a report recomputes what is left
            log.exception("refreshing the report cache failed")


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=_refresher, args=(app.state.services, stop), daemon=True)
    thread.start()
    yield
    stop.set()


async def _problem(_request: Request, exc: HTTPException) -> JSONResponse:
    """Every refusal answers {"detail": ...}, the shape the OpenAPI document promises."""
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def create_app(store: CollectorStore, settings: CollectorSettings,
               clock: Callable[[], dt.datetime] = utc_now) -> FastAPI:
    """Build the collector app over an open store; the clock is passed in so tests can freeze it."""
    app = FastAPI(title="xaprobe collector", version=__version__, lifespan=_lifespan,
                  description="Ingest of speed-test measurements from commune probes, reports and dashboard.")
    metrics = Metrics()
    app.state.services = Services(store, settings, clock, metrics)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(SecurityHeaders)  # added last: outermost, so error answers carry the headers too
    app.exception_handler(HTTPException)(_problem)
    app.exception_handler(dashboard.BadInput)(dashboard.bad_input_page)  # a page in the page's language, not JSON
    app.include_router(ops.router)
    app.include_router(api.router)
    app.include_router(siteapi.router)
    app.include_router(dashboard.router)
    app.mount("/speedtest", speedtest(limits=settings.speedtest))
    return app
