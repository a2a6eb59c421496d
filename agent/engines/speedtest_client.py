"""speedtest-cli driven through one test's connections: its server chosen, then each direction run and rated
from the kernel's byte counts over the direction's steady part, as the http engine and iperf3 rate theirs.

speedtest-cli rates a direction by what it read or handed to sendall over its whole 10 s, TCP's start
included (each of its ~50 files or uploads is a new connection that starts slowly). Sampling the kernel's
counts (acknowledged by the server for upload, received for download) every SAMPLE_EVERY_S during the
direction and leaving out the ramp-up by the rule in rates.py measures the same traffic the way the other
engine and the reference do; what is left below iperf3 at long RTT is speedtest-cli's own traffic (new
connections, fixed sizes), documented in bench/accuracy_emulated.py.
"""

from __future__ import annotations

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


def sampled(test: Connections, way: int, direction: Callable[[], object]) -> list[tuple[float, int]]:
    """Run one direction of speedtest-cli; return cumulative (s, bytes) kernel counts taken while it ran (way 0:
    acknowledged by the server, 1: received), [] without kernel counts."""
    samples: list[tuple[float, int]] = []
    done = threading.Event()
    start = time.perf_counter()

    def read() -> bool:
        before = time.perf_counter()
        counts = test.kernel_counts()
        after = time.perf_counter()
        if counts is None:
            return False
        if after - before <= MAX_SAMPLE_SPREAD_S:
            samples.append(((before + after) / 2 - start, counts[way]))
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
    return samples if read() else []


def steady_mbps(samples: list[tuple[float, int]]) -> float:
    """A direction's rate from its kernel samples: from its first byte to its last, the ramp-up left out."""
    first = next((i for i, (_, b) in enumerate(samples) if b != samples[0][1]), len(samples))
    moving = rates.last_change(samples[max(first - 1, 0):])  # before the first byte: speedtest-cli preparing
    if len(moving) < 2 or moving[-1][0] <= moving[0][0]:
        return 0.0
    if moving[-1][0] - moving[0][0] < MIN_STEADY_S:
        return (moving[-1][1] - moving[0][1]) * 8 / (moving[-1][0] - moving[0][0]) / 1e6
    return rates.steady_mbps(moving)


def run_directions(client: Any, test: Connections, cap: int) -> tuple[Any, tuple[float, float] | None]:
    """Download then upload; return speedtest-cli's results and (download, upload) Mbit/s from the kernel's
    counts (None without them). Each direction ends with its connections reset."""
    down = sampled(test, 1, client.download)
    test.settle()
    test.check()
    up = sampled(test, 0, lambda: client.upload(pre_allocate=False if cap else True))
    test.settle()
    test.check()
    if not down or not up:
        return client.results, None
    return client.results, (steady_mbps(down), steady_mbps(up))
