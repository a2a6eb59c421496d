"""The `speedtest` engine: Ookla's servers through the speedtest-cli library, kept inside this module.

speedtest-cli fetches speedtest.net's configuration in its constructor and its server lists in
get_servers(); both fail often (403s, rate limits, no internet). Each failure becomes a failed
Measurement with a reason. Given a server URL (a Speedtest Mini / OoklaServer `upload.php` or its
folder), the engine supplies the public configuration's values itself and hands speedtest-cli an
explicit server list, so it runs with no request to speedtest.net at all. Sizes and counts are cut
so that a byte cap per direction holds. `latency_ms` is what speedtest-cli reports (half the mean of
three connect+GET round trips): it is kept as speedtest-cli's users know it.

Every request speedtest-cli makes goes through this module's opener and connections (agent/engines/
limits.py): no answer is read past its planned size (a random file's own size, a few KiB for an upload
or latency answer, 1 MiB for speedtest.net's lists), nothing arrives gzip-encoded, a file or an upload
follows no redirect, and the whole test ends by its deadline, its sockets cut.
"""

from __future__ import annotations

import dataclasses
import fcntl
import http.client
import math
import os
import re
import socket
import struct
import threading
import time
import urllib.request
from collections.abc import Callable
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from xaprobe import __version__
from xaprobe.agent.engines.base import NETWORK_ERRORS, EngineError, RunRequest, describe_error
from xaprobe.agent.engines.limits import (
    HEAD_ROOM,
    SMALL_ANSWER,
    Deadline,
    LimitExceeded,
    bound_next_answer,
    cut_socket,
    deadline_s,
)
from xaprobe.agent.engines.sockets import abort, tcp_counters
from xaprobe.months import utc_now
from xaprobe.tomlschema import setting
from xaprobe.wire import Measurement, Method, Server, new_id

# Ookla's random{N}x{N}.jpg sizes in bytes, to plan a byte cap before the test
DOWNLOAD_BYTES = {350: 245388, 500: 505544, 750: 1118012, 1000: 1986284, 1500: 4468241, 2000: 7907740,
                  2500: 12407926, 3000: 17816816, 3500: 24262167, 4000: 31625365}
UPLOAD_SIZES = [32768, 65536, 131072, 262144, 524288, 1048576, 7340032]
SIOCGIFADDR = 0x8915
LIST_ANSWER = 1 << 20  # speedtest.net's configuration and server lists: tens of KiB in practice
_RANDOM_FILE = re.compile(r"/random(\d+)x\1\.jpg$")
# what speedtest.net's configuration may ask at most: its public values are 10 s, 8 threads, 4 per URL, 50 uploads
MAX_LENGTH_S, MAX_THREADS, MAX_PER_URL, MAX_UPLOADS = 15, 16, 8, 100


@dataclasses.dataclass(frozen=True)
class Settings:
    """The [engines.speedtest] table of agent.toml."""

    server: str = setting("", "An Ookla/Speedtest-Mini server's upload URL (e.g. http://host/speedtest/upload.php) "
                              "to test without fetching speedtest.net's configuration; empty: ask speedtest.net "
                              "for the nearest server.", url=True)
    server_ids: tuple[str, ...] = setting((), "Or a list of Ookla server ids to choose from (the nearest of them "
                                              "by latency).")
    cap_mb: float = setting(0.0, "At most this many MB per direction per test (0: no cap).")
    timeout_s: float = setting(10.0, "Timeout in seconds for each network operation.", low=1.0, high=120.0)


def public_config(ratio: int = 5, max_chunks: int = 50) -> dict:
    """The values speedtest.net's public configuration gives, as speedtest-cli keeps them."""
    sizes_up = UPLOAD_SIZES[ratio - 1:]
    count_up = math.ceil(max_chunks / len(sizes_up))
    return {
        "client": {"ip": "", "isp": "", "lat": "0", "lon": "0", "country": ""},
        "ignore_servers": [],
        "sizes": {"upload": sizes_up, "download": list(DOWNLOAD_BYTES)},
        "counts": {"upload": count_up, "download": 4},
        "threads": {"upload": 2, "download": 8},
        "length": {"upload": 10, "download": 10},
        "upload_max": count_up * len(sizes_up),
    }


def sane_config(config: dict) -> dict:
    """Bound what a configuration fetched from the network may ask: test lengths, threads, counts."""
    config = {**config, "counts": dict(config["counts"]), "threads": dict(config["threads"]),
              "length": dict(config["length"])}
    for way in ("upload", "download"):
        config["length"][way] = max(1, min(int(config["length"][way]), MAX_LENGTH_S))
        config["threads"][way] = max(1, min(int(config["threads"][way]), MAX_THREADS))
    config["counts"]["download"] = max(1, min(int(config["counts"]["download"]), MAX_PER_URL))
    config["counts"]["upload"] = max(1, min(int(config["counts"]["upload"]), MAX_UPLOADS))
    config["upload_max"] = max(1, min(int(config["upload_max"]), MAX_UPLOADS))
    return config


def cap_config(config: dict, cap: int) -> dict:
    """Cut download sizes and counts and the upload request count so each direction stays under cap."""
    if not cap:
        return config
    config = {**config, "sizes": dict(config["sizes"]), "counts": dict(config["counts"])}
    sizes = config["sizes"]["download"]
    count = config["counts"]["download"]
    while count > 1 and count * DOWNLOAD_BYTES[sizes[0]] > cap:
        count -= 1
    kept: list[int] = []
    for size in sizes:
        if count * (sum(DOWNLOAD_BYTES[s] for s in kept) + DOWNLOAD_BYTES[size]) > cap:
            break
        kept.append(size)
    config["sizes"]["download"] = kept or sizes[:1]
    config["counts"]["download"] = count
    order = [size for size in config["sizes"]["upload"] for _ in range(config["counts"]["upload"])]
    total, requests = 0, 0
    for size in order[: config["upload_max"]]:
        if total + size > cap:
            break
        total, requests = total + size, requests + 1
    config["upload_max"] = max(requests, 1)
    return config


def interface_address(interface: str) -> str:
    """Return the IPv4 address of an interface (speedtest-cli binds by address, not by interface)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", interface.encode()[:15]))
        except OSError:
            raise EngineError(f"interface {interface} has no IPv4 address (is the link up?)") from None
    return socket.inet_ntoa(packed[20:24])


def _server_entry(url: str) -> dict:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EngineError(f"speedtest server must be an http:// or https:// URL, got {url!r}")
    path = parts.path if parts.path.endswith("upload.php") else parts.path.rstrip("/") + "/upload.php"
    return {"url": f"{parts.scheme}://{parts.netloc}{path}", "id": "0", "name": parts.hostname,
            "sponsor": parts.hostname, "country": "", "cc": "", "lat": "0", "lon": "0", "d": 0.0}


def _speedtest_module() -> ModuleType:
    # speedtest-cli is imported here only, when this engine runs: parsing a config imports this module
    # for its Settings, and a Pi should not load speedtest-cli unless the speedtest engine runs
    import speedtest

    return speedtest


# speedtest-cli parsing an answer it did not expect (a configuration or server list that is not what
# speedtest.net sends) fails with these, from inside its own parser; scoped to those calls only
_PARSE_ERRORS = (ValueError, KeyError, IndexError, AttributeError)


def answer_limit(method: str, url: str) -> tuple[int, str]:
    """The most bytes (headers included) speedtest-cli may read for one request, and what it is."""
    path = urlsplit(url).path
    found = _RANDOM_FILE.search(path)
    if found:
        return DOWNLOAD_BYTES.get(int(found.group(1)), 0) + HEAD_ROOM, path.rsplit("/", 1)[-1]
    if method == "POST" or path.endswith(("latency.txt", ".jpg")):
        return SMALL_ANSWER, path.rsplit("/", 1)[-1]
    return LIST_ANSWER, path.rsplit("/", 1)[-1] or "/"


class _WatchedHTTPS(http.client.HTTPSConnection):
    """A TLS connection whose socket, once wrapped, the test can still cut."""

    watch: Callable[[socket.socket], None]

    def connect(self) -> None:
        super().connect()
        self.watch(self.sock)


class _Test:
    """One speedtest-cli run's limits: every connection it opens is made here, watched and bounded."""

    def __init__(self, where: str, source: str | None, timeout: float, transfer_s: float):
        self.source, self.timeout = ((source, 0) if source else None), timeout
        self.deadline = Deadline(deadline_s(transfer_s, timeout), where, self.cut)
        self.breach: EngineError | None = None
        self.crash: Exception | None = None  # a programming error met on one of speedtest-cli's threads
        self.received = 0  # bytes read through the test's answers, headers included
        self.user_agent = f"xaprobe/{__version__}"
        self._socks: list[socket.socket] = []
        # a second handle on every TCP socket of the test: the kernel's counts outlive speedtest-cli closing
        # it, and at the end each is reset so that nothing the test sent is still crossing the link
        self._twins: list[socket.socket] = []
        self._lock = threading.Lock()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks = [s for s in self._socks if s.fileno() >= 0] + [sock]

    def cut(self) -> None:
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            cut_socket(sock)

    def breached(self, error: EngineError) -> None:
        """A server broke a limit: the test ends now (speedtest-cli would go on to its next file), every
        connection cut and no new one opened."""
        self.breach = self.breach or error
        self.cut()

    def count(self, n: int) -> None:
        self.received += n
        if self.breach is not None or self.deadline.expired.is_set():
            # a read on a connection the test cut: an I/O error, which speedtest-cli's threads end on quietly
            # (a bare end of stream makes http.client raise IncompleteRead, which they do not catch)
            raise LimitExceeded(str(self.breach) if self.breach else self.deadline.message)

    def _open_socket(self, address: tuple[str, int], timeout: object = None, source: object = None) -> socket.socket:
        if self.breach is not None:
            raise LimitExceeded(str(self.breach))
        sock = socket.create_connection(address, self.deadline.timeout(self.timeout), self.source)
        self.watch(sock)
        with self._lock:
            self._twins.append(sock.dup())
        return sock

    def kernel_counts(self) -> tuple[int, int] | None:
        """(bytes the servers acknowledged, bytes received) over every connection so far; None without TCP_INFO."""
        with self._lock:
            counts = [tcp_counters(twin) for twin in self._twins]
        if any(c is None for c in counts):
            return None
        return sum(c[0] for c in counts if c), sum(c[1] for c in counts if c)

    def end(self) -> None:
        """Reset every connection the test opened, so no byte of it still crosses the link after it returns."""
        with self._lock:
            twins, self._twins = self._twins, []
        for twin in twins:
            abort(twin)
            twin.close()

    def connection(self, host: str, https: bool, limit: int, what: str, **tls: Any) -> http.client.HTTPConnection:
        """A connection to host (host[:port]) whose answer is read `limit` bytes at most; cut at the deadline."""
        conn: http.client.HTTPConnection
        if https:
            conn = _WatchedHTTPS(host, timeout=self.timeout, context=tls.get("context"))
            conn.watch = self.watch
        else:
            conn = http.client.HTTPConnection(host, timeout=self.timeout)
        # http.client's own connect hook (private, so not in typeshed)
        conn._create_connection = self._open_socket  # type: ignore[attr-defined]
        bound_next_answer(conn, limit, what, self.count, self.breached)
        return conn

    def check(self) -> None:
        """Raise what ended the test early: a programming error as itself, an answer past its limit, or the
        deadline."""
        if self.crash is not None:
            raise self.crash
        if self.breach is not None:
            raise EngineError(str(self.breach))
        if self.deadline.expired.is_set():
            raise EngineError(self.deadline.message)


class _Handler(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    """urllib's HTTP and HTTPS handling, every connection made by the test; asks for no compression (a gzip
    answer would be inflated whole in memory by speedtest-cli) and refuses one sent anyway."""

    def __init__(self, test: _Test):
        urllib.request.HTTPHandler.__init__(self)
        urllib.request.HTTPSHandler.__init__(self)
        self.test = test

    def _connect(self, req: urllib.request.Request, https: bool) -> Any:
        limit, what = answer_limit(req.get_method(), req.full_url)
        return lambda host, timeout=None, **tls: self.test.connection(host, https, limit, what, **tls)

    def _open(self, req: urllib.request.Request, https: bool) -> Any:
        try:
            return self.do_open(self._connect(req, https), req)  # TLS: the default context, certificates checked
        except NETWORK_ERRORS:
            raise
        except _speedtest_module().SpeedtestUploadTimeout:
            raise  # speedtest-cli's own end of an upload at its time limit, raised from its body's read()
        except Exception as e:
            # on speedtest-cli's threads a programming error would only be printed: the test raises it at the end
            self.test.crash = self.test.crash or e
            raise

    def http_open(self, req: urllib.request.Request) -> Any:
        return self._open(req, False)

    def https_open(self, req: urllib.request.Request) -> Any:
        return self._open(req, True)

    def _request(self, request: urllib.request.Request) -> urllib.request.Request:
        request = self.do_request_(request)
        request.remove_header("Accept-encoding")
        return request

    def _response(self, req: urllib.request.Request, resp: Any) -> Any:
        if resp.headers.get("Content-Encoding", "identity").lower() != "identity":
            breach = LimitExceeded(f"{urlsplit(req.full_url).path}: the server sent a compressed answer though "
                                   "none was asked for")
            self.test.breached(breach)
            raise breach
        return resp

    http_request = https_request = _request
    http_response = https_response = _response


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Redirects for speedtest.net's lists only: a file or an upload answered by a redirect ends the test (a
    test server that sends its files elsewhere is not the server being measured)."""

    def __init__(self, test: _Test):
        self.test = test

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> urllib.request.Request | None:
        if answer_limit(req.get_method(), req.full_url)[0] != LIST_ANSWER:
            where = urlsplit(req.full_url).path.rsplit("/", 1)[-1]
            self.test.breached(EngineError(f"{where}: the server answered {code} redirecting to {newurl[:200]}; "
                                           "a test file follows no redirect"))
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener(test: _Test, user_agent: str) -> urllib.request.OpenerDirector:
    opener = urllib.request.OpenerDirector()
    opener.addheaders = [("User-agent", user_agent)]
    for handler in (urllib.request.ProxyHandler(), _Handler(test), urllib.request.HTTPDefaultErrorHandler(),
                    _Redirects(test), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


def _latency(test: _Test, server_url: str) -> float:
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


def _client(url: str, test: _Test, cap: int) -> Any:
    st = _speedtest_module()
    supplied = cap_config(public_config(), cap) if url else None
    speedtest_class: Any = st.Speedtest  # a class known only once the lazy import ran

    class Bounded(speedtest_class):
        """speedtest-cli with every request through the test's limits; given a URL, the configuration is
        supplied instead of fetched from speedtest.net."""

        def get_config(self):  # noqa: ANN201 - speedtest-cli's own signature
            test.user_agent = st.build_user_agent()
            self._opener = _opener(test, test.user_agent)
            if supplied is not None:
                self.config.update(supplied)
                self.lat_lon = (0.0, 0.0)
                return self.config
            try:
                super().get_config()
            except _PARSE_ERRORS as e:
                raise st.SpeedtestConfigError(f"unreadable configuration ({type(e).__name__}: {e})") from e
            self.config.update(cap_config(sane_config(self.config), cap))
            return self.config

        def get_best_server(self, servers=None):  # noqa: ANN001, ANN201 - speedtest-cli's own signature
            """speedtest-cli's choice (lowest latency), its three GETs made through the test's connections."""
            servers = servers or self.closest or self.get_closest_servers()
            results = {_latency(test, server["url"]): server for server in servers}
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
        client.get_best_server([_server_entry(url)])
    return client


def _choose_server(client: Any, ids: list[int] | None) -> None:
    st = _speedtest_module()
    try:
        try:
            client.get_servers(ids or None)
        except _PARSE_ERRORS as e:
            raise st.ServersRetrievalError(f"unreadable server list ({type(e).__name__}: {e})") from e
        client.get_best_server()
    except (st.NoMatchedServers, st.SpeedtestBestServerFailure, st.ServersRetrievalError) as e:
        raise EngineError(f"no usable Ookla server ({type(e).__name__}: {e})") from None


def _run_client(url: str, settings: Settings, test: _Test, cap: int, where: str) -> Any:
    """Choose the server, download, upload; return speedtest-cli's results once they moved data."""
    client = _client(url, test, cap)
    if not url:
        _choose_server(client, [int(i) for i in settings.server_ids])
    test.check()
    if client.results.ping >= 1000 * 3600 / 2:  # speedtest-cli's "3600 s" for a failed ping
        raise EngineError(f"the server {where} did not answer latency.txt (is it a Speedtest server?)")
    client.download()
    test.check()
    before = test.kernel_counts()
    client.upload(pre_allocate=False if cap else True)
    test.check()
    results = client.results
    if not results.bytes_received or not results.bytes_sent:
        raise EngineError(f"no data moved to or from {where} (speedtest-cli hides the reason)")
    after = test.kernel_counts()
    if before is not None and after is not None and results.upload > 0:
        # speedtest-cli counts what it handed to the socket (up to 1.17 of the ceiling on a slow link): the
        # rate is what the server acknowledged, over speedtest-cli's own upload time
        elapsed = results.bytes_sent * 8 / results.upload
        results.upload = (after[0] - before[0]) * 8 / elapsed
    return results


def run(request: RunRequest, settings: Settings, server: str | None = None) -> Measurement:
    """Run speedtest-cli once over the link within one deadline; network failures are Measurements with a
    reason, programming errors are raised."""
    started, clock = utc_now(), time.perf_counter()
    url = server or settings.server
    cap = request.cap_bytes or int(settings.cap_mb * 1_000_000)
    base = Measurement(id=new_id(), started_at=started, engine="speedtest", status="failed",
                       server=Server(url=url), link=request.link, agent_version=__version__)
    where = urlsplit(url).netloc if url else "speedtest.net"
    st = _speedtest_module()
    test: _Test | None = None
    # speedtest.net's own configuration may ask longer tests than the public one, up to MAX_LENGTH_S a way
    lengths = public_config()["length"] if url else {"download": MAX_LENGTH_S, "upload": MAX_LENGTH_S}
    try:
        source = request.source_address or (interface_address(request.bind_interface)
                                            if request.bind_interface else None)
        test = _Test(where, source, settings.timeout_s, lengths["download"] + lengths["upload"])
        with test.deadline.running():
            try:
                results = _run_client(url, settings, test, cap, where)
                kernel = test.kernel_counts()
            finally:
                test.end()
    except (*NETWORK_ERRORS, st.SpeedtestException) as e:
        moved = test.received if test else 0  # what was read before the failure, headers included
        return dataclasses.replace(base, error=describe_error(e, where), bytes_down=moved,
                                   duration_s=round(time.perf_counter() - clock, 3))
    best = results.server or {}
    return dataclasses.replace(
        base, status="ok", download_mbps=round(results.download / 1e6, 3), upload_mbps=round(results.upload / 1e6, 3),
        latency_ms=round(results.ping, 3),
        bytes_down=kernel[1] if kernel else int(results.bytes_received),
        bytes_up=kernel[0] if kernel else int(results.bytes_sent),
        capped=bool(cap), server=Server(url=best.get("url", url), id=str(best.get("id") or "") or None,
                                        name=best.get("sponsor") or best.get("name") or ""),
        client_ip=(results.client or {}).get("ip", "")[:64], isp=(results.client or {}).get("isp", "")[:200],
        duration_s=round(time.perf_counter() - clock, 3), method=Method(bytes="kernel" if kernel else "app",
                                                                    latency="speedtest-cli"))
