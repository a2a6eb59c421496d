"""LibreSpeed's server list, from a JSON file or an http(s) URL, read within bounds into checked entries: each
entry judged alone (a bad one is skipped with its reason), the whole list refused only when it is not one.

The format is LibreSpeed's own (its `server_list.json`, `speedtest_multipleServers`): a JSON list of objects
with `name`, `server` (the folder URL) and `dlURL`, `ulURL`, `pingURL`, `getIpURL` (paths resolved against
`server`, on its host), optional `id` and `sponsorName`; xaprobe adds an optional `operator` (a name or a list
of names, as core/operators.py reads them) naming the operators whose links prefer that server. Without the
four paths the server's layout is found as for a single server. A `server` written `//host/...` (LibreSpeed's
"same protocol as the page") takes the scheme of the URL the list came from, and http from a file. A URL list
is fetched once per test over the link, within one deadline, its answer at most MAX_LIST_BYTES, and a
redirect is not followed (the message names where it points: configure that URL instead).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from urllib.parse import urljoin, urlsplit

from xaprobe import operators
from xaprobe.agent.engines.base import NETWORK_ERRORS, EngineError, RunRequest, describe_error
from xaprobe.agent.engines.httpsession import HEADERS, Endpoints, Session, Tally
from xaprobe.agent.engines.limits import HEAD_ROOM, LimitExceeded, bound_next_answer
from xaprobe.fields import WireError, check_text

MAX_LIST_BYTES = 1 << 20  # LibreSpeed's public list is about 10 KiB
MAX_ENTRIES = 100
# a list entry's key -> the Endpoints field it names
ENDPOINT_KEYS = {"dlURL": "garbage", "ulURL": "upload", "pingURL": "empty", "getIpURL": "get_ip"}


class ServerListError(EngineError):
    """The list as a whole could not be read or is not a LibreSpeed server list."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One usable server of the list."""

    name: str
    url: str  # its folder, ending in "/"
    id: str | None = None
    operators: tuple[str, ...] = ()
    endpoints: Endpoints | None = None  # None: the layout is found as for a single server


@dataclasses.dataclass(frozen=True)
class ServerList:
    entries: tuple[Entry, ...]
    skipped: tuple[str, ...]  # "entry 3: why", one per entry left out


def _server_url(value: Any, scheme: str) -> str:
    url = check_text(value, "server", 2000)
    url = f"{scheme}:{url}" if url.startswith("//") else url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"server must be an http:// or https:// URL, got {url[:80]!r}")
    try:
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        raise ValueError(f"server has a port that is not a number: {url[:80]!r}") from None
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"server must be a plain folder URL (no query, fragment or user), got {url[:80]!r}")
    return url if url.endswith("/") else url + "/"


def _endpoint(url: str, key: str, value: Any) -> str:
    """The path of one endpoint, resolved against the server's folder as LibreSpeed joins them."""
    target = urlsplit(urljoin(url, check_text(value, key, 500)))
    if (target.scheme, target.netloc) != urlsplit(url)[:2]:
        raise ValueError(f"{key} {value!r} is not on the server's host")
    if target.query or target.fragment or not target.path:
        raise ValueError(f"{key} {value!r} must be a path (no query or fragment)")
    return target.path


def _endpoints(url: str, obj: dict) -> Endpoints | None:
    given = [key for key in ENDPOINT_KEYS if obj.get(key) is not None]
    if not given:
        return None
    if len(given) < len(ENDPOINT_KEYS):
        missing = ", ".join(key for key in ENDPOINT_KEYS if key not in given)
        raise ValueError(f"{', '.join(given)} given without {missing}")
    return Endpoints.at(url, **{field: _endpoint(url, key, obj[key]) for key, field in ENDPOINT_KEYS.items()})


def _operators(value: Any) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else None
    if names is None or not all(isinstance(name, str) for name in names):
        raise ValueError("operator must be a name or a list of names")
    found = []
    for name in names:
        canonical = operators.canonical(name)
        if canonical is None:
            raise ValueError(f"operator {name[:40]!r} is not one xaprobe knows ({operators.known_names()})")
        found.append(canonical)
    return tuple(found)


def parse_entry(obj: Any, scheme: str) -> Entry:
    """One list entry, checked; raise ValueError saying what is wrong with it."""
    if not isinstance(obj, dict):
        raise ValueError(f"must be an object, got {type(obj).__name__}")
    if obj.get("name") is None or obj.get("server") is None:
        raise ValueError("name and server are required")
    raw_id = obj.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int, type(None))):
        raise ValueError("id must be a number or a string")
    url = _server_url(obj["server"], scheme)
    return Entry(name=check_text(obj["name"], "name", 200).strip() or url, url=url,
                 id=None if raw_id is None else check_text(str(raw_id), "id", 64),
                 operators=_operators(obj["operator"]) if obj.get("operator") is not None else (),
                 endpoints=_endpoints(url, obj))


def parse(data: bytes, scheme: str = "http") -> ServerList:
    """The entries of a list's JSON text; `scheme` is what a `//host/` server takes. Raise ServerListError
    when the text is not a JSON list."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ServerListError("not UTF-8 text") from None
    except (ValueError, RecursionError) as e:
        raise ServerListError(f"not JSON ({str(e)[:80]})") from None
    if not isinstance(doc, list):
        raise ServerListError(f"not a list of servers (a JSON {type(doc).__name__})")
    entries, skipped = [], []
    for i, obj in enumerate(doc[:MAX_ENTRIES]):
        try:
            entries.append(parse_entry(obj, scheme))
        except (ValueError, WireError) as e:
            skipped.append(f"entry {i}: {e}")
    if len(doc) > MAX_ENTRIES:
        skipped.append(f"entries after the first {MAX_ENTRIES} ignored")
    return ServerList(tuple(entries), tuple(skipped))


def brief(reasons: tuple[str, ...] | list[str], room: int = 360) -> str:
    """Reasons joined by "; ", each at most 100 characters and all within room (a Measurement's error is 500)."""
    text = "; ".join(r if len(r) <= 100 else r[:99] + "…" for r in reasons)
    return text if len(text) <= room else text[:room - 1] + "…"


def _fetch(url: str, request: RunRequest, timeout: float, tally: Tally) -> bytes:
    """The list's bytes from url over the link, within one deadline of `timeout`, redirects not followed."""
    ep = Endpoints.from_url(url)
    parts = urlsplit(url)
    s = Session(ep, request, timeout, timeout, 0, 1)
    with s.deadline.running():
        try:
            conn = s.connection()
            bound_next_answer(conn, MAX_LIST_BYTES + HEAD_ROOM, "the list")
            conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=HEADERS)
            resp = conn.getresponse()
            if 300 <= resp.status < 400:
                where = (resp.getheader("Location") or "nowhere")[:100]
                raise ServerListError(f"answered {resp.status} {resp.reason[:40]}, a redirect to {where}: "
                                      "redirects are not followed (give that URL instead)")
            if resp.status != 200:
                raise ServerListError(f"answered {resp.status} {resp.reason[:40]}")
            body = resp.read()
        except LimitExceeded:
            raise ServerListError(f"answered more than {MAX_LIST_BYTES >> 20} MiB; stopped reading") from None
        except ServerListError:
            raise
        except NETWORK_ERRORS as e:
            if s.deadline.expired.is_set() or isinstance(e, TimeoutError):  # the deadline or the last read's
                raise ServerListError(f"no whole answer from {ep.where} within {timeout:g} s") from None
            raise ServerListError(describe_error(e, ep.where)) from None
        finally:
            s.close_all()
            tally.add(s)
    if len(body) > MAX_LIST_BYTES:
        raise ServerListError(f"answered more than {MAX_LIST_BYTES >> 20} MiB")
    return body


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_LIST_BYTES + 1)
    except OSError as e:
        raise ServerListError(f"cannot read it: {e.strerror}") from None
    if len(data) > MAX_LIST_BYTES:
        raise ServerListError(f"larger than {MAX_LIST_BYTES >> 20} MiB")
    return data


def load(source: str, request: RunRequest, timeout: float, tally: Tally) -> ServerList:
    """The list at source (an http(s) URL, fetched over the request's link, its bytes kept in the tally, or a
    file path); raise ServerListError naming the source and the problem when there is no list, or no usable
    entry in it."""
    try:
        if "://" in source:
            servers = parse(_fetch(source, request, timeout, tally), urlsplit(source).scheme)
        else:
            servers = parse(_read_file(source))
        if not servers.entries:
            raise ServerListError(f"no usable server ({brief(servers.skipped)})" if servers.skipped else
                                  "no usable server: the list is empty")
    except EngineError as e:
        raise ServerListError(f"server list {source[:200]}: {e}") from None
    return servers
