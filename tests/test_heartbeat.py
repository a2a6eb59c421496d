"""The heartbeat API on SQLite and PostgreSQL: bodies checked field by field (400 naming the field),
the typed record kept, the settings staff set answered, and what staff see of it stays readable."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest
import requests

from xaprobe.collector.schema import devices
from xaprobe.health import CentreSettings, Heartbeat, LinkHealth
from xaprobe.months import utc_now


def heartbeat(**overrides) -> Heartbeat:
    base = dict(device_id="probe-1", version="0.1.0", sent_at=utc_now(), backlog=3, oldest_pending_age_s=120,
                clock_synced=True, disk_free_bytes=2_000_000_000,
                links=(LinkHealth(name="viettel", samples=12, failed=1, target=300, bytes_used=5_000_000,
                                  budget_mb=3000.0),))
    base.update(overrides)
    return Heartbeat(**base)


def post(collector, token, body):
    return requests.post(collector.base + "/api/v1/heartbeat", data=json.dumps(body), timeout=10,
                         headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})


def staff_views_answer(collector, db_url) -> None:
    """The pages, the fleet API and the fleet command that read stored heartbeats all still work."""
    admin = {"Authorization": f"Bearer {collector.admin_token}"}
    for path in ("/", "/commune/18673", "/api/v1/fleet"):
        answer = requests.get(collector.base + path, headers=admin, timeout=30, allow_redirects=False)
        assert answer.status_code == 200, (path, answer.text[-500:])
    done = subprocess.run([sys.executable, "-m", "xaprobe.collector", "--db", db_url, "fleet", "--json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [h["id"] for h in json.loads(done.stdout)] == ["probe-1"]


BAD = [
    ({"links": 5}, "device_id: required"),
    (None, "Heartbeat: must be an object, got NoneType"),
    ([], "Heartbeat: must be an object, got list"),
    (heartbeat().to_wire() | {"links": 5}, "links: must be a list, got int"),
    (heartbeat().to_wire() | {"links": [{"name": "viettel", "target": 0}]},
     "links[0].target: must be between 1 and 10000, got 0"),
    (heartbeat().to_wire() | {"sent_at": "0001-01-01T00:00+14:00"}, "sent_at: timestamp"),
]


def test_bad_heartbeats_are_refused_naming_the_field_and_keep_nothing(collector, db_url):
    token = collector.enrol()
    good = heartbeat()
    assert post(collector, token, good.to_wire()).status_code == 200
    for body, detail in BAD:
        answer = post(collector, token, body)
        assert answer.status_code == 400 and answer.json()["detail"].startswith(detail), (body, answer.text)
    assert collector.store.devices.get("probe-1").heartbeat == good  # the last good one stays
    staff_views_answer(collector, db_url)


def test_a_heartbeat_kept_by_an_older_collector_reads_as_none(collector, db_url):
    collector.enrol()
    legacy = {"backlog": "many", "links": [{"name": 5}], "received_at": "yesterday"}
    with collector.store.engine.begin() as conn:
        conn.execute(devices.update().values(heartbeat=json.dumps(legacy), last_heartbeat_at=utc_now(),
                                             settings="not json"))
    device = collector.store.devices.get("probe-1")
    assert device.heartbeat is None and device.settings == CentreSettings()
    staff_views_answer(collector, db_url)


def test_a_good_heartbeat_reaches_the_fleet_view(collector, db_url):
    token = collector.enrol()
    sent = heartbeat(extra={"uptime_s": 3600})  # a newer probe's extra field is kept, not refused
    assert post(collector, token, sent.to_wire()).status_code == 200
    kept = collector.store.devices.get("probe-1")
    assert kept.heartbeat == sent and kept.heartbeat.extra == {"uptime_s": 3600}
    [row] = requests.get(collector.base + "/api/v1/fleet", timeout=10,
                         headers={"Authorization": f"Bearer {collector.admin_token}"}).json()
    assert row["links"] == [{"name": "viettel", "samples": 12, "failed": 1, "target": 300, "bytes_used": 5_000_000,
                             "budget_mb": 3000.0, "budget_spent": False}]
    assert (row["backlog"], row["oldest_pending_age_s"], row["clock_synced"], row["version"], row["status"]) == \
        (3, 120, True, "0.1.0", "ok")
    assert dt.datetime.fromisoformat(row["last_heartbeat_at"]) == kept.last_heartbeat_at
    done = subprocess.run([sys.executable, "-m", "xaprobe.collector", "--db", db_url, "fleet", "--json"],
                          capture_output=True, text=True, timeout=60)
    assert json.loads(done.stdout) == [row]  # the command prints what the API answers


@pytest.mark.parametrize("target", [None, 450])
def test_the_answer_carries_what_staff_set_and_when(collector, target):
    token = collector.enrol(target=target)
    first = post(collector, token, heartbeat().to_wire()).json()["settings"]
    assert first == {"pause": False, "target": target, "set_at": None, "site_id": None, "site_name": None}
    before = utc_now()
    collector.store.devices.steer("probe-1", pause=True, target=None, now=before)
    settings = CentreSettings.from_wire(post(collector, token, heartbeat().to_wire()).json()["settings"])
    assert settings == CentreSettings(pause=True, target=target, set_at=before)
    collector.store.devices.steer("probe-1", pause=None, target=600, now=before + dt.timedelta(minutes=1))
    assert collector.store.devices.get("probe-1").settings == \
        CentreSettings(pause=True, target=600, set_at=before + dt.timedelta(minutes=1))


def test_text_utf8_cannot_hold_is_refused_and_vietnamese_is_kept(collector):
    token = collector.enrol()
    bad = post(collector, token, heartbeat(version="0.1.0-\ud800").to_wire())  # a lone surrogate
    assert bad.status_code == 400 and bad.json()["detail"].startswith("version: contains a lone surrogate")
    sent = heartbeat(last_error="Lỗi: modem không có sóng")
    assert post(collector, token, sent.to_wire()).status_code == 200
    assert collector.store.devices.get("probe-1").heartbeat == sent
