#!/usr/bin/env python3
"""Ingest throughput through the HTTP API against the raw insert rate, on SQLite and PostgreSQL.

For each back end: a fresh database, `xaprobe-collector serve` in its own process, several probes
posting gzip batches of 500 measurements at once; then the same number of rows inserted straight
into the same kind of database by the collector's store (no HTTP, no validation). Prints items per
second of each and their ratio, side by side.

    python bench/ingest.py [--probes 4] [--batches 12] [--pg postgresql://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gzip
import json
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import free_port, make_measurement  # noqa: E402

from xaprobe import communes  # noqa: E402
from xaprobe.collector.db import open_engine  # noqa: E402
from xaprobe.collector.ingest import _row  # noqa: E402
from xaprobe.collector.settings import CollectorSettings  # noqa: E402
from xaprobe.collector.store import CollectorStore  # noqa: E402
from xaprobe.months import utc_now  # noqa: E402
from xaprobe.wire import to_wire  # noqa: E402


def fresh_pg(admin_url: str) -> tuple[str, str]:
    import psycopg

    name = f"xaprobe_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name, name


def drop_pg(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def api_rate(db_url: str, probes: int, batches: int, tmp: Path, workers: int = 1) -> float:
    store = CollectorStore(open_engine(db_url))
    tokens = [store.devices.add(f"bench-{i}", f"Bench {i}", "18673", None, utc_now()) for i in range(probes)]
    store.engine.dispose()
    config = tmp / "collector.toml"
    config.write_text("rate_per_minute = 100000\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "xaprobe.collector", "--config", str(config), "--db", db_url,
                             "serve", "--port", str(port), "--workers", str(workers)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                requests.get(base + "/healthz", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        bodies = [[gzip.compress(json.dumps({"measurements": [to_wire(make_measurement(device_id=f"bench-{p}"))
                                                               for _ in range(500)]}).encode())
                   for _ in range(batches)] for p in range(probes)]

        def send(p: int) -> int:
            done = 0
            with requests.Session() as s:
                for body in bodies[p]:
                    r = s.post(base + "/api/v1/measurements", data=body, timeout=120,
                               headers={"Authorization": f"Bearer {tokens[p]}", "Content-Type": "application/json",
                                        "Content-Encoding": "gzip"})
                    r.raise_for_status()
                    done += sum(x["status"] == "accepted" for x in r.json()["results"])
            return done

        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(probes) as pool:
            accepted = sum(pool.map(send, range(probes)))
        elapsed = time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert accepted == probes * batches * 500, accepted
    return accepted / elapsed


def raw_rate(db_url: str, total: int) -> float:
    """Insert the same kind of rows with the store's own insert, batches of 500, no HTTP, no validation."""
    store = CollectorStore(open_engine(db_url))
    store.devices.add("raw", "Raw", "18673", None, utc_now())
    device = store.devices.get("raw")
    settings, unit, now = CollectorSettings(), communes.commune("18673"), utc_now()
    batches = [[_row(make_measurement(device_id="raw"), device, unit, now, settings, False) for _ in range(500)]
               for _ in range(total // 500)]
    start = time.perf_counter()
    for rows in batches:
        store.samples.insert(rows, "raw", now)
    elapsed = time.perf_counter() - start
    store.engine.dispose()
    return total / elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--probes", type=int, default=4)
    p.add_argument("--batches", type=int, default=12, help="batches of 500 per probe")
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="collector worker processes to try")
    args = p.parse_args()
    total = args.probes * args.batches * 500
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("sqlite", "postgresql"):
            cleanup: list[str] = []

            def fresh(label: str, backend: str = backend, cleanup: list[str] = cleanup) -> str:
                if backend == "sqlite":
                    return f"sqlite:///{tmp}/{label}.db"
                url, name = fresh_pg(args.pg)
                cleanup.append(name)
                return url

            try:
                raw = raw_rate(fresh("raw"), total)
                for workers in args.workers:
                    api = api_rate(fresh(f"api-{workers}"), args.probes, args.batches, Path(tmp), workers)
                    rows.append({"backend": backend, "workers": workers, "items": total, "api_per_s": round(api),
                                 "raw_per_s": round(raw), "ratio": round(api / raw, 3)})
            finally:
                for name in cleanup:
                    drop_pg(args.pg, name)
    print(f"{'backend':<11} {'workers':>7} {'items':>7} {'API items/s':>12} {'raw items/s':>12} {'ratio':>6}")
    for r in rows:
        print(f"{r['backend']:<11} {r['workers']:>7} {r['items']:>7} {r['api_per_s']:>12} {r['raw_per_s']:>12} "
              f"{r['ratio']:>6}")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
