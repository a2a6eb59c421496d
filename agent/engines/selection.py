"""Given a server list and a link, return the server its test should use, as LibreSpeed's client picks one:
up to PINGS pings to each candidate (fewer once one takes SLOW_MS), each candidate within its own deadline,
CONCURRENCY at a time; the lowest ping wins and a server that does not answer is skipped. Servers the list
names for the link's operator win over the others whenever one of them answers.

A candidate's pings are taken as the test's are (agent/engines/pings.py): after one untimed GET of its
`empty` that also checks it answers as LibreSpeed's empty does, small GETs on a kept-alive connection, or
TCP handshakes where the server closes after each answer.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from concurrent.futures import ThreadPoolExecutor

from xaprobe.agent.engines.base import NETWORK_ERRORS, EngineError, RunRequest, describe_error
from xaprobe.agent.engines.httpsession import Endpoints, Session, Tally
from xaprobe.agent.engines.librespeed import discover
from xaprobe.agent.engines.pings import Pinger
from xaprobe.agent.engines.serverlist import Entry, ServerList, brief, load
from xaprobe.i18n import _
from xaprobe.wire import Method

PINGS = 3
SLOW_MS = 500.0  # a ping this slow ends the candidate's pings: it will not win
CONCURRENCY = 6
log = logging.getLogger(__name__)


class NoServerAnswered(EngineError):
    """No candidate of the list answered its selection pings."""

    def __init__(self, message: str, candidates: int):
        super().__init__(message)
        self.candidates = candidates


@dataclasses.dataclass(frozen=True)
class Tried:
    """One candidate's selection: its best ping in ms, or why it had none."""

    entry: Entry
    latency_ms: float | None = None
    error: str = ""


@dataclasses.dataclass(frozen=True)
class Choice:
    entry: Entry
    latency_ms: float
    candidates: int  # servers tried

    def noted(self, method: Method) -> Method:
        """The test's method with how its server was chosen."""
        return dataclasses.replace(method, candidates=self.candidates, server_latency_ms=round(self.latency_ms, 3))


def ping_candidate(entry: Entry, request: RunRequest, timeout: float, paths: str, tally: Tally) -> Tried:
    """The candidate's lowest of up to PINGS pings, all within `timeout` seconds, or why it had none; its bytes
    kept in the tally."""
    ep = entry.endpoints or Endpoints.from_url(entry.url, "plain" if paths == "auto" else paths)
    s = Session(ep, request, timeout, timeout, 0, 1)
    with s.deadline.running():
        try:
            s.ep = discover(s, entry.url, paths, entry.endpoints)
            pinger = Pinger(s)
            pinger.warm_up()
            best = math.inf
            for _ in range(PINGS):
                best = min(best, sample := pinger.sample())
                if sample >= SLOW_MS:
                    break
            return Tried(entry, best)
        except NETWORK_ERRORS as e:
            # the candidate's deadline and each operation's timeout are the same: either may end it first
            late = s.deadline.expired.is_set() or isinstance(e, TimeoutError)
            error = f"no answer within {timeout:g} s" if late else describe_error(e, ep.where)
            return Tried(entry, error=error)
        finally:
            s.close_all()
            tally.add(s)


def choose_server(servers: ServerList, request: RunRequest, timeout: float, paths: str, tally: Tally) -> Choice:
    """The server the link's test should use; raise NoServerAnswered saying what each candidate answered."""
    entries = servers.entries
    with ThreadPoolExecutor(max(1, min(CONCURRENCY, len(entries))), thread_name_prefix="select") as pool:
        tried = list(pool.map(lambda entry: ping_candidate(entry, request, timeout, paths, tally), entries))
    answered = [t for t in tried if t.latency_ms is not None]
    if not answered:
        raise NoServerAnswered(f"none of the {len(tried)} servers of the list answered: "
                               + brief([f"{t.entry.name}: {t.error}" for t in tried], 420), len(tried))
    operator = request.link.operator
    preferred = [t for t in answered if operator and operator in t.entry.operators]
    best = min(preferred or answered, key=lambda t: t.latency_ms or 0.0)
    return Choice(best.entry, best.latency_ms or 0.0, len(tried))


def choose_from_list(source: str, request: RunRequest, timeout: float, ping_timeout: float, paths: str,
                     tally: Tally) -> Choice:
    """Load the list at source (agent/engines/serverlist.py) and choose from it, the bytes of both kept in the
    tally; entries left out are logged. Raise EngineError when there is no list, NoServerAnswered when none of
    it answers."""
    servers = load(source, request, timeout, tally)
    for reason in servers.skipped:
        log.warning("%s", _("server list {source}: {reason} (skipped)").format(source=source, reason=reason))
    return choose_server(servers, request, ping_timeout, paths, tally)
