"""The collector's ingest API on SQLite and PostgreSQL: per-item answers, idempotence, auth, limits."""

from __future__ import annotations

import concurrent.futures
import gzip
import json

import requests
from conftest import make_measurement

from xaprobe.health import Heartbeat
from xaprobe.months import utc_now
from xaprobe.wire import to_wire


def post(collector, token, items, gz=False, extra=None, **kw):
    body = json.dumps({"measurements": items, **(extra or {})}).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if gz:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    headers.update(kw.pop("headers", {}))
    return requests.post(collector.base + "/api/v1/measurements", data=body, headers=headers, timeout=30, **kw)


def items(n, device="probe-1", **kw):
    return [to_wire(make_measurement(device_id=device, seq=i + 1, **kw)) for i in range(n)]


def test_batch_is_stored_once_and_answered_item_by_item(collector):
    token = collector.enrol()
    batch = items(5)
    first = post(collector, token, batch, gz=True)
    assert first.status_code == 200, first.text
    assert [r["status"] for r in first.json()["results"]] == ["accepted"] * 5
    again = post(collector, token, batch, gz=True)
    assert [r["status"] for r in again.json()["results"]] == ["duplicate"] * 5
    assert collector.store.stats.count_measurements() == 5


def test_same_batch_twice_at_once_stores_each_item_once(collector):
    token = collector.enrol()
    batch = items(50)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: post(collector, token, batch, gz=True), range(4)))
    statuses = [r["status"] for a in answers for r in a.json()["results"]]
    assert statuses.count("accepted") == 50 and statuses.count("duplicate") == 150
    assert collector.store.stats.count_measurements() == 50


def test_bad_items_are_rejected_with_reasons_and_good_ones_kept(collector):
    token = collector.enrol()
    good = items(1)[0]
    bad_type = dict(items(1)[0], download_mbps="fast")
    other_device = items(1, device="someone-else")[0]
    unknown_commune = dict(items(1)[0], commune_code="99999")
    answer = post(collector, token, [good, bad_type, other_device, unknown_commune, "nonsense"]).json()
    statuses = [(r["status"], r["reason"]) for r in answer["results"]]
    assert statuses[0] == ("accepted", None)
    assert statuses[1] == ("rejected", "download_mbps: must be a number, got str")
    assert statuses[2][0] == "rejected" and statuses[2][1].startswith("device_id: 'someone-else' is not")
    assert statuses[3] == ("rejected", "commune_code: 99999 is not a commune in vietnam-provinces")
    assert statuses[4] == ("rejected", "item: must be an object, got str")
    assert collector.store.stats.count_measurements() == 1


def test_auth(collector):
    token = collector.enrol()
    assert post(collector, "xap_wrong", items(1)).status_code == 401
    no_header = requests.post(collector.base + "/api/v1/measurements", json={"measurements": []}, timeout=10)
    assert no_header.status_code == 401
    collector.store.devices.revoke("probe-1", utc_now())
    revoked = post(collector, token, items(1))
    assert revoked.status_code == 403 and "revoked" in revoked.json()["detail"]


def test_whole_request_errors(collector):
    token = collector.enrol()
    url = collector.base + "/api/v1/measurements"
    auth = {"Authorization": f"Bearer {token}"}
    assert requests.post(url, data=b"{", headers=auth | {"Content-Type": "application/json"},
                         timeout=10).status_code == 400
    assert requests.post(url, data=b"x", headers=auth | {"Content-Type": "text/plain"}, timeout=10).status_code == 415
    nan = requests.post(url, data=b'{"measurements": [{"download_mbps": NaN}]}',
                        headers=auth | {"Content-Type": "application/json"}, timeout=10)
    assert nan.status_code == 400 and "NaN" in nan.json()["detail"]
    bad_utf8 = requests.post(url, data=b'{"measurements": ["\xff"]}',
                             headers=auth | {"Content-Type": "application/json"}, timeout=10)
    assert bad_utf8.status_code == 400 and "UTF-8" in bad_utf8.json()["detail"]
    too_many = post(collector, token, [{}] * 1001)
    assert too_many.status_code == 413
    huge = requests.post(url, data=b" " * (1 << 20 + 1), headers=auth | {"Content-Type": "application/json"},
                         timeout=30)
    assert huge.status_code == 413
    assert collector.store.stats.count_measurements() == 0


def test_gzip_bomb_is_stopped_while_reading(collector):
    token = collector.enrol()
    bomb = gzip.compress(b'{"measurements": [' + b" " * (64 << 20) + b"]}")
    assert len(bomb) < (1 << 20)
    answer = requests.post(collector.base + "/api/v1/measurements", data=bomb, timeout=30,
                           headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                                    "Content-Encoding": "gzip"})
    assert answer.status_code == 413 and "inflates" in answer.json()["detail"]


def test_clock_far_off_is_flagged(collector):
    token = collector.enrol()
    answer = post(collector, token, items(1), extra={"sent_at": "2020-01-01T00:00:00Z"})
    assert answer.json()["results"][0]["status"] == "accepted"
    rows = collector.store.stats.raw_rows(items(1)[0]["started_at"][:7], None, "42")
    assert rows and rows[0].clock_suspect is True


def test_heartbeat_is_kept_and_answers_settings(collector):
    token = collector.enrol(target=500)
    beat = Heartbeat(device_id="probe-1", version="0.1.0", sent_at=utc_now(), backlog=3)
    answer = requests.post(collector.base + "/api/v1/heartbeat", json=beat.to_wire(),
                           headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 200
    assert answer.json()["settings"] == {"pause": False, "target": 500, "set_at": None, "site_id": None,
                                          "site_name": None}
    device = collector.store.devices.get("probe-1")
    assert device.heartbeat.backlog == 3 and device.last_heartbeat_at is not None


def test_healthz_and_openapi(collector):
    assert requests.get(collector.base + "/healthz", timeout=10).text == "ok"
    spec = requests.get(collector.base + "/openapi.json", timeout=10).json()
    assert "/api/v1/measurements" in spec["paths"] and "/api/v1/heartbeat" in spec["paths"]
