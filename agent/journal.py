"""What the daemon tells the journal: one line per event, in the words of the person looking after the probe.

Tests, their results and the next test (in local time), delivery failures with their reason (a
reason repeated on every retry is written once, then as a reminder at most hourly), a refused
token, an unsynchronised clock, new settings from the collector, and a test waiting for its link to be quiet
(said at its first wait, and when it ends).
"""

from __future__ import annotations

import datetime as dt
import logging

from xaprobe.agent.config import QuietCheckConfig
from xaprobe.agent.quiet import Quiet, busy_text, still_busy_text
from xaprobe.agent.status import clock_hint, local_time
from xaprobe.health import CentreSettings
from xaprobe.i18n import _, number
from xaprobe.uploader.upload import Outcome
from xaprobe.wire import Measurement

REMIND_AFTER = dt.timedelta(hours=1)


class Journal:
    """The daemon's journal lines; holds what it last said so that nothing repeats on every retry."""

    def __init__(self, timezone: str, logger: logging.Logger):
        self.tz, self.log = timezone, logger
        self.last_upload_error: tuple[str, dt.datetime] | None = None
        self.clock_synced: bool | None = None
        self.refused_said = False

    def when(self, instant: dt.datetime) -> str:
        return local_time(instant, self.tz)

    def test_done(self, m: Measurement, next_at: dt.datetime | None) -> None:
        after = "; " + (_("next test {when}").format(when=self.when(next_at)) if next_at
                        else _("no more tests planned this month"))
        if m.ok and m.download_mbps is not None and m.upload_mbps is not None:
            self.log.info("%s%s", _("test on {link}: down {down} Mbit/s, up {up} Mbit/s, latency {latency} ms").format(
                link=m.link.name, down=number(m.download_mbps), up=number(m.upload_mbps),
                latency="-" if m.latency_ms is None else number(m.latency_ms, 0)), after)
        else:
            self.log.warning("%s%s", _("test on {link} failed: {error}").format(link=m.link.name, error=m.error),
                             after)

    def quiet_wait(self, link: str, quiet: Quiet, settings: QuietCheckConfig, retry_at: dt.datetime) -> None:
        """A due test waits for its busy link: said at the first wait only."""
        if quiet.waits == 0:
            self.log.info("%s; %s", busy_text(link, quiet, settings), _(
                "the test waits for the link to be quiet (next look {when}, at most {n} waits)").format(
                when=self.when(retry_at), n=settings.max_waits))

    def quiet_done(self, link: str, quiet: Quiet, settings: QuietCheckConfig) -> None:
        """How a wait for a quiet link ended: the link went quiet, or the test runs anyway."""
        if quiet.busy(settings):
            self.log.warning("%s", still_busy_text(link, quiet, settings))
        elif quiet.waits:
            self.log.info("%s", _("link {link} is quiet after {n} waits: testing").format(link=link, n=quiet.waits))

    def next_test(self, link: str, at: dt.datetime | None) -> None:
        self.log.info("%s", _("next test: {link} at {when}").format(link=link, when=self.when(at)) if at
                      else _("no more tests planned this month"))

    def upload(self, outcome: Outcome, now: dt.datetime, retry_at: dt.datetime | None) -> None:
        """A delivery round: say a failure (once per reason, reminded hourly) and when deliveries resume."""
        if outcome.error is None:
            if self.last_upload_error is not None:
                self.log.info("%s", _("deliveries to the collector work again: {n} delivered").format(
                    n=outcome.accepted + outcome.duplicate + outcome.rejected))
            self.last_upload_error, self.refused_said = None, False
            return
        if outcome.token_refused:
            if not self.refused_said:
                self.log.error("%s", _("the collector refused this probe's token: deliveries stop until the "
                                       "collector staff give a new token ({error})").format(error=outcome.error))
            self.refused_said = True
            return
        last = self.last_upload_error
        if last is None or last[0] != outcome.error or now - last[1] >= REMIND_AFTER:
            retry = "; " + _("next try {when}").format(when=self.when(retry_at)) if retry_at else ""
            self.log.warning("%s%s", _("delivery to the collector failed: {error}").format(error=outcome.error),
                             retry)
            self.last_upload_error = (outcome.error, now)

    def clock(self, synced: bool | None) -> None:
        """Say when the clock stops (or starts) being synchronised."""
        if synced is False and self.clock_synced is not False:
            self.log.warning("%s", clock_hint())
        elif synced and self.clock_synced is False:
            self.log.info("%s", _("the clock is synchronised again"))
        self.clock_synced = synced

    def settings(self, settings: CentreSettings) -> None:
        target = _("target {n} samples a month").format(n=settings.target) if settings.target \
            else _("target from the config")
        self.log.info("%s", _("settings from the collector: {state}, {target}").format(
            state=_("paused") if settings.pause else _("running"), target=target))
