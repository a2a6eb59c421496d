"""A probe that loops measure -> store -> upload until killed (driven by the kill -9 fault test and soak)."""

from __future__ import annotations

import sys
from pathlib import Path

import requests

from xaprobe.agent.config import AgentConfig, LinkConfig
from xaprobe.agent.engines import http as http_engine
from xaprobe.agent.measure import measure
from xaprobe.agent.store import Store
from xaprobe.secret import Secret
from xaprobe.uploader.upload import Destination, upload_pending


def main(store_path: str, collector: str, token: str, speedtest: str) -> None:
    config = AgentConfig(device_id="probe-1", token=Secret(token), commune_code="18673", collector_url=collector,
                         store=Path(store_path), links=(LinkConfig(name="office", operator="VNPT"),),
                         engines={"http": http_engine.Settings(server=speedtest, duration_s=0.15, streams=1,
                                                               latency_samples=10)})
    store = Store.open(config.store)
    print(f"integrity {store.integrity()}", flush=True)
    with requests.Session() as session:
        while True:
            m = measure(config, store, config.links[0])
            print(f"stored {m.id}", flush=True)
            outcome = upload_pending(store, session, Destination(collector, config.token, 10), 500)
            print(f"uploaded accepted={outcome.accepted} duplicate={outcome.duplicate} error={outcome.error}",
                  flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
