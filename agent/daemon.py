"""`xaprobe run`: the long-running probe. Planned tests, uploads with backoff, heartbeats, pruning.

Jobs run on one `schedule.Scheduler` in one thread, so only one test runs at a time on the probe.
Each job is guarded: an error is logged (with its traceback) and kept for the heartbeat, and the
loop goes on; but a store that is corrupt, deleted or on a failing disk ends the daemon with exit
code 1, so systemd restarts it and the store is opened (and, if corrupt, moved aside) afresh.
A full disk starts no test (its data would be lost) and backs off until space returns.
SIGTERM ends the loop between jobs; every stored row is already durable when `Store.add` returns.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import random
import shutil
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

import requests
import schedule

from xaprobe import __version__
from xaprobe.agent import context
from xaprobe.agent.config import AgentConfig, LinkConfig
from xaprobe.agent.journal import Journal
from xaprobe.agent.measure import measure
from xaprobe.agent.planner import close_slot, next_due
from xaprobe.agent.quiet import Counters, Quiet, look
from xaprobe.agent.status import probe_status
from xaprobe.agent.store import Store, StoreBroken, StoreFull
from xaprobe.health import MAX_EVENTS, Heartbeat
from xaprobe.i18n import _
from xaprobe.months import utc_now
from xaprobe.uploader.upload import Destination, full_jitter_delay, send_heartbeat, upload_pending

log = logging.getLogger("xaprobe.agent")


def sd_notify(message: str) -> bool:
    """Tell systemd about our state (READY=1, WATCHDOG=1, STOPPING=1) when run under it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), address)
    except OSError:
        return False
    return True


@dataclasses.dataclass
class Health:
    """What only the running daemon knows (not persisted: a restart starts these afresh)."""

    last_error: str | None = None
    disk_full: bool = False
    disk_full_attempt: int = 0
    next_test_check_at: dt.datetime | None = None  # no test before this (the disk was full)
    upload_attempt: int = 0
    next_upload_at: dt.datetime | None = None
    # link -> how often its due test waited for the link to be quiet, and when it looks again
    quiet_waits: dict[str, int] = dataclasses.field(default_factory=dict)
    quiet_until: dict[str, dt.datetime] = dataclasses.field(default_factory=dict)


class Probe:
    """The daemon's jobs over one config and one store; the clock and RNG are passed in for tests."""

    def __init__(self, config: AgentConfig, store: Store, session: requests.Session,
                 clock: Callable[[], dt.datetime] = utc_now, rng: random.Random | None = None,
                 clock_synced: Callable[[], bool | None] = context.clock_synced, counters: Counters = Counters()):
        self.config, self.store, self.session, self.clock = config, store, session, clock
        self.counters = counters
        self.rng = rng or random.Random()
        self.clock_synced = clock_synced
        self.health = Health()
        self.journal = Journal(config.timezone, log)
        self.destination = Destination(config.collector_url, config.token, config.upload.timeout_s) \
            if config.collector_url else None

    def guarded(self, job: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            try:
                with self.store.errors(job.__name__):
                    job()
            except StoreBroken:
                raise  # the daemon cannot go on without its store: run_daemon exits for systemd to restart it
            except Exception as e:  # noqa: BLE001 - the one broad guard around each scheduled job
                self.health.last_error = f"{job.__name__}: {type(e).__name__}: {e}"
                log.exception("job %s failed", job.__name__)
        run.__name__ = job.__name__
        return run

    def test_if_due(self) -> None:
        if self.store.centre_settings().pause:
            return
        now = self.clock()
        if self.health.next_test_check_at and now < self.health.next_test_check_at:
            return
        held = [name for name, until in self.health.quiet_until.items() if now < until]
        plan = next_due(self.store, self.config, now, held=held)
        if plan is None or plan.next_at is None or plan.next_at > now:
            return
        if not self.store.has_room():
            self._disk_full(_("the disk under {path} is full: no test until space is freed").format(
                path=self.store.path), now)
            return
        link = next(link for link in self.config.links if link.name == plan.link)
        quiet = self._quiet(link)
        if quiet is None:
            return
        try:
            m = measure(self.config, self.store, link, cap_bytes=plan.cap_bytes, quiet=quiet)
        except StoreFull as e:
            self._disk_full(str(e), now)
            return
        self.health.disk_full, self.health.disk_full_attempt, self.health.next_test_check_at = False, 0, None
        self.health.quiet_waits.pop(link.name, None)
        self.health.quiet_until.pop(link.name, None)
        done_at = self.clock()  # the probe's one clock: the slot closes when its test ended
        close_slot(self.store, plan, done_at)
        after = next_due(self.store, self.config, done_at)
        self.journal.test_done(m, after.next_at if after else None)

    def _quiet(self, link: LinkConfig) -> Quiet | None:
        """Look at the link: what the test records, or None when the link is busy and its test waits (it stays
        due, its slot open, nothing counted; the link is looked at again after wait_s). After max_waits waits
        the test runs anyway, the traffic seen recorded with it."""
        settings = self.config.quiet_check
        quiet = look(link.interface, settings, self.counters, self.health.quiet_waits.get(link.name, 0))
        if quiet.waits_more(settings):
            retry = self.clock() + dt.timedelta(seconds=settings.wait_s)
            self.health.quiet_waits[link.name], self.health.quiet_until[link.name] = quiet.waits + 1, retry
            self.journal.quiet_wait(link.name, quiet, settings, retry)
            return None
        self.journal.quiet_done(link.name, quiet, settings)
        return quiet

    def _disk_full(self, message: str, now: dt.datetime) -> None:
        """Back off tests while the disk is full: the slot stays open, so the test runs once space is back."""
        self.health.disk_full, self.health.last_error = True, message
        self.health.disk_full_attempt += 1
        delay = min(60.0 * 2 ** min(self.health.disk_full_attempt - 1, 10), 1800.0)
        self.health.next_test_check_at = now + dt.timedelta(seconds=delay)
        log.error("%s", _("{message} (next check in {seconds} s)").format(message=message, seconds=int(delay)))

    def upload_if_due(self) -> None:
        if self.destination is None or self.store.upload_record().refuses(self.config.token.fingerprint()):
            return  # a refused token stays refused until staff give this probe a new one
        now = self.clock()
        if self.health.next_upload_at and now < self.health.next_upload_at:
            return
        # at most 100 batches per round, then let tests run
        outcome = upload_pending(self.store, self.session, self.destination, self.config.upload.batch_size,
                                 max_batches=100, now=now)
        if outcome.error:
            self.health.upload_attempt += 1
            delay = full_jitter_delay(self.health.upload_attempt, self.config.upload.backoff_base_s,
                                      self.config.upload.backoff_cap_s, self.rng)
            if outcome.retry_after is not None:
                delay = max(delay, outcome.retry_after)
            self.health.next_upload_at = now + dt.timedelta(seconds=delay)
            self.health.last_error = outcome.error
        else:
            self.health.upload_attempt, self.health.next_upload_at = 0, None
        self.journal.upload(outcome, now, self.health.next_upload_at)

    def heartbeat_record(self) -> Heartbeat:
        """The probe's status (as `xaprobe status` has it) plus what only the daemon knows."""
        now = self.clock()
        status = probe_status(self.config, self.store, now, self.clock_synced)
        self.journal.clock(status.clock_synced)
        try:
            disk_free: int | None = shutil.disk_usage(self.config.store.parent).free
        except OSError:
            disk_free = None
        beat = Heartbeat.from_status(status, __version__, now, disk_free, self.health.disk_full,
                                     self.health.last_error)
        # events no heartbeat has carried yet, oldest first: a long outage reports them over several beats
        return dataclasses.replace(beat, events=tuple(self.store.events(unreported_only=True)[:MAX_EVENTS]))

    def heartbeat(self) -> None:
        if self.destination is None:
            return
        beat = self.heartbeat_record()
        settings = send_heartbeat(self.session, self.destination, beat)
        if settings is None:
            return
        self.store.mark_events_reported([e.id for e in beat.events])
        if settings != self.store.centre_settings():
            self.store.save_centre_settings(settings)
            self.journal.settings(settings)

    def prune(self) -> None:
        days = self.config.upload.retention_days
        self.store.prune_uploaded(self.clock() - dt.timedelta(days=days))

    def scheduler(self) -> schedule.Scheduler:
        s = schedule.Scheduler()
        s.every(5).seconds.do(self.guarded(self.test_if_due))
        s.every(20).to(40).seconds.do(self.guarded(self.upload_if_due))
        interval = self.config.upload.heartbeat_interval_s
        s.every(int(interval * 0.9)).to(int(interval * 1.1) + 1).seconds.do(self.guarded(self.heartbeat))
        s.every(6).to(7).hours.do(self.guarded(self.prune))
        return s


def run_daemon(config: AgentConfig) -> int:
    """Run until SIGTERM or SIGINT; return the exit code."""
    logging.getLogger().setLevel(logging.INFO)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    store = Store.open(config.store)
    with requests.Session() as session:
        probe = Probe(config, store, session)
        sched = probe.scheduler()
        try:
            probe.guarded(probe.heartbeat)()
            sd_notify("READY=1")
            log.info("%s", _("xaprobe {version} running: {n} link(s), store {path}").format(
                version=__version__, n=len(config.links), path=config.store))
            plan = next_due(store, config, probe.clock())
            probe.journal.next_test(plan.link if plan else "-", plan.next_at if plan else None)
            while not stop.is_set():
                store.check_file()
                sched.run_pending()
                sd_notify("WATCHDOG=1")
                stop.wait(min(max(sched.idle_seconds or 1.0, 0.2), 5.0))
        except StoreBroken as e:
            log.error("%s", _("{error}; exiting so that systemd restarts xaprobe").format(error=e))
            sd_notify("STOPPING=1")
            return 1
    sd_notify("STOPPING=1")
    store.close()
    log.info("%s", _("stopped"))
    return 0
