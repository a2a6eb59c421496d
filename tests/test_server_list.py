"""The http engine with LibreSpeed's server list: read from a file or a URL, each entry judged alone, the nearest
answering server chosen (the link's operator's first), what was chosen stored and sent, and a hostile list or
no answering server a failed Measurement saying why."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator

import pytest
from conftest import free_port
from hostile import HostileServer, answer, blob, drip, endless, garbage, redirect

from xaprobe.agent.engines import http as engine
from xaprobe.agent.engines.base import RunRequest
from xaprobe.agent.engines.httpsession import Tally
from xaprobe.agent.engines.selection import choose_from_list
from xaprobe.agent.engines.serverlist import MAX_ENTRIES, parse
from xaprobe.collector.server import serve_in_thread
from xaprobe.collector.speedtest_app import Behaviour, make_app
from xaprobe.wire import Link, from_wire

FAST = engine.Settings(duration_s=1, streams=1, timeout_s=3, latency_samples=10, select_timeout_s=2)
FAR_S = 0.15  # the far server's extra wait on each ping: far more than loopback's jitter on a busy machine
VIETTEL = RunRequest(link=Link(name="viettel", operator="Viettel"))
VNPT = RunRequest(link=Link(name="vnpt", operator="VNPT"))


@contextlib.contextmanager
def servers() -> Iterator[dict[str, str]]:
    """Two of our speed-test servers on loopback, one FAR_S farther than the other, and a dead address."""
    with serve_in_thread(make_app()) as near, serve_in_thread(make_app(Behaviour(empty_delay_s=FAR_S))) as far:
        yield {"near": near + "/speedtest/", "far": far + "/speedtest/", "dead": f"http://127.0.0.1:{free_port()}/"}


def entry(name: str, url: str, **extra: object) -> dict[str, object]:
    """A list entry as LibreSpeed writes them (its PHP backend's names)."""
    return {"name": name, "server": url, "dlURL": "garbage.php", "ulURL": "empty.php", "pingURL": "empty.php",
            "getIpURL": "getIP.php", **extra}


def list_file(tmp_path, entries: list) -> str:
    path = tmp_path / "servers.json"
    path.write_text(json.dumps(entries), encoding="utf-8")
    return str(path)


def with_list(source: str, **changes: object) -> engine.Settings:
    return engine.Settings(**{**FAST.__dict__, "servers": source, **changes})


def test_the_nearest_answering_server_of_a_list_file_is_chosen_and_stored(tmp_path, store):
    with servers() as at:
        source = list_file(tmp_path, [entry("Far", at["far"], id=2), entry("Dead", at["dead"], id=3),
                                      entry("Near", at["near"], id=1, sponsorName="Province")])
        m = engine.run(VIETTEL, with_list(source))
    assert m.status == "ok", m.error
    assert (m.server.name, m.server.id, m.server.url) == ("Near", "1", at["near"])
    assert m.method.candidates == 3 and m.method.layout == "php"
    assert 0 < m.method.server_latency_ms < FAR_S * 1000 / 2
    # what the probe stores and sends says where the test ran and how the server was chosen
    stored = store.add(m)
    sent = json.loads(dict(store.pending(10))[stored.id])
    assert sent["server"] == {"url": at["near"], "id": "1", "name": "Near"}
    assert sent["method"]["candidates"] == 3 and sent["method"]["server_latency_ms"] == m.method.server_latency_ms
    assert from_wire(sent).method == m.method


def test_a_list_from_a_url_is_fetched_and_its_protocol_relative_servers_take_its_scheme():
    with servers() as at:
        relative = at["near"].removeprefix("http:")  # LibreSpeed's "//host/": the page's (here: the list's) scheme
        body = json.dumps([entry("Near", relative, id=7), entry("Dead", at["dead"])]).encode()
        with HostileServer({"/lists/vn.json": answer(200, body, {"Content-Type": "application/json"})}) as lists:
            m = engine.run(VNPT, with_list(lists.url + "/lists/vn.json"))
            assert lists.seen.requests == ["GET /lists/vn.json HTTP/1.1"]
    assert m.status == "ok", m.error
    assert (m.server.name, m.server.id, m.server.url) == ("Near", "7", at["near"])
    assert m.method.candidates == 2


def test_a_server_listed_for_the_links_operator_wins_while_it_answers(tmp_path):
    with servers() as at:
        source = list_file(tmp_path, [entry("Near", at["near"]),
                                      entry("Far Viettel", at["far"], operator=["viettel", "VinaPhone"])])
        m = engine.run(VIETTEL, with_list(source))
        assert m.status == "ok", m.error
        assert m.server.name == "Far Viettel" and m.method.server_latency_ms >= FAR_S * 1000
        # VinaPhone is VNPT: preferred there too; MobiFone has no server of its own, so the nearest serves it
        assert choose_from_list(source, VNPT, 3, 2, "auto", Tally()).entry.name == "Far Viettel"
        mobifone = RunRequest(link=Link(operator="MobiFone"))
        assert choose_from_list(source, mobifone, 3, 2, "auto", Tally()).entry.name == "Near"
        # the operator's own server is down: the nearest of the others serves rather than no test at all
        source = list_file(tmp_path, [entry("Near", at["near"]), entry("Far", at["far"]),
                                      entry("Dead Viettel", at["dead"], operator="Viettel")])
        chosen = choose_from_list(source, VIETTEL, 3, 2, "auto", Tally())
    assert chosen.entry.name == "Near" and chosen.candidates == 3


def test_when_no_server_answers_the_failed_measurement_names_each_and_why(tmp_path, store):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # takes connections, never answers
    dead = f"http://127.0.0.1:{free_port()}/"
    source = list_file(tmp_path, [entry("Dead", dead), entry("Silent", f"http://127.0.0.1:{silent.getsockname()[1]}/")])
    start = time.monotonic()
    m = engine.run(VIETTEL, with_list(source, select_timeout_s=1))
    silent.close()
    assert time.monotonic() - start < 5  # each candidate within its own deadline, both at once
    assert m.status == "failed" and m.method.candidates == 2
    assert m.error.startswith("none of the 2 servers of the list answered: "), m.error
    assert f"Dead: connection refused by {dead[7:-1]}" in m.error and "Silent: no answer within 1 s" in m.error
    assert m.server.url == "" and m.download_mbps is None
    stored = store.add(m)
    assert from_wire(json.loads(dict(store.pending(10))[stored.id])).error == m.error


def test_the_bytes_of_choosing_a_server_count_for_the_test():
    # a metered SIM pays for the list and for every candidate's pings: they are the test's bytes (the monthly
    # budget sums them), also when the choice fails and no test runs (before: 0 bytes stored)
    ping = answer(200)
    with HostileServer({"/st/empty": ping, "/st/garbage": garbage(), "/st/getIP": answer(200, b"{}")}) as good, \
            HostileServer({"*": answer(404, b"<html>a router's page</html>")}) as router:
        body = json.dumps([entry("Good", good.url + "/st/", dlURL="garbage", ulURL="empty", pingURL="empty",
                                 getIpURL="getIP"), entry("Router", router.url + "/")]).encode()
        with HostileServer({"/list": answer(200, body)}) as lists:
            tally = Tally()
            chosen = choose_from_list(lists.url + "/list", VIETTEL, 3, 2, "auto", tally)
            assert chosen.entry.name == "Good"
            assert tally.kernel_counts and tally.up > 0
            # the kernel counts a server's FIN as a byte: each answer here closes its connection
            servers_ = (lists, good, router)
            sent, answers = sum(x.seen.bytes_sent for x in servers_), sum(len(x.seen.requests) for x in servers_)
            assert sent > len(body) and sent <= tally.down <= sent + answers
        body = json.dumps([entry("Router", router.url + "/")]).encode()
        with HostileServer({"/list": answer(200, body)}) as lists:
            sent_before, asked_before = router.seen.bytes_sent, len(router.seen.requests)
            m = engine.run(VIETTEL, with_list(lists.url + "/list"))
            assert m.status == "failed" and m.error.startswith("none of the 1 servers of the list answered"), m.error
            assert m.method.bytes == "kernel" and m.bytes_up > 0
            sent = lists.seen.bytes_sent + router.seen.bytes_sent - sent_before
            assert sent <= m.bytes_down <= sent + 1 + len(router.seen.requests) - asked_before


def test_endpoint_names_come_from_the_entry_not_from_the_layout():
    ip = answer(200, b'{"processedString": "127.0.0.1 - loopback"}')
    with HostileServer({"/st/down": garbage(), "/st/up": answer(200), "/st/ping": answer(200),
                        "/st/ip": ip}) as server:
        body = json.dumps([{"name": "Odd names", "server": server.url + "/st", "dlURL": "down", "ulURL": "up",
                            "pingURL": "/st/ping", "getIpURL": "ip"}]).encode()
        with HostileServer({"/list": answer(200, body)}) as lists:
            m = engine.run(RunRequest(), with_list(lists.url + "/list", paths="php"))
        paths = {line.split(" ")[0] + " " + line.split(" ")[1].split("?")[0] for line in server.seen.requests}
    assert m.status == "ok", m.error
    assert paths == {"GET /st/ping", "GET /st/ip", "GET /st/down", "POST /st/up"}


def test_an_explicit_server_is_measured_without_the_list(tmp_path):
    with servers() as at:
        m = engine.run(RunRequest(), with_list(list_file(tmp_path, [entry("Dead", at["dead"])])), at["near"])
    assert m.status == "ok", m.error
    assert m.server.url == at["near"] and m.method.candidates == 0 and m.method.server_latency_ms is None


def test_each_bad_entry_is_skipped_with_its_reason():
    good = entry("Good", "//speed.example.vn/backend")
    found = parse(json.dumps([
        good, "not an object", {"server": "http://a.example.vn/"}, entry("Ftp", "ftp://a.example.vn/"),
        entry("Script", "javascript:alert(1)"), entry("Elsewhere", "http://a.example.vn/", dlURL="http://b.vn/g"),
        entry("Query", "http://a.example.vn/", pingURL="empty.php?x=1"),
        {"name": "Half", "server": "http://a.example.vn/", "dlURL": "garbage.php"},
        entry("Who", "http://a.example.vn/", operator="Telco X"), entry("Id", "http://a.example.vn/", id=True),
        entry("Port", "http://a.example.vn:http/"), entry("N" * 201, "http://a.example.vn/"),
    ]).encode(), "https")
    assert [(e.name, e.url, e.endpoints.garbage, e.endpoints.upload) for e in found.entries] == [
        ("Good", "https://speed.example.vn/backend/", "/backend/garbage.php", "/backend/empty.php")]
    assert list(found.skipped) == [
        "entry 1: must be an object, got str",
        "entry 2: name and server are required",
        "entry 3: server must be an http:// or https:// URL, got 'ftp://a.example.vn/'",
        "entry 4: server must be an http:// or https:// URL, got 'javascript:alert(1)'",
        "entry 5: dlURL 'http://b.vn/g' is not on the server's host",
        "entry 6: pingURL 'empty.php?x=1' must be a path (no query or fragment)",
        "entry 7: dlURL given without ulURL, pingURL, getIpURL",
        "entry 8: operator 'Telco X' is not one xaprobe knows (Viettel, VNPT, MobiFone, Vietnamobile, Gmobile, "
        "I-Telecom, Reddi, FPT, CMC, SCTV)",
        "entry 9: id must be a number or a string",
        "entry 10: server has a port that is not a number: 'http://a.example.vn:http/'",
        "entry 11: name: longer than 200 characters"]
    many = parse(json.dumps([good] * (MAX_ENTRIES + 5)).encode())
    assert len(many.entries) == MAX_ENTRIES and many.skipped == (f"entries after the first {MAX_ENTRIES} ignored",)


def test_a_list_without_a_usable_entry_is_a_failed_measurement(tmp_path):
    m = engine.run(VIETTEL, with_list(list_file(tmp_path, [entry("Ftp", "ftp://a.example.vn/")])))
    assert m.status == "failed"
    assert m.error == (f"server list {tmp_path / 'servers.json'}: no usable server (entry 0: server must be an "
                       "http:// or https:// URL, got 'ftp://a.example.vn/')")
    m = engine.run(VIETTEL, with_list(str(tmp_path / "missing.json")))
    assert m.error == f"server list {tmp_path / 'missing.json'}: cannot read it: No such file or directory"


@pytest.mark.parametrize("behaviour, says", [
    (endless(), "answered more than 1 MiB; stopped reading"),
    (endless(chunked=True), "answered more than 1 MiB; stopped reading"),
    (blob(3 << 20, 3 << 20), "answered more than 1 MiB; stopped reading"),
    (redirect("http://127.0.0.1:9/elsewhere.json", 302),
     "answered 302 X, a redirect to http://127.0.0.1:9/elsewhere.json: redirects are not followed"),
    (answer(404), "answered 404 X"),
    (answer(200, b"<!doctype html><p>Welcome"), "not JSON (Expecting value: line 1 column 1 (char 0))"),
    (answer(200, b"\xff\xfe[]"), "not UTF-8 text"),
    (answer(200, b"[" * 100_000), "not JSON"),
    (answer(200, b'{"servers": []}'), "not a list of servers (a JSON dict)"),
    (answer(200, b"[]"), "no usable server: the list is empty"),
    (drip(0.2), "no whole answer from 127.0.0.1:"),
], ids=["endless", "endless-chunked", "huge", "redirect", "404", "html", "not-utf8", "deep", "object", "empty",
        "drip"])
def test_a_hostile_list_url_fails_saying_what_was_wrong(behaviour, says):
    with HostileServer({"/list.json": behaviour}) as lists:
        start = time.monotonic()
        m = engine.run(VIETTEL, with_list(lists.url + "/list.json", timeout_s=1))
        took = time.monotonic() - start
    assert m.status == "failed" and m.error.startswith(f"server list {lists.url}/list.json: {says}"), m.error
    assert took < 5 and len(lists.seen.requests) == 1  # one request, no redirect followed, within the deadline
