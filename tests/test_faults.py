"""Store-and-forward under faults: kill -9 in every phase of a cycle, a week offline, a lossy link, a full disk."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from conftest import fill_disk, make_measurement
from faultproxy import FaultyProxy

from xaprobe.agent.config import AgentConfig, LinkConfig, UploadConfig
from xaprobe.agent.daemon import Probe
from xaprobe.agent.engines import http as http_engine
from xaprobe.agent.store import Store, StoreFull
from xaprobe.secret import Secret
from xaprobe.uploader.upload import Destination, upload_batch

HERE = Path(__file__).parent
KILLS = int(os.environ.get("XAPROBE_KILLS", "200"))


# Where in its cycle a probe is killed: anywhere in its first 1.2 s (start-up, opening the store, measuring);
# while it measures (after its store is open); while it uploads (after it stored); the moment the collector has
# committed its batch and the proxy holds the answer (the rows are in, the probe has not marked them: the next
# upload sends them again and must be answered "duplicate"); while it measures again after an upload went through.
PHASES = ("anywhere", "measuring", "uploading", "committed", "measuring again")


def _first(items: queue.Queue, wanted, missing, timeout_s: float = 30):  # noqa: ANN001, ANN201
    """The first item from the queue that `wanted` accepts, taken within timeout_s; else fail saying what
    `missing()` says then."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            item = items.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"{missing()} in {timeout_s:g} s") from None
        if wanted(item):
            return item


class _Lines:
    """A child's stdout lines as they come (read by a thread): wait for one that starts so, or read to the end."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.seen: list[str] = []  # every line read so far
        self._lines: queue.Queue[str | None] = queue.Queue()  # the same lines, then None at the end
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()

    def _pump(self, stream) -> None:  # noqa: ANN001
        for line in stream:
            self.seen.append(line.rstrip("\n"))
            self._lines.put(self.seen[-1])
        self._lines.put(None)

    def wait_for(self, prefix: str) -> str:
        line = _first(self._lines, lambda x: x is None or x.startswith(prefix),
                      lambda: f"the probe printed no {prefix!r} line (it printed {self.seen})")
        if line is None:
            raise AssertionError(f"the probe ended before printing a {prefix!r} line: {self.seen}")
        return line

    def to_the_end(self) -> list[str]:
        _first(self._lines, lambda x: x is None, lambda: f"the probe's output did not end (it printed {self.seen})")
        return self.seen


def _wait_for_commit(proxy: FaultyProxy, measurement_id: str) -> None:
    """Return once the proxy holds the collector's answer to a batch that carried this measurement (skipping
    answers to the probes killed before this one)."""
    _first(proxy.holds, lambda answer: measurement_id.encode() in answer,
           lambda: f"no batch with {measurement_id} reached the collector")


def run_kill9_cycles(collector, tmp_path: Path, kills: int, seed: int) -> dict:
    """Kill the probe `kills` times, each at a random point of a phase of its cycle chosen at random (PHASES);
    return what was lost and duplicated, and how many stored measurements the probes had announced."""
    token = collector.enrol()
    store_path = tmp_path / "probe.db"
    # the proxy holds each answer 0.3 s after the collector committed: many kills land in that window
    proxy = FaultyProxy(collector.base, delay_s=0.3, seed=seed)
    rng = random.Random(seed)
    duplicates, announced = 0, set()
    try:
        for _ in range(kills):
            proc = subprocess.Popen([sys.executable, str(HERE / "probe_cycles.py"), str(store_path), proxy.url, token,
                                     collector.base + "/speedtest/"], stdout=subprocess.PIPE, text=True)
            lines = _Lines(proc)
            try:
                phase = rng.choice(PHASES)
                if phase == "anywhere":
                    time.sleep(rng.uniform(0.05, 1.2))
                elif phase == "measuring":
                    lines.wait_for("integrity")
                    time.sleep(rng.uniform(0, 0.4))
                elif phase == "uploading":
                    lines.wait_for("stored")
                    time.sleep(rng.uniform(0, 0.5))
                elif phase == "committed":
                    _wait_for_commit(proxy, lines.wait_for("stored").split()[1])
                else:
                    lines.wait_for("uploaded")
                    time.sleep(rng.uniform(0, 0.3))
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
            for line in lines.to_the_end():
                if line.startswith("stored"):
                    announced.add(line.split()[1])
                elif line.startswith("uploaded"):
                    duplicates += int(line.split("duplicate=")[1].split()[0])
            if store_path.exists():
                conn = sqlite3.connect(store_path)
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                conn.close()
        store = Store.open(store_path)
        with requests.Session() as s:
            for _ in range(20):
                if not store.pending(1):
                    break
                duplicates += upload_batch(store, s, Destination(collector.base, Secret(token)), 500).duplicate
        probe_ids = [m.id for m in store.measurements()]
        pending = store.backlog().pending
        store.close()
    finally:
        proxy.close()
    central = collector.store.stats.measurement_ids("probe-1")
    return {"stored": len(probe_ids), "announced": len(announced), "pending": pending,
            "lost": len(set(probe_ids) - set(central)), "announced_missing": len(announced - set(probe_ids)),
            "duplicated": len(central) - len(set(central)), "extra": len(set(central) - set(probe_ids)),
            "duplicate_answers": duplicates}


@pytest.mark.slow
def test_kill9_at_random_points_loses_nothing_and_counts_nothing_twice(sqlite_collector, tmp_path):
    result = run_kill9_cycles(sqlite_collector, tmp_path, KILLS, seed=5)
    # each phase but "anywhere" waited for its probe to get that far (the run fails if one does not in 30 s):
    # every measurement a probe announced as stored ("stored <id>", printed once committed) is in its store
    assert result["announced"] > 0 and result["announced_missing"] == 0, result
    assert (result["lost"], result["duplicated"], result["extra"], result["pending"]) == (0, 0, 0, 0), result
    # a fifth of the kills fell after the collector committed and before the probe marked its rows: those rows
    # were sent again and the collector answered "duplicate"
    assert result["duplicate_answers"] > 0, result


def test_collector_down_for_a_week_then_everything_arrives_once(sqlite_collector, tmp_path):
    token = sqlite_collector.enrol()
    now = [dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc)]
    config = AgentConfig(device_id="probe-1", token=Secret(token), commune_code="18673",
                         collector_url="http://127.0.0.1:9/", store=tmp_path / "probe.db",
                         upload=UploadConfig(backoff_base_s=30, backoff_cap_s=600, timeout_s=2))
    probe = Probe(config, Store.open(config.store), requests.Session(), clock=lambda: now[0], rng=random.Random(3))
    week_end = now[0] + dt.timedelta(days=7)
    next_sample = now[0]
    attempts = 0
    while now[0] < week_end:  # 10 samples a day; the uploader tries whenever its backoff allows
        if now[0] >= next_sample:
            probe.store.add(make_measurement(device_id="probe-1", started_at=now[0]))
            next_sample += dt.timedelta(hours=2.4)
        before = probe.health.upload_attempt
        probe.upload_if_due()
        attempts += probe.health.upload_attempt != before
        now[0] += dt.timedelta(seconds=30)
    assert probe.store.backlog().pending == 70 and sqlite_collector.store.stats.count_measurements() == 0
    assert probe.health.next_upload_at - now[0] <= dt.timedelta(seconds=600)  # the backoff is capped
    back = now[0]
    # the collector is back
    probe.destination = dataclasses.replace(probe.destination, collector_url=sqlite_collector.base)
    while probe.store.backlog().pending and now[0] < back + dt.timedelta(hours=1):
        probe.upload_if_due()
        now[0] += dt.timedelta(seconds=30)
    assert probe.store.backlog().pending == 0
    assert now[0] - back <= dt.timedelta(seconds=600 + 30)  # within one capped backoff period
    central = sqlite_collector.store.stats.measurement_ids("probe-1")
    assert sorted(central) == sorted(m.id for m in probe.store.measurements())
    assert attempts > 50  # it kept trying all week, never gave up


def test_lossy_proxy_everything_arrives_once(sqlite_collector, tmp_path):
    token = sqlite_collector.enrol()
    store = Store.open(tmp_path / "probe.db")
    ids = [store.add(make_measurement(device_id="probe-1")).id for _ in range(600)]
    proxy = FaultyProxy(sqlite_collector.base, drop=0.15, cut=0.15, seed=9)
    errors = 0
    try:
        with requests.Session() as s:
            for _ in range(200):
                if not store.pending(1):
                    break
                destination = Destination(proxy.url, Secret(token), timeout_s=2)
                errors += upload_batch(store, s, destination, 50).error is not None
    finally:
        proxy.close()
    assert store.backlog().pending == 0
    assert proxy.counts["dropped"] > 0 and proxy.counts["cut"] > 0 and errors > 0
    central = sqlite_collector.store.stats.measurement_ids("probe-1")
    assert sorted(central) == sorted(ids)  # every one, none twice (the id is unique at the collector)


def test_full_disk_is_reported_and_recovered(small_disk, sqlite_collector):
    config = AgentConfig(device_id="probe-1", commune_code="18673", store=small_disk / "probe.db",
                         links=(LinkConfig(name="office"),),
                         engines={"http": http_engine.Settings(server=sqlite_collector.base + "/speedtest/",
                                                               duration_s=0.2, streams=1)})
    store = Store.open(config.store)
    kept = [store.add(make_measurement(link=dataclasses.replace(make_measurement().link, name="office"))).id
            for _ in range(5)]
    filler = fill_disk(small_disk)
    with pytest.raises(StoreFull):
        for _ in range(2000):
            store.add(make_measurement(error="x" * 400))
    now = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    probe = Probe(config, store, requests.Session(), clock=lambda: now)
    probe.test_if_due()
    assert probe.health.disk_full and "is full" in probe.health.last_error
    assert probe.heartbeat_record().disk_full is True
    filler.unlink()
    now = probe.health.next_test_check_at  # the daemon backs off while the disk is full, then looks again
    probe.test_if_due()  # space is back: the next test is stored
    assert probe.health.disk_full is False
    ids = [m.id for m in store.measurements()]
    assert ids[:5] == kept and len(ids) >= 6
    assert store.integrity() == "ok"


def test_corrupt_store_is_reported_in_the_next_heartbeat(sqlite_collector, tmp_path):
    token = sqlite_collector.enrol()
    (tmp_path / "probe.db").write_bytes(os.urandom(8192))
    config = AgentConfig(device_id="probe-1", token=Secret(token), commune_code="18673",
                         collector_url=sqlite_collector.base + "/", store=tmp_path / "probe.db")
    probe = Probe(config, Store.open(config.store), requests.Session())
    probe.heartbeat()
    beat = sqlite_collector.store.devices.get("probe-1").heartbeat
    assert beat is not None and [e.kind for e in beat.events] == ["store_corrupt"]
    assert probe.store.events(unreported_only=True) == []  # reported once
    assert len(list(tmp_path.glob("probe.db.corrupt-*"))) == 1
