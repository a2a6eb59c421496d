"""The contract every engine meets: `Settings` and `run(request, settings, server) -> Measurement`, failures included.

An engine measures one link once. It never raises for a network problem: a refused connection,
a timeout, a server error or an answer that breaks the protocol is a Measurement with status "failed"
and a one-line `error`. A programming error (TypeError, AttributeError, KeyError...) is not a network
problem: it propagates, so it is logged with its traceback and never stored as a "no service" sample.
"""

from __future__ import annotations

import dataclasses
import errno
import http.client

from xaprobe.neterrors import describe_network_error
from xaprobe.wire import Link


class EngineError(Exception):
    """A test could not be completed; the message is the one-line reason users see."""


# what a network and a server can raise (ssl errors, timeouts and resets are OSErrors); engines add the parse
# errors of the answers they read, and catch nothing else
NETWORK_ERRORS: tuple[type[Exception], ...] = (OSError, http.client.HTTPException, EngineError)


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """What the caller asks of an engine: which link, where to bind, how many bytes at most."""

    link: Link = Link()
    bind_interface: str = ""
    source_address: str = ""
    cap_bytes: int = 0  # per direction; 0 means no cap


def describe_error(error: BaseException, where: str) -> str:
    """Turn an error a network can raise into a one-line reason naming where it happened: an engine's own
    reason as it is, binding problems of the link in its terms, the rest as the uploader words them."""
    if isinstance(error, EngineError):
        return str(error)
    if isinstance(error, OSError) and not isinstance(error, ConnectionError):
        if error.errno == errno.ENODEV:
            return "the link's interface does not exist (check links[].interface)"
        if error.errno == errno.EPERM or isinstance(error, PermissionError):
            return "binding to an interface needs CAP_NET_RAW (run as root or through the systemd unit)"
        if error.errno == errno.EADDRNOTAVAIL:
            return "the link's source address is not on this machine (check links[].source_address)"
    if isinstance(error, http.client.HTTPException) and not isinstance(error, OSError):
        # a broken answer (bad status line, truncated body, endless headers): say what the server did
        detail = str(error)[:150]
        name = type(error).__name__
        return f"{where} broke the HTTP protocol: " + (detail if detail.startswith(name) else f"{name} {detail}")
    return describe_network_error(error, where)
