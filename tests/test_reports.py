"""Report counts equal what was ingested, per commune and operator, with late and failed samples."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import requests
from conftest import make_measurement

from xaprobe.collector.reports import percentile
from xaprobe.wire import Link, to_wire

UTC = dt.timezone.utc


def send(collector, token, ms):
    answer = requests.post(collector.base + "/api/v1/measurements", json={"measurements": [to_wire(m) for m in ms]},
                           headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 200 and all(r["status"] == "accepted" for r in answer.json()["results"])


def test_report_counts_match_ingested(collector):
    camxuyen = collector.enrol("p-camxuyen", "18673")
    other = collector.enrol("p-other", "18652")  # another commune of Hà Tĩnh
    nov = dt.datetime(2026, 11, 10, 3, 0, tzinfo=UTC)
    viettel = Link(name="viettel", operator="Viettel", access="cellular")
    vnpt = Link(name="vnpt", operator="VNPT", access="cellular")
    downloads = [10.0, 20.0, 30.0, 40.0]
    batch = [make_measurement(device_id="p-camxuyen", link=viettel, download_mbps=d, started_at=nov) for d in downloads]
    batch += [make_measurement(device_id="p-camxuyen", link=vnpt, download_mbps=5.0, started_at=nov)]
    batch += [make_measurement(device_id="p-camxuyen", link=vnpt, status="failed", download_mbps=None,
                               upload_mbps=None, latency_ms=None, error="no service", started_at=nov)]
    # 20:00 UTC on 30 Nov is 03:00 on 1 Dec in Vietnam: it counts for December
    batch += [make_measurement(device_id="p-camxuyen", link=viettel, started_at=dt.datetime(2026, 11, 30, 20, 0,
                                                                                            tzinfo=UTC))]
    send(collector, camxuyen, batch)
    # a late arrival for November, sent in December
    send(collector, camxuyen, [make_measurement(device_id="p-camxuyen", link=viettel, download_mbps=50.0,
                                                started_at=dt.datetime(2026, 11, 29, tzinfo=UTC))])
    send(collector, other, [make_measurement(device_id="p-other", commune_code="18652", link=viettel, started_at=nov)])

    answer = requests.get(collector.base + "/api/v1/report", params={"month": "2026-11", "province": "42"},
                          headers={"Authorization": f"Bearer {collector.admin_token}"}, timeout=30)
    assert answer.status_code == 200
    report = answer.json()
    assert report["month"] == "2026-11" and report["province"] == "42"
    by_code = {c["code"]: c for c in report["communes"]}
    assert len(by_code) == 69  # every commune of Hà Tĩnh, those with no sample too
    c = by_code["18673"]
    assert c["name"] == "Xã Cẩm Xuyên"
    assert (c["samples"], c["failed"], c["target"]) == (6, 1, 300)
    assert c["percent"] == 2.0 and c["projected"] == 6 and c["status"] == "behind"  # a past month
    v = c["operators"]["Viettel"]
    assert (v["samples"], v["failed"]) == (5, 0)
    assert v["download_mbps"]["median"] == 30.0
    assert v["download_mbps"]["p10"] == percentile([10, 20, 30, 40, 50], 0.1) == 14.0
    assert v["share_above_threshold"] == 1.0
    assert c["operators"]["VNPT"]["samples"] == 1 and c["operators"]["VNPT"]["failed"] == 1
    assert c["operators"]["VNPT"]["share_above_threshold"] == 0.0
    assert by_code["18652"]["samples"] == 1
    empty = [x for x in report["communes"] if x["code"] not in ("18673", "18652")]
    assert all(x["samples"] == 0 and x["status"] == "no_data" for x in empty)
    december = requests.get(collector.base + "/api/v1/report", params={"month": "2026-12", "province": "42"},
                            headers={"Authorization": f"Bearer {collector.admin_token}"}, timeout=30).json()
    assert {x["code"]: x["samples"] for x in december["communes"]}["18673"] == 1


def test_report_needs_admin(collector):
    assert requests.get(collector.base + "/api/v1/report", timeout=10).status_code == 401


def test_report_cli_formats(collector, db_url, tmp_path):
    token = collector.enrol("p1", "18673")
    send(collector, token, [make_measurement(device_id="p1", started_at=dt.datetime(2026, 11, 10, tzinfo=UTC))])

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "xaprobe.collector", "--db", db_url, "report", "--month",
                               "2026-11", "--province", "42", *args], capture_output=True, timeout=60)

    as_json = json.loads(cli("--format", "json").stdout)
    assert {c["code"]: c["samples"] for c in as_json["communes"]}["18673"] == 1
    assert all(set(c) >= {"code", "name", "samples", "target"} for c in as_json["communes"])
    csv_bytes = cli("--format", "csv").stdout
    assert csv_bytes.startswith(b"\xef\xbb\xbf") and "Xã Cẩm Xuyên".encode() in csv_bytes
    table = cli("--format", "table").stdout.decode()
    assert "Hà Tĩnh" in table and "Xã Cẩm Xuyên" in table
    out = tmp_path / "r.xlsx"
    assert cli("--format", "xlsx", "--output", str(out)).returncode == 0
    from openpyxl import load_workbook

    sheet = load_workbook(out).active
    names = [row[1] for row in sheet.iter_rows(values_only=True)]
    assert "Xã Cẩm Xuyên" in names
    bad = cli("--format", "json", "--month", "2026-13")
    assert bad.returncode == 1 and b"month must look like" in bad.stderr and b"Traceback" not in bad.stderr


def test_device_cli(db_url, tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "xaprobe.collector", "--db", db_url, *args],
                              capture_output=True, text=True, timeout=60)

    config = tmp_path / "probe.toml"
    added = cli("device", "add", "--commune", "18673", "--name", "UBND xã Cẩm Xuyên", "--json",
                "--write-config", str(config), "--collector-url", "http://127.0.0.1:8080")
    assert added.returncode == 0, added.stderr
    info = json.loads(added.stdout)
    assert info["id"] == "ubnd-xa-cam-xuyen" and info["token"].startswith("xap_")
    assert config.stat().st_mode & 0o777 == 0o600
    check = subprocess.run([sys.executable, "-m", "xaprobe.agent", "config", "check", str(config)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    bad = cli("device", "add", "--commune", "99999", "--name", "x")
    assert bad.returncode == 1 and "99999 is not the code of a commune" in bad.stderr
    assert "communes --search" in bad.stderr
    steered = cli("device", "set", "ubnd-xa-cam-xuyen", "--pause", "--target", "400")
    assert steered.returncode == 0 and "pause True" in steered.stdout and "target 400" in steered.stdout
    assert cli("device", "set", "nobody", "--pause").stderr.strip() == \
        "xaprobe-collector: error: no device 'nobody' (see `xaprobe-collector device list`)"
    listed = json.loads(cli("device", "list", "--json").stdout)
    assert [d["id"] for d in listed] == ["ubnd-xa-cam-xuyen"] and listed[0]["commune_name"] == "Xã Cẩm Xuyên"
    assert listed[0]["target"] == 400
    assert "token" not in listed[0]


def test_cached_figures_follow_late_arrivals_and_threshold(collector):
    import dataclasses

    from xaprobe.collector.reports import monthly_report
    from xaprobe.collector.settings import CollectorSettings

    token = collector.enrol("p1", "18673")
    nov = dt.datetime(2026, 11, 5, tzinfo=UTC)
    send(collector, token, [make_measurement(device_id="p1", started_at=nov, download_mbps=d) for d in (5, 15, 25)])
    settings = CollectorSettings(threshold_mbps=10)
    now = dt.datetime(2026, 11, 20, tzinfo=UTC)
    first = next(c for c in monthly_report(collector.store, settings, "2026-11", "42", now).communes
                 if c.code == "18673")
    assert first.samples == 3 and first.operators["Viettel"].share_above_threshold == round(2 / 3, 4)
    send(collector, token, [make_measurement(device_id="p1", started_at=nov, download_mbps=35)])  # late arrival
    again = monthly_report(collector.store, settings, "2026-11", "42", now)
    row = next(c for c in again.communes if c.code == "18673")
    assert row.samples == 4 and row.operators["Viettel"].download_mbps.median == 20.0
    assert again.operators["Viettel"].samples == 4  # the province's figures follow too
    stricter = monthly_report(collector.store, dataclasses.replace(settings, threshold_mbps=30), "2026-11", "42", now)
    assert next(c for c in stricter.communes if c.code == "18673").operators["Viettel"].share_above_threshold == 0.25
    nation = monthly_report(collector.store, settings, "2026-11", "all", now)
    assert len(nation.communes) == 3321 and sum(c.samples for c in nation.communes) == 4


def test_background_refresh_leaves_reports_nothing_to_recompute(collector):
    from xaprobe.collector.reports import refresh_month, refresh_recent
    from xaprobe.collector.settings import CollectorSettings

    token = collector.enrol("p1", "18673")
    now = dt.datetime.now(dt.timezone.utc)
    send(collector, token, [make_measurement(device_id="p1", started_at=now) for _ in range(3)])
    settings = CollectorSettings()
    assert refresh_recent(collector.store, settings, now) == 2  # the commune and its province
    from xaprobe.months import month_of

    month = month_of(now)
    assert collector.store.stats.stale_scopes(month, None) == []
    assert refresh_month(collector.store, settings, month, "42") == 0
