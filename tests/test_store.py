"""The probe store: durable rows, sequence numbers across restarts, outbox states, corrupt files."""

from __future__ import annotations

import datetime as dt
import sqlite3

from conftest import REPO, make_measurement

from xaprobe.agent.store import PENDING, REJECTED, UPLOADED, Store


def test_sequence_survives_reopen(tmp_path):
    path = tmp_path / "probe.db"
    s = Store.open(path)
    first = [s.add(make_measurement()).seq for _ in range(3)]
    s.close()
    s = Store.open(path)
    assert s.add(make_measurement()).seq == 4
    assert first == [1, 2, 3]
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s.close()


def test_sequence_never_reused_after_pruning(store):
    old = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    ids = [store.add(make_measurement(started_at=old)).id for _ in range(2)]
    store.mark({i: (UPLOADED, None) for i in ids})
    assert store.prune_uploaded(dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)) == 2
    assert store.add(make_measurement()).seq == 3


def test_outbox_states(store):
    a, b, c = (store.add(make_measurement()) for _ in range(3))
    assert [i for i, _ in store.pending(10)] == [a.id, b.id, c.id]
    store.mark({a.id: (UPLOADED, None), b.id: (REJECTED, "commune_code: bad")})
    assert [i for i, _ in store.pending(10)] == [c.id]
    assert store.upload_state(b.id) == (REJECTED, "commune_code: bad")
    store.mark({b.id: (UPLOADED, None)})  # a rejected row never goes back
    assert store.upload_state(b.id) == (REJECTED, "commune_code: bad")
    backlog = store.backlog()
    assert (backlog.pending, backlog.uploaded, backlog.rejected) == (1, 1, 1)
    assert store.upload_state(c.id)[0] == PENDING


def test_pruning_keeps_pending_and_rejected(store):
    old = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    kept_pending = store.add(make_measurement(started_at=old))
    rejected = store.add(make_measurement(started_at=old))
    store.mark({rejected.id: (REJECTED, "no")})
    store.prune_uploaded(dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc))
    assert store.get(kept_pending.id) is not None and store.get(rejected.id) is not None


def test_measurement_round_trips(store):
    m = make_measurement()
    stored = store.add(m)
    assert store.get(m.id) == stored and stored.seq == 1


def test_corrupt_file_is_moved_aside_and_reported(tmp_path):
    path = tmp_path / "probe.db"
    path.write_bytes(b"this is not a database, it is garbage left by a power cut" * 100)
    s = Store.open(path)
    kept = list(tmp_path.glob("probe.db.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes().startswith(b"this is not a database")
    assert s.add(make_measurement()).seq == 1
    [event] = s.events()
    assert event.kind == "store_corrupt" and str(kept[0]) in event.detail
    assert s.integrity() == "ok"


def test_link_history_counts_this_month_only(store):
    now = dt.datetime(2026, 11, 15, tzinfo=dt.timezone.utc)
    store.add(make_measurement(started_at=now))
    store.add(make_measurement(started_at=now, status="failed", download_mbps=None, bytes_down=1000, bytes_up=0))
    store.add(make_measurement(started_at=dt.datetime(2026, 10, 15, tzinfo=dt.timezone.utc)))
    h = store.link_history("viettel", "2026-11", "Asia/Ho_Chi_Minh")
    assert (h.samples, h.failed) == (1, 1)
    assert h.bytes_used == 65_000_000 + 1000
    assert h.last_started == now


def test_schema_version_is_recorded(store):
    assert store.schema_version() == 2
    assert sqlite3.connect(store.path).execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("2",)


def test_a_store_of_the_previous_schema_is_upgraded_without_losing_a_row(tmp_path):
    import json

    from xaprobe.wire import to_wire

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript((REPO / "tests" / "fixtures" / "probe-schema-v1.sql").read_text())
    old = [make_measurement(seq=i + 1) for i in range(50)]
    for m in old:
        conn.execute("INSERT INTO measurements (id, seq, started_at, link, engine, status, bytes_total, body,"
                     " upload_state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (m.id, m.seq, to_wire(m)["started_at"], m.link.name, m.engine, m.status, 1, json.dumps(to_wire(m)),
                      "uploaded" if m.seq <= 10 else "pending", "2026-11-01T00:00:00Z"))
    conn.execute("INSERT INTO meta VALUES ('next_seq', '51')")
    conn.commit()
    conn.close()
    s = Store.open(path)
    assert s.schema_version() == 2
    assert [m.id for m in s.measurements()] == [m.id for m in old]
    assert s.backlog().pending == 40 and s.backlog().uploaded == 10
    assert s.add(make_measurement()).seq == 51
    s.count_attempt([old[20].id])
    assert s.db.execute("SELECT upload_attempts FROM measurements WHERE id = ?", (old[20].id,)).fetchone()[0] == 1
    s.close()
