"""The uploader and the daemon against a collector that lies, redirects, drips, never ends or resets:
nothing is marked delivered that the collector did not answer for, and every request ends on time."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
import time

import pytest
import requests
from conftest import make_measurement
from hostile import HostileServer, answer, drip, endless, redirect, reset

from xaprobe.agent.config import AgentConfig, LinkConfig, UploadConfig
from xaprobe.agent.daemon import Probe
from xaprobe.agent.store import Store
from xaprobe.health import CentreSettings
from xaprobe.secret import Secret
from xaprobe.uploader.upload import Destination, upload_batch, upload_pending

NOW = dt.datetime(2026, 11, 20, 5, 0, tzinfo=dt.timezone.utc)


def filled(tmp_path, n: int = 20) -> Store:
    store = Store.open(tmp_path / "probe.db")
    for _ in range(n):
        store.add(make_measurement(device_id="probe-1"))
    return store


def sent_ids(server: HostileServer) -> list[str]:
    body = json.loads(gzip.decompress(server.seen.bodies[-1]))
    return [item["id"] for item in body["measurements"]]


def test_a_redirect_is_not_followed_and_marks_nothing(tmp_path):
    store = filled(tmp_path)
    with HostileServer({"*": answer(200, b'{"results": []}')}) as elsewhere, \
            HostileServer({"*": redirect(elsewhere.url + "/api/v1/measurements")}) as collector:
        outcome = upload_pending(store, requests.Session(), Destination(collector.url, Secret("t"), 5), 500)
        assert elsewhere.seen.requests == []  # the batch never went to the other host
    assert store.backlog().pending == 20 and outcome.accepted == 0
    assert "307" in outcome.error and elsewhere.url in outcome.error and "follows no redirect" in outcome.error
    assert store.upload_record().last_error == outcome.error


@pytest.mark.parametrize("chunked", [False, True])
def test_an_endless_answer_is_cut_at_the_cap(tmp_path, chunked):
    store = filled(tmp_path, 3)
    with HostileServer({"*": endless(chunked, "Content-Type: application/json\r\n")}) as collector:
        start = time.monotonic()
        outcome = upload_batch(store, requests.Session(), Destination(collector.url, Secret("t"), 10), 500)
        took = time.monotonic() - start
        time.sleep(0.2)
        sent = collector.seen.bytes_sent
    assert "larger than 1024 KiB" in outcome.error and store.backlog().pending == 3
    assert took < 5 and sent < 64 << 20  # read stopped at the cap, not at the server's whim


def test_a_dripping_collector_cannot_hold_an_upload_past_its_timeout(tmp_path):
    store = filled(tmp_path, 2)
    with HostileServer({"*": drip(every_s=0.5)}) as collector:
        start = time.monotonic()
        outcome = upload_batch(store, requests.Session(), Destination(collector.url, Secret("t"), 3), 500)
        took = time.monotonic() - start
    assert "within 3 s" in outcome.error and 2.9 < took < 5, (took, outcome.error)
    assert store.backlog().pending == 2


def test_a_dripping_body_is_cut_too(tmp_path):
    store = filled(tmp_path, 2)
    with HostileServer({"*": drip(every_s=0.2, headers_too=False)}) as collector:
        start = time.monotonic()
        outcome = upload_batch(store, requests.Session(), Destination(collector.url, Secret("t"), 2), 500)
        assert time.monotonic() - start < 4
    assert "within 2 s" in outcome.error


def test_a_reset_is_named(tmp_path):
    store = filled(tmp_path, 1)
    with HostileServer({"*": reset()}) as collector:
        outcome = upload_batch(store, requests.Session(), Destination(collector.url, Secret("t"), 5), 500)
    assert "reset" in outcome.error and "Error" not in outcome.error  # no Python class names


def lying(make_results):
    """A collector answering 200 with results made from the ids it received."""
    class Liar:
        def __init__(self):
            self.server = HostileServer({})

        def __call__(self, conn, path):
            ids = sent_ids(self.server)
            answer(200, json.dumps({"results": make_results(ids)}).encode())(conn, path)
    liar = Liar()
    liar.server.behaviours["*"] = liar
    return liar.server


@pytest.mark.parametrize("make_results, says", [
    (lambda ids: [{"id": i, "status": "accepted"} for i in ids[:5]], "15 of the 20 items sent have no answer"),
    (lambda ids: [{"id": i, "status": "accepted"} for i in ids] + [{"id": "x", "status": "accepted"}],
     "an id that was not sent"),
    (lambda ids: [{"id": i, "status": "accepted"} for i in ids + ids[:1]], "answered twice"),
    (lambda ids: [{"id": i, "status": "kept"} for i in ids], "status 'kept'"),
    (lambda ids: {"ok": True}, "no list of results"),
    (lambda ids: [5] * len(ids), "not an object with an id"),
])
def test_an_answer_that_does_not_add_up_marks_nothing(tmp_path, make_results, says):
    store = filled(tmp_path)
    with lying(make_results) as collector:
        outcome = upload_batch(store, requests.Session(), Destination(collector.url, Secret("t"), 5), 500)
    assert says in outcome.error and "nothing was marked" in outcome.error
    assert store.backlog().pending == 20 and store.backlog().uploaded == 0


def test_a_truthful_answer_is_marked(tmp_path):
    store = filled(tmp_path, 4)
    with lying(lambda ids: [{"id": i, "status": s} for i, s in zip(ids, ["accepted", "duplicate", "rejected",
                                                                         "accepted"])]) as collector:
        outcome = upload_batch(store, requests.Session(), Destination(collector.url, Secret("t"), 5), 500)
    assert (outcome.accepted, outcome.duplicate, outcome.rejected, outcome.error) == (2, 1, 1, None)
    assert store.backlog().pending == 0 and store.backlog().rejected == 1


def probe_against(url: str, tmp_path, **upload) -> Probe:
    config = AgentConfig(device_id="probe-1", token=Secret("t"), commune_code="18673", collector_url=url + "/",
                         store=tmp_path / "probe.db", links=(LinkConfig(name="office"),),
                         upload=UploadConfig(batch_size=10, **upload))
    return Probe(config, Store.open(config.store), requests.Session(), clock=lambda: NOW, rng=random.Random(1))


def test_the_daemon_backs_off_from_a_lying_collector_instead_of_resending(tmp_path):
    with lying(lambda ids: [{"id": i, "status": "accepted"} for i in ids[:1]]) as collector:
        probe = probe_against(collector.url, tmp_path, backoff_base_s=30, backoff_cap_s=600, timeout_s=5)
        for _ in range(50):
            probe.store.add(make_measurement(device_id="probe-1"))
        probe.upload_if_due()
        probe.upload_if_due()  # still backing off: nothing sent
        assert len(collector.seen.requests) == 1  # one batch a round, then backoff (was: the same batch 100 times)
    assert probe.health.next_upload_at is not None and probe.health.next_upload_at > NOW
    assert probe.store.backlog().pending == 50


@pytest.mark.parametrize("settings", [{"target": 10**9}, {"target": -5}, {"pause": "yes"}, "nonsense"])
def test_hostile_settings_from_the_collector_are_ignored(tmp_path, settings):
    body = json.dumps({"ok": True, "settings": settings}).encode()
    with HostileServer({"*": answer(200, body)}) as collector:
        probe = probe_against(collector.url, tmp_path, timeout_s=5)
        probe.store.save_centre_settings(CentreSettings(target=400))
        probe.heartbeat()
    assert probe.store.centre_settings() == CentreSettings(target=400)  # the last good ones are kept


def test_a_hostile_heartbeat_answer_is_bounded(tmp_path):
    with HostileServer({"*": endless(True, "Content-Type: application/json\r\n")}) as collector:
        probe = probe_against(collector.url, tmp_path, timeout_s=5)
        start = time.monotonic()
        probe.heartbeat()
        assert time.monotonic() - start < 5
        assert collector.seen.bytes_sent < 64 << 20
    assert probe.store.centre_settings() == CentreSettings()
