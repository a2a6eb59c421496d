"""A minimal Debian 12 root made once with debootstrap and cached outside the checkout, and a booted copy of
it under systemd-nspawn with no network but its own loopback: where the .deb packages are installed as a
commune office or a district server would install them.

The cached root already holds what the packages depend on (python3, python3-venv, systemd), so that
`apt-get install ./file.deb` inside the container works with no network, as it must in the field.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

CACHE = Path(os.environ.get("XAPROBE_TEST_CACHE", "/var/cache/xaprobe-tests"))
MIRROR = os.environ.get("XAPROBE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
# systemd(-sysv) to boot it, dbus for systemctl and systemd-analyze, and what the packages depend on
INCLUDE = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "init-system-helpers")
TOOLS = ("debootstrap", "systemd-nspawn", "nsenter", "dpkg-deb", "lintian")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def cached_root() -> Path:
    """The cached Debian 12 root, made with debootstrap on first use (about a minute), reused afterwards.

    A stamp file records what it was made with; a root made with another package list is made again. A
    lock keeps two test runs on one machine from making it at once."""
    root = CACHE / SUITE
    stamp = f"{SUITE} {MIRROR} --variant=minbase --include={','.join(INCLUDE)}\n"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp_file = root / ".xaprobe-test-root"
        if stamp_file.exists() and stamp_file.read_text() == stamp:
            return root
        building = CACHE / f"{SUITE}.new"
        for old in (building, root):
            if old.exists():
                shutil.rmtree(old)
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}", SUITE,
                        str(building), MIRROR], check=True, capture_output=True, timeout=1800)
        (building / ".xaprobe-test-root").write_text(stamp)
        building.rename(root)
    return root


class Container:
    """A booted copy of the cached root: `systemd-nspawn --boot --register=no --keep-unit --private-network`
    (no machined, no system bus needed on the host; only a loopback inside). Commands run in it through
    nsenter into its init's namespaces."""

    def __init__(self, root: Path, log: Path):
        self.root, self.log = root, log
        self.nspawn: subprocess.Popen | None = None
        self.pid = 0

    def boot(self, timeout: float = 120) -> None:
        with open(self.log, "wb") as out:
            self.nspawn = subprocess.Popen(
                ["systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit", "--private-network",
                 "--console=passive", f"--directory={self.root}", f"--machine=xaprobe-{os.getpid()}"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise RuntimeError(f"systemd-nspawn ended with {self.nspawn.returncode}: {self.log.read_text()}")
            children = Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children")
            pids = children.read_text().split() if children.exists() else []
            if pids and Path(f"/proc/{pids[0]}/comm").read_text().strip() == "systemd":
                self.pid = int(pids[0])
                state = self.run("systemctl is-system-running --wait", check=False, timeout=deadline - time.monotonic())
                if state.stdout.strip() in ("running", "degraded"):
                    return
            time.sleep(0.5)
        raise TimeoutError(f"the container did not boot in {timeout} s: {self.log.read_text()[-2000:]}")

    def run(self, command: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run a shell command as root inside the container; stdout and stderr as text."""
        done = subprocess.run(["nsenter", "-t", str(self.pid), "-a", "--", "/usr/bin/env", "-i", f"PATH={PATH}",
                               "LANG=C.UTF-8", "HOME=/root", "/bin/sh", "-c", command],
                              capture_output=True, text=True, timeout=max(timeout, 1))
        if check and done.returncode != 0:
            raise AssertionError(f"in the container: {command}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}")
        return done

    def stop(self) -> None:
        if self.nspawn is None or self.nspawn.poll() is not None:
            return
        self.nspawn.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to power off
        try:
            self.nspawn.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.nspawn.kill()
            self.nspawn.wait(timeout=30)


@contextlib.contextmanager
def booted(workdir: Path) -> Iterator[Container]:
    """A throwaway copy of the cached root, booted; powered off and removed afterwards."""
    root = workdir / "root"
    subprocess.run(["cp", "-a", "--reflink=auto", str(cached_root()), str(root)], check=True, timeout=600)
    container = Container(root, workdir / "nspawn.log")
    try:
        container.boot()
        yield container
    finally:
        container.stop()
        shutil.rmtree(root, ignore_errors=True)
