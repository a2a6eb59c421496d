"""Months are local calendar months (Asia/Ho_Chi_Minh by default); timestamps are UTC."""

import datetime as dt

import pytest

from xaprobe.months import month_bounds, month_of, parse_month

UTC = dt.timezone.utc


def test_late_evening_utc_counts_for_next_local_month():
    assert month_of(dt.datetime(2026, 11, 30, 20, 0, tzinfo=UTC)) == "2026-12"
    assert month_of(dt.datetime(2026, 11, 30, 16, 59, tzinfo=UTC)) == "2026-11"
    assert month_of(dt.datetime(2026, 11, 30, 20, 0, tzinfo=UTC), "UTC") == "2026-11"


def test_month_bounds_in_utc():
    start, end = month_bounds("2026-12")
    assert start == dt.datetime(2026, 11, 30, 17, 0, tzinfo=UTC)
    assert end == dt.datetime(2026, 12, 31, 17, 0, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["2026-13", "26-11", "2026/11", "", "abcd-ef"])
def test_bad_months_are_named(bad):
    with pytest.raises(ValueError, match="month must look like 2026-11"):
        parse_month(bad)
