"""`xaprobe demo`: a real collector and a real probe on this machine, end to end, over loopback only.

It starts the collector on 127.0.0.1 (a free port, a temporary SQLite file), enrols a probe for
Xã Cẩm Xuyên (Hà Tĩnh), runs real measurements against the collector's /speedtest/, keeps them in
a probe store, uploads them through the real API, and prints the commune's month from the report.
The demo is composed from the public parts of both sides; neither side imports the other.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from xaprobe import communes
from xaprobe.agent.config import AgentConfig, LinkConfig
from xaprobe.agent.engines import http as http_engine
from xaprobe.agent.measure import measure
from xaprobe.agent.status import summary_line
from xaprobe.agent.store import Store
from xaprobe.collector.app import create_app
from xaprobe.collector.db import open_engine
from xaprobe.collector.server import serve_in_thread
from xaprobe.collector.settings import CollectorSettings
from xaprobe.collector.store import CollectorStore
from xaprobe.months import utc_now
from xaprobe.secret import Secret
from xaprobe.uploader.upload import Destination, upload_pending

DEMO_COMMUNE = "18673"  # Xã Cẩm Xuyên, Hà Tĩnh (vietnam-provinces, post-2025 units)


@contextlib.contextmanager
def demo_collector(db_url: str, province: str = "42") -> Iterator[tuple[str, CollectorStore]]:
    """A collector over db_url served on 127.0.0.1 for the duration of the block; yield (base URL, store)."""
    store = CollectorStore(open_engine(db_url))
    try:
        with serve_in_thread(create_app(store, CollectorSettings(db_url=db_url, province=province))) as base:
            yield base, store
    finally:
        store.engine.dispose()


def run_demo(measurements: int = 5, keep_running: bool = False, duration_s: float = 2.0, as_json: bool = False,
             store_path: Path | None = None) -> int:
    """Run the demo; return the exit code."""
    say: Any = (lambda *a: print(*a, file=sys.stderr)) if as_json else print
    with tempfile.TemporaryDirectory(prefix="xaprobe-demo-") as tmp:
        db_url = f"sqlite:///{Path(tmp) / 'collector.db'}"
        with demo_collector(db_url) as (base, cstore):
            unit = communes.commune(DEMO_COMMUNE)
            assert unit is not None  # a code of vietnam-provinces, fixed above
            token = cstore.devices.add("demo-cam-xuyen", "Demo probe, UBND xã Cẩm Xuyên", unit.code, None, utc_now())
            admin = cstore.admins.add("demo", utc_now())
            say(f"collector on {base} (database {db_url})")
            say(f"enrolled probe demo-cam-xuyen for {unit.name}, {unit.province_name} (code {unit.code})")
            config = AgentConfig(device_id="demo-cam-xuyen", token=Secret(token), commune_code=unit.code,
                                 collector_url=base + "/", store=store_path or Path(tmp) / "probe.db",
                                 links=(LinkConfig(name="loopback", operator="Demo"),),
                                 engines={"http": http_engine.Settings(server=base + "/speedtest/",
                                                                       duration_s=duration_s)},
                                 source="(demo)")
            store = Store.open(config.store)
            for _ in range(measurements):
                m = measure(config, store, config.links[0])
                say("  measured " + summary_line(m))
            with requests.Session() as session:
                outcome = upload_pending(store, session, Destination(config.collector_url, config.token, 30.0), 500)
            say(f"uploaded: {outcome.accepted} accepted, {outcome.duplicate} duplicate, "
                f"{outcome.rejected} rejected; {store.backlog().pending} pending")
            answer = requests.get(base + "/api/v1/report", params={"province": unit.province_code},
                                  headers={"Authorization": f"Bearer {admin}"}, timeout=30)
            answer.raise_for_status()
            report = answer.json()
            row = next(c for c in report["communes"] if c["code"] == unit.code)
            # the token is printed apart from the link, to paste into the sign-in form: a token in a URL
            # would stay in the browser's history and the access log
            sign_in = f"{base}/login?next=/commune/{unit.code}"
            if as_json:
                print(json.dumps({"month": report["month"], "commune": row, "sign_in": sign_in,
                                  "admin_token": admin}, ensure_ascii=False))
            else:
                print()
                print(f"{row['name']} ({row['code']}), {report['province_name']}, month {report['month']}:")
                print(f"  samples {row['samples']} of target {row['target']} ({row['percent']}%), "
                      f"failed {row['failed']}, status {row['status']}")
                for op, o in row["operators"].items():
                    print(f"  {op}: median download {o['download_mbps']['median']} Mbit/s, "
                          f"upload {o['upload_mbps']['median']} Mbit/s, latency {o['latency_ms']['median']} ms")
                print(f"  dashboard: {sign_in}")
                print(f"  admin token (paste it into the sign-in form): {admin}")
            store.close()
            if keep_running:
                say("collector keeps running; press Ctrl-C to stop")
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(3600)
            ok = outcome.accepted == measurements and row["samples"] + row["failed"] == measurements
    return 0 if ok else 1
