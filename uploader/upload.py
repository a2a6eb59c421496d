"""Send an outbox's pending rows in gzip JSON batches and mark each by the collector's per-item answer.

A row leaves `pending` only when the collector answered for it: accepted and duplicate both mean
the collector has it (so a batch resent after a lost answer is harmless); rejected rows are kept
with their reason and never resent. Anything else (no answer, 5xx, a cut connection) leaves the
rows pending for the next try. `upload_pending` is the one place where how delivery went is
recorded: `xaprobe upload` and the daemon both call it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
import logging
import random

import requests

from xaprobe import __version__
from xaprobe.fields import WireError
from xaprobe.health import CentreSettings, Heartbeat
from xaprobe.months import format_utc, utc_now
from xaprobe.secret import Secret
from xaprobe.uploader.outbox import REJECTED, UPLOADED, Outbox, UploadRecord

log = logging.getLogger(__name__)

MAX_BATCH_BYTES = 256 * 1024


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one upload attempt did; `error` is None when the collector answered."""

    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    error: str | None = None
    retry_after: float | None = None
    token_refused: bool = False

    def plus(self, other: "Outcome") -> "Outcome":
        return Outcome(self.accepted + other.accepted, self.duplicate + other.duplicate,
                       self.rejected + other.rejected, other.error, other.retry_after, other.token_refused)


@dataclasses.dataclass(frozen=True)
class Destination:
    """Where and as whom to upload: the collector's base URL and this device's token."""

    collector_url: str
    token: Secret
    timeout_s: float = 30.0

    def url(self, path: str) -> str:
        return self.collector_url.rstrip("/") + path


def encode_batch(rows: list[tuple[str, str]], max_bytes: int = MAX_BATCH_BYTES) -> tuple[bytes, int]:
    """Gzip as many leading rows as fit in max_bytes (at least one); return (body, rows used)."""
    count = len(rows)
    while True:
        items = ",".join(body for _, body in rows[:count])
        payload = f'{{"sent_at": "{format_utc(utc_now())}", "measurements": [{items}]}}'.encode()
        packed = gzip.compress(payload, compresslevel=6)
        if len(packed) <= max_bytes or count == 1:
            return packed, count
        count = max(1, count // 2)


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare, and the backoff covers it


def _post(session: requests.Session, target: Destination, path: str, body: bytes, gzipped: bool) -> requests.Response:
    headers = {"Authorization": f"Bearer {target.token.reveal()}", "Content-Type": "application/json",
               "User-Agent": f"xaprobe/{__version__}"}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return session.post(target.url(path), data=body, headers=headers, timeout=target.timeout_s)


def _describe(response: requests.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return f"collector answered {response.status_code}" + (f": {detail}" if detail else "")


def upload_batch(outbox: Outbox, session: requests.Session, target: Destination, batch_size: int) -> Outcome:
    """Send one batch of the oldest pending rows; mark what the collector answered for."""
    rows = outbox.pending(batch_size)
    if not rows:
        return Outcome()
    body, used = encode_batch(rows)
    outbox.count_attempt([mid for mid, _ in rows[:used]])
    try:
        response = _post(session, target, "/api/v1/measurements", body, gzipped=True)
    except requests.RequestException as e:
        return Outcome(error=f"cannot reach the collector at {target.collector_url}: {type(e).__name__}")
    if response.status_code == 401:
        return Outcome(error=_describe(response) + " (the token was refused)", token_refused=True)
    if response.status_code in (429, 503):
        return Outcome(error=_describe(response), retry_after=retry_after_seconds(response.headers.get("Retry-After")))
    if response.status_code != 200:
        return Outcome(error=_describe(response))
    try:
        results = response.json()["results"]
        answers = {r["id"]: r for r in results if isinstance(r, dict) and isinstance(r.get("id"), str)}
    except (ValueError, KeyError, TypeError):
        return Outcome(error="the collector's answer was not the expected JSON")
    marks: dict[str, tuple[str, str | None]] = {}
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for mid, _ in rows[:used]:
        answer = answers.get(mid)
        if answer is None or answer.get("status") not in counts:
            continue
        counts[answer["status"]] += 1
        if answer["status"] == "rejected":
            marks[mid] = (REJECTED, str(answer.get("reason") or "rejected")[:500])
        else:
            marks[mid] = (UPLOADED, None)
    outbox.mark(marks)
    return Outcome(accepted=counts["accepted"], duplicate=counts["duplicate"], rejected=counts["rejected"])


def upload_pending(outbox: Outbox, session: requests.Session, target: Destination, batch_size: int,
                   max_batches: int = 10_000, now: dt.datetime | None = None) -> Outcome:
    """Send batches until nothing is pending or an attempt fails; record how it went; return the totals."""
    total, sent = Outcome(), False
    for _ in range(max_batches):
        if not outbox.pending(1):
            break
        outcome = upload_batch(outbox, session, target, batch_size)
        total, sent = total.plus(outcome), True
        if outcome.error or outcome.accepted + outcome.duplicate + outcome.rejected == 0:
            break
    if not sent:
        return total  # nothing was asked of the collector: how delivery stands is unchanged
    outbox.save_upload_record(next_record(outbox.upload_record(), total, target.token.fingerprint(),
                                          now or utc_now()))
    return total


def next_record(record: UploadRecord, outcome: Outcome, token_fingerprint: str, now: dt.datetime) -> UploadRecord:
    """How delivery stands after this outcome: a refused token is remembered until a request goes through."""
    if outcome.token_refused:
        return dataclasses.replace(record, last_error=outcome.error, refused_token=token_fingerprint)
    if outcome.error:
        return dataclasses.replace(record, last_error=outcome.error)
    answered = outcome.accepted + outcome.duplicate + outcome.rejected
    return UploadRecord(last_success_at=now if answered else record.last_success_at, last_error=None,
                        refused_token="")


def send_heartbeat(session: requests.Session, target: Destination, heartbeat: Heartbeat) -> CentreSettings | None:
    """Post the probe's health; return the settings the collector sent back, or None on any failure."""
    body = json.dumps(heartbeat.to_wire(), ensure_ascii=False).encode("utf-8")
    try:
        response = _post(session, target, "/api/v1/heartbeat", body, gzipped=False)
    except requests.RequestException:
        return None
    if response.status_code != 200:
        log.warning("heartbeat: %s", _describe(response))
        return None
    try:
        answer = response.json()
        return CentreSettings.from_wire(answer.get("settings") if isinstance(answer, dict) else [])
    except (ValueError, WireError) as e:  # WireError is a ValueError; named for the reader
        log.warning("heartbeat: the collector's settings were not usable (%s); keeping the last ones", e)
        return None


def full_jitter_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0.0, min(cap_s, base_s * (2 ** min(attempt, 32))))
