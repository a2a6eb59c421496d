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
from xaprobe.i18n import N_, _, number
from xaprobe.months import utc_now
from xaprobe.secret import Secret
from xaprobe.uploader.upload import Destination, upload_pending

DEMO_COMMUNE = "18673"  # Xã Cẩm Xuyên, Hà Tĩnh (vietnam-provinces, post-2025 units)
STATUS_WORDS = {"done": N_("done"), "on_track": N_("on track"), "behind": N_("behind"), "no_data": N_("no data")}


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
            say(_("collector on {base} (database {db})").format(base=base, db=db_url))
            say(_("enrolled probe demo-cam-xuyen for {commune}, {province} (code {code})").format(
                commune=unit.name, province=unit.province_name, code=unit.code))
            config = AgentConfig(device_id="demo-cam-xuyen", token=Secret(token), commune_code=unit.code,
                                 collector_url=base + "/", store=store_path or Path(tmp) / "probe.db",
                                 links=(LinkConfig(name="loopback", operator="Demo"),),
                                 engines={"http": http_engine.Settings(server=base + "/speedtest/",
                                                                       duration_s=duration_s)},
                                 source="(demo)")
            store = Store.open(config.store)
            for _n in range(measurements):
                m = measure(config, store, config.links[0])
                say("  " + _("measured {line}").format(line=summary_line(m)))
            with requests.Session() as session:
                outcome = upload_pending(store, session, Destination(config.collector_url, config.token, 30.0), 500)
            uploaded = _("uploaded: {accepted} accepted, {duplicate} duplicate, {rejected} rejected; {pending} pending")
            say(uploaded.format(accepted=outcome.accepted, duplicate=outcome.duplicate, rejected=outcome.rejected,
                                pending=store.backlog().pending))
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
                print(_("{commune} ({code}), {province}, month {month}:").format(
                    commune=row["name"], code=row["code"], province=report["province_name"], month=report["month"]))
                print("  " + _("samples {samples} of target {target} ({percent} %), failed {failed}, status {status}")
                      .format(samples=row["samples"], target=row["target"], percent=number(row["percent"]),
                              failed=row["failed"], status=_(STATUS_WORDS.get(row["status"], row["status"]))))
                for op, o in row["operators"].items():
                    medians = {k: number(o[k]["median"], 2) for k in ("download_mbps", "upload_mbps", "latency_ms")}
                    print(f"  {op}: " + _("median download {down} Mbit/s, upload {up} Mbit/s, latency {latency} ms")
                          .format(down=medians["download_mbps"], up=medians["upload_mbps"],
                                  latency=medians["latency_ms"]))
                print("  " + _("dashboard: {url}").format(url=sign_in))
                print("  " + _("admin token (paste it into the sign-in form): {token}").format(token=admin))
            store.close()
            if keep_running:
                say(_("collector keeps running; press Ctrl-C to stop"))
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(3600)
            ok = outcome.accepted == measurements and row["samples"] + row["failed"] == measurements
    return 0 if ok else 1
