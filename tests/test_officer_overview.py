"""#14: the province overview leads with the answer (how many communes are done, on track, behind, without
data; samples against what is needed; per commune the samples a day still needed), behind first, filtered by
status and operator, searched by a name typed without diacritics; the fleet page with local times, silent and
stale probes first and what the commune should do."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from officer import BEHIND, DONE, MONTH, NOW, ON_TRACK, province

from xaprobe.collector.reports import days_left, needed_per_day
from xaprobe.collector.views import fold


@pytest.fixture
def hatinh(db_url):
    with province(db_url) as p:
        yield p


def test_days_left_and_samples_needed_per_day():
    assert days_left(MONTH, "Asia/Ho_Chi_Minh", NOW) == pytest.approx(10.5)  # noon on the 20th of 30 days
    assert days_left(MONTH, "Asia/Ho_Chi_Minh", dt.datetime(2026, 12, 5, tzinfo=dt.timezone.utc)) == 0
    assert days_left(MONTH, "Asia/Ho_Chi_Minh", dt.datetime(2026, 10, 5, tzinfo=dt.timezone.utc)) == 30
    assert needed_per_day(90, 300, 10.5) == 20 and needed_per_day(300, 300, 10.5) == 0
    assert needed_per_day(10, 300, 0) is None  # the month is over: no day left to catch up in


def test_fold_ignores_diacritics_and_case():
    assert fold("Xã Cẩm Xuyên") == "xa cam xuyen" and fold("ĐỨC THỌ") == "duc tho"


def rows(page: str) -> list[str]:
    return re.findall(r'<tr class="commune (\w+)" data-code="(\d+)"', page)


def test_overview_leads_with_the_answer(hatinh):
    page = hatinh.get("/", province="42").text
    summary = page[page.index('id="summary"'):page.index("</section>")]
    counts = dict((s, int(n)) for n, s in re.findall(r'<span class="big">(\d+)</span>\s*<span class="status (\w+)"',
                                                      summary))
    assert counts == {"done": 1, "on_track": 1, "behind": 1, "no_data": 66}
    assert "Đã đủ chỉ tiêu" in summary and "Chưa có dữ liệu" in summary
    # samples: 42 + 15 + 80; needed: 66 communes at 300, one at 40, one at 20, Cẩm Xuyên at 300
    assert "137 / 20.160" in summary and "10,5" in summary
    order = rows(page)
    assert order[0] == ("behind", BEHIND) and [s for s, _ in order[:1]] == ["behind"]
    assert order[-2:] == [("on_track", ON_TRACK), ("done", DONE)] or order[-1] == ("done", DONE)
    cam_xuyen = page[page.index(f'data-code="{BEHIND}"'):].split("</tr>")[0]
    assert ">21,0<" in cam_xuyen  # (300 - 80) / 10.5 = 20.95 samples a day still needed
    assert "Mất liên lạc" not in page.split('id="fleet-summary"')[0]  # the probes' table left the overview
    assert re.search(r'<span class="big">2</span> <span>thiết bị cần xử lý', page)


def test_overview_filters_and_search(hatinh):
    behind = rows(hatinh.get("/", status="behind").text)
    assert behind == [("behind", BEHIND)]
    vnpt = rows(hatinh.get("/", operator="VNPT").text)
    assert sorted(code for _, code in vnpt) == sorted([BEHIND, DONE])
    found = hatinh.get("/", q="cam xuyen")
    assert rows(found.text) == [("behind", BEHIND)] and "Đang hiện 1 trên 69 xã/phường" in found.text
    assert rows(hatinh.get("/", q="CẨM XUYÊN").text) == [("behind", BEHIND)]
    nothing = hatinh.get("/", q="khong co xa nao")
    assert rows(nothing.text) == [] and "Không có xã/phường nào khớp bộ lọc" in nothing.text
    assert rows(hatinh.get("/", status="nonsense").text)  # an unknown status is no filter, not an error
    by_name = [code for _, code in rows(hatinh.get("/", sort="name").text)]
    assert len(by_name) == 69 and by_name != [code for _, code in rows(hatinh.get("/").text)]


def test_fleet_page(hatinh):
    page = hatinh.get("/fleet").text
    assert 'href="/fleet?lang=vi"' in hatinh.get("/").text  # in the navigation
    ids = re.findall(r'<tr class="device (\w+)" data-id="([\w-]+)"', page)
    assert ids[:2] == [("stale", "p-son-hong"), ("silent", "p-cam-xuyen")] and len(ids) == 4
    assert "20/11/2026 07:00" in page  # 00:00 UTC silent probe shown in local time
    assert "UTC" not in page.replace("UTC+07:00", "")
    silent = page[page.index('data-id="p-cam-xuyen"'):].split("</tr>")[0]
    assert "đầy bộ nhớ" in silent and "disk full" not in silent
    assert "xã kiểm tra thiết bị còn điện và có mạng" in silent and "giải phóng bộ nhớ" in silent
    never = page[page.index('data-id="p-son-hong"'):].split("</tr>")[0]
    assert "chưa bao giờ" in never and "xaprobe enroll" in never
    english = hatinh.get("/fleet", lang="en").text
    assert "disk full" in english and "20 Nov 2026, 07:00" in english


def chart_svg(page: str, chart_id: str) -> str:
    import base64

    found = re.search(rf'id="{chart_id}"><img alt="[^"]*" width="\d+" height="(\d+)" src="data:image/svg\+xml;base64,'
                      r'([A-Za-z0-9+/=]+)"', page)
    assert found, chart_id
    return base64.b64decode(found.group(2)).decode("utf-8")


def test_commune_page_in_plain_words_with_history(hatinh):
    import requests
    from conftest import make_measurement

    from xaprobe.wire import to_wire

    token = hatinh.store.devices.rotate("p-cam-xuyen", NOW, dt.timedelta(days=1))
    october = [to_wire(make_measurement(device_id="p-cam-xuyen", commune_code=BEHIND, download_mbps=9.5,
                                        bytes_down=int(9.5e6 / 8 * 10),
                                        started_at=dt.datetime(2026, 10, 3 + i % 20, tzinfo=dt.timezone.utc)))
               for i in range(30)]
    requests.post(hatinh.base + "/api/v1/measurements", json={"measurements": october}, timeout=60,
                  headers={"Authorization": f"Bearer {token}"}).raise_for_status()
    page = hatinh.get(f"/commune/{BEHIND}").text
    quality = page[page.index('id="quality"'):page.index("</ul>")]
    assert "Một nửa số lần đo tải xuống nhanh hơn 1.237,5 Mbit/s" in quality
    assert "0,0% số lần đo dưới ngưỡng 10,0 Mbit/s" in quality and "P10" not in page and "P90" not in page
    history = page[page.index('id="history"'):]
    months = re.findall(r'<a href="/commune/18673\?month=(\d{4}-\d\d)', history)
    assert months[0] == "2026-11" and months[-1] == "2025-12" and len(months) == 12
    assert re.search(r"10/2026</a></td>\s*<td[^>]*>30 / 300", history)
    assert "Viettel: 30 mẫu, 9,5 Mbit/s" in history
    assert "id=\"history-samples-chart\"" in page and "id=\"history-download-chart\"" in page
    daily = chart_svg(page, "daily-chart")
    ticks = re.findall(r'<g class="guides"><path [^>]*class="axis major line|<text[^>]*>([\d.,]+)</text>', daily)
    assert ticks and not [t for t in ticks if "," in t]  # whole samples only: no 0,5 on the axis
    english = hatinh.get(f"/commune/{BEHIND}", lang="en").text
    assert "Half of the downloads were faster than 1,237.5 Mbit/s" in english


def test_one_operator_is_one_ordinary_bar_beside_the_threshold(hatinh):
    page = hatinh.get(f"/commune/{ON_TRACK}").text  # Viettel only
    svg = chart_svg(page, "operator-chart")
    assert "Viettel" in svg and "Ngưỡng 10,0 Mbit/s" in svg and "VNPT" not in svg
    assert re.search(r'id="operator-chart"><img alt="[^"]*" width="600" height="262"', page)  # two bars tall
