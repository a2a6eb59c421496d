"""#16: sites through enrolment, the heartbeat answer, the wire and ingest (SQLite and PostgreSQL); a commune
month with three sites (office, school, hamlet house) shows counts, shares and the concentration warning;
old-format samples land as "site unknown"; staff's `site` commands and a field session's `site add`."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import subprocess
import sys
import tomllib

import pytest
import requests
import sqlalchemy as sa
from conftest import make_measurement

from xaprobe.collector import schema
from xaprobe.collector.exports import render_report
from xaprobe.collector.reports import monthly_report
from xaprobe.collector.settings import CollectorSettings
from xaprobe.collector.sites import Site, SiteError
from xaprobe.health import CentreSettings, Heartbeat
from xaprobe.months import utc_now
from xaprobe.wire import from_wire, to_wire

CAM_XUYEN, THANH_SEN = "18673", "18073"


def site(site_id, kind, commune=CAM_XUYEN, residential=None, **kw):
    from xaprobe.sites import residential_by_default

    return Site(site_id, commune, kw.pop("name", site_id), kind, kw.pop("hamlet", ""), kw.pop("lat", None),
                kw.pop("lon", None), residential_by_default(kind) if residential is None else residential, utc_now(),
                "staff")


def three_sites(store):
    store.sites.add(site("cx-office", "office", name="UBND xã Cẩm Xuyên", lat=18.2571, lon=106.0012))
    store.sites.add(site("cx-school", "school", name="Trường THCS Cẩm Xuyên", lat=18.2490, lon=105.9951))
    store.sites.add(site("cx-thon3", "hamlet_house", name="Nhà văn hóa thôn 3", hamlet="Thôn 3", lat=18.2702,
                         lon=106.0150))


def post(collector, token, items):
    return requests.post(collector.base + "/api/v1/measurements", json={"measurements": items}, timeout=30,
                         headers={"Authorization": f"Bearer {token}"})


def wire(site_id=None, device="probe-1", **kw):
    item = to_wire(make_measurement(device_id=device, **kw))
    if site_id is None:
        del item["site_id"]  # an older probe's item: no such key at all
    else:
        item["site_id"] = site_id
    return item


def test_sites_travel_through_enrolment_heartbeat_wire_and_ingest(collector):
    store = collector.store
    three_sites(store)
    store.sites.add(site("ts-office", "office", commune=THANH_SEN))
    collector.enrol()
    store.sites.assign("probe-1", "cx-school")
    code, _ = store.enrolment.issue("probe-1", utc_now())
    identity = requests.post(collector.base + "/api/v1/enroll", json={"code": code}, timeout=30).json()
    assert (identity["site_id"], identity["site_name"]) == ("cx-school", "Trường THCS Cẩm Xuyên")
    token = identity["token"]

    heartbeat = Heartbeat(device_id="probe-1", version="0.1.0", sent_at=utc_now())
    answer = requests.post(collector.base + "/api/v1/heartbeat", json=heartbeat.to_wire(), timeout=30,
                           headers={"Authorization": f"Bearer {token}"}).json()["settings"]
    assert CentreSettings.from_wire(answer).site_id == "cx-school"

    results = post(collector, token, [wire("cx-school"), wire("cx-thon3"), wire(None), wire(""),
                                      wire("ts-office"), wire("no-such-site"), wire("Bad Id!"),
                                      wire("cx-school\n")]).json()["results"]
    assert [r["status"] for r in results] == ["accepted"] * 6 + ["rejected"] * 2
    # a site that cannot be taken costs no sample: it counts for its commune, as "site unknown", and says why
    assert [r["reason"] for r in results[:4]] == [
        None, "site_id: device probe-1 measures from site cx-school (`xaprobe-collector device set --site`); "
              "stored as site unknown", None, None]
    assert results[4]["reason"] == ("site_id: site ts-office is in commune 18073, not in 18673 where the sample "
                                    "was made; stored as site unknown")
    assert results[5]["reason"].startswith("site_id: no-such-site is not a site this collector knows")
    assert results[6]["reason"].startswith("site_id: must be lower-case letters")
    assert results[7]["reason"].startswith("site_id: must be lower-case letters")  # no trailing newline either
    with store.engine.connect() as conn:
        stored = sorted((r[0] or "") for r in conn.execute(sa.select(schema.measurements.c.site_id)))
        claimed = {json.loads(r[0]).get("site_id") for r in conn.execute(sa.select(schema.measurements.c.body))}
    assert stored == [""] * 5 + ["cx-school"]  # NULL: site unknown
    assert {"cx-thon3", "ts-office", "no-such-site"} <= claimed  # what the probe said stays in the stored body


def test_the_wire_field_is_optional_and_checked():
    item = to_wire(make_measurement(site_id="cx-school"))
    assert item["site_id"] == "cx-school" and from_wire(item).site_id == "cx-school"
    old = dict(item)
    del old["site_id"]
    assert from_wire(old).site_id == ""
    for bad in ("UPPER", "a/b", "x" * 65, 5):
        with pytest.raises(ValueError, match="site_id"):
            from_wire(dict(item, site_id=bad))
    with pytest.raises(ValueError, match="settings.site_id"):
        CentreSettings.from_wire({"site_id": "../../etc"})


def test_a_month_with_three_sites_shows_counts_shares_and_the_concentration_warning(collector):
    store = collector.store
    three_sites(store)
    token = collector.enrol()
    # 17 from the office, 2 from the school, 1 from the hamlet house, 2 from an older probe: 17/22 = 77 %
    items = [wire("cx-office", seq=i) for i in range(17)] + [wire("cx-school", seq=20 + i) for i in range(2)] + \
        [wire("cx-thon3", seq=30, download_mbps=5.0), wire(None, seq=40), wire(None, seq=41),
         wire("cx-office", seq=50, status="failed", download_mbps=None, upload_mbps=None, latency_ms=None,
              jitter_ms=None, bytes_down=0, bytes_up=0, error="timed out")]
    assert all(r["status"] == "accepted" for r in post(collector, token, items).json()["results"])
    now = utc_now()
    month = now.astimezone(dt.timezone(dt.timedelta(hours=7))).strftime("%Y-%m")
    settings = CollectorSettings()
    c = monthly_report(store, settings, month, "42", now).communes
    cov = next(x for x in c if x.code == CAM_XUYEN).coverage
    rows = {(s.site_id, s.samples, s.failed, s.share) for s in cov.sites}
    assert rows == {("cx-office", 17, 1, 0.7727), ("cx-school", 2, 0, 0.0909), ("cx-thon3", 1, 0, 0.0455),
                    (None, 2, 0, 0.0909)}
    assert (cov.site_count, cov.residential_share, cov.top_site, cov.concentrated) == \
        (3, 0.0455, "UBND xã Cẩm Xuyên", False)
    assert cov.unknown == 2 and cov.by_kind() == {"office": 17, "school": 2, "hamlet_house": 1}
    commune = next(x for x in c if x.code == CAM_XUYEN)
    assert (commune.samples, commune.target) == (22, 300)  # the commune's total against its target

    store.sites.set_min_residential(CAM_XUYEN, 20)
    tighter = dataclasses.replace(settings, concentration_percent=75)
    cov = next(x for x in monthly_report(store, tighter, month, "42", now).communes if x.code == CAM_XUYEN).coverage
    assert cov.concentrated and cov.top_share == 0.7727
    assert (cov.min_residential, cov.residential_short) == (20, True)
    # the school's samples turned out to come from the hamlet: residential share rises past the minimum
    store.sites.update("cx-school", residential=True)
    cov = monthly_report(store, tighter, month, "42", now, only_commune=CAM_XUYEN).communes[0].coverage
    assert cov.residential_share == 0.1364 and cov.residential_short is True
    store.sites.set_min_residential(CAM_XUYEN, 10)
    cov = monthly_report(store, tighter, month, "42", now, only_commune=CAM_XUYEN).communes[0].coverage
    assert cov.residential_short is False
    text = render_report(monthly_report(store, tighter, month, "42", now), "csv", "en", now, settings.timezone)
    [total] = [r for r in csv.reader(io.StringIO(text.decode("utf-8-sig")))
               if r[0] == CAM_XUYEN and r[2] == "Commune total (all operators)"]
    assert total[16:] == ["3", "13.64", "10.0", "77.27"]  # sites, residential %, its minimum, busiest site %
    other = next(x for x in monthly_report(store, settings, month, "42", now).communes if x.code == THANH_SEN)
    assert other.coverage.sites == () and other.coverage.residential_share is None


def test_sites_are_checked_when_staff_make_them(collector):
    store = collector.store
    three_sites(store)
    collector.enrol(device_id="probe-2", commune=THANH_SEN)
    with pytest.raises(SiteError, match="exists already"):
        store.sites.add(site("cx-office", "office"))
    with pytest.raises(SiteError, match="not in Vietnam"):
        store.sites.add(site("swapped", "school", lat=106.0, lon=18.2))
    with pytest.raises(SiteError, match="is in commune 18673, device probe-2 measures for 18073"):
        store.sites.assign("probe-2", "cx-office")
    with pytest.raises(SiteError, match="no site 'nowhere'"):
        store.sites.assign("probe-2", "nowhere")
    moved = store.sites.update("cx-thon3", name="Nhà văn hóa thôn 3 (mới)", lat=18.3, lon=106.1)
    assert store.sites.get("cx-thon3") == moved and moved.commune_code == CAM_XUYEN


def collector_cli(db, *args):
    return subprocess.run([sys.executable, "-m", "xaprobe.collector", "--db", db, *args], capture_output=True,
                          text=True, timeout=60)


def test_site_commands_of_the_collector(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    added = collector_cli(db, "site", "add", "--commune", CAM_XUYEN, "--name", "Nhà văn hóa thôn 3", "--kind",
                          "hamlet_house", "--hamlet", "Thôn 3", "--lat", "18.27", "--lon", "106.015", "--json")
    assert added.returncode == 0, added.stderr
    made = json.loads(added.stdout)
    assert (made["id"], made["residential"]) == ("18673-nha-van-hoa-thon-3", True)
    assert collector_cli(db, "site", "add", "--commune", CAM_XUYEN, "--name", "UBND", "--kind", "office",
                         "--id", "cx-office").returncode == 0
    listed = collector_cli(db, "site", "list", "--commune", CAM_XUYEN)
    assert "Nhà văn hóa thôn 3 (Nhà văn hóa thôn/tổ dân phố · Thôn 3) · khu dân cư / residential" in listed.stdout
    assert "cx-office" in listed.stdout
    enrolled = collector_cli(db, "device", "add", "--commune", CAM_XUYEN, "--name", "Probe", "--site", "cx-office",
                             "--write-config", str(tmp_path / "agent.toml"), "--collector-url", "http://127.0.0.1:1")
    assert enrolled.returncode == 0, enrolled.stderr
    assert tomllib.loads((tmp_path / "agent.toml").read_text())["site_id"] == "cx-office"
    assert collector_cli(db, "device", "set", "probe", "--site", "18673-nha-van-hoa-thon-3").returncode == 0
    assert json.loads(collector_cli(db, "site", "list", "--json").stdout)[0]["commune_code"] == CAM_XUYEN
    done = collector_cli(db, "target", "--commune", CAM_XUYEN, "--min-residential", "30")
    assert done.returncode == 0 and "30%" in done.stdout
    for args, message in [
        (("site", "add", "--commune", CAM_XUYEN, "--name", "X", "--kind", "pagoda"), "argument --kind: invalid choice"),
        (("site", "add", "--commune", CAM_XUYEN, "--name", "X", "--kind", "school", "--lat", "18.2"),
         "lat, lon: give both, or neither"),
        (("site", "add", "--commune", "99999", "--name", "X", "--kind", "school"), "--commune: 99999 is not"),
        (("site", "add", "--commune", CAM_XUYEN, "--name", "X", "--kind", "school", "--id", "Has Space"),
         "is not a site id"),
        (("site", "set", "nowhere", "--name", "X"), "no site 'nowhere'"),
        (("device", "set", "probe", "--site", "nowhere"), "no site 'nowhere'"),
        (("device", "add", "--commune", THANH_SEN, "--name", "P2", "--site", "cx-office"),
         "--site: cx-office is a site of commune 18673, not of 18073"),
    ]:
        done = collector_cli(db, *args)
        assert done.returncode in (1, 2) and "Traceback" not in done.stderr, done.stderr
        assert message in done.stderr, (args, done.stderr)
    assert [(d["id"], d["site_id"]) for d in json.loads(collector_cli(db, "device", "list", "--json").stdout)] == \
        [("probe", "18673-nha-van-hoa-thon-3")]
    assert "site 18673-nha-van-hoa-thon-3" in collector_cli(db, "device", "list").stdout


def probe_cli(config, *args):
    return subprocess.run([sys.executable, "-m", "xaprobe.agent", "--lang", "en", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120)


def test_a_field_session_adds_its_site_and_measures_there(sqlite_collector, speedtest_server, tmp_path):
    store = sqlite_collector.store
    three_sites(store)
    token = sqlite_collector.enrol()
    config = tmp_path / "agent.toml"
    config.write_text(f'device_id = "probe-1"\ntoken = "{token}"\ncommune_code = "{CAM_XUYEN}"\n'
                      f'collector_url = "{sqlite_collector.base}/"\nsite_id = "cx-office"\n'
                      f'store = "probe.db"\n[engines.http]\nserver = "{speedtest_server}"\n'
                      '[[links]]\nname = "lo"\ninterface = "lo"\naccess = "ethernet"\n')
    listed = probe_cli(config, "site", "list")
    assert listed.returncode == 0, listed.stderr
    assert "cx-thon3" in listed.stdout and "Nhà văn hóa thôn 3 (hamlet cultural house, Thôn 3, residential)" \
        in listed.stdout
    added = probe_cli(config, "site", "add", "--name", "Nhà ông Nguyễn Văn A", "--kind", "household", "--hamlet",
                      "Xóm 5", "--lat", "18.26", "--lon", "106.02")
    assert added.returncode == 0, added.stderr
    site_id = "18673-nha-ong-nguyen-van-a"
    assert f"site {site_id}: Nhà ông Nguyễn Văn A; measure here with: xaprobe measure --site {site_id}" in added.stdout
    again = probe_cli(config, "site", "add", "--name", "nhà ông nguyễn văn a", "--kind", "household", "--hamlet",
                      "Xóm 5")
    assert site_id in again.stdout  # the same place twice is one site
    made = store.sites.get(site_id)
    assert (made.residential, made.created_by, made.hamlet) == (True, "device:probe-1", "Xóm 5")

    for args in (("--site", site_id), ()):
        done = probe_cli(config, "measure", "--duration", "1", "--no-quiet-check", *args)
        assert done.returncode == 0, done.stderr
    assert probe_cli(config, "upload").returncode == 0
    with store.engine.connect() as conn:
        stored = sorted(r[0] for r in conn.execute(sa.select(schema.measurements.c.site_id)))
    assert stored == [site_id, "cx-office"]  # --site, and the probe's own site from agent.toml
    bad = probe_cli(config, "measure", "--site", "Not An Id")
    assert bad.returncode == 2 and "is not a site id" in bad.stderr and "Traceback" not in bad.stderr


def test_the_site_staff_set_wins_over_agent_toml(store, monkeypatch):
    monkeypatch.setenv("LANGUAGE", "en")  # gettext reads it at each message
    from xaprobe.agent.config import parse_config, site_of

    config = parse_config({"site_id": "cx-office"}, "agent.toml")
    assert site_of(config, store.centre_settings()) == "cx-office"
    store.save_centre_settings(CentreSettings(site_id="cx-thon3", site_name="Nhà văn hóa thôn 3"))
    assert site_of(config, store.centre_settings()) == "cx-thon3"
    from xaprobe.agent.status import probe_status, render_status

    shown = render_status(probe_status(config, store, utc_now()))
    assert shown.splitlines()[1] == "  site cx-thon3 (Nhà văn hóa thôn 3)"
    from xaprobe.errors import ConfigError

    with pytest.raises(ConfigError, match="site_id: \"Thôn 3\" is not a site id"):
        parse_config({"site_id": "Thôn 3"}, "agent.toml")


def test_samples_stored_before_sites_existed_are_site_unknown(db_url):
    """A v7 database (before sites) migrates to v8: its samples keep no site and count as "site unknown"."""
    from test_collector_ops import load_v1

    from xaprobe.collector.db import open_engine
    from xaprobe.collector.devices import hash_token
    from xaprobe.collector.store import CollectorStore

    v1 = load_v1()
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    now = utc_now()
    with engine.begin() as conn:
        v1.metadata.create_all(conn)
        conn.execute(v1.schema_info.insert().values(id=1, version=1))
    for step in range(2, 8):
        with engine.begin() as conn:
            for statement in schema.MIGRATIONS[step]:
                conn.execute(sa.text(statement))
            conn.execute(v1.schema_info.update().values(version=step))
    month = now.astimezone(dt.timezone(dt.timedelta(hours=7))).strftime("%Y-%m")
    with engine.begin() as conn:
        conn.execute(v1.devices.insert().values(id="old", name="Old", commune_code=CAM_XUYEN,
                                                token_hash=hash_token("xap_old"), created_at=now))
        for i in range(3):
            m = make_measurement(device_id="old", seq=i + 1)
            conn.execute(sa.text(
                "INSERT INTO measurements (id, device_id, seq, commune_code, province_code, month, started_at,"
                " received_at, engine, status, operator, link_name, access, bytes_down, bytes_up, clock_suspect,"
                " body, capped) VALUES (:id, 'old', :seq, :c, '42', :month, :at, :at, 'http', 'ok', 'Viettel',"
                " 'viettel', 'cellular', 1, 1, FALSE, :body, FALSE)"),
                {"id": m.id, "seq": i + 1, "c": CAM_XUYEN, "month": month, "at": m.started_at,
                 "body": json.dumps(to_wire(m))})
        conn.execute(sa.text("INSERT INTO stale_months (month, scope, province_code, version) VALUES"
                             " (:month, :c, '42', 1)"), {"month": month, "c": CAM_XUYEN})
    engine.dispose()
    store = CollectorStore(open_engine(db_url))
    try:
        with store.engine.connect() as conn:
            assert conn.execute(sa.select(schema.schema_info.c.version)).scalar_one() == schema.SCHEMA_VERSION
        three_sites(store)
        commune = monthly_report(store, CollectorSettings(), month, "42", now, only_commune=CAM_XUYEN).communes[0]
        assert commune.samples == 3
        assert [(s.site_id, s.samples) for s in commune.coverage.sites][0] == (None, 3)
        assert commune.coverage.site_count == 0 and not commune.coverage.concentrated
    finally:
        store.engine.dispose()


def test_one_place_added_by_several_field_sessions_at_once_is_one_site(collector):
    import concurrent.futures

    token = collector.enrol()
    body = {"name": "Nhà văn hóa xóm 7", "kind": "hamlet_house", "hamlet": "Xóm 7"}

    def add(_):
        return requests.post(collector.base + "/api/v1/sites", json=body, timeout=30,
                             headers={"Authorization": f"Bearer {token}"})

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(add, range(6)))
    assert [a.status_code for a in answers] == [201] * 6, [a.text for a in answers]
    assert {a.json()["id"] for a in answers} == {"18673-nha-van-hoa-xom-7"}
    assert [s.id for s in collector.store.sites.of_communes([CAM_XUYEN])] == ["18673-nha-van-hoa-xom-7"]
    bad = requests.post(collector.base + "/api/v1/sites", json={"name": "X", "kind": "pagoda"}, timeout=30,
                        headers={"Authorization": f"Bearer {token}"})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("kind: must be one of office")
    far = requests.post(collector.base + "/api/v1/sites", json={"name": "X", "kind": "other", "lat": 48.8,
                                                                "lon": 2.3}, timeout=30,
                        headers={"Authorization": f"Bearer {token}"})
    assert far.status_code == 400 and "not in Vietnam" in far.json()["detail"]


def test_a_moved_probe_forgets_its_site_and_no_site_means_none(collector):
    from xaprobe.agent.config import parse_config, site_of

    store = collector.store
    three_sites(store)
    collector.enrol()
    store.sites.assign("probe-1", "cx-office")
    store.devices.move("probe-1", THANH_SEN, utc_now())
    assert store.devices.get("probe-1").site_id == ""  # its site is in the commune it left
    centre = store.devices.record_heartbeat("probe-1", Heartbeat(device_id="probe-1", version="0.1.0",
                                                                 sent_at=utc_now()), utc_now())
    assert centre.site_id == ""
    # "" from the collector is "staff said none": it wins over the site agent.toml was written with
    assert site_of(parse_config({"site_id": "cx-office"}, "agent.toml"), centre) == ""
    assert site_of(parse_config({"site_id": "cx-office"}, "agent.toml"), CentreSettings()) == "cx-office"
    assert CentreSettings.from_wire({"site_id": ""}).site_id == ""
    for bad in ("cx-office\n", "../x", "A"):
        with pytest.raises(ValueError, match="settings.site_id"):
            CentreSettings.from_wire({"site_id": bad})
    with pytest.raises(SiteError, match="is not a site id"):
        store.sites.add(site("bad\n", "school"))


def test_field_sessions_add_a_bounded_number_of_sites(collector):
    from xaprobe.sites import FIELD_SITES_PER_COMMUNE, FIELD_SITES_PER_DEVICE

    tokens = [collector.enrol(device_id=f"laptop-{i}") for i in range(3)]

    def add(token, name, **more):
        return requests.post(collector.base + "/api/v1/sites", json={"name": name, "kind": "office", **more},
                             timeout=30, headers={"Authorization": f"Bearer {token}"})

    first = add(tokens[0], "Nhà ông A", residential=True)
    assert first.status_code == 201 and first.json()["residential"] is False  # an office: staff alone say otherwise
    answers = [add(tokens[0], f"Nhà số {i}").status_code for i in range(FIELD_SITES_PER_DEVICE)]
    assert answers.count(201) == FIELD_SITES_PER_DEVICE - 1 and answers[-1] == 400
    answers = [add(tokens[1 + i % 2], f"Nhà khác {i}").status_code for i in range(FIELD_SITES_PER_COMMUNE)]
    assert answers.count(201) == FIELD_SITES_PER_COMMUNE - FIELD_SITES_PER_DEVICE
    refused = add(tokens[2], "Nhà cuối")
    assert refused.status_code == 400 and "ask the collector staff" in refused.json()["detail"]
    store = collector.store
    store.sites.add(site("staff-still-can", "school"))  # the devices' cap does not bind staff
    assert len(store.sites.of_communes([CAM_XUYEN])) == FIELD_SITES_PER_COMMUNE + 1


def test_hostile_site_names_are_text_on_the_page_and_the_map(sqlite_collector):
    import base64
    import re

    from xaprobe.collector.coverage import SiteMonth
    from xaprobe.collector.formats import Formats
    from xaprobe.collector.sitemap import site_map

    store = sqlite_collector.store
    store.sites.add(site("evil", "household", name='<script>alert(1)</script>"&', lat=18.25, lon=106.0))
    store.sites.add(site("far", "school", name="Sai tọa độ", lat=21.0, lon=105.8))  # Hà Nội: 300 km away
    token = sqlite_collector.enrol()
    assert post(sqlite_collector, token, [wire("evil", seq=i) for i in range(3)]).status_code == 200
    page = requests.get(sqlite_collector.base + f"/commune/{CAM_XUYEN}", timeout=30,
                        headers={"Authorization": f"Bearer {sqlite_collector.admin_token}"}).text
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&amp;" in page
    [src] = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', page[page.index('id="sites-map"'):])[:1]
    svg = base64.b64decode(src).decode()
    assert "<script" not in svg and "&lt;script&gt;alert(1)&lt;/script&gt;\"&amp; (3)" in svg
    assert "Sai tọa độ" not in svg and "1 điểm đo cách xa các điểm khác hơn 30 km" in svg
    one = [SiteMonth("a", "A", "school", "", False, 18.25, 106.0, 5, 0, 1.0)]
    drawn = base64.b64decode(site_map(one, "t", "r", Formats("en", "Asia/Ho_Chi_Minh")).split(",", 1)[1][:-2])
    bar = re.search(rb'<line x1="14" y1="\d+" x2="([\d.]+)"', drawn)
    assert bar and 60 < float(bar.group(1)) - 14 < 200  # a scale bar about a fifth of the map, not a few pixels


def test_enrolment_writes_the_site_into_agent_toml():
    import tomllib as toml

    from xaprobe.agent.enroll import Identity, agent_toml
    from xaprobe.agent.links import FoundLink
    from xaprobe.secret import Secret

    identity = Identity("p1", Secret("xap_t"), CAM_XUYEN, "Xã Cẩm Xuyên", "http://c/speedtest/", None,
                        site_id="cx-school", site_name='Trường "THCS"\n# x = 1')
    text = agent_toml(identity, "http://c/", [FoundLink("wwan0", "cellular", operator="Viettel")], 0.0, 0.0)
    data = toml.loads(text)
    assert data["site_id"] == "cx-school" and "x" not in data  # the name is a comment that cannot break out
    assert data["device_id"] == "p1" and data["links"][0]["interface"] == "wwan0"


def test_a_migrated_database_has_the_tables_a_new_one_has(db_url, tmp_path):
    """v8 by migration and by create_all: the same columns (name, nullability; type on PostgreSQL) in the tables #16
    touched."""
    from test_collector_ops import load_v1

    from xaprobe.collector.db import open_engine

    fresh_url = f"sqlite:///{tmp_path / 'fresh.db'}" if db_url.startswith("sqlite") else db_url
    v1 = load_v1()
    url = db_url
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        v1.metadata.create_all(conn)
        conn.execute(v1.schema_info.insert().values(id=1, version=1))
    engine.dispose()
    migrated = open_engine(url)

    def columns(engine, table):  # SQLite reflects the migrations' TIMESTAMP WITH TIME ZONE as NUMERIC: names there
        typed = engine.dialect.name == "postgresql"
        return {c["name"]: (type(c["type"]).__name__ if typed else "", c["nullable"])
                for c in sa.inspect(engine).get_columns(table)}

    tables = ("sites", "commune_residential", "devices", "measurements")
    got = {t: columns(migrated, t) for t in tables}
    migrated.dispose()
    if db_url.startswith("sqlite"):
        fresh = open_engine(fresh_url)
    else:  # a second fresh PostgreSQL database: the fixture's is taken
        with sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://")).begin() as conn:
            for t in reversed(schema.metadata.sorted_tables):
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{t.name}" CASCADE'))
        fresh = open_engine(url)
    try:
        assert {t: columns(fresh, t) for t in tables} == got
        assert {i["name"] for i in sa.inspect(fresh).get_indexes("sites")} == {"sites_commune"}
    finally:
        fresh.dispose()
