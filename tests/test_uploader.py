"""The uploader against the real collector on loopback: batches, per-item marks, refusals, upload CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import requests
from conftest import make_measurement

from xaprobe.secret import Secret
from xaprobe.uploader.outbox import REJECTED, UPLOADED
from xaprobe.uploader.upload import Destination, encode_batch, upload_batch, upload_pending


def test_everything_pending_arrives_once(sqlite_collector, store):
    token = sqlite_collector.enrol()
    ids = [store.add(make_measurement()).id for _ in range(1200)]
    with requests.Session() as s:
        outcome = upload_pending(store, s, Destination(sqlite_collector.base, Secret(token)), batch_size=500)
    assert (outcome.accepted, outcome.duplicate, outcome.rejected, outcome.error) == (1200, 0, 0, None)
    assert store.backlog().pending == 0
    assert sqlite_collector.store.stats.count_measurements() == 1200
    assert all(store.upload_state(i) == (UPLOADED, None) for i in ids[:5])


def test_a_lost_answer_is_harmless(sqlite_collector, store):
    token = sqlite_collector.enrol()
    m = store.add(make_measurement())
    body, _ = encode_batch(store.pending(10))
    # the collector commits, the answer is lost: the row is still pending on the probe
    requests.post(sqlite_collector.base + "/api/v1/measurements", data=body, timeout=10,
                  headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                           "Content-Encoding": "gzip"})
    with requests.Session() as s:
        outcome = upload_batch(store, s, Destination(sqlite_collector.base, Secret(token)), 500)
    assert (outcome.accepted, outcome.duplicate) == (0, 1)
    assert store.upload_state(m.id) == (UPLOADED, None)
    assert sqlite_collector.store.stats.count_measurements() == 1


def test_rejected_rows_are_kept_and_never_resent(sqlite_collector, store):
    token = sqlite_collector.enrol()
    bad = store.add(make_measurement(commune_code="99999"))
    with requests.Session() as s:
        outcome = upload_pending(store, s, Destination(sqlite_collector.base, Secret(token)), 500)
        assert outcome.rejected == 1
        assert store.upload_state(bad.id) == (REJECTED, "commune_code: 99999 is not a commune in vietnam-provinces")
        again = upload_pending(store, s, Destination(sqlite_collector.base, Secret(token)), 500)
    assert (again.accepted, again.duplicate, again.rejected) == (0, 0, 0)
    assert store.get(bad.id) is not None


def test_refused_token_is_reported(sqlite_collector, store):
    store.add(make_measurement())
    with requests.Session() as s:
        outcome = upload_batch(store, s, Destination(sqlite_collector.base, Secret("xap_nope")), 500)
    assert outcome.token_refused and "401" in outcome.error
    assert store.backlog().pending == 1


def test_collector_down_leaves_rows_pending(store):
    store.add(make_measurement())
    with requests.Session() as s:
        outcome = upload_batch(store, s, Destination("http://127.0.0.1:9", Secret("t"), timeout_s=2), 500)
    assert outcome.error.startswith("cannot reach the collector at http://127.0.0.1:9")
    assert store.backlog().pending == 1


def test_batches_stay_under_the_size_limit():
    rows = [(str(i), json.dumps({"pad": os.urandom(1000).hex(), "i": i})) for i in range(500)]
    body, used = encode_batch(rows, max_bytes=8 * 1024)
    assert len(body) <= 8 * 1024 and 1 <= used < 500


def test_upload_cli_exit_codes(sqlite_collector, tmp_path):
    token = sqlite_collector.enrol()
    config = tmp_path / "agent.toml"
    config.write_text(f'device_id = "probe-1"\ntoken = "{token}"\ncommune_code = "18673"\n'
                      f'collector_url = "{sqlite_collector.base}/"\nstore = "probe.db"\n')
    from xaprobe.agent.store import Store

    s = Store.open(tmp_path / "probe.db")
    for _ in range(3):
        s.add(make_measurement())
    s.close()
    done = subprocess.run([sys.executable, "-m", "xaprobe.agent", "--lang", "en", "--config", str(config), "upload"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "accepted 3, duplicate 0, rejected 0; 0 still pending"
    status = json.loads(subprocess.run([sys.executable, "-m", "xaprobe.agent", "--config", str(config), "status",
                                        "--json"], capture_output=True, text=True, timeout=60).stdout)
    assert status["last_upload_at"] and status["uploaded"] == 3 and status["last_upload_error"] is None
    config.write_text(config.read_text().replace(sqlite_collector.base, "http://127.0.0.1:9"))
    s = Store.open(tmp_path / "probe.db")
    s.add(make_measurement())
    s.close()
    failed = subprocess.run([sys.executable, "-m", "xaprobe.agent", "--lang", "en", "--config", str(config), "upload"],
                            capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1 and "1 still pending" in failed.stdout
