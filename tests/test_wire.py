"""The wire format: one definition for probe and collector; round trips and named rejections."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import unicodedata

import pytest
from conftest import make_measurement
from hypothesis import given, settings
from hypothesis import strategies as st

from xaprobe.wire import Link, Location, Radio, WireError, from_wire, to_wire

finite = st.floats(min_value=0, max_value=100_000, allow_nan=False, allow_infinity=False)
texts = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cf")), max_size=40)  # what check_text keeps
any_text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(down=st.none() | finite, up=st.none() | finite, latency=st.none() | finite, place=texts,
       operator=texts, seq=st.integers(0, 2**40), rsrp=st.none() | st.floats(-140, -40),
       bytes_down=st.integers(0, 10**12), status=st.sampled_from(["ok", "failed"]),
       when=st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2040, 1, 1)))
def test_round_trip_through_json(down, up, latency, place, operator, seq, rsrp, bytes_down, status, when):
    m = make_measurement(download_mbps=down, upload_mbps=up, latency_ms=latency, seq=seq, status=status,
                         bytes_down=bytes_down, location=Location(place=place, lat=18.25, lon=105.9),
                         started_at=when.replace(microsecond=when.microsecond // 1000 * 1000,
                                                 tzinfo=dt.timezone.utc),
                         link=Link(name="l", interface="wwan0", access="cellular", operator=operator,
                                   radio=Radio(technology="lte", rsrp_dbm=rsrp)))
    again = from_wire(json.loads(json.dumps(to_wire(m))))
    assert again == m


def test_unknown_fields_are_kept():
    wire = to_wire(make_measurement())
    wire["future_field"] = {"x": 1}
    m = from_wire(wire)
    assert m.extra == {"future_field": {"x": 1}}
    assert to_wire(m)["future_field"] == {"x": 1}


def test_wire_field_names_are_the_documented_ones():
    wire = to_wire(make_measurement())
    for name in ("id", "device_id", "seq", "commune_code", "started_at", "clock_synced", "engine", "server",
                 "link", "location", "download_mbps", "upload_mbps", "latency_ms", "jitter_ms",
                 "loaded_latency_ms", "bytes_down", "bytes_up", "duration_s", "status", "error", "agent_version"):
        assert name in wire
    assert wire["started_at"].endswith("Z")


@pytest.mark.parametrize("change, field", [
    ({"id": "not-a-uuid"}, "id"),
    ({"id": None}, "id"),
    ({"started_at": "2026-11-30T10:00:00"}, "started_at"),
    ({"status": "great"}, "status"),
    ({"download_mbps": "fast"}, "download_mbps"),
    ({"download_mbps": -1}, "download_mbps"),
    ({"download_mbps": 1e300}, "download_mbps"),
    ({"bytes_up": 1.5}, "bytes_up"),
    ({"bytes_up": True}, "bytes_up"),
    ({"seq": -3}, "seq"),
    ({"commune_code": "18673; DROP TABLE measurements"}, "commune_code"),
    ({"link": {"access": "pigeon"}}, "link.access"),
    ({"link": {"radio": {"rsrp_dbm": 50}}}, "link.radio.rsrp_dbm"),
    ({"location": {"lat": 123}}, "location.lat"),
    ({"error": "x" * 600}, "error"),
    ({"engine": "a\x00b"}, "engine"),
    ({"clock_synced": "yes"}, "clock_synced"),
    ({"method": {"download_rate": "guessed"}}, "method.download_rate"),
])
def test_bad_items_name_the_field(change, field):
    wire = to_wire(make_measurement())
    wire.update(change)
    with pytest.raises(WireError) as info:
        from_wire(wire)
    assert info.value.field == field
    assert str(info.value).startswith(field + ": ")


def test_not_an_object():
    with pytest.raises(WireError, match="item: must be an object"):
        from_wire([1, 2])


def test_timestamps_become_utc():
    wire = to_wire(make_measurement())
    wire["started_at"] = "2026-11-30T03:00:00+07:00"
    assert from_wire(wire).started_at == dt.datetime(2026, 11, 29, 20, 0, tzinfo=dt.timezone.utc)
    assert dataclasses.replace(from_wire(wire)).started_at.tzinfo == dt.timezone.utc


@pytest.mark.parametrize("field, value, says", [
    ("started_at", "9999-12-31T23:00Z", "outside the years"),
    ("started_at", "0001-01-01T00:00+14:00", "out of range"),
    ("started_at", "1970-01-01T00:00Z", "outside the years"),
    ("error", "bad \ud800 text", "lone surrogate"),
    ("engine", "\udfff", "lone surrogate"),
])
def test_items_that_would_break_later_arithmetic_or_encoding_are_refused(field, value, says):
    item = to_wire(make_measurement())
    item[field] = value
    with pytest.raises(WireError) as e:
        from_wire(item)
    assert e.value.field == field and says in e.value.problem


def test_control_and_bidi_characters_never_reach_a_terminal_or_a_page():
    item = to_wire(make_measurement(status="failed", download_mbps=None))
    item["error"] = "no\x1b[2J service\u202egnp.exe\u200b\ttab\r\nline"
    item["link"]["operator"] = "Viettel\u2066\u2069\x07"
    m = from_wire(item)
    assert m.error == "no[2J servicegnp.exe tab  line" and m.link.operator == "Viettel"


@given(any_text)
def test_cleaning_text_is_idempotent_and_keeps_everything_printable(text):
    item = to_wire(make_measurement())
    item["isp"] = text
    once = from_wire(item)
    assert from_wire(json.loads(json.dumps(to_wire(once)))).isp == once.isp
    assert not [ch for ch in once.isp if unicodedata.category(ch) in ("Cc", "Cf")]
