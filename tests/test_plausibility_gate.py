"""#17 at the collector: the plausibility gate rejects impossible samples with the reason, stores suspect ones
apart (not counted, shown as a count), and passes what the engines really produce; per probe and per commune."""

from __future__ import annotations

import json

import pytest
import requests
from conftest import make_measurement
from hypothesis import given, settings
from hypothesis import strategies as st

from xaprobe.collector.plausibility import IMPOSSIBLE, SUSPECT, Plausibility, judge
from xaprobe.wire import Link, to_wire

CELL = Link(name="viettel", interface="wwan0", access="cellular", operator="Viettel")


def sample(mbps: float = 40.0, up: float = 10.0, seconds: float = 10.0, **kw):
    """A consistent cellular sample: each direction's bytes are its rate over `seconds`."""
    base = dict(download_mbps=mbps, upload_mbps=up, bytes_down=int(mbps * 1e6 / 8 * seconds),
                bytes_up=int(up * 1e6 / 8 * seconds), duration_s=2 * seconds + 2, latency_ms=30.0, jitter_ms=2.0,
                link=CELL)
    return make_measurement(**{**base, **kw})


@pytest.mark.parametrize("m, verdict, says", [
    (sample(download_mbps=28189.4, bytes_down=2253, upload_mbps=766.3, bytes_up=1000, duration_s=0.62),
     IMPOSSIBLE, "figures disagree"),  # the sample of issue #17
    (sample(mbps=28_000.0), IMPOSSIBLE, "beyond any cellular link"),
    (sample(latency_ms=0.05, jitter_ms=0.01), IMPOSSIBLE, "below what a cellular link can do"),
    (sample(mbps=4_000.0), SUSPECT, "more than a cellular link gives"),
    (sample(latency_ms=1.0, jitter_ms=0.2), SUSPECT, "usually"),
    (sample(seconds=0.3, duration_s=0.8), SUSPECT, "too short"),
    (sample(), None, ""),
    (sample(status="failed", download_mbps=None, upload_mbps=None, error="no service"), None, ""),
])
def test_the_gate_judges_each_kind(m, verdict, says):
    got, why = judge(m, Plausibility())
    assert got == verdict and says in why


@settings(max_examples=200, deadline=None)
@given(down=st.floats(0.05, 1000), up=st.floats(0.05, 300), seconds=st.floats(1.5, 30),
       latency=st.floats(5, 2000))
def test_what_a_cellular_engine_can_produce_passes(down, up, seconds, latency):
    m = sample(mbps=down, up=up, seconds=seconds, latency_ms=latency, jitter_ms=latency / 10)
    assert judge(m, Plausibility()) == (None, "")


def test_the_http_engine_on_loopback_passes(speedtest_server, tmp_path):
    from xaprobe.agent.config import AgentConfig, LinkConfig
    from xaprobe.agent.engines import http
    from xaprobe.agent.measure import measure
    from xaprobe.agent.store import Store

    config = AgentConfig(links=(LinkConfig(name="lo"),), engines={"http": http.Settings(
        server=speedtest_server, duration_s=1, streams=2)})
    m = measure(config, Store.open(tmp_path / "p.db"), config.links[0], bind=False)
    assert m.ok, m.error
    assert judge(m, Plausibility()) == (None, "")


def post(collector, token, items):
    return requests.post(collector.base + "/api/v1/measurements", data=json.dumps({"measurements": items}),
                         headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}, timeout=30)


def test_at_ingest_impossible_is_rejected_suspect_kept_apart(collector):
    token = collector.enrol()
    items = [to_wire(sample()), to_wire(sample()),
             to_wire(sample(download_mbps=28189.4, bytes_down=2253, duration_s=0.62)),
             to_wire(sample(mbps=28_000.0)),
             to_wire(sample(mbps=4_000.0))]
    answer = post(collector, token, items)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "accepted", "rejected", "rejected", "accepted"]
    assert results[2]["reason"].startswith("item: implausible: figures disagree")
    assert "beyond any cellular link" in results[3]["reason"]
    report = requests.get(collector.base + "/api/v1/report", params={"province": "42"}, timeout=30,
                          headers={"Authorization": f"Bearer {collector.admin_token}"}).json()
    [row] = [c for c in report["communes"] if c["code"] == "18673"]
    assert (row["samples"], row["failed"], row["suspect"]) == (2, 0, 1)  # the 4 Gbit/s sample is not counted
    assert row["operators"]["Viettel"]["download_mbps"]["median"] == 40.0  # nor in the medians
    fleet = requests.get(collector.base + "/api/v1/fleet", timeout=30,
                         headers={"Authorization": f"Bearer {collector.admin_token}"}).json()
    [probe] = [d for d in fleet if d["id"] == "probe-1"]
    assert (probe["rejected_this_month"], probe["suspect_this_month"]) == (2, 1)
    assert any("implausible" in why for why in probe["rejected_why"])


def test_bounds_are_configurable_and_checked(tmp_path):
    from xaprobe.collector.settings import load_settings
    from xaprobe.errors import ConfigError

    good = tmp_path / "c.toml"
    good.write_text("[plausibility]\nmin_duration_s = 2\n[plausibility.cellular]\nmax_mbps = 20000\n")
    rules = load_settings(good).plausibility
    assert rules.access["cellular"].max_mbps == 20000 and rules.min_duration_s == 2
    assert judge(sample(mbps=15_000.0), rules)[0] == SUSPECT
    bad = tmp_path / "bad.toml"
    bad.write_text('[plausibility.cellular]\nmax_mbps = "fast"\nmax_mpbs = 1\n')
    with pytest.raises(ConfigError) as e:
        load_settings(bad)
    assert any(p.startswith("plausibility.cellular.max_mbps:") for p in e.value.problems)
    assert any("did you mean 'max_mbps'" in p for p in e.value.problems)
