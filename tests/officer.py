"""A province as an officer meets it on 20 November 2026 at noon (Vietnam): one commune has reached its
target, one is on track, one is behind, the rest have no data; one probe is well, one silent for 5 hours
with a full disk, one never seen. Served by the real collector app with its clock frozen."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Iterator

import requests
from conftest import make_measurement

from xaprobe.health import Heartbeat
from xaprobe.wire import Link, to_wire

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 20, 5, 0, tzinfo=UTC)  # 12:00 in Hà Tĩnh
MONTH = "2026-11"
DONE, ON_TRACK, BEHIND = "18133", "18652", "18673"  # Xã Hương Sơn, -, Xã Cẩm Xuyên


@dataclasses.dataclass
class Clock:
    now: dt.datetime = NOW

    def __call__(self) -> dt.datetime:
        return self.now


@dataclasses.dataclass
class Province:
    base: str
    store: object
    admin_token: str
    clock: Clock

    def get(self, path: str, **params: str) -> requests.Response:
        return requests.get(self.base + path, params=params, timeout=60,
                            headers={"Authorization": f"Bearer {self.admin_token}"})


def _send(base: str, token: str, device: str, commune: str, n: int, operators: tuple[str, ...], speed: float) -> None:
    # bytes and duration agree with the speed (an ingest plausibility gate may compare them)
    items = [to_wire(make_measurement(device_id=device, commune_code=commune, download_mbps=speed + i % 7,
                                      bytes_down=int((speed + i % 7) * 1e6 / 8 * 10),
                                      started_at=NOW - dt.timedelta(hours=1 + 3 * i),
                                      link=Link(name=op.lower(), operator=op)))
             for i in range(n) for op in operators]
    answer = requests.post(base + "/api/v1/measurements", json={"measurements": items}, timeout=60,
                           headers={"Authorization": f"Bearer {token}"})
    answer.raise_for_status()
    assert {r["status"] for r in answer.json()["results"]} == {"accepted"}, answer.json()["results"][:3]


@contextlib.contextmanager
def province(db_url: str, **settings_overrides) -> Iterator[Province]:
    from xaprobe.collector.app import create_app
    from xaprobe.collector.db import open_engine
    from xaprobe.collector.server import serve_in_thread
    from xaprobe.collector.settings import CollectorSettings
    from xaprobe.collector.store import CollectorStore

    store = CollectorStore(open_engine(db_url))
    clock = Clock()
    settings = CollectorSettings(db_url=db_url, province="42", **settings_overrides)
    try:
        with serve_in_thread(create_app(store, settings, clock)) as base:
            devices = store.devices
            tokens = {d: devices.add(d, f"Máy đo {d}", c, None, NOW - dt.timedelta(days=30))
                      for d, c in (("p-huong-son", DONE), ("p-on-track", ON_TRACK), ("p-cam-xuyen", BEHIND),
                                   ("p-son-hong", "18160"))}
            devices.set_commune_target(DONE, 40)
            devices.set_commune_target(ON_TRACK, 20)
            _send(base, tokens["p-huong-son"], "p-huong-son", DONE, 21, ("Viettel", "VNPT"), 30.0)
            _send(base, tokens["p-on-track"], "p-on-track", ON_TRACK, 15, ("Viettel",), 8.0)
            _send(base, tokens["p-cam-xuyen"], "p-cam-xuyen", BEHIND, 40, ("Viettel", "VNPT"), 1234.5)
            devices.record_heartbeat("p-huong-son", Heartbeat("p-huong-son", "0.1.0", NOW, backlog=1,
                                                              clock_synced=True), NOW)
            devices.record_heartbeat("p-on-track", Heartbeat("p-on-track", "0.1.0", NOW, clock_synced=True), NOW)
            silent_at = NOW - dt.timedelta(hours=5)
            devices.record_heartbeat("p-cam-xuyen", Heartbeat("p-cam-xuyen", "0.1.0", silent_at, disk_full=True,
                                                              clock_synced=False), silent_at)
            yield Province(base, store, store.admins.add("officer", NOW), clock)
    finally:
        store.engine.dispose()
