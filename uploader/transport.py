"""HTTP to the collector with hard limits: no redirect followed, one overall deadline per request, and a
cap on every answer's size (after decompression). Built on requests: a watchdog shuts the request's
socket down when its deadline passes, so a server that drips one byte a second cannot hold the probe.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import threading
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from xaprobe.i18n import _
from xaprobe.neterrors import describe_network_error

_watching = threading.local()  # the connections used by this thread's current request


class TransportError(Exception):
    """A request that got no usable answer; the message is one line for the person reading the log."""


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


def _watch(connection: Any) -> None:
    watched = getattr(_watching, "connections", None)
    if watched is not None:
        watched.append(connection)


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)
        super().request(*args, **kwargs)


class _Pool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _TLSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class WatchedAdapter(HTTPAdapter):
    """requests' adapter whose connections can be cut by the request's deadline (proxied ones too)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(*args, **kwargs)
        manager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}
        return manager


def _cut(connection: Any) -> None:
    sock = getattr(connection, "sock", None)
    if sock is None:
        return
    with contextlib.suppress(OSError):  # a second handle on the same socket: TLS state is left alone
        twin = socket.fromfd(sock.fileno(), sock.family, sock.type)
        twin.shutdown(socket.SHUT_RDWR)
        twin.close()


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[threading.Event]:
    """Within the block, this thread's connections are shut down when seconds have passed; yields 'expired'."""
    expired = threading.Event()
    watched: list[Any] = []
    _watching.connections = watched

    def cut_all() -> None:
        expired.set()
        for connection in list(watched):
            _cut(connection)

    timer = threading.Timer(seconds, cut_all)
    timer.daemon = True
    timer.start()
    try:
        yield expired
    finally:
        timer.cancel()
        _watching.connections = None


def _read_capped(response: requests.Response, limit: int, where: str) -> bytes:
    body = bytearray()
    for chunk in response.iter_content(65536):
        body += chunk
        if len(body) > limit:
            raise TransportError(_("{where} sent an answer larger than {kib} KiB; stopped reading it").format(
                where=where, kib=limit // 1024))
    return bytes(body)


def _no_answer(where: str, timeout_s: float) -> str:
    return _("no complete answer from {where} within {seconds} s").format(where=where, seconds=f"{timeout_s:g}")


def post(session: requests.Session, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float,
         max_answer_bytes: int) -> Answer:
    """POST body to url and return the whole answer within timeout_s; raise TransportError otherwise."""
    return request(session, "POST", url, body, headers, timeout_s, max_answer_bytes)


def request(session: requests.Session, method: str, url: str, body: bytes | None, headers: Mapping[str, str],
            timeout_s: float, max_answer_bytes: int) -> Answer:
    """Send one request (no redirect followed) and return the whole answer within timeout_s, read up to
    max_answer_bytes; raise TransportError otherwise."""
    where = urlsplit(url).netloc or url
    if not isinstance(session.get_adapter(url), WatchedAdapter):
        session.mount("http://", WatchedAdapter())
        session.mount("https://", WatchedAdapter())
    with _deadline(timeout_s) as expired:
        try:
            response = session.request(method, url, data=body, headers=dict(headers), allow_redirects=False,
                                       stream=True, timeout=(min(timeout_s, 10.0), timeout_s))
            try:
                if response.is_redirect or 300 <= response.status_code < 400:
                    raise TransportError(_(
                        "{url} answered {status} redirecting to {location}; xaprobe follows no redirect: "
                        "if that address is your collector, put it in collector_url").format(
                        url=url, status=response.status_code,
                        location=response.headers.get("Location") or _("(nowhere)")))
                content = _read_capped(response, max_answer_bytes, where)
            finally:
                response.close()
        except (requests.RequestException, OSError) as e:
            if expired.is_set():
                raise TransportError(_no_answer(where, timeout_s)) from None
            raise TransportError(describe_network_error(e, where)) from None
    if expired.is_set():
        raise TransportError(_no_answer(where, timeout_s))
    return Answer(response.status_code, response.headers, content)


def json_object(answer: Answer) -> dict[str, Any] | None:
    """The answer's body as a JSON object, or None when it is not one."""
    try:
        parsed = json.loads(answer.body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
