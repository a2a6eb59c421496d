"""What the daemon tells the journal: one line per event, in the words of the person looking after the probe.

Tests, their results and the next test (in local time), delivery failures with their reason (a
reason repeated on every retry is written once, then as a reminder at most hourly), a refused
token, an unsynchronised clock and new settings from the collector.
"""

from __future__ import annotations

import datetime as dt
import logging

from xaprobe.agent.status import CLOCK_HINT, local_time
from xaprobe.health import CentreSettings
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
        after = f"; next test {self.when(next_at)}" if next_at else "; no more tests planned this month"
        if m.ok and m.download_mbps is not None and m.upload_mbps is not None:
            self.log.info("test on %s: down %.1f Mbit/s, up %.1f Mbit/s, latency %s ms%s", m.link.name,
                          m.download_mbps, m.upload_mbps,
                          "-" if m.latency_ms is None else f"{m.latency_ms:.0f}", after)
        else:
            self.log.warning("test on %s failed: %s%s", m.link.name, m.error, after)

    def next_test(self, link: str, at: dt.datetime | None) -> None:
        self.log.info("next test: %s", f"{link} at {self.when(at)}" if at else "none planned this month")

    def upload(self, outcome: Outcome, now: dt.datetime, retry_at: dt.datetime | None) -> None:
        """A delivery round: say a failure (once per reason, reminded hourly) and when deliveries resume."""
        if outcome.error is None:
            if self.last_upload_error is not None:
                self.log.info("deliveries to the collector work again: %d delivered", outcome.accepted
                              + outcome.duplicate + outcome.rejected)
            self.last_upload_error, self.refused_said = None, False
            return
        if outcome.token_refused:
            if not self.refused_said:
                self.log.error("the collector refused this probe's token: deliveries stop until the collector "
                               "staff give a new token (%s)", outcome.error)
            self.refused_said = True
            return
        last = self.last_upload_error
        if last is None or last[0] != outcome.error or now - last[1] >= REMIND_AFTER:
            retry = f"; next try {self.when(retry_at)}" if retry_at else ""
            self.log.warning("delivery to the collector failed: %s%s", outcome.error, retry)
            self.last_upload_error = (outcome.error, now)

    def clock(self, synced: bool | None) -> None:
        """Say when the clock stops (or starts) being synchronised."""
        if synced is False and self.clock_synced is not False:
            self.log.warning("%s", CLOCK_HINT)
        elif synced and self.clock_synced is False:
            self.log.info("the clock is synchronised again")
        self.clock_synced = synced

    def settings(self, settings: CentreSettings) -> None:
        target = f"target {settings.target} samples a month" if settings.target else "target from the config"
        self.log.info("settings from the collector: %s, %s", "paused" if settings.pause else "running", target)
