"""An app factory for uvicorn's worker processes: settings come from the environment `serve` sets."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from fastapi import FastAPI

from xaprobe.collector.app import create_app
from xaprobe.collector.db import open_engine
from xaprobe.collector.settings import load_settings
from xaprobe.collector.store import CollectorStore

CONFIG_ENV, DB_ENV, PROVINCE_ENV = "XAPROBE_COLLECTOR_CONFIG", "XAPROBE_COLLECTOR_DB", "XAPROBE_COLLECTOR_PROVINCE"


def app_from_env() -> FastAPI:
    """Build the collector app in a worker process (each worker has its own connection pool)."""
    config = os.environ.get(CONFIG_ENV)
    settings = load_settings(Path(config) if config else None, os.environ.get(DB_ENV) or None)
    if os.environ.get(PROVINCE_ENV):
        settings = dataclasses.replace(settings, province=os.environ[PROVINCE_ENV])
    return create_app(CollectorStore(open_engine(settings.db_url)), settings)
