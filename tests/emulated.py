"""A client and a server namespace joined through a third one where tests/linkemu.c forwards every frame with
a delay, random loss and a fixed or time-varying rate: RTT and loss for tests, which this kernel's qdiscs
cannot give (no netem). Needs root, iproute2, ethtool and gcc; addresses are 10.198.<index>.1 (server) and .2.

    with EmulatedLab(1, rate_mbit=40, rtt_ms=60, loss=0.005) as lab:
        url = lab.start_speedtest_server()
        out, cpu, rss = lab.run_client([...])
"""

from __future__ import annotations

import hashlib
import os
import random
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

from netlab import NetLab, ceiling_mbps, sh

SOURCE = Path(__file__).with_name("linkemu.c")


def build() -> Path:
    """Compile linkemu.c once per content (gcc -O2) into a cache folder; return the binary."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    binary = Path(os.environ.get("XDG_CACHE_HOME", "/tmp")) / f"xaprobe-linkemu-{digest}"
    if not binary.exists():
        tmp = binary.with_suffix(".tmp")
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(tmp), str(SOURCE)], check=True, timeout=120)
        tmp.rename(binary)
    return binary


def lte_trace(seconds: float = 30.0, seed: int = 15, low: float = 4.0, high: float = 40.0) -> list[tuple[int, float]]:
    """An LTE-like rate trace: steps of 100-500 ms, each rate a random walk between low and high Mbit/s."""
    rng = random.Random(seed)
    steps, total, rate = [], 0, (low + high) / 2
    while total < seconds * 1000:
        ms = rng.randrange(100, 501, 10)
        rate = min(high, max(low, rate * rng.uniform(0.6, 1.5)))
        steps.append((ms, round(rate, 2)))
        total += ms
    return steps


def trace_mean_mbit(trace: list[tuple[int, float]]) -> float:
    """The rate a trace gives on average over one turn."""
    return sum(ms * mbit for ms, mbit in trace) / sum(ms for ms, _ in trace)


def trace_ceiling(trace: list[tuple[int, float]], a: float, b: float) -> float:
    """The goodput ceiling in Mbit/s of a repeated trace over its seconds [a, b] from a restart (a < b)."""
    period = sum(ms for ms, _ in trace) / 1000
    turn = sum(ms / 1000 * mbit for ms, mbit in trace)

    def carried(t: float) -> float:  # Mbit the trace lets through from 0 to t
        turns, rest = divmod(t, period)
        total = turns * turn
        for ms, mbit in trace:
            total += min(ms / 1000, rest) * mbit
            rest -= ms / 1000
            if rest <= 0:
                break
        return total

    return ceiling_mbps((carried(b) - carried(a)) / (b - a))


def available() -> bool:
    return os.geteuid() == 0 and all(shutil.which(t) for t in ("ip", "ethtool", "gcc"))


class EmulatedLab(NetLab):
    """NetLab's client and server, with the emulated link between them instead of a veth pair."""

    def __init__(self, index: int = 1, rate_mbit: float = 40.0, rtt_ms: float = 0.0, loss: float = 0.0,
                 trace: list[tuple[int, float]] | None = None, limit_ms: float = 50.0, seed: int = 1):
        super().__init__(index)
        tag = f"{os.getpid() % 10000}{index}"
        self.mid_ns = f"xapm{tag}"
        self.mid_ifs = (f"xma{tag}", f"xmb{tag}")
        self.server_ip, self.client_ip = f"10.198.{index}.1", f"10.198.{index}.2"
        self.server_ips, self.client_ips = [self.server_ip], [self.client_ip]
        self.service_ip = self.server_ip
        self.args = ["--delay-ms", f"{rtt_ms / 2:g}", "--loss", f"{loss:g}", "--limit-ms", f"{limit_ms:g}",
                     "--seed", str(seed), "--seconds", "3600"]
        if trace:
            self.args += ["--trace", ",".join(f"{ms}:{mbit:g}" for ms, mbit in trace)]
        else:
            self.args += ["--rate", f"{rate_mbit:g}"]
        self.emulator: subprocess.Popen | None = None

    def __enter__(self) -> "EmulatedLab":
        binary = build()
        for ns in (self.server_ns, self.client_ns, self.mid_ns):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        pairs = ((self.client_ns, self.client_if, self.mid_ifs[0]), (self.server_ns, self.server_if, self.mid_ifs[1]))
        for ns, end, mid in pairs:
            sh("ip", "link", "add", end, "netns", ns, "type", "veth", "peer", "name", mid, "netns", self.mid_ns)
        for ns, dev, ip in ((self.client_ns, self.client_if, self.client_ip), (self.server_ns, self.server_if,
                                                                            self.server_ip)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
        for ns, dev in ((self.client_ns, self.client_if), (self.server_ns, self.server_if),
                        (self.mid_ns, self.mid_ifs[0]), (self.mid_ns, self.mid_ifs[1])):
            # frames of at most one MTU with their checksums made: the forwarder copies frames as they are
            sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off", "tx", "off")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        self.emulator = self.spawn(self.mid_ns, [str(binary), *self.mid_ifs, *self.args],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.emulator.stdout is not None
        if self.emulator.stdout.readline().strip() != "ready":
            raise RuntimeError("linkemu did not start")
        return self

    def restart_trace(self) -> float:
        """Start the rate trace again from its first step (a fixed rate is unchanged); return once it has, with
        when (time.monotonic(), the emulator's clock: the middle of asking and hearing back, a few ms apart)."""
        assert self.emulator is not None and self.emulator.stdout is not None
        asked = time.monotonic()
        self.emulator.send_signal(signal.SIGUSR1)
        ready, _, _ = select.select([self.emulator.stdout], [], [], 5)
        if not ready or self.emulator.stdout.readline().strip() != "restarted":
            raise RuntimeError("linkemu did not restart its trace")
        return (asked + time.monotonic()) / 2

    def stop_emulator(self) -> list[dict[str, int]]:
        """Stop the forwarder; return its counts per direction (client to server first): frames, bytes, lost
        (random loss), dropped (queue full)."""
        assert self.emulator is not None
        self.emulator.terminate()
        _, err = self.emulator.communicate(timeout=10)
        ways = []
        for line in err.splitlines():
            if line.startswith("way "):
                words = line.split(":", 1)[1].split()
                ways.append({words[i]: int(words[i + 1]) for i in range(0, len(words), 2)})
        return ways

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        subprocess.run(["ip", "netns", "del", self.mid_ns], capture_output=True, timeout=30)

    def shape(self, rate_mbit: float | None, link: int | None = None) -> None:
        raise NotImplementedError("the emulated link's rate is set when the lab is made")
