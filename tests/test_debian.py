"""The .deb packages as they will be installed: built with `make dist`'s and `make deb`'s own commands,
checked by lintian, installed with no network into a booted Debian 12 (systemd-nspawn, loopback only),
enrolled and started as the README says, then upgraded and purged.

The tests in this module share one container and run in order: each starts where the one before left it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO
from debroot import Container, booted, missing_tools

pytestmark = [pytest.mark.debian, pytest.mark.slow, pytest.mark.timeout(3600)]

VERSION = "0.1.0"  # checked against xaprobe.__version__ below
UNITS = ("xaprobe-agent.service", "xaprobe-collector.service")
DEBS_IN = "/var/tmp/debs"  # where the packages are copied in the container
STATE: dict[str, set[str]] = {}  # what the tests pass on to the next: the container's files before install


def _preconditions() -> str | None:
    if os.geteuid() != 0:
        return "needs root (debootstrap, systemd-nspawn)"
    missing = missing_tools()
    if missing:
        return f"needs {', '.join(missing)} (apt-get install debootstrap systemd-container lintian; .ci/run does)"
    return None


@pytest.fixture(scope="module", autouse=True)
def _can_run():
    problem = _preconditions()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)


def build_debs(source: Path, out: Path) -> dict[str, Path]:
    """`make dist` then `make deb`, as commands, from the tree at source; the packages by name."""
    dist = out / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(source)], check=True,
                   capture_output=True, timeout=600)
    done = subprocess.run([sys.executable, str(source / "packaging" / "build_deb.py"), "--dist", str(dist),
                           "--out", str(out), "--build", str(out / "build")],
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr
    return {deb.name.split("_")[0]: deb for deb in out.glob("*.deb")}


@pytest.fixture(scope="module")
def debs(tmp_path_factory) -> dict[str, Path]:
    from xaprobe import __version__

    assert __version__ == VERSION, "update VERSION in this test with the package's version"
    return build_debs(REPO, tmp_path_factory.mktemp("debs"))


@pytest.fixture(scope="module")
def next_debs(tmp_path_factory) -> dict[str, Path]:
    """The packages of a later version (the patch number bumped in a copy of this tree)."""
    tree = tmp_path_factory.mktemp("next") / "tree"
    shutil.copytree(REPO, tree, ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info",
                                                              "__pycache__", ".*_cache", "test-artifacts"))
    init = tree / "core" / "__init__.py"
    init.write_text(init.read_text().replace(f'__version__ = "{VERSION}"', '__version__ = "0.1.1"'))
    return build_debs(tree, tmp_path_factory.mktemp("next-debs"))


@pytest.fixture(scope="module")
def container(tmp_path_factory, debs) -> Container:
    with booted(tmp_path_factory.mktemp("nspawn")) as box:
        yield box


def _files(box: Container) -> set[str]:
    """Every path on the container's disk that a package could leave behind (logs, apt's and dpkg's own
    bookkeeping and scratch places excluded)."""
    skip = ["/proc", "/sys", "/dev", "/run", "/tmp", "/var/tmp", "/var/log", "/var/cache/apt", "/var/lib/apt",
            "/var/lib/dpkg", "/var/cache/debconf", "/var/cache/ldconfig", "/root"]
    prune = " -o ".join(f"-path {p}" for p in skip)
    return set(box.run(f"find / -xdev \\( {prune} \\) -prune -o -print").stdout.split("\n"))


def _copy_in(box: Container, debs: dict[str, Path]) -> None:
    target = box.root / DEBS_IN.lstrip("/")
    target.mkdir(parents=True, exist_ok=True)
    for deb in debs.values():
        shutil.copy(deb, target / deb.name)


def _install(box: Container, deb: Path) -> float:
    start = time.monotonic()
    box.run(f"DEBIAN_FRONTEND=noninteractive apt-get install -y {DEBS_IN}/{deb.name}", timeout=600)
    return time.monotonic() - start


def _exposure(box: Container, unit: str) -> float:
    out = box.run(f"systemd-analyze security --no-pager {unit}", check=False).stdout
    match = re.search(rf"Overall exposure level for {re.escape(unit)}: ([0-9.]+)", out)
    assert match, out
    return float(match.group(1))


def test_lintian_finds_no_errors_nor_warnings(debs):
    # No tag at warning level or above is kept; the info tags left are explained in README.md ("Packages").
    done = subprocess.run(["lintian", "--tag-display-limit", "0", *map(str, debs.values())],
                          capture_output=True, text=True, timeout=600)
    tags = [line for line in done.stdout.splitlines() if re.match(r"^[EW]: ", line)]
    assert tags == [], done.stdout
    assert done.returncode == 0, done.stdout + done.stderr


def test_packages_install_offline_and_services_start_after_enrolment(container, debs):
    box = container
    _copy_in(box, debs)
    STATE["files before"] = _files(box)
    assert box.run("ls /sys/class/net").stdout.split() == ["lo"]  # no network but loopback
    seconds = {name: _install(box, deb) for name, deb in debs.items()}
    print(f"install time: {seconds}; sizes: { {n: d.stat().st_size for n, d in debs.items()} }")
    # installed, enabled, and waiting for their configuration
    for unit in UNITS:
        assert box.run(f"systemctl is-enabled {unit}").stdout.strip() == "enabled"
        assert box.run(f"systemctl is-active {unit}", check=False).stdout.strip() == "inactive"

    # the README's collector steps
    init = box.run("xaprobe-collector init").stdout
    assert "Wrote /etc/xaprobe/collector.toml" in init and "Admin token for admin (shown once): xap_" in init
    assert box.run("stat -c %a /etc/xaprobe/collector.toml").stdout.strip() == "600"
    box.run("systemctl start xaprobe-collector")
    box.run("for i in $(seq 60); do /usr/bin/python3 -c \"import urllib.request as u; "
            "u.urlopen('http://127.0.0.1:8080/healthz', timeout=2)\" 2>/dev/null && exit 0; sleep 0.5; done; exit 1")
    listed = box.run("xaprobe-collector device list")
    assert "using database" not in listed.stderr  # the configured one: nothing to say
    other = box.run("xaprobe-collector --db sqlite:////var/tmp/other.db device list")
    assert "using database sqlite:////var/tmp/other.db (not the configured " \
           "sqlite:////var/lib/xaprobe-collector/collector.db of /etc/xaprobe/collector.toml)" in other.stderr

    # the README's probe steps: the file the staff wrote, installed, checked, started
    box.run("cd /root && xaprobe-collector device add --commune 18673 --name 'UBND xã Cẩm Xuyên' "
            "--write-config cam-xuyen.toml --collector-url http://127.0.0.1:8080 "
            "&& sed -i 's/interface = \"eth0\"/interface = \"lo\"/' cam-xuyen.toml")
    box.run("xaprobe config install /root/cam-xuyen.toml")
    modes = box.run("stat -c '%n %a %U' /etc/xaprobe/agent.toml /etc/xaprobe/token").stdout.split("\n")
    assert modes[:2] == ["/etc/xaprobe/agent.toml 644 root", "/etc/xaprobe/token 600 root"]
    assert "xap_" not in box.run("cat /etc/xaprobe/agent.toml").stdout
    check = box.run("xaprobe --lang en config check")
    assert "the service can read everything it needs (token from token_credential /etc/xaprobe/token" in check.stdout
    box.run("systemctl restart xaprobe-agent")
    for unit in UNITS:
        assert box.run(f"systemctl is-active {unit}").stdout.strip() == "active"


def test_agent_runs_as_its_dynamic_user_with_its_credential(container):
    box = container
    pid = box.run("systemctl show -p MainPID --value xaprobe-agent").stdout.strip()
    uid = box.run(f"awk '/^Uid:/ {{print $2}}' /proc/{pid}/status").stdout.strip()
    assert 61184 <= int(uid) <= 65519  # systemd's range for dynamic users: not root, not a user of the machine
    # systemd handed the token to that user alone, and the agent used it: the collector saw its heartbeat
    listing = box.run("stat -c '%a %u' /run/credentials/xaprobe-agent.service/token").stdout.split()
    assert listing == ["400", uid]
    box.run("for i in $(seq 60); do xaprobe-collector fleet | grep -q '^ok .*ubnd-xa-cam-xuyen' && exit 0; "
            "sleep 0.5; done; xaprobe-collector fleet; exit 1")


def test_probe_measures_against_the_collector_uploads_and_shows_it(container):
    box = container
    measured = box.run("xaprobe --lang en measure --duration 1").stdout
    assert measured.startswith("#1 main: down ")
    uploaded = box.run("xaprobe --lang en upload").stdout
    assert uploaded.startswith("accepted 1, duplicate 0, rejected 0; 0 still pending")
    status = json.loads(box.run("xaprobe status --json").stdout)
    assert (status["device_id"], status["commune_code"]) == ("ubnd-xa-cam-xuyen", "18673")
    assert (status["links"][0]["name"], status["links"][0]["samples"]) == ("main", 1)
    assert (status["pending"], status["uploaded"]) == (0, 1)
    assert "mẫu" in box.run("xaprobe status").stdout  # no LANG in the container: the officer reads Vietnamese
    report = json.loads(box.run("xaprobe-collector report --format json").stdout)
    assert [c["samples"] for c in report["communes"] if c["code"] == "18673"] == [1]


def test_installed_units_verify_and_their_exposure(container):
    box = container
    done = box.run("systemd-analyze verify " + " ".join(f"/lib/systemd/system/{u}" for u in UNITS), check=False)
    assert done.returncode == 0 and done.stdout.strip() == "" and done.stderr.strip() == "", done.stderr
    exposure = {unit: _exposure(box, unit) for unit in UNITS}
    print(f"systemd-analyze security: {exposure}")
    # systemd's scale: below 5 is OK, below 7 MEDIUM; neither may get worse than it was when this was written
    assert exposure["xaprobe-agent.service"] <= 3.8 and exposure["xaprobe-collector.service"] <= 5.2


def test_watchdog_restarts_a_hung_agent(container):
    box = container
    # the unit's WatchdogSec=120 shortened for the test (a drop-in in /run, gone after the test)
    box.run("mkdir -p /run/systemd/system/xaprobe-agent.service.d && printf '[Service]\\nWatchdogSec=4\\n"
            "RestartSec=1\\n' > /run/systemd/system/xaprobe-agent.service.d/test.conf && systemctl daemon-reload "
            "&& systemctl restart xaprobe-agent")
    hung = box.run("systemctl show -p MainPID --value xaprobe-agent").stdout.strip()
    box.run(f"kill -STOP {hung}")
    box.run(f"for i in $(seq 60); do p=$(systemctl show -p MainPID --value xaprobe-agent); "
            f"[ \"$p\" != {hung} ] && [ \"$p\" != 0 ] && systemctl is-active -q xaprobe-agent && exit 0; sleep 0.5; "
            "done; exit 1")
    log = box.run("journalctl -u xaprobe-agent --no-pager").stdout
    assert "Failed with result 'watchdog'" in log
    box.run("rm -r /run/systemd/system/xaprobe-agent.service.d && systemctl daemon-reload "
            "&& systemctl restart xaprobe-agent")


def test_upgrade_keeps_config_and_data(container, next_debs):
    box = container
    _copy_in(box, next_debs)
    before = box.run("md5sum /etc/xaprobe/agent.toml /etc/xaprobe/token /etc/xaprobe/collector.toml").stdout
    for deb in next_debs.values():
        _install(box, deb)
    assert box.run("xaprobe --version").stdout.strip() == "xaprobe 0.1.1"
    assert box.run("xaprobe-collector --version").stdout.strip() == "xaprobe 0.1.1"
    assert box.run("md5sum /etc/xaprobe/agent.toml /etc/xaprobe/token /etc/xaprobe/collector.toml").stdout == before
    for unit in UNITS:
        assert box.run(f"systemctl is-active {unit}").stdout.strip() == "active"
    kept_status = json.loads(box.run("xaprobe status --json").stdout)
    assert (kept_status["pending"], kept_status["uploaded"]) == (0, 1)
    assert "ubnd-xa-cam-xuyen" in box.run("xaprobe-collector device list").stdout


def test_remove_keeps_data_and_purge_leaves_nothing(container):
    box = container
    box.run("DEBIAN_FRONTEND=noninteractive apt-get remove -y xaprobe xaprobe-collector")
    kept = box.run("ls /var/lib/private/xaprobe /var/lib/private/xaprobe-collector /etc/xaprobe").stdout
    assert "probe.db" in kept and "collector.db" in kept and "agent.toml" in kept and "token" in kept
    assert box.run("ls /opt").stdout.strip() == ""  # the venvs are not data
    box.run("DEBIAN_FRONTEND=noninteractive apt-get purge -y xaprobe xaprobe-collector")
    left = _files(box) - STATE["files before"]
    assert sorted(left) == []
