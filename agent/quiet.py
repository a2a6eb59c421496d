"""Given a link's interface, return the other traffic on it in kbit/s from its byte counters over a short window
(None when it has no interface or its counters cannot be read), so a test waits for a quiet link.

The counters are sysfs's (rx_bytes + tx_bytes of /sys/class/net/IFACE/statistics) as seen from the network
namespace the probe runs in. Nothing else of the probe sends while a check runs: tests, uploads and heartbeats
take turns in one thread, so what the counters move is a user's traffic or an earlier test's leftovers.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from xaprobe.agent.config import QuietCheckConfig
from xaprobe.agent.context import SYS_NET
from xaprobe.i18n import _, number
from xaprobe.wire import Measurement, Method


@dataclasses.dataclass(frozen=True)
class Quiet:
    """What the check saw before a test: the traffic of its last look (None: not checked) and how often it waited."""

    kbps: float | None = None
    waits: int = 0

    def busy(self, settings: QuietCheckConfig) -> bool:
        return self.kbps is not None and self.kbps > settings.busy_kbps

    def waits_more(self, settings: QuietCheckConfig) -> bool:
        """Busy with waits left: look again after wait_s instead of testing."""
        return self.busy(settings) and self.waits < settings.max_waits


NOT_CHECKED = Quiet()


@dataclasses.dataclass(frozen=True)
class Counters:
    """The byte counters of the interfaces under sys_net; the sleep and the clock are parameters for tests."""

    sys_net: Path = SYS_NET
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def total_bytes(self, interface: str) -> int | None:
        """Bytes received plus sent on the interface since it came up; None when they cannot be read."""
        if not interface or "/" in interface:
            return None
        base = self.sys_net / interface / "statistics"
        try:
            return int((base / "rx_bytes").read_text()) + int((base / "tx_bytes").read_text())
        except (OSError, ValueError):
            return None

    def kbps(self, interface: str, window_s: float) -> float | None:
        """The interface's traffic (both directions) over window_s seconds in kbit/s; None when unreadable."""
        before, start = self.total_bytes(interface), self.clock()
        if before is None:
            return None
        self.sleep(window_s)
        after, elapsed = self.total_bytes(interface), self.clock() - start
        if after is None or after < before or elapsed <= 0:
            return None  # the interface went away or was made anew (its counters restarted) during the window
        return (after - before) * 8 / 1000 / elapsed


def look(interface: str, settings: QuietCheckConfig, counters: Counters, waits: int) -> Quiet:
    """One look at the interface after waits waits; NOT_CHECKED when the check is disabled."""
    return Quiet(counters.kbps(interface, settings.window_s), waits) if settings.enabled else NOT_CHECKED


def wait_for_quiet(interface: str, settings: QuietCheckConfig, counters: Counters,
                   on_wait: Callable[[Quiet], None]) -> Quiet:
    """Look at the interface; while it is busy with waits left, call on_wait with the look, sleep wait_s and
    look again. Return the last look (busy still when max_waits ran out)."""
    quiet = look(interface, settings, counters, 0)
    while quiet.waits_more(settings):
        on_wait(quiet)
        counters.sleep(settings.wait_s)
        quiet = look(interface, settings, counters, quiet.waits + 1)
    return quiet


def busy_text(link: str, quiet: Quiet, settings: QuietCheckConfig) -> str:
    return _("link {link} is busy: {kbps} kbit/s of other traffic (more than {limit})").format(
        link=link, kbps=number(quiet.kbps or 0.0, 0), limit=number(settings.busy_kbps, 0))


def still_busy_text(link: str, quiet: Quiet, settings: QuietCheckConfig) -> str:
    return busy_text(link, quiet, settings) + "; " + _(
        "still so after {n} waits: testing anyway, the traffic recorded with the result").format(n=quiet.waits)


def stamped(m: Measurement, quiet: Quiet) -> Measurement:
    """m with what the check saw in its Method (a Method made when the engine gave none); m itself when the
    link was not checked (no interface, unreadable counters, the check disabled): None is not zero."""
    if quiet.kbps is None and not quiet.waits:
        return m
    kbps = None if quiet.kbps is None else round(quiet.kbps, 1)
    return dataclasses.replace(m, method=dataclasses.replace(m.method or Method(), cross_traffic_kbps=kbps,
                                                             quiet_waits=quiet.waits))
