"""Two network namespaces joined by a veth pair, rate-shaped with tbf: a server host and a client host.

Used by the accuracy benchmark and the CI accuracy test. Needs root, iproute2 and the tbf qdisc.
Every address is inside the namespaces this code made (10.199.x.x, 10.200.x.1).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

GOODPUT_SHARE = 1448 / 1514  # TCP payload per full frame tbf charges for (timestamps on)


def sh(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def ceiling_mbps(rate_mbit: float) -> float:
    """The most TCP payload a tbf of this rate lets through."""
    return rate_mbit * GOODPUT_SHARE


class NetLab:
    """A server namespace and a client namespace joined by one veth pair per link.

    Link i has 10.199.<10*index+i>.1 (server side) and .2 (client side). With several links the
    server also answers on a service address on its loopback, 10.200.<index>.1, which the client
    reaches through any link (one default route per link, as with one modem per operator), so a
    test bound to a link's interface crosses that link only.
    """

    def __init__(self, index: int = 1, links: int = 1):
        self.index = index
        tag = f"{os.getpid() % 10000}{index}"
        self.server_ns, self.client_ns = f"xaps{tag}", f"xapc{tag}"
        self.links = links
        self.server_ifs = [f"xs{tag}{i}" for i in range(1, links + 1)]
        self.client_ifs = [f"xc{tag}{i}" for i in range(1, links + 1)]
        self.server_ips = [f"10.199.{10 * index + i}.1" for i in range(1, links + 1)]
        self.client_ips = [f"10.199.{10 * index + i}.2" for i in range(1, links + 1)]
        self.server_if, self.client_if = self.server_ifs[0], self.client_ifs[0]
        self.server_ip, self.client_ip = self.server_ips[0], self.client_ips[0]
        self.service_ip = f"10.200.{index}.1" if links > 1 else self.server_ip
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> "NetLab":
        sh("ip", "netns", "add", self.server_ns)
        sh("ip", "netns", "add", self.client_ns)
        for ns in (self.server_ns, self.client_ns):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for i in range(self.links):
            sh("ip", "link", "add", self.server_ifs[i], "netns", self.server_ns, "type", "veth", "peer", "name",
               self.client_ifs[i], "netns", self.client_ns)
            for ns, dev, ip in ((self.server_ns, self.server_ifs[i], self.server_ips[i]),
                                (self.client_ns, self.client_ifs[i], self.client_ips[i])):
                sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
                sh("ip", "-n", ns, "link", "set", dev, "up")
            if self.links > 1:
                sh("ip", "-n", self.client_ns, "route", "add", "default", "via", self.server_ips[i], "dev",
                   self.client_ifs[i], "metric", str(100 + i))
        if self.links > 1:
            sh("ip", "-n", self.server_ns, "addr", "add", f"{self.service_ip}/32", "dev", "lo")
        return self

    def __exit__(self, *exc) -> None:
        for p in self.processes:
            p.kill()
            p.wait(timeout=10)
        for ns in (self.client_ns, self.server_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)

    def shape(self, rate_mbit: float | None, link: int | None = None) -> None:
        """Shape both directions of one link (or all) to rate_mbit with tbf; None removes shaping.

        burst is about 4 ms of the rate (at least 16 KB), the queue holds 50 ms."""
        for i in range(self.links) if link is None else [link]:
            for ns, dev in ((self.server_ns, self.server_ifs[i]), (self.client_ns, self.client_ifs[i])):
                subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root"],
                               capture_output=True, timeout=30)
                if rate_mbit:
                    burst = max(16 * 1024, int(rate_mbit * 1e6 / 8 / 250))
                    limit = max(64 * 1024, int(rate_mbit * 1e6 / 8 * 0.05))
                    sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate",
                       f"{rate_mbit}mbit", "burst", str(burst), "limit", str(limit))

    def spawn(self, ns: str, args: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(["ip", "netns", "exec", ns, *args], **kw)
        self.processes.append(p)
        return p

    def start_speedtest_server(self, port: int = 8080) -> str:
        """Run `xaprobe-collector speedtest-server` in the server namespace; return its URL."""
        return self.start_server([sys.executable, "-m", "xaprobe.collector", "speedtest-server", "--host",
                                  "0.0.0.0", "--port", str(port)], port) + "speedtest/"

    def start_server(self, args: list[str], port: int) -> str:
        """Run a server command in the server namespace; return http://address:port/ once the client reaches it."""
        self.spawn(self.server_ns, args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = ("import socket,sys,time\n"
                 "for _ in range(200):\n"
                 f"    try: socket.create_connection(('{self.service_ip}', {port}), 1).close(); sys.exit(0)\n"
                 "    except OSError: time.sleep(0.05)\n"
                 "sys.exit(1)\n")
        subprocess.run(["ip", "netns", "exec", self.client_ns, sys.executable, "-c", probe], check=True, timeout=30)
        return f"http://{self.service_ip}:{port}/"

    def run_client(self, args: list[str], timeout: float = 300) -> tuple[str, float, int]:
        """Run a command in the client namespace; return (stdout, CPU seconds, peak RSS in bytes)."""
        out = Path(f"/tmp/netlab-{os.getpid()}-{self.index}.out")
        with out.open("wb") as f:
            p = subprocess.Popen(["ip", "netns", "exec", self.client_ns, *args], stdout=f,
                                 stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + timeout
            while True:
                pid, status, usage = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    p.kill()
                    raise TimeoutError(" ".join(args))
                time.sleep(0.05)
            p.returncode = os.waitstatus_to_exitcode(status)
        text = out.read_text()
        out.unlink()
        return text, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def available() -> bool:
    """True when this machine lets us build the lab (root, ip, tc with tbf)."""
    if os.geteuid() != 0:
        return False
    try:
        with NetLab(24) as lab:
            lab.shape(10)
    except (RuntimeError, OSError, subprocess.SubprocessError):
        return False
    return True
