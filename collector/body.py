"""Read a JSON request body within limits: wire size, gzip inflation (stopped while reading), JSON sanity."""

from __future__ import annotations

import json
import zlib
from typing import Any

from fastapi import HTTPException, Request


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


async def read_json(request: Request, max_wire: int, max_inflated: int) -> Any:
    """Return the parsed body; raise 415, 413 or 400 with a reason the client can act on."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise HTTPException(415, f"Content-Type must be application/json, got {ctype or 'nothing'!r}")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise HTTPException(415, f"Content-Encoding must be gzip or identity, got {encoding!r}")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_wire:
        raise HTTPException(413, f"body is {declared} bytes; at most {max_wire} are accepted")
    inflater = zlib.decompressobj(wbits=31) if encoding == "gzip" else None
    wire = 0
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            wire += len(chunk)
            if wire > max_wire:
                raise HTTPException(413, f"body is over {max_wire} bytes")
            if inflater is not None:
                chunk = inflater.decompress(chunk, max_inflated + 1 - size)
                if inflater.unconsumed_tail:
                    raise HTTPException(413, f"body inflates to over {max_inflated} bytes")
            size += len(chunk)
            if size > max_inflated:
                raise HTTPException(413, f"body inflates to over {max_inflated} bytes")
            parts.append(chunk)
        if inflater is not None and not inflater.eof:
            raise HTTPException(400, "gzip body is truncated")
    except zlib.error as e:
        raise HTTPException(400, f"body is not valid gzip: {e}") from None
    try:
        return json.loads(b"".join(parts).decode("utf-8"), parse_constant=_no_constants)
    except UnicodeDecodeError as e:
        raise HTTPException(400, f"body is not UTF-8 (byte {e.start})") from None
    except (ValueError, RecursionError) as e:
        raise HTTPException(400, f"body is not valid JSON: {e}") from None
