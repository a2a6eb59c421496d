"""Collector operations on both back ends: migrations, tokens, rate limits, metrics, several processes."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import importlib.util
import json
import subprocess
import sys
import time

import pytest
import requests
import sqlalchemy as sa
from conftest import REPO, free_port, make_measurement, running_collector

from xaprobe.collector import schema
from xaprobe.collector.db import open_engine
from xaprobe.collector.devices import hash_token
from xaprobe.collector.reports import monthly_report
from xaprobe.collector.settings import CollectorSettings
from xaprobe.collector.store import CollectorStore
from xaprobe.months import utc_now
from xaprobe.wire import to_wire


def load_v1():
    spec = importlib.util.spec_from_file_location("collector_schema_v1", REPO / "tests/fixtures/collector_schema_v1.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_database_of_the_previous_schema_is_upgraded_without_loss(db_url):
    v1 = load_v1()
    url = db_url.replace("postgresql://", "postgresql+psycopg://")
    engine = sa.create_engine(url)
    now = utc_now()
    with engine.begin() as conn:
        v1.metadata.create_all(conn)
        conn.execute(v1.schema_info.insert().values(id=1, version=1))
        conn.execute(v1.devices.insert().values(id="old-probe", name="Old", commune_code="18673",
                                                token_hash=hash_token("xap_old"), created_at=now))
        for i in range(30):
            m = make_measurement(device_id="old-probe", seq=i + 1)
            conn.execute(v1.measurements.insert().values(
                id=m.id, device_id="old-probe", seq=i + 1, commune_code="18673", province_code="42", month="2026-11",
                started_at=m.started_at, received_at=now, engine="http", status="ok", operator="Viettel",
                link_name="viettel", access="cellular", download_mbps=10.0 + i, upload_mbps=1.0, latency_ms=30.0,
                jitter_ms=1.0, bytes_down=1, bytes_up=1, clock_suspect=False, body=json.dumps(to_wire(m))))
    engine.dispose()
    store = CollectorStore(open_engine(db_url))
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(schema.schema_info.c.version)).scalar_one() == schema.SCHEMA_VERSION
        rows = conn.execute(sa.select(schema.measurements.c.download_mbps, schema.measurements.c.capped)).all()
    assert sorted(r[0] for r in rows) == [10.0 + i for i in range(30)] and not any(r[1] for r in rows)
    assert store.devices.for_token("xap_old", now).id == "old-probe"
    stale_columns = {c["name"] for c in sa.inspect(store.engine).get_columns("stale_months")}
    assert "scope" in stale_columns and "commune_code" not in stale_columns  # v3 renamed it
    assert sorted(s for s, _, _ in store.stats.stale_scopes("2026-11", "42")) == ["18673", "p42"]  # v2 marked both
    report = monthly_report(store, CollectorSettings(), "2026-11", "42", now)
    camxuyen = next(c for c in report.communes if c.code == "18673")
    assert camxuyen.samples == 30 and camxuyen.operators["Viettel"].download_mbps.median == 24.5
    assert report.operators["Viettel"].samples == 30  # the province's own figures, from its scope
    assert store.stats.stale_scopes("2026-11", "42") == []
    store.devices.set_commune_target("18673", 500)
    assert store.devices.commune_targets() == {"18673": 500}
    store.engine.dispose()


def post(base, token, items, **kw):
    return requests.post(base + "/api/v1/measurements", json={"measurements": items}, timeout=30,
                         headers={"Authorization": f"Bearer {token}"}, **kw)


def test_rotated_token_both_valid_for_the_grace_period(collector):
    old = collector.enrol()
    new = collector.store.devices.rotate("probe-1", utc_now(), dt.timedelta(days=90))
    assert post(collector.base, old, []).status_code == 200
    assert post(collector.base, new, []).status_code == 200
    collector.store.devices.rotate("probe-1", utc_now() - dt.timedelta(days=200), dt.timedelta(days=90))
    assert post(collector.base, new, []).status_code == 401  # the grace period of the old one is over


def test_revocation_takes_effect_on_the_next_request(collector):
    token = collector.enrol()
    assert post(collector.base, token, []).status_code == 200
    collector.store.devices.revoke("probe-1", utc_now())
    assert post(collector.base, token, []).status_code == 403


def test_a_device_over_its_rate_gets_429_with_retry_after(db_url):
    # a frozen clock: 125 requests on a slow machine would otherwise straddle two minute windows
    frozen = dt.datetime(2026, 11, 30, 6, 0, 30, tzinfo=dt.timezone.utc)
    with running_collector(db_url, clock=lambda: frozen) as collector:
        token = collector.enrol()
        answers = [post(collector.base, token, []) for _ in range(125)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited and all(1 <= int(a.headers["Retry-After"]) <= 61 for a in limited)
    assert answers[0].status_code == 200
    assert "120 requests a minute" in limited[0].json()["detail"]


def test_metrics_count_items_and_devices(collector):
    token = collector.enrol()
    batch = [to_wire(make_measurement(device_id="probe-1")) for _ in range(3)]
    post(collector.base, token, batch)
    post(collector.base, token, batch[:1] + [dict(batch[0], id="bad")])
    text = requests.get(collector.base + "/metrics", timeout=10).text
    assert 'xaprobe_items_total{status="accepted"} 3' in text
    assert 'xaprobe_items_total{status="duplicate"} 1' in text
    assert 'xaprobe_items_total{status="rejected"} 1' in text
    assert 'xaprobe_devices_seen{window="1h"} 1' in text
    assert 'xaprobe_request_seconds_count{method="POST",route="/api/v1/measurements"} 2' in text


def test_dashboard_and_reports_need_an_admin(collector):
    for path in ("/api/v1/report", "/export/report.csv", "/export/raw.xlsx"):
        assert requests.get(collector.base + path, timeout=10).status_code == 401
    page = requests.get(collector.base + "/", timeout=10)
    assert page.url.startswith(collector.base + "/login") and "Đăng nhập" in page.text
    device_token = collector.enrol()
    assert requests.get(collector.base + "/api/v1/report", timeout=10,
                        headers={"Authorization": f"Bearer {device_token}"}).status_code == 401


def test_two_collector_processes_share_one_postgresql(pg_url, tmp_path):
    store = CollectorStore(open_engine(pg_url))
    token = store.devices.add("probe-1", "P", "18673", None, utc_now())
    ports = [free_port(), free_port()]
    procs = [subprocess.Popen([sys.executable, "-m", "xaprobe.collector", "--db", pg_url, "serve", "--port", str(p)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in ports]
    try:
        for p in ports:
            for _ in range(100):
                try:
                    requests.get(f"http://127.0.0.1:{p}/healthz", timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)
        batches = [[to_wire(make_measurement(device_id="probe-1")) for _ in range(100)] for _ in range(4)]
        jobs = [(f"http://127.0.0.1:{p}", b) for b in batches for p in ports]  # each batch to both
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda job: post(job[0], token, job[1]), jobs))
        statuses = [r["status"] for a in answers for r in a.json()["results"]]
        assert statuses.count("accepted") == 400 and statuses.count("duplicate") == 400
        assert store.stats.count_measurements() == 400
        revoked = store.devices.revoke("probe-1", utc_now())  # staff revoke through one process's database
        assert revoked is None
        assert all(post(f"http://127.0.0.1:{p}", token, []).status_code == 403 for p in ports)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        store.engine.dispose()


def test_collector_settings_file(tmp_path):
    from xaprobe.collector.settings import load_settings
    from xaprobe.errors import ConfigError

    settings = load_settings(REPO / "config" / "collector.toml")
    assert (settings.province, settings.target, settings.refresh_every_s) == ("42", 300, 60.0)
    bad = tmp_path / "collector.toml"
    bad.write_text('province = "999"\nthreshold = 5\n')
    with pytest.raises(ConfigError) as info:
        load_settings(bad)
    assert info.value.problems == ["threshold: unknown key (did you mean 'threshold_mbps'?)",
                                   'province: "999" is not a province code in vietnam-provinces']


def test_a_v3_database_gains_commune_history_sessions_and_sane_targets(db_url):
    """v4 (#11): each device's enrolled commune becomes its history, targets below 1 go back to the default."""
    v1 = load_v1()
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    enrolled = utc_now() - dt.timedelta(days=30)
    with engine.begin() as conn:
        v1.metadata.create_all(conn)
        conn.execute(v1.schema_info.insert().values(id=1, version=1))
    for step in (2, 3):
        with engine.begin() as conn:
            for statement in schema.MIGRATIONS[step]:
                conn.execute(sa.text(statement))
            conn.execute(v1.schema_info.update().values(version=step))
    with engine.begin() as conn:
        for device_id, target in (("zero", 0), ("minus", -5), ("fine", 500)):
            conn.execute(v1.devices.insert().values(id=device_id, name=device_id, commune_code="18673", target=target,
                                                    token_hash=hash_token(f"xap_{device_id}"), created_at=enrolled))
        conn.execute(sa.text("INSERT INTO commune_targets (commune_code, target) VALUES ('18652', -5), ('18653', 0),"
                             " ('18654', 450)"))
        conn.execute(v1.admins.insert().values(name="old", token_hash=hash_token("xap_admin"), created_at=enrolled))
    engine.dispose()
    store = CollectorStore(open_engine(db_url))
    try:
        with store.engine.connect() as conn:
            assert conn.execute(sa.select(schema.schema_info.c.version)).scalar_one() == schema.SCHEMA_VERSION
        assert "enrolment_codes" in sa.inspect(store.engine).get_table_names()  # v5
        code, _ = store.enrolment.issue("zero", enrolled + dt.timedelta(days=1))
        assert store.enrolment.redeem(code, enrolled + dt.timedelta(days=2)) == "zero"
        history = store.devices.history("zero")
        assert [code for _, code in history.spans] == ["18673"]
        assert abs(history.spans[0][0] - enrolled) < dt.timedelta(seconds=1)
        assert history.at(enrolled - dt.timedelta(days=400)) == "18673"  # a clock behind its enrolment
        assert [(d.id, d.target, d.id_conflicts) for d in store.devices.all()] == \
            [("fine", 500, 0), ("minus", None, 0), ("zero", None, 0)]
        assert store.devices.commune_targets() == {"18673": 500, "18654": 450}
        assert store.admins.for_token("xap_admin") == "old"
        assert store.admins.open_session("xap_admin", utc_now()) is not None
    finally:
        store.engine.dispose()
