"""What the uploader needs from wherever measurements wait to be sent: the outbox contract.

The probe's store provides it (agent/store.py); the uploader never imports the agent. A row leaves
`pending` only through `mark`, with the collector's answer for it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Protocol

UPLOADED, REJECTED = "uploaded", "rejected"


@dataclasses.dataclass(frozen=True)
class UploadRecord:
    """How delivery last went, kept across restarts for `xaprobe status` and the daemon."""

    last_success_at: dt.datetime | None = None
    last_error: str | None = None
    refused_token: str = ""  # fingerprint of the token the collector refused ("" when none was)

    def refuses(self, token_fingerprint: str) -> bool:
        """True when the collector refused exactly this token (a new token is tried again)."""
        return bool(self.refused_token) and self.refused_token == token_fingerprint


class Outbox(Protocol):
    """Pending measurements as wire JSON, oldest first, and the bookkeeping of their delivery."""

    def pending(self, limit: int) -> list[tuple[str, str]]:
        """Up to limit pending rows, oldest first, as (id, wire JSON text)."""
        ...

    def count_attempt(self, ids: list[str]) -> None:
        """Note that these rows were sent once more (the answer may never come back)."""
        ...

    def mark(self, results: dict[str, tuple[str, str | None]]) -> None:
        """Record the collector's answer per id: (UPLOADED, None) or (REJECTED, reason)."""
        ...

    def upload_record(self) -> UploadRecord:
        """How delivery last went."""
        ...

    def save_upload_record(self, record: UploadRecord) -> None:
        """Keep how delivery last went."""
        ...
