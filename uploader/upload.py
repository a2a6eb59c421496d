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
from typing import Any

import requests

from xaprobe import __version__
from xaprobe.fields import WireError
from xaprobe.health import CentreSettings, Heartbeat
from xaprobe.i18n import _
from xaprobe.months import format_utc, utc_now
from xaprobe.secret import Secret
from xaprobe.uploader.outbox import REJECTED, UPLOADED, Outbox, UploadRecord
from xaprobe.uploader.transport import Answer, TransportError, post

log = logging.getLogger(__name__)

MAX_BATCH_BYTES = 256 * 1024
MAX_ANSWER_BYTES = 1 << 20  # 1000 per-item answers with reasons fit in a tenth of this
MEASUREMENTS_PATH, HEARTBEAT_PATH = "/api/v1/measurements", "/api/v1/heartbeat"
ANSWERS = ("accepted", "duplicate", "rejected")


class ProtocolError(Exception):
    """An answer from the collector that does not add up; nothing is marked from it."""


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


def _post(session: requests.Session, target: Destination, path: str, body: bytes, gzipped: bool,
          max_answer_bytes: int) -> Answer:
    headers = {"Authorization": f"Bearer {target.token.reveal()}", "Content-Type": "application/json",
               "User-Agent": f"xaprobe/{__version__}"}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return post(session, target.url(path), body, headers, target.timeout_s, max_answer_bytes)


def _json(answer: Answer) -> Any:
    try:
        return json.loads(answer.body)
    except (ValueError, UnicodeDecodeError):
        return None


def _describe(answer: Answer, url: str) -> str:
    body = _json(answer)
    detail = body.get("detail") if isinstance(body, dict) else None
    shown = f": {str(detail)[:200]}" if isinstance(detail, (str, int, float)) else ""
    return _("the collector at {url} answered {status}").format(url=url, status=answer.status) + shown


def _unreachable(target: Destination, error: TransportError) -> str:
    return _("cannot reach the collector at {url}: {error}").format(url=target.collector_url, error=error)


def check_answers(results: Any, sent: list[str]) -> dict[str, tuple[str, str | None]]:
    """The collector's per-item answers as marks, when they answer every sent id exactly once and nothing
    else; raise ProtocolError otherwise (nothing is marked from an answer that does not add up)."""
    if not isinstance(results, list):
        raise ProtocolError(_("its answer has no list of results"))
    marks: dict[str, tuple[str, str | None]] = {}
    expected = set(sent)
    for i, result in enumerate(results):
        if not isinstance(result, dict) or not isinstance(result.get("id"), str):
            raise ProtocolError(_("result {i} is not an object with an id").format(i=i))
        mid, status = result["id"], result.get("status")
        if mid not in expected:
            raise ProtocolError(_("result {i} answers an id that was not sent ({id!r})").format(i=i, id=mid[:40]))
        if mid in marks:
            raise ProtocolError(_("id {id} is answered twice").format(id=mid))
        if status not in ANSWERS:
            raise ProtocolError(_("result {i} has status {status!r}").format(i=i, status=str(status)[:20]))
        reason = result.get("reason")
        marks[mid] = (REJECTED, str(reason or "rejected")[:500]) if status == "rejected" else (UPLOADED, None)
    if len(marks) != len(expected):
        raise ProtocolError(_("{n} of the {sent} items sent have no answer").format(n=len(expected) - len(marks),
                                                                                     sent=len(expected)))
    return marks


def upload_batch(outbox: Outbox, session: requests.Session, target: Destination, batch_size: int) -> Outcome:
    """Send one batch of the oldest pending rows; mark what the collector answered for."""
    rows = outbox.pending(batch_size)
    if not rows:
        return Outcome()
    body, used = encode_batch(rows)
    sent = [mid for mid, _ in rows[:used]]
    outbox.count_attempt(sent)
    url = target.url(MEASUREMENTS_PATH)
    try:
        answer = _post(session, target, MEASUREMENTS_PATH, body, gzipped=True, max_answer_bytes=MAX_ANSWER_BYTES)
    except TransportError as e:
        return Outcome(error=_unreachable(target, e))
    if answer.status == 401:
        return Outcome(error=_describe(answer, url) + " " + _("(the token was refused)"), token_refused=True)
    if answer.status in (429, 503):
        return Outcome(error=_describe(answer, url), retry_after=retry_after_seconds(answer.headers.get("Retry-After")))
    if answer.status != 200:
        return Outcome(error=_describe(answer, url))
    content = _json(answer)
    try:
        marks = check_answers(content.get("results") if isinstance(content, dict) else None, sent)
    except ProtocolError as e:
        return Outcome(error=_("the collector at {url} answered 200 but {problem}; nothing was marked, retrying later")
                       .format(url=url, problem=e))
    outbox.mark(marks)
    statuses = [r["status"] for r in content["results"]]  # checked above: one known status per id sent
    return Outcome(accepted=statuses.count("accepted"), duplicate=statuses.count("duplicate"),
                   rejected=statuses.count("rejected"))


def upload_pending(outbox: Outbox, session: requests.Session, target: Destination, batch_size: int,
                   max_batches: int = 10_000, now: dt.datetime | None = None) -> Outcome:
    """Send batches until nothing is pending or an attempt fails; record how it went; return the totals."""
    total, sent = Outcome(), False
    for _attempt in range(max_batches):
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


@dataclasses.dataclass(frozen=True)
class TokenCheck:
    reached: bool  # the collector answered
    accepted: bool  # ... and accepted the token
    found: str


def check_token(session: requests.Session, target: Destination) -> TokenCheck:
    """Ask the collector whether it accepts this token, with an empty batch (nothing is stored)."""
    url = target.url(MEASUREMENTS_PATH)
    try:
        answer = _post(session, target, MEASUREMENTS_PATH, b'{"measurements": []}', gzipped=False,
                       max_answer_bytes=64 * 1024)
    except TransportError as e:
        return TokenCheck(False, False, _unreachable(target, e))
    if answer.status == 200:
        return TokenCheck(True, True, _("the collector at {url} accepts this probe's token").format(
            url=target.collector_url))
    refused = answer.status in (401, 403)
    return TokenCheck(True, False, _describe(answer, url) + (" " + _("(the token was refused)") if refused else ""))


def send_heartbeat(session: requests.Session, target: Destination, heartbeat: Heartbeat) -> CentreSettings | None:
    """Post the probe's health; return the settings the collector sent back, or None on any failure."""
    body = json.dumps(heartbeat.to_wire(), ensure_ascii=False).encode("utf-8")
    try:
        answer = _post(session, target, HEARTBEAT_PATH, body, gzipped=False, max_answer_bytes=64 * 1024)
    except TransportError as e:
        log.warning("%s", _("heartbeat not delivered: {error}").format(error=e))
        return None
    if answer.status != 200:
        log.warning("%s", _("heartbeat not delivered: {error}").format(error=_describe(answer,
                                                                                     target.url(HEARTBEAT_PATH))))
        return None
    content = _json(answer)
    try:
        return CentreSettings.from_wire(content.get("settings") if isinstance(content, dict) else [])
    except WireError as e:
        log.warning("%s", _("heartbeat: the collector's settings were not usable ({error}); keeping the last ones")
                    .format(error=e))
        return None


def full_jitter_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0.0, min(cap_s, base_s * (2 ** min(attempt, 32))))
