#!/usr/bin/env python3
"""Monthly report timings at national scale on PostgreSQL and at one province's scale on SQLite.

PostgreSQL: every commune of vietnam-provinces (3,321) x 300 samples x 12 months (about 12 million
rows) loaded with COPY, marked for the report cache as ingest would, then the monthly report for
one province and for the whole country, cold (its cached figures computed from the rows) and warm
(cached), and again after a late batch lands in 50 communes. SQLite: one province (Hà Tĩnh, 69
communes) x 300 x 24 months.

    python bench/report_scale.py [--months 12] [--per-commune 300] [--pg postgresql://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import secrets
import sqlite3
import sys
import tempfile
import time
import uuid

from xaprobe import communes
from xaprobe.collector.db import open_engine
from xaprobe.collector.reports import monthly_report
from xaprobe.collector.settings import CollectorSettings
from xaprobe.collector.store import CollectorStore
from xaprobe.months import month_bounds

OPERATORS = ("Viettel", "VNPT", "MobiFone")
COLUMNS = ("id", "device_id", "seq", "commune_code", "province_code", "month", "started_at", "received_at", "engine",
           "status", "operator", "link_name", "access", "download_mbps", "upload_mbps", "latency_ms", "jitter_ms",
           "bytes_down", "bytes_up", "clock_suspect", "body", "loaded_latency_ms", "capped")


def months_back(last: str, n: int) -> list[str]:
    year, month = map(int, last.split("-"))
    out = []
    for _ in range(n):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return out[::-1]


def rows_for(units: list, months: list[str], per_commune: int, rng: random.Random):
    for month in months:
        start, end = month_bounds(month)
        span = (end - start).total_seconds()
        for unit in units:
            for i in range(per_commune):
                at = start + dt.timedelta(seconds=rng.random() * span)
                ok = rng.random() > 0.05
                yield (str(uuid.uuid4()), f"d{unit.code}", i, unit.code, unit.province_code, month, at, at, "http",
                       "ok" if ok else "failed", OPERATORS[i % 3], "l", "cellular",
                       rng.lognormvariate(3.2, 0.6) if ok else None, rng.lognormvariate(2.3, 0.6) if ok else None,
                       rng.uniform(15, 90) if ok else None, 2.0, 1, 1, False, "{}", None, False)


def devices_for(store: CollectorStore, units: list) -> None:
    from xaprobe.collector.schema import devices

    now = dt.datetime.now(dt.timezone.utc)
    with store.engine.begin() as conn:
        conn.execute(devices.insert(), [{"id": f"d{u.code}", "name": u.name, "commune_code": u.code,
                                         "token_hash": secrets.token_hex(32), "created_at": now, "settings": "{}"}
                                        for u in units])


def mark_all_stale(store: CollectorStore, units: list, months: list[str]) -> None:
    from xaprobe.collector.schema import stale_months
    from xaprobe.collector.scope import province_scope

    with store.engine.begin() as conn:
        provinces = {u.province_code for u in units}
        conn.execute(stale_months.insert(),
                     [{"month": m, "scope": u.code, "province_code": u.province_code, "version": 1}
                      for m in months for u in units]
                     + [{"month": m, "scope": province_scope(p), "province_code": p, "version": 1}
                        for m in months for p in provinces])


def timed(label: str, fn, results: list) -> None:
    start = time.perf_counter()
    report = fn()
    seconds = time.perf_counter() - start
    results.append({"case": label, "seconds": round(seconds, 3), "communes": len(report.communes),
                    "samples": sum(c.samples for c in report.communes)})
    print(json.dumps(results[-1]), file=sys.stderr, flush=True)


def late_batch(store: CollectorStore, units: list, month: str, rng: random.Random) -> None:
    rows = [dict(zip(COLUMNS, r)) for r in rows_for(rng.sample(units, 50), [month], 10, rng)]
    by_device: dict[str, list] = {}
    for r in rows:
        by_device.setdefault(r["device_id"], []).append(r)
    for device, batch in by_device.items():
        store.samples.insert(batch, device, dt.datetime.now(dt.timezone.utc))


def run_postgres(admin_url: str, months: list[str], per_commune: int, results: list) -> None:
    import psycopg

    name = f"xaprobe_scale_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        store = CollectorStore(open_engine(url))
        units = communes.all_communes()
        devices_for(store, units)
        rng = random.Random(1)
        start = time.perf_counter()
        with psycopg.connect(url) as conn:
            with conn.cursor().copy(f"COPY measurements ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in rows_for(units, months, per_commune, rng):
                    copy.write_row(row)
            conn.execute("ANALYZE measurements")
        mark_all_stale(store, units, months)
        loaded = store.stats.count_measurements()
        print(json.dumps({"loaded_rows": loaded, "seconds": round(time.perf_counter() - start, 1)}), file=sys.stderr)
        settings = CollectorSettings(db_url=url)
        month, now = months[-1], dt.datetime.now(dt.timezone.utc)
        timed("postgresql: one province (Hà Nội), cold", lambda: monthly_report(store, settings, month, "1", now),
              results)
        timed("postgresql: one province (Hà Nội), warm", lambda: monthly_report(store, settings, month, "1", now),
              results)
        timed("postgresql: whole country, cold", lambda: monthly_report(store, settings, month, "all", now), results)
        timed("postgresql: whole country, warm", lambda: monthly_report(store, settings, month, "all", now), results)
        late_batch(store, units, month, rng)
        timed("postgresql: whole country after late samples in 50 communes",
              lambda: monthly_report(store, settings, month, "all", now), results)
        timed("postgresql: one province, warm again", lambda: monthly_report(store, settings, month, "1", now),
              results)
        results.append({"case": "postgresql rows", "rows": loaded})
        store.engine.dispose()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_sqlite(months: list[str], per_commune: int, results: list) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/collector.db"
        store = CollectorStore(open_engine(url))
        units = communes.communes_of("42")
        devices_for(store, units)
        conn = sqlite3.connect(f"{tmp}/collector.db")
        conn.executemany(f"INSERT INTO measurements ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                         ((*r[:6], r[6].isoformat(sep=" "), r[7].isoformat(sep=" "), *r[8:])
                          for r in rows_for(units, months, per_commune, random.Random(2))))
        conn.commit()
        conn.close()
        mark_all_stale(store, units, months)
        settings = CollectorSettings(db_url=url)
        month, now = months[-1], dt.datetime.now(dt.timezone.utc)
        timed("sqlite: one province (Hà Tĩnh, 24 months loaded), cold",
              lambda: monthly_report(store, settings, month, "42", now), results)
        timed("sqlite: one province, warm", lambda: monthly_report(store, settings, month, "42", now), results)
        results.append({"case": "sqlite rows", "rows": store.stats.count_measurements()})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--months", type=int, default=12)
    p.add_argument("--sqlite-months", type=int, default=24)
    p.add_argument("--per-commune", type=int, default=300)
    p.add_argument("--last-month", default="2026-11")
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--skip-postgres", action="store_true")
    args = p.parse_args()
    results: list = []
    run_sqlite(months_back(args.last_month, args.sqlite_months), args.per_commune, results)
    if not args.skip_postgres:
        run_postgres(args.pg, months_back(args.last_month, args.months), args.per_commune, results)
    for r in results:
        if "seconds" in r:
            print(f"{r['case']:<62} {r['seconds']:>7.3f} s  ({r['communes']} communes, {r['samples']} samples)")
        else:
            print(f"{r['case']:<62} {r['rows']:>9} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
