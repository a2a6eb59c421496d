"""The contract every engine meets: `Settings` and `run(request, settings, server) -> Measurement`, failures included.

An engine measures one link once. It never raises for a network problem: a refused connection,
a timeout or a server error is a Measurement with status "failed" and a one-line `error`.
"""

from __future__ import annotations

import dataclasses
import errno
import socket
import ssl

from xaprobe.wire import Link


class EngineError(Exception):
    """A test could not be completed; the message is the one-line reason users see."""


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """What the caller asks of an engine: which link, where to bind, how many bytes at most."""

    link: Link = Link()
    bind_interface: str = ""
    source_address: str = ""
    cap_bytes: int = 0  # per direction; 0 means no cap


def describe_error(error: BaseException, where: str) -> str:
    """Turn a socket-level exception into a one-line reason naming where it happened."""
    if isinstance(error, EngineError):
        return str(error)
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the name of {where} ({error.strerror})"
    if isinstance(error, (socket.timeout, TimeoutError)):
        return f"no answer from {where} in time (timeout)"
    if isinstance(error, ConnectionRefusedError):
        return f"connection refused by {where} (is the server running?)"
    if isinstance(error, ConnectionResetError):
        return f"connection reset by {where}"
    if isinstance(error, ssl.SSLError):
        return f"TLS failed with {where}: {error.reason or error}"
    if isinstance(error, OSError):
        if error.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return f"no route to {where} (is the link up? no service?)"
        if error.errno == errno.ENODEV:
            return "the link's interface does not exist (check links[].interface)"
        if error.errno == errno.EPERM or isinstance(error, PermissionError):
            return "binding to an interface needs CAP_NET_RAW (run as root or through the systemd unit)"
        if error.errno == errno.EADDRNOTAVAIL:
            return "the link's source address is not on this machine (check links[].source_address)"
        return f"network error with {where}: {error.strerror or error}"
    return f"{type(error).__name__} with {where}: {error}"
