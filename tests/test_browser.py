"""The dashboard as a person sees it: headless Chromium against the running collector, with a screenshot."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from conftest import REPO, make_measurement

from xaprobe.health import Heartbeat
from xaprobe.wire import Link, to_wire

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO / "test-artifacts"

if CHROMIUM is None:
    if os.environ.get("CI"):
        raise RuntimeError("chromium is missing: .ci/run installs Debian's chromium package")
    pytest.skip("needs Debian's chromium package", allow_module_level=True)


def chromium(tmp_path: Path, url: str, *args: str) -> str:
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={tmp_path / 'chrome'}", "--virtual-time-budget=5000", *args, url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture
def populated(sqlite_collector):
    now = dt.datetime.now(dt.timezone.utc)
    for device, commune, n in (("cam-xuyen", "18673", 12), ("other", "18652", 3)):
        token = sqlite_collector.enrol(device, commune)
        items = [to_wire(make_measurement(device_id=device, commune_code=commune, download_mbps=20.0 + i,
                                          started_at=now - dt.timedelta(hours=i),
                                          link=Link(name=op.lower(), operator=op)))
                 for i in range(n) for op in ("Viettel", "VNPT")]
        requests.post(sqlite_collector.base + "/api/v1/measurements", json={"measurements": items}, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}).raise_for_status()
        beat = Heartbeat(device_id=device, version="0.1.0", sent_at=now, backlog=2)
        requests.post(sqlite_collector.base + "/api/v1/heartbeat", json=beat.to_wire(),
                      timeout=30, headers={"Authorization": f"Bearer {token}"}).raise_for_status()
    return sqlite_collector


def login_url(collector, target: str) -> str:
    return f"{collector.base}/login?token={collector.admin_token}&next={quote(target)}"


def test_overview_shows_communes_progress_and_operator_chart(populated, tmp_path):
    dom = chromium(tmp_path, login_url(populated, "/?province=42"), "--dump-dom")
    assert "Hà Tĩnh" in dom and "Xã Cẩm Xuyên" in dom
    assert 'data-code="18673"' in dom and "24 / 300" in dom  # 12 samples each from two operators
    assert "Chậm tiến độ" in dom or "Đúng tiến độ" in dom  # Vietnamese by default
    assert 'id="operator-chart"' in dom and "<svg" in dom and "Viettel" in dom and "VNPT" in dom
    assert 'class="device' in dom and "cam-xuyen" in dom
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', dom)  # nothing fetched from elsewhere: intranets
    assert not re.search(r"<script[^>]*\bsrc\s*=", dom)  # pygal inlines its config; nothing is loaded
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard-overview.png"
    chromium(tmp_path, login_url(populated, "/?province=42"), f"--screenshot={shot}", "--window-size=1280,1600")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_commune_page_in_english(populated, tmp_path):
    dom = chromium(tmp_path, login_url(populated, "/commune/18673?lang=en"), "--dump-dom")
    assert "Xã Cẩm Xuyên (18673)" in dom and "Samples per day" in dom and 'id="daily-chart"' in dom
    assert "Operators: median download" in dom and 'id="spread-chart"' in dom
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard-commune.png"
    chromium(tmp_path, login_url(populated, "/commune/18673?lang=en"), f"--screenshot={shot}",
             "--window-size=1280,1400")
    assert shot.stat().st_size > 20_000


def test_without_a_token_the_browser_gets_the_sign_in_page(populated, tmp_path):
    dom = chromium(tmp_path, populated.base + "/?province=42", "--dump-dom")
    assert "Mã truy cập quản trị" in dom and "Xã Cẩm Xuyên" not in dom
