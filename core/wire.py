"""The v1 wire format: one Measurement record, its JSON form, and the validation both sides share.

The probe builds Measurements and sends `to_wire(m)`; the collector accepts `from_wire(obj)` and
rejects an item with `WireError`, whose message names the field. Unknown fields are kept in
`extra` (a newer probe talking to an older collector loses nothing).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

from xaprobe.fields import WireError, check_integer, check_number, check_text, check_time
from xaprobe.months import format_utc
from xaprobe.sites import is_site_id

__all__ = ["Link", "Location", "Measurement", "Method", "Radio", "Server", "WireError", "from_wire", "new_id",
           "to_wire"]

STATUSES = ("ok", "failed")
ACCESS_TYPES = ("ethernet", "wifi", "cellular", "other", "")
MAX_MBPS = 1_000_000.0
MAX_MS = 3_600_000.0
MAX_BYTES = 10**13
MAX_TEXT = 500
BYTE_SOURCES = ("kernel", "app", "")
RATE_SOURCES = ("segments", "bytes", "")
LATENCY_METHODS = ("http-keepalive", "http-reconnect", "tcp-connect", "speedtest-cli", "")


@dataclasses.dataclass(frozen=True)
class Server:
    url: str = ""
    id: str | None = None
    name: str = ""


@dataclasses.dataclass(frozen=True)
class Radio:
    """Cellular context read from ModemManager; every field optional."""

    technology: str | None = None
    operator: str | None = None
    rsrp_dbm: float | None = None
    rsrq_db: float | None = None
    sinr_db: float | None = None
    rssi_dbm: float | None = None
    cell_id: str | None = None
    ssid: str | None = None
    signal_percent: float | None = None


@dataclasses.dataclass(frozen=True)
class Link:
    name: str = ""
    interface: str = ""
    access: str = ""
    operator: str = ""
    radio: Radio | None = None


@dataclasses.dataclass(frozen=True)
class Location:
    place: str = ""
    lat: float | None = None
    lon: float | None = None


@dataclasses.dataclass(frozen=True)
class Method:
    """How a test measured, so that figures taken different ways are never mixed without saying so.

    `bytes`: "kernel" (TCP_INFO of every socket the test opened) or "app" (what the program read and
    wrote). `latency`: "http-keepalive" (small GETs on one kept-alive connection), "http-reconnect" (each
    GET on a new connection, connect time excluded), "tcp-connect" (TCP handshakes) or "speedtest-cli".
    `layout`: the server's endpoint names found ("plain", "php"). `candidates`: servers tried to pick the
    one used (0: none chosen). `cross_traffic_kbps`: other traffic seen on the link's interface just
    before the test, `quiet_waits` how often the test waited for the link to be quiet. `download_rate`: the
    http engine's download rated by the data segments that arrived ("segments", TCP_INFO, steady through loss
    recovery) or by the bytes received in order ("bytes", where segments cannot stand for them)."""

    bytes: str = ""
    latency: str = ""
    layout: str = ""
    candidates: int = 0
    server_latency_ms: float | None = None
    cross_traffic_kbps: float | None = None
    quiet_waits: int = 0
    download_rate: str = ""


@dataclasses.dataclass(frozen=True)
class Measurement:
    id: str
    started_at: dt.datetime
    engine: str
    status: str
    device_id: str = ""
    seq: int = 0
    commune_code: str = ""
    clock_synced: bool | None = None
    server: Server = Server()
    link: Link = Link()
    location: Location | None = None
    download_mbps: float | None = None
    upload_mbps: float | None = None
    latency_ms: float | None = None
    jitter_ms: float | None = None
    loaded_latency_ms: float | None = None
    bytes_down: int = 0
    bytes_up: int = 0
    duration_s: float = 0.0
    capped: bool = False
    client_ip: str = ""
    isp: str = ""
    error: str | None = None
    agent_version: str = ""
    method: Method | None = None  # added within v1: an older collector keeps it in extra
    # added within v1: the site (collector-issued id) where the test was made; "" = site unknown (older probes)
    site_id: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# field order, not a set: the JSON keys come out in the same order in every process
_KNOWN = tuple(f.name for f in dataclasses.fields(Measurement) if f.name != "extra")


def new_id() -> str:
    """Return a fresh measurement id (a random UUID)."""
    return str(uuid.uuid4())


def _plain(obj: Any) -> Any:
    fields = getattr(type(obj), "__dataclass_fields__", None)  # faster than is_dataclass + fields()
    if fields is None:
        return obj
    return {name: _plain(getattr(obj, name)) for name in fields}


def to_wire(m: Measurement) -> dict[str, Any]:
    """Return the JSON-ready dict of a Measurement (unknown fields it arrived with included)."""
    out = {name: _plain(getattr(m, name)) for name in _KNOWN}
    out["started_at"] = format_utc(m.started_at)
    return out | {k: v for k, v in m.extra.items() if k not in out}


# --- validation -------------------------------------------------------------------------------

def _text(obj: dict, key: str, path: str, required: bool = False, limit: int = MAX_TEXT) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise WireError(path + key, "required")
        return ""
    return check_text(value, path + key, limit)


def _number(obj: dict, key: str, path: str, limit: float, low: float = 0.0) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    return check_number(value, path + key, limit, low)


def _integer(obj: dict, key: str, path: str, limit: int) -> int:
    value = obj.get(key, 0)
    if value is None:
        return 0
    return check_integer(value, path + key, limit)


def _object(obj: dict, key: str) -> dict | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise WireError(key, f"must be an object, got {type(value).__name__}")
    return value


def _radio(obj: dict | None) -> Radio | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise WireError("link.radio", "must be an object")
    p = "link.radio."
    return Radio(
        technology=_text(obj, "technology", p, limit=32) or None,
        operator=_text(obj, "operator", p, limit=64) or None,
        rsrp_dbm=_number(obj, "rsrp_dbm", p, 0.0, low=-200.0),
        rsrq_db=_number(obj, "rsrq_db", p, 50.0, low=-100.0),
        sinr_db=_number(obj, "sinr_db", p, 100.0, low=-50.0),
        rssi_dbm=_number(obj, "rssi_dbm", p, 0.0, low=-200.0),
        cell_id=_text(obj, "cell_id", p, limit=64) or None,
        ssid=_text(obj, "ssid", p, limit=64) or None,
        signal_percent=_number(obj, "signal_percent", p, 100.0),
    )


def _choice(obj: dict, key: str, path: str, choices: tuple[str, ...]) -> str:
    value = _text(obj, key, path, limit=32)
    if value not in choices:
        raise WireError(path + key, f"must be one of {', '.join(c for c in choices if c)}, got {value!r}")
    return value


def _method(obj: dict | None) -> Method | None:
    if obj is None:
        return None
    p = "method."
    return Method(
        bytes=_choice(obj, "bytes", p, BYTE_SOURCES),
        latency=_choice(obj, "latency", p, LATENCY_METHODS),
        layout=_text(obj, "layout", p, limit=16),
        candidates=_integer(obj, "candidates", p, 10_000),
        server_latency_ms=_number(obj, "server_latency_ms", p, MAX_MS),
        cross_traffic_kbps=_number(obj, "cross_traffic_kbps", p, MAX_MBPS * 1000),
        quiet_waits=_integer(obj, "quiet_waits", p, 1000),
        download_rate=_choice(obj, "download_rate", p, RATE_SOURCES),
    )


def _site_id(obj: dict) -> str:
    value = _text(obj, "site_id", "", limit=64)
    if value and not is_site_id(value):
        raise WireError("site_id", f"must be lower-case letters, digits, '-' and '_', got {value!r}")
    return value


def from_wire(obj: Any) -> Measurement:
    """Validate one wire item and return its Measurement; raise WireError naming the field."""
    if not isinstance(obj, dict):
        raise WireError("item", f"must be an object, got {type(obj).__name__}")
    raw_id = _text(obj, "id", "", required=True, limit=64)
    try:
        mid = str(uuid.UUID(raw_id))
    except ValueError:
        raise WireError("id", f"must be a UUID, got {raw_id!r}") from None
    if obj.get("started_at") is None:
        raise WireError("started_at", "required")
    started = check_time(obj["started_at"], "started_at")
    status = _text(obj, "status", "", required=True, limit=16)
    if status not in STATUSES:
        raise WireError("status", f"must be one of {', '.join(STATUSES)}, got {status!r}")
    clock = obj.get("clock_synced")
    if clock is not None and not isinstance(clock, bool):
        raise WireError("clock_synced", "must be true, false or null")
    capped = obj.get("capped", False)
    if not isinstance(capped, bool):
        raise WireError("capped", "must be true or false")
    commune = _text(obj, "commune_code", "", limit=10)
    if commune and not commune.isdigit():
        raise WireError("commune_code", f"must be digits, got {commune!r}")
    server = _object(obj, "server") or {}
    link = _object(obj, "link") or {}
    access = _text(link, "access", "link.", limit=16)
    if access not in ACCESS_TYPES:
        raise WireError("link.access", f"must be one of {', '.join(a for a in ACCESS_TYPES if a)}")
    loc = _object(obj, "location")
    return Measurement(
        id=mid,
        started_at=started,
        engine=_text(obj, "engine", "", required=True, limit=32),
        status=status,
        device_id=_text(obj, "device_id", "", limit=64),
        seq=_integer(obj, "seq", "", 2**53),
        commune_code=commune,
        clock_synced=clock,
        server=Server(
            url=_text(server, "url", "server.", limit=2000),
            id=_text(server, "id", "server.", limit=64) or None,
            name=_text(server, "name", "server.", limit=200),
        ),
        link=Link(
            name=_text(link, "name", "link.", limit=64),
            interface=_text(link, "interface", "link.", limit=64),
            access=access,
            operator=_text(link, "operator", "link.", limit=64),
            radio=_radio(link.get("radio")),
        ),
        location=None if loc is None else Location(
            place=_text(loc, "place", "location.", limit=200),
            lat=_number(loc, "lat", "location.", 90.0, low=-90.0),
            lon=_number(loc, "lon", "location.", 180.0, low=-180.0),
        ),
        download_mbps=_number(obj, "download_mbps", "", MAX_MBPS),
        upload_mbps=_number(obj, "upload_mbps", "", MAX_MBPS),
        latency_ms=_number(obj, "latency_ms", "", MAX_MS),
        jitter_ms=_number(obj, "jitter_ms", "", MAX_MS),
        loaded_latency_ms=_number(obj, "loaded_latency_ms", "", MAX_MS),
        bytes_down=_integer(obj, "bytes_down", "", MAX_BYTES),
        bytes_up=_integer(obj, "bytes_up", "", MAX_BYTES),
        duration_s=_number(obj, "duration_s", "", 86_400.0) or 0.0,
        capped=capped,
        client_ip=_text(obj, "client_ip", "", limit=64),
        isp=_text(obj, "isp", "", limit=200),
        error=_text(obj, "error", "", limit=MAX_TEXT) or None,
        agent_version=_text(obj, "agent_version", "", limit=32),
        method=_method(_object(obj, "method")),
        site_id=_site_id(obj),
        extra={k: v for k, v in obj.items() if k not in _KNOWN},
    )
