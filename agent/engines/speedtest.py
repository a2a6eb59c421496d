"""The `speedtest` engine: Ookla's servers through the speedtest-cli library, kept inside this module.

speedtest-cli fetches speedtest.net's configuration in its constructor and its server lists in
get_servers(); both fail often (403s, rate limits, no internet). Each failure becomes a failed
Measurement with a reason. Given a server URL (a Speedtest Mini / OoklaServer `upload.php` or its
folder), the engine supplies the public configuration's values itself and hands speedtest-cli an
explicit server list, so it runs with no request to speedtest.net at all. Sizes and counts are cut
so that a byte cap per direction holds. `latency_ms` is what speedtest-cli reports (half the mean of
three connect+GET round trips): it is kept as speedtest-cli's users know it.
"""

from __future__ import annotations

import dataclasses
import fcntl
import math
import socket
import struct
import time
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from xaprobe import __version__
from xaprobe.agent.engines.base import EngineError, RunRequest, describe_error
from xaprobe.months import utc_now
from xaprobe.tomlschema import setting
from xaprobe.wire import Measurement, Server, new_id

# Ookla's random{N}x{N}.jpg sizes in bytes, to plan a byte cap before the test
DOWNLOAD_BYTES = {350: 245388, 500: 505544, 750: 1118012, 1000: 1986284, 1500: 4468241, 2000: 7907740,
                  2500: 12407926, 3000: 17816816, 3500: 24262167, 4000: 31625365}
UPLOAD_SIZES = [32768, 65536, 131072, 262144, 524288, 1048576, 7340032]
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


def _client(url: str, source: str | None, timeout: float, cap: int):
    st = _speedtest_module()
    if url:
        supplied = cap_config(public_config(), cap)
        speedtest_class: Any = st.Speedtest  # a class known only once the lazy import ran

        class SuppliedConfig(speedtest_class):
            """speedtest-cli with the configuration given instead of fetched from speedtest.net."""

            def get_config(self):  # noqa: ANN201 - speedtest-cli's own signature
                self.config.update(supplied)
                self.lat_lon = (0.0, 0.0)
                return self.config

        client = SuppliedConfig(source_address=source, timeout=timeout)
        client.get_best_server([_server_entry(url)])
        return client
    try:
        client = st.Speedtest(source_address=source, timeout=timeout)
    except st.ConfigRetrievalError as e:
        raise EngineError(f"cannot fetch speedtest.net's configuration ({e or 'no answer'}); "
                          "set engines.speedtest.server to test against a known server") from None
    client.config.update(cap_config(client.config, cap))
    return client


def run(request: RunRequest, settings: Settings, server: str | None = None) -> Measurement:
    """Run speedtest-cli once over the link; failures are Measurements with a reason."""
    started, clock = utc_now(), time.perf_counter()
    url = server or settings.server
    cap = request.cap_bytes or int(settings.cap_mb * 1_000_000)
    base = Measurement(id=new_id(), started_at=started, engine="speedtest", status="failed",
                       server=Server(url=url), link=request.link, agent_version=__version__)
    where = urlsplit(url).netloc if url else "speedtest.net"
    try:
        st = _speedtest_module()
        source = request.source_address or (interface_address(request.bind_interface)
                                            if request.bind_interface else None)
        client = _client(url, source, settings.timeout_s, cap)
        if not url:
            try:
                client.get_servers([int(i) for i in settings.server_ids] or None)
                client.get_best_server()
            except (st.NoMatchedServers, st.SpeedtestBestServerFailure, st.ServersRetrievalError) as e:
                raise EngineError(f"no usable Ookla server ({type(e).__name__}: {e})") from None
        if client.results.ping >= 1000 * 3600 / 2:  # speedtest-cli's "3600 s" for a failed ping
            raise EngineError(f"the server {where} did not answer latency.txt (is it a Speedtest server?)")
        client.download()
        client.upload(pre_allocate=False if cap else True)
        results = client.results
        if not results.bytes_received or not results.bytes_sent:
            raise EngineError(f"no data moved to or from {where} (speedtest-cli hides the reason)")
    except Exception as e:  # noqa: BLE001 - every failure becomes a failed Measurement
        return dataclasses.replace(base, error=describe_error(e, where),
                                   duration_s=round(time.perf_counter() - clock, 3))
    best = results.server or {}
    return dataclasses.replace(
        base, status="ok", download_mbps=round(results.download / 1e6, 3), upload_mbps=round(results.upload / 1e6, 3),
        latency_ms=round(results.ping, 3), bytes_down=int(results.bytes_received), bytes_up=int(results.bytes_sent),
        capped=bool(cap), server=Server(url=best.get("url", url), id=str(best.get("id") or "") or None,
                                        name=best.get("sponsor") or best.get("name") or ""),
        client_ip=(results.client or {}).get("ip", "")[:64], isp=(results.client or {}).get("isp", "")[:200],
        duration_s=round(time.perf_counter() - clock, 3))
