"""The dashboard as a person sees it: headless Chromium against the running collector, signed in through the
form, under the Content-Security-Policy, with screenshots; and no admin token in a URL, a history or a log."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
import requests
from cdp import Chromium
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
def browser(tmp_path):
    b = Chromium(CHROMIUM, tmp_path / "profile")
    yield b
    b.close()


def sign_in(browser: Chromium, collector, target: str) -> str:
    """Sign in as a person does: open the page, get the form, type the token, press the button; return the DOM."""
    browser.navigate(collector.base + target)
    assert browser.evaluate("location.pathname") == "/login"
    assert browser.evaluate("document.activeElement.name") == "token"  # the field has the focus
    browser.type_text(collector.admin_token)
    browser.click_and_wait("form[action^='/login'] button[type=submit]")
    return browser.evaluate("document.documentElement.outerHTML")


def charts_drawn(browser: Chromium) -> list[bool]:
    """Per chart image: loaded and drawn (an image that CSP or a broken SVG stopped has no natural width)."""
    return browser.evaluate("Array.from(document.querySelectorAll('.chart img'))"
                            ".map(i => i.complete && i.naturalWidth > 0)")


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


def chart_svgs(dom: str) -> list[str]:
    return [base64.b64decode(data).decode("utf-8")
            for data in re.findall(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', dom)]


def test_overview_shows_communes_progress_and_operator_chart(populated, browser):
    dom = sign_in(browser, populated, "/?province=42")
    assert "Hà Tĩnh" in dom and "Xã Cẩm Xuyên" in dom
    assert 'data-code="18673"' in dom and "24 / 300" in dom  # 12 samples each from two operators
    assert "Chậm tiến độ" in dom or "Đúng tiến độ" in dom  # Vietnamese by default
    assert 'id="operator-chart"' in dom and charts_drawn(browser) == [True]
    svg = chart_svgs(dom)[0]
    assert "<svg" in svg and "Viettel" in svg and "VNPT" in svg
    assert 'id="fleet-summary"' in dom and 'href="/fleet?lang=vi"' in dom  # probes: a page of their own
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', dom)  # nothing fetched from elsewhere: intranets
    assert not re.search(r"<script", dom) and not re.search(r"\sstyle=", dom)  # the CSP allows neither inline
    assert not [m for m in browser.console() if "Content Security Policy" in m], browser.console()
    assert browser.evaluate("getComputedStyle(document.querySelector('header')).backgroundColor") == \
        "rgb(18, 53, 91)"  # the stylesheet applies
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard-overview.png"
    browser.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_commune_page_in_english(populated, browser):
    sign_in(browser, populated, "/?province=42")
    browser.navigate(populated.base + "/commune/18673?lang=en")
    dom = browser.evaluate("document.documentElement.outerHTML")
    assert "Xã Cẩm Xuyên (18673)" in dom and 'id="daily-chart"' in dom and 'id="spread-chart"' in dom
    assert 'alt="Samples per day"' in dom and 'alt="Operators: median download' in dom
    assert charts_drawn(browser) == [True] * 5  # the month: per day, operators, spread; 12 months: samples, medians
    assert not [m for m in browser.console() if "Content Security Policy" in m], browser.console()
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard-commune.png"
    browser.screenshot(shot)
    assert shot.stat().st_size > 20_000


def test_without_a_token_the_browser_gets_the_sign_in_page(populated, tmp_path):
    dom = chromium(tmp_path, populated.base + "/?province=42", "--dump-dom")
    assert "Mã truy cập quản trị" in dom and "Xã Cẩm Xuyên" not in dom


def test_the_token_is_in_no_url_history_or_access_log(populated, browser, tmp_path):
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    access = logging.getLogger("uvicorn.access")
    level = access.level
    access.setLevel(logging.INFO)
    access.addHandler(handler)
    try:
        dom = sign_in(browser, populated, "/commune/18673")
        assert "Xã Cẩm Xuyên (18673)" in dom
        browser.navigate(populated.base + "/")
        assert browser.evaluate("location.pathname") == "/"
        browser.click_and_wait("form.logout button")
        assert browser.evaluate("location.pathname") == "/login"
        browser.navigate(populated.base + "/commune/18673")
        assert browser.evaluate("location.pathname") == "/login"  # signed out: the session is over
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
        browser.close()
    token = populated.admin_token
    assert any('"POST /login?lang=vi HTTP/1.1" 303' in line for line in lines), lines
    assert len(lines) >= 8 and not [line for line in lines if token in line]
    with sqlite3.connect(tmp_path / "profile" / "Default" / "History") as db:
        urls = [row[0] for row in db.execute("SELECT url FROM urls")]
    assert any(url.endswith("/commune/18673") for url in urls), urls
    assert not [url for url in urls if token in url]


# ---- #14: the officer's view at a desktop's and a phone's width ----

WIDTHS = {"desktop": (1366, 900, False), "phone": (412, 915, True)}
# English a Vietnamese page must not show (labels the English page has and the Vietnamese one has not)
ENGLISH_GIVEAWAYS = ("disk full", "never", "Behind", "On track", "No data", "Samples per day", "Silent", "Stale", "UTC",
                     "What to do", "Last seen", "median", "Download", "Operator", "threshold")


def page_facts(browser: Chromium) -> dict:
    """What the page looks like to the person: widths, text, where its resources came from, small targets."""
    return browser.evaluate("""(() => {
        const small = Array.from(document.querySelectorAll('a, button, select, input:not([type=hidden]), summary'))
          .filter(e => e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden')
          .map(e => [e.outerHTML.slice(0, 80), e.getBoundingClientRect().height])
          .filter(([_, h]) => h < 40);
        const wide = Array.from(document.querySelectorAll('body *'))
          .filter(e => e.getClientRects().length && e.getBoundingClientRect().right > window.innerWidth + 1)
          .map(e => e.outerHTML.slice(0, 100));
        return {scrollWidth: document.documentElement.scrollWidth, width: window.innerWidth, wide: wide,
                text: document.body.innerText, small: small,
                resources: performance.getEntriesByType('resource').map(r => r.name),
                html: document.documentElement.outerHTML.length};
    })()""")


def english_on(text: str) -> list[str]:
    from xaprobe.collector.i18n import labels

    vi, en = labels("vi"), labels("en")
    english = [en[k] for k in en if en[k] != vi[k] and len(en[k]) > 4 and "{" not in en[k]]
    text = re.sub(r"UTC[+-]\d\d:\d\d", "", text)  # the zone's offset, as the page names its time zone
    return [w for w in (*ENGLISH_GIVEAWAYS, *english) if re.search(rf"(?<!\w){re.escape(w)}(?!\w)", text)]


@pytest.fixture
def hatinh(tmp_path):
    from officer import province

    with province(f"sqlite:///{tmp_path / 'officer.db'}") as p:
        yield p


@pytest.mark.parametrize("width", WIDTHS)
def test_officer_pages_fit_the_screen_in_vietnamese(hatinh, browser, width):
    from officer import BEHIND

    w, h, mobile = WIDTHS[width]
    browser.set_viewport(w, h, mobile)
    sign_in(browser, hatinh, "/")
    ARTIFACTS.mkdir(exist_ok=True)
    pages = {"overview": "/?province=42", "commune": f"/commune/{BEHIND}", "fleet": "/fleet",
             "print": "/report?province=42"}
    weights = {}
    for name, path in pages.items():
        browser.navigate(hatinh.base + path)
        facts = page_facts(browser)
        assert facts["scrollWidth"] <= facts["width"], (name, facts["scrollWidth"], facts["width"])
        assert not facts["wide"], (name, facts["wide"][:5])  # nothing sticks out past the right edge either
        text = facts["text"]
        assert not english_on(text), (name, english_on(text))
        assert not re.search(r"(?<![\d.])\d+\.\d{1,2}(?![\d.])", text.replace("0.1.0", "")), \
            (name, re.findall(r".{20}(?<![\d.])\d+\.\d{1,2}(?![\d.]).{20}", text))  # no English decimals
        assert not re.search(r"\d,\d{3}(?!\d)", text), name  # no English thousands
        base = hatinh.base
        assert all(r.startswith((base, "data:")) for r in facts["resources"]), facts["resources"]
        assert all(charts_drawn(browser)), name
        assert not [m for m in browser.console() if "Content Security Policy" in m], browser.console()
        if mobile:
            assert not facts["small"], (name, facts["small"][:5])  # touch targets at least 40 px high
        weights[name] = facts["html"]
        browser.screenshot(ARTIFACTS / f"officer-{name}-{w}.png", full_page=True)
    overview = browser_text(browser, hatinh.base + "/?province=42")
    assert "1.237,5" in overview and "tháng 11/2026" in overview
    (ARTIFACTS / f"page-weights-{w}.txt").write_text(
        "".join(f"{name} {size / 1024:.1f} KB\n" for name, size in weights.items()))


def browser_text(browser: Chromium, url: str) -> str:
    browser.navigate(url)
    return browser.evaluate("document.body.innerText")



@pytest.fixture
def sited(sqlite_collector):
    """Cẩm Xuyên with three sites (office, school, hamlet house): 30 samples from the office, 2 from the school,
    3 from the hamlet house, and 2 from an older probe that names no site."""
    from test_sites import three_sites

    store = sqlite_collector.store
    three_sites(store)
    token = sqlite_collector.enrol("cam-xuyen", "18673")
    store.sites.set_min_residential("18673", 25)
    now = dt.datetime.now(dt.timezone.utc)
    plan = [("cx-office", 30), ("cx-school", 2), ("cx-thon3", 3), (None, 2)]
    items = []
    for site_id, n in plan:
        for i in range(n):
            item = to_wire(make_measurement(device_id="cam-xuyen", download_mbps=15.0 + i + (10 if site_id else 0),
                                            started_at=now - dt.timedelta(minutes=10 * len(items))))
            if site_id:
                item["site_id"] = site_id
            else:
                del item["site_id"]
            items.append(item)
    answer = requests.post(sqlite_collector.base + "/api/v1/measurements", json={"measurements": items}, timeout=30,
                           headers={"Authorization": f"Bearer {token}"}).json()
    assert [r["status"] for r in answer["results"]] == ["accepted"] * len(items)
    store.sites.assign("cam-xuyen", "cx-office")  # a field laptop's month, then staff put it at the office
    return sqlite_collector


def test_commune_page_shows_where_its_samples_come_from(sited, browser):
    sign_in(browser, sited, "/?province=42&sort=concentration")
    first = browser.evaluate("document.querySelector('#communes tbody tr').dataset.code")
    assert first == "18673"  # sorted by concentration: the commune with one dominant site first
    assert browser.evaluate("document.querySelector('tr[data-code=\"18673\"] .concentrated').textContent.trim()") \
        == "⚠ 81% từ 1 điểm"
    browser.navigate(sited.base + "/commune/18673")
    rows = browser.evaluate("Array.from(document.querySelectorAll('#sites tbody tr')).map(r => "
                            "Array.from(r.cells).map(c => c.textContent.trim()))")
    assert rows == [
        ["UBND xã Cẩm Xuyên", "Trụ sở UBND", "–", "không", "30", "0", "81,1%", "39,5"],
        ["Nhà văn hóa thôn 3", "Nhà văn hóa thôn/tổ dân phố", "Thôn 3", "có", "3", "0", "8,1%", "26,0"],
        ["Trường THCS Cẩm Xuyên", "Trường học", "–", "không", "2", "0", "5,4%", "25,5"],
        ["Không rõ điểm đo (mẫu không ghi điểm đo)", "–", "–", "–", "2", "0", "5,4%", "15,5"],
    ]
    summary = browser.evaluate("document.getElementById('sites-summary').textContent")
    assert summary == "3 điểm đo có mẫu trong tháng · 8,1% số mẫu từ khu dân cư"
    assert browser.evaluate("document.getElementById('sites-by-kind').textContent") == \
        "Theo loại điểm đo: Trụ sở UBND 30 · Nhà văn hóa thôn/tổ dân phố 3 · Trường học 2"
    warning = browser.evaluate("document.getElementById('concentration-warning').textContent")
    assert warning.startswith("Cảnh báo: 81,1% số mẫu tháng này từ một điểm đo (UBND xã Cẩm Xuyên)")
    assert "chỉ tiêu tối thiểu 25% từ khu dân cư" in browser.evaluate("document.getElementById('summary').textContent")
    assert browser.evaluate("document.getElementById('residential-warning') !== null")
    assert "điểm đo: UBND xã Cẩm Xuyên" in browser.evaluate("document.getElementById('probes').textContent")
    drawn = browser.evaluate("(() => { const i = document.querySelector('#sites-map img');"
                             " return i.complete && i.naturalWidth; })()")
    assert drawn == 600
    svg = base64.b64decode(browser.evaluate("document.querySelector('#sites-map img').src").split(",", 1)[1])
    assert svg.count(b"<circle") == 4 and "Nhà văn hóa thôn 3 (3)".encode() in svg and b" km</text>" in svg
    assert not [m for m in browser.console() if "Content Security Policy" in m], browser.console()
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard-commune-sites.png"
    browser.set_viewport(1100, 900)
    browser.screenshot(shot, full_page=True)
    assert shot.stat().st_size > 20_000
