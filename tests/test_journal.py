"""The daemon's journal lines, captured: what the officer reads for each failure, said once, not per retry."""

from __future__ import annotations

import datetime as dt
import logging
import random

import requests
from conftest import make_measurement

from xaprobe.agent.config import AgentConfig, LinkConfig, UploadConfig
from xaprobe.agent.daemon import Probe
from xaprobe.agent.engines import http as http_engine
from xaprobe.agent.store import Store
from xaprobe.secret import Secret

NOW = dt.datetime(2026, 11, 20, 5, 0, tzinfo=dt.timezone.utc)


def probe(tmp_path, url: str, token: str = "xap_t", synced: bool | None = True, speedtest: str = "") -> Probe:
    now = [NOW]
    config = AgentConfig(device_id="probe-1", token=Secret(token), commune_code="18673", collector_url=url + "/",
                         store=tmp_path / "probe.db", links=(LinkConfig(name="office", operator="VNPT"),),
                         engines={"http": http_engine.Settings(server=speedtest or url + "/speedtest/", duration_s=1,
                                                               streams=1)},
                         upload=UploadConfig(backoff_base_s=30, backoff_cap_s=60, timeout_s=3))
    p = Probe(config, Store.open(config.store), requests.Session(), clock=lambda: now[0], rng=random.Random(1),
              clock_synced=lambda: synced)
    p.now = now  # type: ignore[attr-defined]
    return p


def lines(caplog, level=logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "xaprobe.agent" and r.levelno >= level]


def retry_many(p: Probe, times: int, step_s: float) -> None:
    for _ in range(times):
        p.health.next_upload_at = None  # as if the backoff had passed
        p.upload_if_due()
        p.now[0] += dt.timedelta(seconds=step_s)


def test_an_unreachable_collector_is_said_once_then_reminded_hourly(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    p = probe(tmp_path, "http://127.0.0.1:9")
    p.store.add(make_measurement(device_id="probe-1"))
    retry_many(p, 20, 60)  # 20 retries in 20 minutes
    said = [line for line in lines(caplog, logging.WARNING) if "delivery to the collector failed" in line]
    assert len(said) == 1 and "connection refused by 127.0.0.1:9" in said[0] and "next try 20/11/2026" in said[0]
    assert "ConnectionError" not in said[0]
    retry_many(p, 50, 60)  # past the hour: one reminder
    assert len([x for x in lines(caplog, logging.WARNING) if "delivery to the collector failed" in x]) == 2


def test_a_refused_token_is_said_once(sqlite_collector, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    p = probe(tmp_path, sqlite_collector.base, token="xap_not_a_token")
    p.store.add(make_measurement(device_id="probe-1"))
    retry_many(p, 5, 60)
    said = [x for x in lines(caplog, logging.ERROR) if "refused this probe's token" in x]
    assert len(said) == 1 and "until the collector staff give a new token" in said[0]


def test_a_test_and_the_next_one_in_local_time(sqlite_collector, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    p = probe(tmp_path, sqlite_collector.base, token=sqlite_collector.enrol())
    p.test_if_due()
    [line] = [x for x in lines(caplog) if x.startswith("test on office")]
    assert "down " in line and "Mbit/s" in line and "; next test " in line and "/11/2026 " in line
    p.upload_if_due()
    assert not [x for x in lines(caplog, logging.WARNING) if "delivery" in x]


def test_a_failed_test_says_why(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    p = probe(tmp_path, "http://127.0.0.1:9", speedtest="http://127.0.0.1:9/speedtest/")
    p.test_if_due()
    [line] = [x for x in lines(caplog, logging.WARNING) if x.startswith("test on office failed")]
    assert "connection refused" in line


def test_an_unsynchronised_clock_is_said_with_the_fix_once(sqlite_collector, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    p = probe(tmp_path, sqlite_collector.base, token=sqlite_collector.enrol(), synced=False)
    p.heartbeat()
    p.heartbeat()
    said = [x for x in lines(caplog, logging.WARNING) if "clock is not synchronised" in x]
    assert len(said) == 1 and "timedatectl set-ntp true" in said[0]
    assert sqlite_collector.store.devices.get("probe-1").heartbeat.clock_synced is False
