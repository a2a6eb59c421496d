"""speedtest-cli driven through one test's connections: its server chosen, then each direction run and rated
from the kernel's byte counts over the direction's steady part, as the http engine and iperf3 rate theirs.

speedtest-cli's requests, sizes, thread counts and time limits are kept (its HTTPDownloader and HTTPUploader run
each request), but not its scheduling: it starts its threads in order and joins them in order, so one file that a
warm connection beside it starves holds every new file behind it, and at 60-120 ms RTT that left the link idle
(`busy`: each thread starts the next request as soon as its own ends). speedtest-cli rates a direction by what it
read or handed to sendall over its whole 10 s, TCP's start included; sampling the kernel's counts (acknowledged by
the server for upload, received for download) every SAMPLE_EVERY_S and leaving out the ramp-up by the rule in
rates.py measures the same traffic the way the other engine and the reference do (bench/accuracy_emulated.py).
"""

from __future__ import annotations

import io
import itertools
import os
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from xaprobe.agent.engines import rates
from xaprobe.agent.engines.base import NETWORK_ERRORS, EngineError
from xaprobe.agent.engines.limits import SMALL_ANSWER
from xaprobe.agent.engines.speedtest_connections import Connections, opener, speedtest_module

SAMPLE_EVERY_S = 0.05
MAX_SAMPLE_SPREAD_S = 0.005  # a reading that took longer (the sampler was descheduled) cannot say when it was
MIN_STEADY_S = 1.0  # a direction shorter than this (a capped test on a fast link) is rated over all of it
# speedtest-cli parsing an answer it did not expect (a configuration or server list that is not what
# speedtest.net sends) fails with these, from inside its own parser; scoped to those calls only
_PARSE_ERRORS = (ValueError, KeyError, IndexError, AttributeError)


def server_entry(url: str) -> dict:
    """speedtest-cli's record of a server given by URL (its upload.php or the folder that holds it)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EngineError(f"speedtest server must be an http:// or https:// URL, got {url!r}")
    path = parts.path if parts.path.endswith("upload.php") else parts.path.rstrip("/") + "/upload.php"
    return {"url": f"{parts.scheme}://{parts.netloc}{path}", "id": "0", "name": parts.hostname,
            "sponsor": parts.hostname, "country": "", "cc": "", "lat": "0", "lon": "0", "d": 0.0}


def latency_ms(test: Connections, server_url: str) -> float:
    """speedtest-cli's latency of one server: sum of three connect+GETs of latency.txt / 6, in ms; a failed
    one counts 3600 s."""
    parts = urlsplit(os.path.dirname(server_url) + "/latency.txt")
    stamp, total = int(time.time() * 1000), 0.0
    for i in range(3):
        took = 3600.0
        conn = test.connection(parts.netloc, parts.scheme == "https", SMALL_ANSWER, "latency.txt")
        try:
            start = time.perf_counter()
            conn.request("GET", f"{parts.path}?x={stamp}.{i}", headers={"User-Agent": test.user_agent})
            resp = conn.getresponse()
            if resp.status == 200 and resp.read(9) == b"test=test":
                took = time.perf_counter() - start
        except NETWORK_ERRORS:
            pass  # speedtest-cli's rule: an unanswered round trip counts as an hour
        finally:
            conn.close()
        total += took
    return round(total / 6 * 1000, 3)


def make_client(url: str, test: Connections, supplied: dict | None, plan: Callable[[dict], dict]) -> Any:
    """A speedtest-cli client whose every request goes through the test; `supplied` is the configuration to use
    instead of fetching speedtest.net's, which `plan` bounds and cuts to the cap when fetched."""
    st = speedtest_module()
    speedtest_class: Any = st.Speedtest  # a class known only once the lazy import ran

    class Bounded(speedtest_class):
        """speedtest-cli with every request through the test's limits; given a URL, the configuration is
        supplied instead of fetched from speedtest.net."""

        def get_config(self):  # noqa: ANN201 - speedtest-cli's own signature
            test.user_agent = st.build_user_agent()
            self._opener = opener(test, test.user_agent)
            if supplied is not None:
                self.config.update(supplied)
                self.lat_lon = (0.0, 0.0)
                return self.config
            try:
                super().get_config()
            except _PARSE_ERRORS as e:
                raise st.SpeedtestConfigError(f"unreadable configuration ({type(e).__name__}: {e})") from e
            self.config.update(plan(self.config))
            return self.config

        def get_best_server(self, servers=None):  # noqa: ANN001, ANN201 - speedtest-cli's own signature
            """speedtest-cli's choice (lowest latency), its three GETs made through the test's connections."""
            servers = servers or self.closest or self.get_closest_servers()
            results = {latency_ms(test, server["url"]): server for server in servers}
            if not results:
                raise st.SpeedtestBestServerFailure("Unable to connect to servers to test latency.")
            fastest = min(results)
            best = results[fastest]
            best["latency"] = fastest
            self.results.ping, self.results.server = fastest, best
            self._best.update(best)
            return best

        def download(self, callback=None, threads=None):  # noqa: ANN001, ANN201 - speedtest-cli's signature
            """speedtest-cli's files, each thread fetching the next as soon as its own ends."""
            return download(self, threads)

        def upload(self, callback=None, pre_allocate=True, threads=None):  # noqa: ANN001, ANN201 - its signature
            """speedtest-cli's uploads, each thread sending the next as soon as its own ends."""
            return upload(self, threads)

    try:
        client = Bounded(source_address=None, timeout=test.timeout)
    except st.ConfigRetrievalError as e:
        raise EngineError(f"cannot fetch speedtest.net's configuration ({e or 'no answer'}); "
                          "set engines.speedtest.server to test against a known server") from None
    if url:
        client.get_best_server([server_entry(url)])
    return client


def choose_server(client: Any, ids: list[int]) -> None:
    """Fetch speedtest.net's server list (only these ids, if any) and pick the one with the lowest latency."""
    st = speedtest_module()
    try:
        try:
            client.get_servers(ids or None)
        except _PARSE_ERRORS as e:
            raise st.ServersRetrievalError(f"unreadable server list ({type(e).__name__}: {e})") from e
        client.get_best_server()
    except (st.NoMatchedServers, st.SpeedtestBestServerFailure, st.ServersRetrievalError) as e:
        raise EngineError(f"no usable Ookla server ({type(e).__name__}: {e})") from None


def busy(threads: int, count: int, run_one: Callable[[int], int]) -> int:
    """Run requests 0..count-1 on `threads` threads, each taking the next request as soon as its own ended (not
    joined in order, as speedtest-cli does); return the sum of what run_one returned. What run_one raises stops
    the run and is raised here (speedtest-cli's own network errors end a request inside run_one, quietly)."""
    order, results, lock = itertools.count(), [], threading.Lock()
    errors: list[BaseException] = []

    def work() -> None:
        while not errors:
            with lock:
                i = next(order)
            if i >= count:
                return
            try:
                results.append(run_one(i))
            except BaseException as e:  # noqa: BLE001 - raised again on the caller's thread below
                errors.append(e)

    workers = [threading.Thread(target=work, daemon=True) for _ in range(max(1, min(threads, count)))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return sum(results)


def download(client: Any, threads: int | None = None) -> float:
    """speedtest-cli's download: its files (each size, `counts` times, smallest first) read by its HTTPDownloader
    until its time limit, on `busy` threads; sets its results as it does (bits/s over the whole run)."""
    st, config = speedtest_module(), client.config
    folder = os.path.dirname(client.best["url"])
    urls = [f"{folder}/random{size}x{size}.jpg" for size in config["sizes"]["download"]
            for _ in range(config["counts"]["download"])]
    start = time.perf_counter()  # speedtest-cli's timeit.default_timer

    def one(i: int) -> int:
        request = st.build_request(urls[i], bump=i, secure=client._secure)
        reader = st.HTTPDownloader(i, request, start, config["length"]["download"], opener=client._opener,
                                   shutdown_event=client._shutdown_event)
        reader.run()  # on this thread: speedtest-cli's reading, its errors ending the file quietly
        return sum(reader.result)

    client.results.bytes_received = busy(threads or config["threads"]["download"], len(urls), one)
    client.results.download = client.results.bytes_received / (time.perf_counter() - start) * 8.0
    if client.results.download > 100000:
        config["threads"]["upload"] = 8  # speedtest-cli's rule
    return client.results.download


def upload(client: Any, threads: int | None = None) -> float:
    """speedtest-cli's upload: its sizes (`counts` of each, up to upload_max) sent by its HTTPUploader until its
    time limit, on `busy` threads; sets its results as it does. Each size's body (speedtest-cli's own content) is
    made once, before the clock starts, and read by every request of that size: speedtest-cli makes one a request,
    all ~50 at once when pre-allocating (up to 7 MB each)."""
    st, config = speedtest_module(), client.config
    sizes = [size for size in config["sizes"]["upload"] for _ in range(config["counts"]["upload"])]
    sizes = sizes[: config["upload_max"]]
    length = config["length"]["upload"]
    bodies = {size: _body(st, size) for size in set(sizes)}

    class Shared(st.HTTPUploaderData):  # type: ignore[name-defined]  # known once speedtest-cli is imported
        """speedtest-cli's upload data, reading the body made once for its size."""

        def pre_allocate(self) -> None:
            self._data = io.BytesIO(bodies[self.length])  # shares the bytes: nothing is copied

    start = time.perf_counter()

    def one(i: int) -> int:
        data = Shared(sizes[i], 0, length, shutdown_event=client._shutdown_event)
        request = st.build_request(client.best["url"], data, secure=client._secure,
                                   headers={"Content-length": sizes[i]})
        sender = st.HTTPUploader(i, request, start, sizes[i], length, opener=client._opener,
                                 shutdown_event=client._shutdown_event)
        sender.run()
        return int(sender.result)

    client.results.bytes_sent = busy(threads or config["threads"]["upload"], len(sizes), one)
    client.results.upload = client.results.bytes_sent / (time.perf_counter() - start) * 8.0
    return client.results.upload


def _body(st: Any, size: int) -> bytes:
    """speedtest-cli's upload body, as its HTTPUploaderData makes it, exactly `size` bytes: its 36-character
    pattern, rounded down, leaves the 65,536-byte body 7 bytes short of the Content-Length sent with it, and a
    server reading what was announced waits for bytes that never come (padded here with its own '0')."""
    maker = st.HTTPUploaderData(size, 0, 0)
    maker.pre_allocate()
    return maker.data.getvalue().ljust(size, b"0")[:size]


def sampled(test: Connections, way: int,
            direction: Callable[[], object]) -> tuple[list[tuple[float, int]], list[int | None]]:
    """Run one direction of speedtest-cli; return cumulative (s, bytes) kernel counts taken while it ran (way 0:
    acknowledged by the server, 1: received), [] without kernel counts, and with each the data segments that had
    arrived (None where not known)."""
    samples: list[tuple[float, int]] = []
    segments: list[int | None] = []
    done = threading.Event()
    start = time.perf_counter()

    def read() -> bool:
        before = time.perf_counter()
        counts, arrived = test.reading()
        after = time.perf_counter()
        if counts is None:
            return False
        if after - before <= MAX_SAMPLE_SPREAD_S:
            samples.append(((before + after) / 2 - start, counts[way]))
            segments.append(arrived)
        return True

    def sample() -> None:
        while read() and not done.wait(SAMPLE_EVERY_S):
            pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        direction()
    finally:
        done.set()
        sampler.join()
    return (samples, segments) if read() else ([], [])


def steady_mbps(samples: list[tuple[float, int]]) -> float:
    """A direction's rate from its kernel samples: from its first byte to its last, the ramp-up left out."""
    first = next((i for i, (_, b) in enumerate(samples) if b != samples[0][1]), len(samples))
    moving = rates.last_change(samples[max(first - 1, 0):])  # before the first byte: speedtest-cli preparing
    if len(moving) < 2 or moving[-1][0] <= moving[0][0]:
        return 0.0
    if moving[-1][0] - moving[0][0] < MIN_STEADY_S:
        return (moving[-1][1] - moving[0][1]) * 8 / (moving[-1][0] - moving[0][0]) / 1e6
    return rates.steady_mbps(moving)


def run_directions(client: Any, test: Connections) -> tuple[Any, tuple[float, float, str] | None]:
    """Download then upload; return speedtest-cli's results and (download, upload) Mbit/s from the kernel's
    counts with what the download was rated by ("segments" or "bytes", as the http engine's), None without kernel
    counts. Each direction ends with its connections reset."""
    down, segments = sampled(test, 1, client.download)
    test.settle()
    test.check()
    up, _ = sampled(test, 0, client.upload)
    test.settle()
    test.check()
    if not down or not up:
        return client.results, None
    arrived = rates.arrived(down, segments, test.mss)  # see rates.arrived: bytes lag behind a loss, segments not
    return client.results, (steady_mbps(arrived or down), steady_mbps(up), "segments" if arrived else "bytes")
