"""The probe's store under real faults: a lock is not corruption, a full disk starts no test, and a store
that is corrupted or deleted under the running daemon ends it with exit code 1 for systemd to restart."""

from __future__ import annotations

import datetime as dt
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import requests
from conftest import fill_disk, make_measurement
from hostile import HostileServer, answer

from xaprobe.agent.config import load_config
from xaprobe.agent.daemon import Probe
from xaprobe.agent.store import Store, StoreBroken, StoreCorrupt, StoreError, StoreFull, classify


def test_a_locked_store_is_an_error_not_corruption(tmp_path):
    path = tmp_path / "probe.db"
    store = Store.open(path)
    kept = store.add(make_measurement()).id
    store.close()
    holder = sqlite3.connect(path)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO meta VALUES ('held', '1')")
    try:
        with pytest.raises(StoreError, match="locked by another process") as e:
            Store.open(path, busy_timeout_s=0.2)
        assert not isinstance(e.value, StoreBroken)
    finally:
        holder.rollback()
        holder.close()
    assert list(tmp_path.glob("probe.db.corrupt-*")) == []  # the healthy store and its outbox stayed put
    assert [m.id for m in Store.open(path).measurements()] == [kept]


@pytest.mark.parametrize("code, kind, says", [
    (10, StoreBroken, "disk I/O error"),  # SQLITE_IOERR: a dying SD card is not a full disk
    (10 | (4 << 8), StoreBroken, "disk I/O error"),  # an extended code (SQLITE_IOERR_WRITE... family)
    (13, StoreFull, "is full"),
    (11, StoreCorrupt, "is corrupt"),
    (26, StoreCorrupt, "is corrupt"),
    (5, StoreError, "locked"),
])
def test_errors_are_classified_by_sqlite_code_not_text(tmp_path, code, kind, says):
    error = sqlite3.OperationalError("disk is full")  # the text lies on purpose: only the code counts
    error.sqlite_errorcode = code
    problem = classify(error, tmp_path / "probe.db", "doing it")
    assert type(problem) is kind and says in str(problem)


def test_real_sqlite_errors_carry_their_code(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"not a database " * 500)
    with pytest.raises(sqlite3.DatabaseError) as e:
        sqlite3.connect(path).execute("SELECT * FROM sqlite_master").fetchall()
    assert isinstance(classify(e.value, path, "reading"), StoreCorrupt)


def agent_config(tmp_path, store: str, server: str):
    path = tmp_path / "agent.toml"
    path.write_text(f'device_id = "probe-1"\ncommune_code = "18673"\nstore = "{store}"\n'
                    f'[engines.http]\nserver = "{server}/"\nduration_s = 1\n'
                    '[[links]]\nname = "office"\ninterface = "lo"\naccess = "ethernet"\n')
    return load_config(path)


def test_a_full_disk_starts_no_test_and_backs_off(small_disk, tmp_path):
    with HostileServer({"*": answer(404)}) as server:
        config = agent_config(tmp_path, str(small_disk / "probe.db"), server.url)
        store = Store.open(config.store)
        filler = fill_disk(small_disk)
        now = [dt.datetime(2026, 11, 20, 5, 0, tzinfo=dt.timezone.utc)]
        probe = Probe(config, store, requests.Session(), clock=lambda: now[0])
        for _ in range(15):  # 90 s of the daemon's 6-second ticks
            probe.test_if_due()
            now[0] += dt.timedelta(seconds=6)
        assert server.seen.requests == []  # no test ran: its data would have been thrown away
        assert probe.health.disk_full and "is full" in probe.health.last_error
        assert probe.health.next_test_check_at > now[0]  # backing off (60 s, then 120 s, ...)
        filler.unlink()
        now[0] = probe.health.next_test_check_at
        probe.test_if_due()  # space is back: the slot was not spent, the test runs now
        assert server.seen.requests and len(list(store.measurements())) == 1
        assert not probe.health.disk_full


def run_daemon(tmp_path, server):
    agent_config(tmp_path, "probe.db", server.url)  # checks it, and writes agent.toml
    proc = subprocess.Popen([sys.executable, "-m", "xaprobe.agent", "--lang", "en", "--config",
                             str(tmp_path / "agent.toml"), "run"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (tmp_path / "probe.db").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)
    return proc


def test_a_store_deleted_under_the_daemon_ends_it_for_a_restart(tmp_path):
    with HostileServer({"*": answer(404)}) as server:
        proc = run_daemon(tmp_path, server)
        try:
            (tmp_path / "probe.db").unlink()
            assert proc.wait(timeout=30) == 1
        finally:
            proc.kill()
        assert "was deleted or replaced" in proc.stderr.read()


def test_a_store_corrupted_under_the_daemon_ends_it_for_a_restart(tmp_path):
    with HostileServer({"*": answer(404)}) as server:
        proc = run_daemon(tmp_path, server)
        try:
            with open(tmp_path / "probe.db", "r+b") as f:  # the same file, its header overwritten
                f.write(b"garbage " * 16)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        err = proc.stderr.read()
        assert code == 1, err
        assert "corrupt" in err and "exiting so that systemd restarts" in err
