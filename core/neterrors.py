"""One-line reasons, in the user's terms, for the failures a network can cause (no Python class names)."""

from __future__ import annotations

import errno
import socket
import ssl


def _root_causes(error: BaseException) -> list[BaseException]:
    """The error and what it was raised from or during, outermost first (requests wraps urllib3 wraps OSError)."""
    chain, seen = [], set()
    stack = [error]
    while stack:
        e = stack.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        chain.append(e)
        stack += [c for c in (e.__cause__, e.__context__) if c is not None]
        stack += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
        reason = getattr(e, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
    return chain


def describe_network_error(error: BaseException, where: str) -> str:
    """Turn a network failure into one line naming where it happened and what it probably means."""
    chain = _root_causes(error)
    for e in chain:
        if isinstance(e, socket.gaierror):
            return f"cannot resolve the name of {where} (no DNS? is the address right?)"
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"TLS with {where} failed: its certificate is not trusted ({e.verify_message})"
        if isinstance(e, ssl.SSLError):
            return f"TLS with {where} failed: {e.reason or e}"
        if isinstance(e, ConnectionRefusedError):
            return f"connection refused by {where} (is the server running?)"
        if isinstance(e, ConnectionResetError):
            return f"connection reset by {where}"
        if isinstance(e, (socket.timeout, TimeoutError)) or "timed out" in str(e).lower():
            return f"no answer from {where} in time (timeout)"
        if isinstance(e, OSError) and e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return f"no route to {where} (is the link up? no service?)"
    for e in chain:
        if isinstance(e, OSError) and (e.strerror or e.errno):
            return f"network error with {where}: {e.strerror or errno.errorcode.get(e.errno or 0, e.errno)}"
    return f"network error with {where}: {str(error).splitlines()[0][:200] if str(error) else 'no details'}"
