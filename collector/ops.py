"""Endpoints for whoever runs the collector: Prometheus metrics and a health check that asks the database."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from xaprobe.collector.deps import Services, services

router = APIRouter(tags=["ops"])


@router.get("/metrics", response_class=PlainTextResponse)
def get_metrics(s: Services = Depends(services)) -> str:
    now = s.clock()
    return s.metrics.render({"1h": s.store.devices.seen_since(now - dt.timedelta(hours=1)),
                             "24h": s.store.devices.seen_since(now - dt.timedelta(days=1))})


@router.get("/healthz", response_class=PlainTextResponse)
def healthz(s: Services = Depends(services)) -> str:
    s.store.ping()
    return "ok"
