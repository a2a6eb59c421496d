"""#14: Vietnamese conventions through Babel (decimal comma, thousands dot, `tháng 11/2026`, local
`30/11/2026 13:57`), the month box that takes 11/2026 and 2026-11, and bad input answered with a page in
the page's language, never JSON."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from conftest import make_measurement

from xaprobe.collector.charts import integer_ticks
from xaprobe.collector.formats import Formats, parse_month_input
from xaprobe.wire import to_wire

VI = Formats("vi", "Asia/Ho_Chi_Minh")
EN = Formats("en", "Asia/Ho_Chi_Minh")


def test_numbers_percentages_months_and_times():
    assert VI.number(11472.21) == "11.472,2" and EN.number(11472.21) == "11,472.2"
    assert VI.integer(11000) == "11.000" and VI.number(None) == "–"
    assert VI.percent(0.017) == "1,7%" and VI.percent(1.0) == "100,0%" and EN.percent(0.003) == "0.3%"
    assert VI.month("2026-11") == "tháng 11/2026" and EN.month("2026-11") == "November 2026"
    noon = dt.datetime(2026, 11, 30, 6, 57, tzinfo=dt.timezone.utc)
    assert VI.datetime(noon) == "30/11/2026 13:57"  # the collector's zone, not UTC
    assert VI.datetime(noon.replace(tzinfo=None)) == "30/11/2026 13:57"  # SQLite's naive UTC too
    assert EN.datetime(noon) == "30 Nov 2026, 13:57"


@pytest.mark.parametrize("typed, month", [("2026-11", "2026-11"), ("11/2026", "2026-11"), (" 1/2027 ", "2027-01"),
                                          ("tháng 11/2026", "2026-11"), ("T3/2026", "2026-03"),
                                          ("2026/3", "2026-03"), ("11.2026", "2026-11")])
def test_month_box_reads_what_people_type(typed, month):
    assert parse_month_input(typed) == month


@pytest.mark.parametrize("typed", ["13/2026", "2026-13", "11/26", "nov", "", "2026-11-01", "0/2026"])
def test_month_box_refuses_what_is_not_a_month(typed):
    with pytest.raises(ValueError):
        parse_month_input(typed)


def test_integer_ticks_are_whole_numbers():
    assert integer_ticks(0) == [0, 1] and integer_ticks(3) == [0, 1, 2, 3]
    assert integer_ticks(17) == [0, 5, 10, 15, 20] and integer_ticks(1234)[-1] >= 1234
    assert all(isinstance(t, int) for t in integer_ticks(97))


def _get(collector, path, **params):
    return requests.get(collector.base + path, params=params, timeout=30,
                        headers={"Authorization": f"Bearer {collector.admin_token}"})


def test_pages_take_11_2026_and_answer_bad_input_with_a_page(sqlite_collector):
    c = sqlite_collector
    token = c.enrol("p1", "18673")
    nov = dt.datetime(2026, 11, 10, 3, tzinfo=dt.timezone.utc)
    items = [to_wire(make_measurement(device_id="p1", started_at=nov, download_mbps=1234.56)) for _ in range(3)]
    requests.post(c.base + "/api/v1/measurements", json={"measurements": items}, timeout=30,
                  headers={"Authorization": f"Bearer {token}"}).raise_for_status()
    for typed in ("11/2026", "2026-11"):
        page = _get(c, "/", month=typed, province="42")
        assert page.status_code == 200 and "tháng 11/2026" in page.text
        assert "1.234,6" in page.text  # the median download, Vietnamese style
    commune = _get(c, "/commune/18673", month="11/2026")
    assert "tháng 11/2026" in commune.text and "1.234,6" in commune.text and "1234.56" not in commune.text
    bad = _get(c, "/", month="13/2026")
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("text/html")
    assert "Tháng «13/2026» không hợp lệ" in bad.text and "String should match" not in bad.text
    bad_en = _get(c, "/", month="November", lang="en")
    assert bad_en.status_code == 400 and "“November” is not a month" in bad_en.text
    for path, params in (("/commune/99999", {}), ("/", {"province": "999"}), ("/export/report.csv", {"month": "x"}),
                         ("/", {"sort": "whatever", "month": "<b>"})):
        answer = _get(c, path, **params)
        assert answer.headers["content-type"].startswith("text/html"), (path, answer.text[:200])
        assert answer.status_code in (200, 400, 404) and "<b>" not in answer.text
