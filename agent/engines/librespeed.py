"""What a LibreSpeed server answers, checked: its layout found (plain names or `.php`), `empty` small, `garbage`
whole MiB, getIP parsed. A server that answers otherwise is not taken for a LibreSpeed server: the test fails
with a message that says so and what was seen, instead of timing 4 MiB downloads as "pings"."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import random
from urllib.parse import urlsplit

from xaprobe.agent.engines.base import EngineError
from xaprobe.agent.engines.httpsession import HEADERS, Endpoints, Session
from xaprobe.agent.engines.limits import SMALL_ANSWER, LimitExceeded, bound_next_answer

EMPTY_MOST = 1024  # LibreSpeed's empty answers nothing; a few bytes of whitespace are tolerated
ENDPOINT_NAMES = ("garbage", "empty", "getIP", "garbage.php", "empty.php", "getIP.php")
LAYOUTS = ("plain", "php")


class NotLibreSpeed(EngineError):
    """The server does not answer as a LibreSpeed server does."""


def _not_librespeed(url: str, seen: str) -> NotLibreSpeed:
    hint = ""
    last = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    if last in ENDPOINT_NAMES:
        hint = f"; the URL names the endpoint {last}: give the folder that holds it"
    return NotLibreSpeed(f"{url} is not a LibreSpeed server: {seen}{hint}")


def _try_empty(s: Session, url: str, ep: Endpoints) -> bool:
    """GET ep.empty once: True when it answers as LibreSpeed's empty does, False on a 404; else raise."""
    conn = s.connection()
    bound_next_answer(conn, SMALL_ANSWER, f"{ep.empty} (an empty answer)", s.received.charge)
    try:
        conn.request("GET", f"{ep.empty}?r={random.random()}", headers=HEADERS)
        resp = conn.getresponse()
        body = resp.read()
    except LimitExceeded:
        raise _not_librespeed(url, f"{ep.empty} answered more than {SMALL_ANSWER} bytes where LibreSpeed's "
                                   "empty answers none") from None
    finally:
        conn.close()
    if resp.status == 404:
        return False
    kind = resp.getheader("Content-Type", "") or ""
    if resp.status != 200:
        raise EngineError(f"server answered {resp.status} {resp.reason} for {ep.empty}")
    if len(body) > EMPTY_MOST or ("html" in kind.lower() and body.strip()):
        raise _not_librespeed(url, f"{ep.empty} answered {len(body)} bytes of {kind or 'unknown type'} "
                                   "where LibreSpeed's empty answers none")
    return True


def discover(s: Session, url: str, paths: str, given: Endpoints | None = None) -> Endpoints:
    """Return the server's endpoints: those given (a server list names them), else its layout, found when
    `paths` is "auto"; raise NotLibreSpeed when its `empty` answers something else, EngineError when it has none."""
    if given is not None:
        if _try_empty(s, url, given):
            return given
        raise EngineError(f"server answered 404 Not Found for {given.empty}")
    layouts = LAYOUTS if paths == "auto" else (paths,)
    tried = []
    for layout in layouts:
        ep = Endpoints.from_url(url, layout)
        if _try_empty(s, url, ep):
            return ep
        tried.append(ep.empty)
    raise _not_librespeed(url, f"404 for {' and '.join(tried)}") if paths == "auto" else \
        EngineError(f"server answered 404 Not Found for {tried[0]}")


def check_garbage(ep: Endpoints, asked: int, got: int, length: str | None) -> None:
    """A complete garbage answer is the size asked, or whole MiB fewer (a server's own ckSize limit)."""
    if length is not None and length.strip().isdigit() and int(length) > asked:
        raise NotLibreSpeed(f"{ep.garbage} announced {length} bytes for {asked >> 20} MiB asked")
    if got == 0 or got % (1 << 20):
        raise NotLibreSpeed(f"{ep.garbage} answered {got} bytes for {asked >> 20} MiB asked; a LibreSpeed "
                            "server sends whole MiB")


@dataclasses.dataclass(frozen=True)
class ClientInfo:
    ip: str = ""
    isp: str = ""


def parse_get_ip(body: bytes) -> ClientInfo:
    """LibreSpeed's getIP answer: JSON {"processedString": "IP - ISP, country (distance)", ...} (asked with
    isp=true), or the bare address older servers send; anything else says nothing."""
    text = body.decode("utf-8", "replace").strip()
    try:
        info = json.loads(text)
    except ValueError:
        info = None
    if isinstance(info, dict):
        text = str(info.get("processedString", ""))
    elif info is not None:
        return ClientInfo()
    ip, _, isp = text.partition(" - ")
    try:
        ipaddress.ip_address(ip.strip())
    except ValueError:
        return ClientInfo()
    return ClientInfo(ip.strip()[:64], isp.strip()[:200])
