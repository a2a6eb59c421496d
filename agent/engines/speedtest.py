"""The `speedtest` engine: Ookla's servers through the speedtest-cli library, kept inside this engine's modules.

speedtest-cli fetches speedtest.net's configuration in its constructor and its server lists in
get_servers(); both fail often (403s, rate limits, no internet). Each failure becomes a failed
Measurement with a reason. Given a server URL (a Speedtest Mini / OoklaServer `upload.php` or its
folder), the engine supplies the public configuration's values itself and hands speedtest-cli an
explicit server list, so it runs with no request to speedtest.net at all. Sizes and counts are cut
so that a byte cap per direction holds (speedtest_plan.py). Every request goes through the test's own
connections (speedtest_connections.py): bounded, cut at the deadline, counted by the kernel, reset when a
direction ends. Rates are the kernel's counts over each direction's steady part (speedtest_client.py).
`latency_ms` is what speedtest-cli reports (half the mean of three connect+GET round trips): it is kept
as speedtest-cli's users know it.
"""

from __future__ import annotations

import dataclasses
import fcntl
import socket
import struct
import time
from typing import Any
from urllib.parse import urlsplit

from xaprobe import __version__
from xaprobe.agent.engines.base import NETWORK_ERRORS, EngineError, RunRequest, describe_error
from xaprobe.agent.engines.speedtest_client import choose_server, make_client, run_directions
from xaprobe.agent.engines.speedtest_connections import Connections, speedtest_module
from xaprobe.agent.engines.speedtest_plan import (  # noqa: F401 - DOWNLOAD_BYTES: the engine's planned sizes
    DOWNLOAD_BYTES,
    MAX_LENGTH_S,
    cap_config,
    public_config,
    sane_config,
)
from xaprobe.months import utc_now
from xaprobe.tomlschema import setting
from xaprobe.wire import Measurement, Method, Server, new_id

SIOCGIFADDR = 0x8915


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


def interface_address(interface: str) -> str:
    """Return the IPv4 address of an interface (speedtest-cli binds by address, not by interface)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", interface.encode()[:15]))
        except OSError:
            raise EngineError(f"interface {interface} has no IPv4 address (is the link up?)") from None
    return socket.inet_ntoa(packed[20:24])


def _run_client(url: str, settings: Settings, test: Connections, cap: int, where: str) -> tuple[Any, str]:
    """Choose the server, download, upload; return speedtest-cli's results, rated by the kernel's counts when
    there are any, once they moved data, and what the download was rated by ("" without kernel counts)."""
    supplied = cap_config(public_config(), cap) if url else None
    client = make_client(url, test, supplied, lambda config: cap_config(sane_config(config), cap))
    if not url:
        choose_server(client, [int(i) for i in settings.server_ids])
    test.check()
    if client.results.ping >= 1000 * 3600 / 2:  # speedtest-cli's "3600 s" for a failed ping
        raise EngineError(f"the server {where} did not answer latency.txt (is it a Speedtest server?)")
    results, kernel = run_directions(client, test)
    if not results.bytes_received or not results.bytes_sent:
        raise EngineError(f"no data moved to or from {where} (speedtest-cli hides the reason)")
    if kernel is not None:
        # speedtest-cli's own rates count bytes handed to sendall (up to 1.17 of the ceiling on a slow link) and
        # each connection's slow start: the kernel's counts over the steady part replace them
        results.download, results.upload = kernel[0] * 1e6, kernel[1] * 1e6
    return results, kernel[2] if kernel is not None else ""


def run(request: RunRequest, settings: Settings, server: str | None = None) -> Measurement:
    """Run speedtest-cli once over the link within one deadline; network failures are Measurements with a
    reason, programming errors are raised."""
    started, clock = utc_now(), time.perf_counter()
    url = server or settings.server
    cap = request.cap_bytes or int(settings.cap_mb * 1_000_000)
    base = Measurement(id=new_id(), started_at=started, engine="speedtest", status="failed",
                       server=Server(url=url), link=request.link, agent_version=__version__)
    where = urlsplit(url).netloc if url else "speedtest.net"
    st = speedtest_module()
    test: Connections | None = None
    # speedtest.net's own configuration may ask longer tests than the public one, up to MAX_LENGTH_S a way
    lengths = public_config()["length"] if url else {"download": MAX_LENGTH_S, "upload": MAX_LENGTH_S}
    try:
        source = request.source_address or (interface_address(request.bind_interface)
                                            if request.bind_interface else None)
        test = Connections(where, source, settings.timeout_s, lengths["download"] + lengths["upload"])
        with test.deadline.running():
            try:
                results, rated_by = _run_client(url, settings, test, cap, where)
            finally:
                test.settle()
            kernel = test.kernel_counts() if rated_by else None
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
                                                                    latency="speedtest-cli", download_rate=rated_by))
