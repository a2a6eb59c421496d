"""Prometheus metrics of one collector process: ingested items by answer, id conflicts, request latency,
devices seen.

Counters live in the process (Prometheus scrapes each process and sums); devices seen come from the
database, so every process reports the same figure.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: dict[str, int] = defaultdict(int)
        self.conflicts: dict[str, int] = defaultdict(int)
        self._hist: dict[tuple[str, str], list[int]] = {}
        self._sum: dict[tuple[str, str], float] = defaultdict(float)
        self._count: dict[tuple[str, str], int] = defaultdict(int)

    def count_items(self, statuses: list[str]) -> None:
        with self._lock:
            for status in statuses:
                self.items[status] += 1

    def count_conflicts(self, same_device: int, other_device: int) -> None:
        """Items that reused a stored id for other content: the sender's own, or another device's."""
        with self._lock:
            self.conflicts["same_device"] += same_device
            self.conflicts["other_device"] += other_device

    def observe(self, method: str, route: str, seconds: float) -> None:
        key = (method, route)
        with self._lock:
            counts = self._hist.setdefault(key, [0] * len(BUCKETS))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
            self._sum[key] += seconds
            self._count[key] += 1

    def render(self, devices_seen: dict[str, int]) -> str:
        lines = ["# HELP xaprobe_items_total Measurements received, by the collector's answer.",
                 "# TYPE xaprobe_items_total counter"]
        with self._lock:
            for status in ("accepted", "duplicate", "rejected"):
                lines.append(f'xaprobe_items_total{{status="{status}"}} {self.items.get(status, 0)}')
            lines += ["# HELP xaprobe_id_conflicts_total Items sent under an id already stored with other "
                      "content, by whose it was.", "# TYPE xaprobe_id_conflicts_total counter"]
            for kind in ("same_device", "other_device"):
                lines.append(f'xaprobe_id_conflicts_total{{kind="{kind}"}} {self.conflicts.get(kind, 0)}')
            lines += ["# HELP xaprobe_request_seconds Time to answer an HTTP request.",
                      "# TYPE xaprobe_request_seconds histogram"]
            for (method, route), counts in sorted(self._hist.items()):
                labels = f'method="{method}",route="{route}"'
                for bound, n in zip(BUCKETS, counts):
                    lines.append(f'xaprobe_request_seconds_bucket{{{labels},le="{bound}"}} {n}')
                lines.append(f'xaprobe_request_seconds_bucket{{{labels},le="+Inf"}} {self._count[(method, route)]}')
                lines.append(f"xaprobe_request_seconds_sum{{{labels}}} {self._sum[(method, route)]:.6f}")
                lines.append(f"xaprobe_request_seconds_count{{{labels}}} {self._count[(method, route)]}")
        lines += ["# HELP xaprobe_devices_seen Devices that reached the collector within the window.",
                  "# TYPE xaprobe_devices_seen gauge"]
        for window, n in devices_seen.items():
            lines.append(f'xaprobe_devices_seen{{window="{window}"}} {n}')
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """Time every request but the speed-test streams (which would only measure the client's link)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/speedtest"):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "other"
            self.metrics.observe(scope["method"], path, time.perf_counter() - start)
