"""The `http` engine: LibreSpeed's open protocol, several TCP streams, kernel-counted bytes.

Download: parallel GETs of `garbage?ckSize=N` (N MiB of random bytes). Upload: parallel POSTs to
`empty`. Latency: small GETs to `empty` on one kept-alive connection, idle and during the download.
Bytes are what the kernel says the peer acknowledged (upload) or what arrived (download), so data
still sitting in a send buffer is never counted as sent. Every answer is read through a byte ceiling
(what was asked for, or a few KiB for a ping or getIP) and counts against the cap; the whole test
ends by its deadline (agent/engines/limits.py), whatever the server does. With a server list (`servers`),
the server is chosen first (agent/engines/selection.py) and named in the result with how it was chosen.
"""

from __future__ import annotations

import dataclasses
import functools
import http.client
import os
import random
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from xaprobe import __version__
from xaprobe.agent.engines import rates
from xaprobe.agent.engines.base import NETWORK_ERRORS, EngineError, RunRequest, describe_error
from xaprobe.agent.engines.httpsession import (
    USER_AGENT,
    Budget,
    Endpoints,
    Session,
    Tally,
    open_get,
    require_ok,
)
from xaprobe.agent.engines.librespeed import check_garbage, discover, parse_get_ip
from xaprobe.agent.engines.limits import HEAD_ROOM, SMALL_ANSWER, LimitExceeded, bound_next_answer, deadline_s
from xaprobe.agent.engines.pings import KEEPALIVE, Pinger
from xaprobe.agent.engines.selection import Choice, NoServerAnswered, choose_from_list
from xaprobe.agent.engines.sockets import ByteMeter
from xaprobe.months import utc_now
from xaprobe.tomlschema import setting
from xaprobe.wire import Measurement, Method, Server, new_id

MIB = 1 << 20
READ_SIZE = 256 * 1024
WRITE_SIZE = 128 * 1024
UPLOAD_BODY = 32 * MIB
DOWNLOAD_CHUNKS = 100
SAMPLE_EVERY_S = 0.05
MAX_SAMPLE_SPREAD_S = 0.002
PING_EVERY_S = 0.2


@dataclasses.dataclass(frozen=True)
class Settings:
    """The [engines.http] table of agent.toml."""

    server: str = setting("", "A LibreSpeed-compatible server: the collector's own /speedtest/, a provincial "
                              "server, ...", url=True)
    servers: str = setting("", "A LibreSpeed server list (JSON: name, server, dlURL, ulURL, pingURL, getIpURL, "
                               "optional id, and an optional operator: a name or list of names whose links prefer "
                               "that server), read before each test; when set, used instead of `server`: the test "
                               "runs against the answering server with the lowest ping, the link operator's first. "
                               "A URL is fetched over the link (1 MiB at most, no redirects); a `//host/` server "
                               "takes the list URL's scheme, http from a file.", path_or_url=True)
    select_timeout_s: float = setting(5.0, "Seconds each server of the list may take to answer its few "
                                           "selection pings; one that does not is skipped.", low=1.0, high=60.0)
    paths: str = setting("auto", '"plain" for /garbage, /empty, /getIP; "php" for LibreSpeed\'s garbage.php, '
                                 'empty.php, getIP.php; "auto" finds which the server has.',
                         choices=("auto", "plain", "php"))
    streams: int = setting(4, "Parallel TCP streams per direction.", low=1, high=32)
    duration_s: float = setting(10.0, "Seconds per direction.", low=1.0, high=120.0)
    cap_mb: float = setting(0.0, "At most this many MB per direction per test (0: no cap). The planner caps tests "
                                 "by itself when a link's monthly budget runs short.")
    latency_samples: int = setting(12, "Idle latency round trips.", low=10, high=100)
    timeout_s: float = setting(10.0, "Timeout in seconds for each network operation.", low=1.0, high=120.0)


def _read_download(s: Session, conn: http.client.HTTPConnection, meter: ByteMeter, chunks: int) -> None:
    asked = chunks * MIB
    resp = open_get(conn, s.ep.garbage, asked + HEAD_ROOM, f"{s.ep.garbage} ({chunks} MiB asked)",
                     f"ckSize={chunks}&")
    got = 0
    while not s.stop.is_set() and not resp.isclosed():
        data = resp.read1(READ_SIZE)
        if not data:
            break
        got += len(data)
        meter.count_app(len(data))
    if not s.stop.is_set():
        resp.read()  # read1 leaves a fully read body open; this ends it so the next GET can go
        check_garbage(s.ep, asked, got, resp.getheader("Content-Length"))
        s.received.refund(asked - got)  # a server may send less than asked (its own ckSize limit)


def _download_stream(s: Session, meter: ByteMeter) -> None:
    try:
        conn = s.connection(meter)
        while not s.stop.is_set():
            chunks = s.received.claim(DOWNLOAD_CHUNKS * MIB, MIB) // MIB
            if not chunks:
                return
            _read_download(s, conn, meter, chunks)
    except NETWORK_ERRORS as e:
        s.fail(e)
    except Exception as e:  # noqa: BLE001 - not caught: handed to run(), which raises it
        s.crashed(e)


@functools.cache
def _payload() -> bytes:
    """Incompressible upload bytes, made on the first upload (not at import: parsing a config imports this
    module) and shared by every stream after it."""
    return os.urandom(MIB)


def _post(s: Session, conn: http.client.HTTPConnection, meter: ByteMeter, size: int) -> bool:
    """Send one upload body of size bytes; return False when the test stopped before it was answered."""
    payload = memoryview(_payload())
    bound_next_answer(conn, SMALL_ANSWER, f"{s.ep.upload} (an upload answer)", s.received.charge)
    conn.putrequest("POST", f"{s.ep.upload}?r={random.random()}", skip_accept_encoding=True)
    conn.putheader("User-Agent", USER_AGENT)
    conn.putheader("Content-Type", "application/octet-stream")
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    sent = 0
    while sent < size and not s.stop.is_set():
        n = min(WRITE_SIZE, size - sent)
        offset = sent % (len(payload) - WRITE_SIZE)
        conn.send(payload[offset:offset + n])
        sent += n
        meter.count_app(n)
    if s.stop.is_set():
        return False
    resp = conn.getresponse()
    resp.read()
    require_ok(resp, s.ep.upload)
    return True


def _upload_stream(s: Session, meter: ByteMeter, budget: Budget) -> None:
    try:
        conn = s.connection(meter)
        while not s.stop.is_set():
            size = budget.claim(UPLOAD_BODY, WRITE_SIZE)
            if not size or not _post(s, conn, meter, size):
                return
    except NETWORK_ERRORS as e:
        s.fail(e)
    except Exception as e:  # noqa: BLE001 - not caught: handed to run(), which raises it
        s.crashed(e)


def _pinger(s: Session, method: str, out: list[float], until: threading.Event) -> None:
    try:
        pinger = Pinger(s, method)
        while not until.wait(PING_EVERY_S) and not s.stop.is_set() and not s.received.spent:
            out.append(pinger.sample())
    except NETWORK_ERRORS:
        pass  # a lost loaded-latency sample is not a failed test
    except Exception as e:  # noqa: BLE001 - not caught: handed to run(), which raises it
        s.crashed(e)


def _sample(s: Session, meter: ByteMeter, threads: list[threading.Thread],
            duration: float) -> tuple[list[tuple[float, int]], list[int | None]]:
    """Cumulative (s, bytes) readings every SAMPLE_EVERY_S until duration, the streams' end or a stop, and the
    data segments arrived at each (None where not known)."""
    start = time.perf_counter()
    samples = [(0.0, 0)]
    segments: list[int | None] = [0]
    deadline = start + duration
    while (now := time.perf_counter()) < deadline and not s.stop.is_set():
        time.sleep(min(SAMPLE_EVERY_S, max(0.0, deadline - now)))
        before = time.perf_counter()
        total, arrived = meter.reading()
        after = time.perf_counter()
        # a sample whose reading took long (the sampler was descheduled on a busy board) cannot say
        # when its bytes were counted: it is left out rather than skew the rate
        if after - before <= MAX_SAMPLE_SPREAD_S:
            samples.append(((before + after) / 2 - start, total))
            segments.append(arrived)
        if not any(t.is_alive() for t in threads):
            break
    return samples, segments


def _transfer(s: Session, upload: bool, streams: int, duration: float, cap: int,
              rtts_loaded: list[float] | None = None, ping_method: str = KEEPALIVE) -> tuple[float, bool, str]:
    """Run one direction; return (steady Mbit/s, capped, what it was rated by: "segments" or "bytes")."""
    s.check()
    s.stop.clear()
    meter = ByteMeter(upload)
    budget = Budget(cap, streams) if upload else s.received
    threads = [threading.Thread(target=_upload_stream, args=(s, meter, budget), daemon=True) if upload else
               threading.Thread(target=_download_stream, args=(s, meter), daemon=True) for _ in range(streams)]
    done = threading.Event()
    pinger = None
    if rtts_loaded is not None:
        pinger = threading.Thread(target=_pinger, args=(s, ping_method, rtts_loaded, done), daemon=True)
    for t in threads + ([pinger] if pinger else []):
        t.start()
    samples, segments = _sample(s, meter, threads, duration)
    done.set()
    s.abort_all()
    for t in threads + ([pinger] if pinger else []):
        t.join(timeout=5)
    s.close_all()
    if upload:
        s.count_app(up=meter.app_bytes)
    else:
        s.count_app(down=meter.app_bytes)
    if not meter.kernel:
        s.kernel_counts = False
    s.check()
    if s.errors:
        raise EngineError(s.errors[0])
    arrived = None if upload else rates.arrived(samples, segments, meter.mss)
    series = arrived or samples
    if budget.hit:
        series = rates.last_change(series)
    mbps = rates.steady_mbps(series)
    if round(mbps, 3) <= 0:  # under 1 kbit/s (a drip of header bytes) is stored as 0: nothing measured
        way = "was taken by" if upload else "arrived from"
        raise EngineError(f"nothing {way} {s.ep.where} in {duration:g} s of {'upload' if upload else 'download'}")
    return mbps, budget.hit, "segments" if arrived else "bytes"


def _client_info(s: Session) -> tuple[str, str]:
    try:
        # isp=true: LibreSpeed adds the ISP (and distance) only when asked
        conn = s.connection()
        body = open_get(conn, s.ep.get_ip, SMALL_ANSWER, f"{s.ep.get_ip} (a getIP answer)", "isp=true&",
                        s.received.charge).read()
    except LimitExceeded:
        raise  # a getIP answer of megabytes is a server that lies, not a missing endpoint
    except NETWORK_ERRORS:
        s.check()
        return "", ""  # the client's address is context, not the measurement
    info = parse_get_ip(body)
    return info.ip, info.isp


@dataclasses.dataclass(frozen=True)
class _Figures:
    down: float
    up: float
    latency: float | None
    jitter: float | None
    loaded: float | None
    capped: bool
    ip: str
    isp: str
    method: Method


def _measure(s: Session, settings: Settings, cap: int, url: str, given: Endpoints | None) -> _Figures:
    s.ep = discover(s, url, settings.paths, given)
    s.close_all()
    pinger = Pinger(s)
    pinger.warm_up()
    idle = [pinger.sample() for _ in range(settings.latency_samples)]
    s.close_all()
    latency, jitter = rates.latency_stats(idle)
    ip, isp = _client_info(s)
    loaded: list[float] = []
    down, cap_down, rated_by = _transfer(s, False, settings.streams, settings.duration_s, cap, loaded,
                                         pinger.method)
    time.sleep(0.2)  # let the download's last packets drain before the upload starts
    up, cap_up, _ = _transfer(s, True, settings.streams, settings.duration_s, cap)
    loaded_latency, _ = rates.latency_stats(loaded)
    return _Figures(down, up, latency, jitter, loaded_latency, cap_down or cap_up, ip, isp,
                    Method(latency=pinger.method, layout="php" if s.ep.empty.endswith(".php") else "plain",
                           download_rate=rated_by))


def _moved(tally: Tally, method: Method) -> dict[str, Any]:
    """The run's byte counts (its server's choice included) and how they were taken: the kernel's over every
    socket, or (where a socket could not say) what the run itself read and wrote, never a mix."""
    if tally.kernel_counts:
        return {"bytes_down": tally.down, "bytes_up": tally.up, "method": dataclasses.replace(method, bytes="kernel")}
    return {"bytes_down": tally.app_down, "bytes_up": tally.app_up, "method": dataclasses.replace(method, bytes="app")}


def _rounded(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def _chosen(request: RunRequest, settings: Settings, base: Measurement,
            tally: Tally) -> tuple[Choice | None, Measurement]:
    """The server list's choice for this link and the Measurement naming it, or (None, the failed Measurement
    saying why no server was chosen, with the bytes the choice moved)."""
    try:
        choice = choose_from_list(settings.servers, request, settings.timeout_s, settings.select_timeout_s,
                                  settings.paths, tally)
    except NoServerAnswered as e:
        return None, dataclasses.replace(base, error=str(e), **_moved(tally, Method(candidates=e.candidates)))
    except EngineError as e:
        return None, dataclasses.replace(base, error=str(e), **_moved(tally, Method()))
    entry = choice.entry
    return choice, dataclasses.replace(base, server=Server(url=entry.url, id=entry.id, name=entry.name))


def run(request: RunRequest, settings: Settings, server: str | None = None) -> Measurement:
    """Measure latency, download and upload against a LibreSpeed server (the one given, else the best of the
    server list, else the configured one) within one deadline; network failures are Measurements,
    programming errors are raised."""
    started = utc_now()
    clock = time.perf_counter()
    url = server or settings.server
    cap = request.cap_bytes or int(settings.cap_mb * 1_000_000)
    base = Measurement(id=new_id(), started_at=started, engine="http", status="failed",
                       server=Server(url=url, name=urlsplit(url).hostname or ""), link=request.link,
                       agent_version=__version__)
    choice = None
    tally = Tally()
    if not server and settings.servers:
        base = dataclasses.replace(base, server=Server())
        choice, base = _chosen(request, settings, base, tally)
        if choice is None:
            return dataclasses.replace(base, duration_s=round(time.perf_counter() - clock, 3))
        url = choice.entry.url
    if not url:
        return dataclasses.replace(base, error="no server given (set engines.http.server or servers, or use "
                                               "--server URL)")
    try:
        ep = Endpoints.from_url(url, "plain" if settings.paths == "auto" else settings.paths)
    except EngineError as e:
        return dataclasses.replace(base, error=str(e), **_moved(tally, choice.noted(Method()) if choice else Method()))
    s = Session(ep, request, settings.timeout_s, deadline_s(2 * settings.duration_s, settings.timeout_s),
                 cap, settings.streams)
    with s.deadline.running():
        try:
            f = _measure(s, settings, cap, url, choice.entry.endpoints if choice else None)
        except NETWORK_ERRORS as e:
            s.close_all()
            s.raise_crash()  # a programming error in a stream is raised even when the network failed too
            error = s.deadline.message if s.deadline.expired.is_set() else describe_error(e, ep.where)
            tally.add(s)
            return dataclasses.replace(base, error=error, duration_s=round(time.perf_counter() - clock, 3),
                                       **_moved(tally, choice.noted(Method()) if choice else Method()))
        finally:
            s.close_all()
    tally.add(s)
    return dataclasses.replace(
        base, status="ok", download_mbps=round(f.down, 3), upload_mbps=round(f.up, 3),
        latency_ms=_rounded(f.latency), jitter_ms=_rounded(f.jitter), loaded_latency_ms=_rounded(f.loaded),
        capped=f.capped, client_ip=f.ip, isp=f.isp, duration_s=round(time.perf_counter() - clock, 3),
        **_moved(tally, choice.noted(f.method) if choice else f.method))
