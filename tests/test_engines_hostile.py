"""Both engines against speed-test servers that never end, drip, lie, redirect, reset or send megabytes where a
few bytes belong: the byte cap and a hard ceiling hold for every read, every test ends by its deadline, no odd
server yields an ok sample whose figures disagree, and a programming error is raised, never stored as data."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time

import pytest
import requests
from hostile import HostileServer, answer, blob, drip, endless, endless_headers, garbage, redirect, reset

from xaprobe.agent.config import AgentConfig, LinkConfig
from xaprobe.agent.daemon import Probe
from xaprobe.agent.engines import http as engine
from xaprobe.agent.engines import limits
from xaprobe.agent.engines import speedtest as st_engine
from xaprobe.agent.engines import speedtest_connections as st_connections
from xaprobe.agent.engines.base import RunRequest
from xaprobe.agent.store import Store
from xaprobe.plausibility import disagreements

CAP = 5_000_000
IP = answer(200, b'{"processedString": "127.0.0.1 - loopback"}')
LIBRESPEED = {"/garbage": garbage(), "/empty": answer(200), "/getIP": IP}
MINI = {"/s/latency.txt": answer(200, b"test=test"), "/s/upload.php": answer(200, b"size=1"),
        "/s/random*": blob(st_engine.DOWNLOAD_BYTES[350], st_engine.DOWNLOAD_BYTES[350])}
SETTINGS = engine.Settings(duration_s=2, streams=4, timeout_s=3)


def run_http(behaviours, cap=CAP, settings=SETTINGS):
    with HostileServer({**LIBRESPEED, **behaviours}) as server:
        start = time.monotonic()
        m = engine.run(RunRequest(cap_bytes=cap), settings, server.url + "/")
        return m, time.monotonic() - start


def run_speedtest(behaviours, cap=0):
    with HostileServer({**MINI, **behaviours}) as server:
        start = time.monotonic()
        m = st_engine.run(RunRequest(cap_bytes=cap), st_engine.Settings(timeout_s=3), server.url + "/s/")
        return m, time.monotonic() - start


@pytest.mark.parametrize("chunked", [False, True])
def test_an_endless_download_stops_at_what_was_asked(chunked):
    # before: with --cap-mb 5 an endless garbage body moved 3.59 GB
    m, took = run_http({"/garbage": endless(chunked)})
    assert m.status == "failed" and "/garbage (1 MiB asked): the server sent more than" in m.error
    # the app read at most 1 MiB + headers a stream; the kernel may hold what arrived before the reset
    assert 0 < m.bytes_down <= 2 * CAP and took < 5


@pytest.mark.parametrize("path, what", [("/getIP", "a getIP answer"), ("/empty", "a ping answer")])
def test_a_small_answer_is_a_few_kib_at_most(path, what):
    # before: a chunked 600 MB getIP reply took the probe to 1.26 GB RSS; chunked pings moved 8 GB
    m, took = run_http({path: endless(True, limit=200 << 20)})
    # an endless empty is found out before any ping: the server is not taken for a LibreSpeed server
    said = (f"{path} ({what}): the server sent more than 8192 bytes; stopped reading" if path == "/getIP" else
            f"{path} answered more than 8192 bytes where LibreSpeed's empty answers none")
    assert m.status == "failed" and m.error.endswith(said), m.error
    assert m.bytes_down < 1 << 20 and took < 5


def test_endless_headers_are_cut_at_the_ceiling():
    m, _ = run_http({"/empty": endless_headers()})
    assert m.status == "failed" and "/empty answered more than 8192 bytes" in m.error
    assert m.bytes_down < 1 << 20


def test_a_getip_answer_of_megabytes_does_not_grow_the_probe(tmp_path):
    # in its own process, so its peak RSS is its own (VmHWM: getrusage's maxrss keeps the forking parent's
    # peak across exec): reading a 300 MB answer whole would show
    with HostileServer({**LIBRESPEED, "/getIP": endless(True, limit=300 << 20)}) as server:
        code = ("import re; from xaprobe.agent.engines import http as e; "
                "from xaprobe.agent.engines.base import RunRequest; "
                f"m = e.run(RunRequest(), e.Settings(duration_s=1, streams=1, timeout_s=3), {server.url + '/'!r}); "
                "peak = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
                "print(m.status, peak, m.error)")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    status, rss_kib, error = done.stdout.split(" ", 2)
    assert status == "failed" and "(a getIP answer): the server sent more than 8192 bytes" in error, done.stdout
    assert int(rss_kib) < 100 * 1024, done.stdout


def test_a_server_sending_past_its_content_length_is_held_to_the_cap():
    # 10 MB behind a Content-Length of 100: what the kernel took in past the answers counts against the cap
    m, _ = run_http({"/garbage": blob(10 << 20, 100)})
    assert m.bytes_down <= CAP + (64 << 10)
    assert not (m.ok and disagreements(m)), m


def test_a_dripping_server_ends_by_the_deadline(monkeypatch):
    # before: a server dripping 1 byte/s kept `measure --duration 1` running past 90 s
    monkeypatch.setattr(limits, "GRACE_S", 2.0)
    settings = engine.Settings(duration_s=1, streams=2, timeout_s=1)
    # a byte every 0.5 s: no read ever waits its 1 s timeout, only the deadline can end the test
    m, took = run_http({"*": drip(0.5), "/garbage": drip(0.5), "/empty": drip(0.5), "/getIP": drip(0.5)},
                       settings=settings)
    deadline = 2 * 1 + 2.0 + 2 * 1
    assert m.status == "failed" and m.error.startswith("the test against 127.0.0.1:")
    assert f"did not end within its deadline of {deadline:g} s" in m.error
    assert deadline <= took < deadline + 2


def test_a_body_dripping_during_the_download_ends_by_the_deadline(monkeypatch):
    monkeypatch.setattr(limits, "GRACE_S", 2.0)
    m, took = run_http({"/garbage": drip(0.5, headers_too=False)}, settings=engine.Settings(duration_s=1, timeout_s=1))
    # the download's own duration ends it: nothing moved, and the engine says so
    assert m.status == "failed" and m.error == f"nothing arrived from 127.0.0.1:{m.server.url.split(':')[2][:-1]} " \
        "in 1 s of download"
    assert took < 2 * 1 + 2.0 + 2 * 1


@pytest.mark.parametrize("name, behaviours", [
    ("closes after 2253 bytes, no length (issue #17)", {"/garbage": blob(2253)}),
    ("closes after a MiB, no length", {"/garbage": blob(1 << 20)}),
    ("promises a MiB, sends 1000 bytes", {"/garbage": blob(1000, 1 << 20)}),
    ("redirects", {"/garbage": redirect("http://127.0.0.1:9/elsewhere")}),
    ("resets", {"/garbage": reset()}),
    ("upload answer endless", {"/empty": endless(True, limit=50 << 20)}),
])
def test_no_odd_server_yields_an_ok_sample_whose_figures_disagree(name, behaviours):
    m, took = run_http(behaviours)
    assert not disagreements(m), (name, m)  # ok ones agree; failed ones claim nothing
    assert m.bytes_down <= 2 * CAP and took < 2 * 2 + limits.GRACE_S + 2 * 3, (name, m)


@pytest.mark.parametrize("chunked", [False, True])
def test_speedtest_files_are_read_no_further_than_their_size(chunked):
    m, took = run_speedtest({"/s/random*": endless(chunked, limit=100 << 20)})
    # whichever of the first files in flight (350s and 500s) reaches its size first stops the test
    first = r"random(350x350\.jpg: the server sent more than 261772|500x500\.jpg: the server sent more than 521928) "
    assert m.status == "failed" and re.search(first + "bytes", m.error), m.error
    # at most what the 8 files in flight (speedtest-cli's 8 threads: four 350s, four 500s) were planned to bring
    in_flight = 4 * (st_engine.DOWNLOAD_BYTES[350] + st_engine.DOWNLOAD_BYTES[500]) + 8 * limits.HEAD_ROOM
    assert m.bytes_down <= in_flight and took < 10


def test_speedtest_refuses_a_compressed_answer_and_a_redirected_file():
    m, _ = run_speedtest({"/s/random*": blob(245388, 245388, "Content-Encoding: gzip\r\n")})
    assert m.status == "failed" and "compressed answer though none was asked for" in m.error
    with HostileServer({"*": endless()}) as elsewhere:
        m, _ = run_speedtest({"/s/random*": redirect(elsewhere.url + "/random350x350.jpg")})
        assert elsewhere.seen.requests == []
    assert m.status == "failed" and "a test file follows no redirect" in m.error


# 0.1-0.3 s here; once in CI it ran into the engine's 36 s deadline instead (not reproduced in ~1,100 runs
# alone, under load, or with its neighbours' files): past 20 s pytest-timeout fails it with every thread's stack
@pytest.mark.timeout(20)
def test_speedtest_upload_answer_is_bounded():
    m, _ = run_speedtest({"/s/upload.php": endless_headers()}, cap=2_000_000)
    assert m.status == "failed" and "upload.php: the server sent more than 8192 bytes" in m.error


def test_speedtest_dripping_latency_ends_by_the_deadline(monkeypatch):
    public = st_engine.public_config
    monkeypatch.setattr(limits, "GRACE_S", 1.0)
    monkeypatch.setattr(st_engine, "public_config", lambda: {**public(), "length": {"upload": 1, "download": 1}})
    m, took = run_speedtest({"/s/latency.txt": drip(0.5)})
    assert m.status == "failed" and "did not end within its deadline of 9 s" in m.error  # 1 + 1 + 1 + 2 x 3
    assert 9 <= took < 11


def test_a_programming_error_in_the_http_engine_is_raised_not_stored(monkeypatch):
    monkeypatch.setattr(engine.rates, "steady_mbps", lambda samples: None + 1)  # a TypeError of our own
    with pytest.raises(TypeError):
        run_http({}, cap=2_000_000)


def test_a_programming_error_in_a_stream_is_raised_not_stored(monkeypatch):
    def broken() -> bytes:
        raise AttributeError("a bug in the upload stream")

    monkeypatch.setattr(engine, "_payload", broken)
    with pytest.raises(AttributeError, match="a bug in the upload stream"):
        run_http({}, cap=2_000_000)


def test_a_programming_error_in_the_speedtest_engine_is_raised_not_stored(monkeypatch):
    monkeypatch.setattr(st_engine, "cap_config", lambda config, cap: config["no such key"])
    with pytest.raises(KeyError):
        run_speedtest({})


def test_the_daemon_logs_a_programming_error_with_its_traceback_and_stores_nothing(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(engine.rates, "steady_mbps", lambda samples: None + 1)
    with HostileServer(LIBRESPEED) as server:
        config = AgentConfig(device_id="p", store=tmp_path / "p.db", links=(LinkConfig(name="office"),),
                             engines={"http": engine.Settings(server=server.url + "/", duration_s=1, streams=1)})
        probe = Probe(config, Store.open(config.store), requests.Session())
        with caplog.at_level(logging.ERROR):
            probe.guarded(probe.test_if_due)()
    assert probe.health.last_error.startswith("test_if_due: TypeError")
    assert any(r.exc_info and r.exc_info[0] is TypeError for r in caplog.records)
    assert list(probe.store.measurements()) == []


def _measure_cli(tmp_path, *args: str | bytes, server: str) -> subprocess.CompletedProcess:
    config = tmp_path / "agent.toml"
    config.write_text(f'[engines.http]\nserver = "{server}"\ntimeout_s = 1\n')
    return subprocess.run([sys.executable, "-m", "xaprobe.agent", "--lang", "en", "--config", str(config), "--store",
                           str(tmp_path / "p.db"), "measure", "--json", *args], capture_output=True, timeout=120)


def test_measure_refuses_place_bytes_that_are_not_utf8_before_testing(tmp_path):
    with HostileServer(LIBRESPEED) as server:
        done = _measure_cli(tmp_path, "--duration", "1", "--place", b"Ph\xffu", server=server.url + "/")
        assert server.seen.requests == []  # refused before the test, not lost after it
    assert done.returncode == 1
    assert done.stderr.decode() == "xaprobe: error: --place: contains bytes that are not UTF-8 text\n"
    assert not (tmp_path / "p.db").exists() or b"Traceback" not in done.stderr


def test_measure_with_a_programming_error_shows_a_traceback_and_stores_nothing(tmp_path):
    code = ("import sys; from xaprobe.agent.engines import rates; rates.steady_mbps = lambda s: None + 1; "
            "from xaprobe.agent.cli import main; sys.exit(main(sys.argv[1:]))")
    with HostileServer(LIBRESPEED) as server:
        (tmp_path / "agent.toml").write_text(f'[engines.http]\nserver = "{server.url}/"\n')
        done = subprocess.run([sys.executable, "-c", code, "--config", str(tmp_path / "agent.toml"), "--store",
                               str(tmp_path / "p.db"), "measure", "--duration", "1", "--cap-mb", "2"],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" in done.stderr and "TypeError" in done.stderr
    assert list(Store.open(tmp_path / "p.db").measurements()) == []


def test_measure_against_a_dripping_server_ends_by_duration_and_grace(tmp_path):
    # the command of the report, end to end: 1 s a way, a 1 s timeout (a byte every 0.5 s), the fixed grace
    with HostileServer({"*": drip(0.5)}) as server:
        start = time.monotonic()
        done = _measure_cli(tmp_path, "--duration", "1", server=server.url + "/")
        took = time.monotonic() - start
    m = json.loads(done.stdout)
    deadline = 2 * 1 + limits.GRACE_S + 2 * 1
    assert m["status"] == "failed" and f"did not end within its deadline of {deadline:g} s" in m["error"]
    assert took < deadline + 5


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # each thread prints it too
def test_a_programming_error_on_speedtest_clis_threads_is_raised_not_stored(monkeypatch):
    # speedtest-cli's download threads would print it and go on; the engine raises it once download() returns
    real = st_connections.answer_limit
    monkeypatch.setattr(st_connections, "answer_limit",
                        lambda method, url: real(method, url) if "random" not in url else {}["no such key"])
    with pytest.raises(KeyError):
        run_speedtest({})
