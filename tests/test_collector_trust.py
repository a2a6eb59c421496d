"""#11, the collector's trust boundaries on SQLite and PostgreSQL: a probe counts only for the commune it
stood in, an id stored for another device is refused, and no item can fail its batch."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import requests
import sqlalchemy as sa
from conftest import make_measurement

from xaprobe.collector import schema
from xaprobe.months import utc_now
from xaprobe.wire import to_wire

CAM_XUYEN, HA_HUY_TAP, BA_DINH = "18673", "18652", "4"


def post(collector, token, items, **body):
    # json.dumps escapes a lone surrogate as \ud800: valid JSON that is not Unicode text
    data = json.dumps({"measurements": items, **body}).encode("ascii")
    return requests.post(collector.base + "/api/v1/measurements", data=data, timeout=30,
                         headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})


def item(device="devb", **kw):
    return to_wire(make_measurement(device_id=device, **kw))


def stored(collector) -> dict[str, tuple[str, str]]:
    with collector.store.engine.connect() as conn:
        m = schema.measurements.c
        return {r.id: (r.device_id, r.commune_code) for r in conn.execute(sa.select(m.id, m.device_id, m.commune_code))}


def statuses(answer):
    assert answer.status_code == 200, answer.text
    return [(r["status"], r["reason"]) for r in answer.json()["results"]]


def test_a_probe_counts_only_for_its_own_commune(collector):
    token = collector.enrol("devb", CAM_XUYEN)
    # the reproduction: devb, enrolled for Cẩm Xuyên, sending 300 samples for Phường Ba Đình ("4")
    forged = [item(commune_code="4") for _ in range(300)]
    answer = statuses(post(collector, token, forged))
    assert {s for s, _ in answer} == {"rejected"}
    assert answer[0][1].startswith(f"commune_code: {BA_DINH} is not the commune of device devb at ")
    own, unsaid = item(commune_code=CAM_XUYEN), item(commune_code="")
    assert statuses(post(collector, token, [own, unsaid])) == [("accepted", None)] * 2
    assert sorted(c for _, c in stored(collector).values()) == [CAM_XUYEN, CAM_XUYEN]


def test_a_moved_probe_keeps_what_it_buffered_for_the_old_commune(collector):
    now = utc_now()
    token = collector.store.devices.add("devb", "devb", CAM_XUYEN, None, now - dt.timedelta(days=3))
    moved = now - dt.timedelta(days=1)
    collector.store.devices.move("devb", HA_HUY_TAP, moved)
    before, after = now - dt.timedelta(days=2), now - dt.timedelta(hours=1)
    batch = [item(commune_code=CAM_XUYEN, started_at=before), item(commune_code="", started_at=before),
             item(commune_code=CAM_XUYEN, started_at=after), item(commune_code=HA_HUY_TAP, started_at=after),
             item(commune_code="", started_at=after), item(commune_code=HA_HUY_TAP, started_at=before)]
    answer = statuses(post(collector, token, batch))
    assert [s for s, _ in answer] == ["accepted", "accepted", "rejected", "accepted", "accepted", "rejected"]
    assert f"({HA_HUY_TAP}); a moved probe is re-pointed with" in answer[2][1]
    rows = stored(collector)
    assert [rows[batch[i]["id"]][1] for i in (0, 1, 3, 4)] == [CAM_XUYEN, CAM_XUYEN, HA_HUY_TAP, HA_HUY_TAP]
    history = collector.store.devices.history("devb")
    assert [code for _, code in history.spans] == [CAM_XUYEN, HA_HUY_TAP] and history.spans[1][0] == moved
    assert collector.store.devices.get("devb").commune_code == HA_HUY_TAP


def test_device_set_commune_records_the_move(db_url):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "xaprobe.collector", "--db", db_url, *args],
                              capture_output=True, text=True, timeout=60)

    assert cli("device", "add", "--commune", CAM_XUYEN, "--name", "devb", "--id", "devb").returncode == 0
    moved = cli("device", "set", "devb", "--commune", HA_HUY_TAP)
    assert moved.returncode == 0, moved.stderr
    assert f"measures for Phường Hà Huy Tập, Hà Tĩnh ({HA_HUY_TAP}) from " in moved.stdout
    assert json.loads(cli("device", "list", "--json").stdout)[0]["commune_code"] == HA_HUY_TAP
    bad = cli("device", "set", "devb", "--commune", "99999")
    assert (bad.returncode, bad.stderr.strip()) == \
        (1, "xaprobe-collector: error: --commune: 99999 is not the code of a commune (xã/phường) since the 2025 "
            "reform; find it with: xaprobe-collector communes --search NAME")


def test_an_id_stored_for_another_device_is_rejected_and_conflicts_are_counted(collector):
    a, b = collector.enrol("deva", CAM_XUYEN), collector.enrol("devb", CAM_XUYEN)
    first = item("deva")
    assert statuses(post(collector, a, [first])) == [("accepted", None)]
    stolen = dict(item("devb"), id=first["id"])
    assert statuses(post(collector, b, [stolen])) == [("rejected", "id: already stored for another device")]
    changed = dict(first, latency_ms=35.0)  # other content, still plausible
    again = item("deva")
    answer = statuses(post(collector, a, [first, changed, again, dict(again, jitter_ms=3.0)]))
    assert answer == [("duplicate", None), ("duplicate", None), ("accepted", None), ("duplicate", None)]
    assert stored(collector)[first["id"]] == ("deva", CAM_XUYEN)
    metrics = requests.get(collector.base + "/metrics", timeout=10).text
    assert 'xaprobe_id_conflicts_total{kind="same_device"} 2' in metrics  # changed, and the repeat in the batch
    assert 'xaprobe_id_conflicts_total{kind="other_device"} 1' in metrics
    fleet = requests.get(collector.base + "/api/v1/fleet", timeout=10,
                         headers={"Authorization": f"Bearer {collector.admin_token}"}).json()
    assert {d["id"]: d["id_conflicts"] for d in fleet} == {"deva": 2, "devb": 1}
    db = collector.store.engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
    shown = subprocess.run([sys.executable, "-m", "xaprobe.collector", "--db", db, "fleet"],
                           capture_output=True, text=True, timeout=60)
    assert "id conflicts 2" in shown.stdout and "id conflicts 1" in shown.stdout, shown.stderr


BAD_STARTS = ["9999-12-31T23:00Z", "0001-01-01T00:00+14:00", "2026-11-05T10:00\ud800Z", "0000-00-00", 5]


def hostile_items(device):
    """One good item, then one per way an item has broken a batch."""
    out = [item(device)]
    out += [dict(item(device), started_at=s) for s in BAD_STARTS]
    out.append(dict(item(device), link={"name": "wwan\ud8000", "operator": "Viettel"}))  # lone surrogate, known field
    out.append(dict(item(device), note="\udfff"))  # lone surrogate, a field this collector does not know
    out.append(dict(item(device), error="\x1b]0;owned\x07\u202egnp.exe"))  # ESC, BEL and RLO are stripped
    out.append(dict(item(device), seq=2**63))  # beyond BIGINT
    out.append(dict(item(device), id="x" * 10_000))
    out.append(dict(item(device), deep=json.loads("[" * 200 + "]" * 200)))  # odd, yet storable
    out.append(dict(item(device), commune_code="1" * 11))
    out.append(item(device))
    return out


def test_one_bad_item_never_fails_its_batch(collector):
    token = collector.enrol("devb", CAM_XUYEN)
    for sent_at in ("9999-12-31T23:00Z", "0001-01-01T00:00+14:00", "2026-11-05T10:00:00\ud800Z", None):
        batch = hostile_items("devb")
        answer = statuses(post(collector, token, batch, **({"sent_at": sent_at} if sent_at else {})))
        assert [s for s, _ in answer] == ["accepted"] + ["rejected"] * 7 \
            + ["accepted", "rejected", "rejected", "accepted", "rejected", "accepted"], answer
        reasons = [r for s, r in answer if s == "rejected"]
        assert reasons[0] == "started_at: '9999-12-31T23:00Z' is outside the years 2000-2099"
        assert reasons[1].startswith("started_at: timestamp '0001-01-01T00:00+14:00' is out of range")
        assert all(r.split(":")[0] in ("started_at", "link.name", "item", "seq", "id", "commune_code")
                   for r in reasons), reasons
        assert "lone surrogate" in reasons[5] and "lone surrogate" in reasons[6]
        rows = collector.store.stats.raw_rows(batch[0]["started_at"][:7], None, "42")
        assert not any(r.clock_suspect for r in rows)  # an unreadable sent_at leaves the clock unknown
    with collector.store.engine.connect() as conn:
        bodies = conn.execute(sa.select(schema.measurements.c.body)).scalars().all()
    assert len(bodies) == 4 * 4
    assert any("owned" in b for b in bodies) and not any("\\u001b" in b or "\u202e" in b for b in bodies)
