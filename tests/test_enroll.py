"""Enrolment by one-time code: the collector's codes (single use, 7 days, revocable, rate-limited) and the
probe's `xaprobe enroll` against a real collector on loopback."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tomllib

import pytest
import requests

from xaprobe import enrolment
from xaprobe.months import utc_now


def enrol_code(collector, device_id: str = "probe-1") -> str:
    collector.enrol(device_id)
    code, _ = collector.store.enrolment.issue(device_id, utc_now())
    return code


def redeem(collector, code: str) -> requests.Response:
    return requests.post(collector.base + "/api/v1/enroll", json={"code": code}, timeout=10)


def test_a_code_is_redeemed_once_for_a_working_token(collector):
    code = enrol_code(collector)
    answer = redeem(collector, code.lower().replace("-", ""))  # typed from a phone message: case and dash free
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["device_id"], body["commune_code"], body["commune_name"]) == ("probe-1", "18673", "Xã Cẩm Xuyên")
    assert body["speedtest_url"] == collector.base + "/speedtest/"
    works = requests.post(collector.base + "/api/v1/measurements", json={"measurements": []}, timeout=10,
                          headers={"Authorization": f"Bearer {body['token']}"})
    assert works.status_code == 200
    again = redeem(collector, code)
    assert again.status_code == 404 and "used already" in again.json()["detail"]


def test_expired_revoked_and_superseded_codes_do_not_work(collector):
    collector.enrol("probe-1")
    old, _ = collector.store.enrolment.issue("probe-1", utc_now() - dt.timedelta(days=8))
    assert redeem(collector, old).status_code == 404  # older than 7 days
    first, _ = collector.store.enrolment.issue("probe-1", utc_now())
    second, _ = collector.store.enrolment.issue("probe-1", utc_now())
    assert redeem(collector, first).status_code == 404  # a new code ends the one before
    assert collector.store.enrolment.revoke("probe-1", utc_now()) == 1
    assert redeem(collector, second).status_code == 404


def test_guessing_codes_is_rate_limited(sqlite_collector):
    answers = [redeem(sqlite_collector, enrolment.new_code()).status_code for _ in range(12)]
    assert answers[:10] == [404] * 10 and 429 in answers[10:]


@pytest.mark.parametrize("body", [{"code": 5}, {"nope": "x"}, [], {"code": "x" * 100}])
def test_a_malformed_enrolment_is_400(sqlite_collector, body):
    assert requests.post(sqlite_collector.base + "/api/v1/enroll", json=body, timeout=10).status_code == 400


@pytest.mark.parametrize("typed, kept", [("xq7k-m2pd", "XQ7K-M2PD"), ("XQ7KM2PD", "XQ7K-M2PD"),
                                         ("0O1I-L2PD", "0011-12PD")])
def test_codes_are_read_the_way_people_type_them(typed, kept):
    assert enrolment.normalise(typed) == kept
    with pytest.raises(ValueError):
        enrolment.normalise("XQ7K-M2P")


def test_device_add_prints_a_code(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    done = subprocess.run([sys.executable, "-m", "xaprobe.collector", "--db", db, "device", "add", "--commune",
                           "18673", "--name", "UBND xã Cẩm Xuyên", "--json"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert enrolment.normalise(out["enrolment_code"]) == out["enrolment_code"]


def run_enroll(tmp_path, *args):
    env = {**os.environ, "XAPROBE_LANG": "en"}
    return subprocess.run([sys.executable, "-m", "xaprobe.agent", "--config", str(tmp_path / "etc" / "agent.toml"),
                           "enroll", *args, "--yes", "--interface", "lo", "--no-start", "--budget-mb", "6000"],
                          capture_output=True, text=True, timeout=120, env=env)


def test_enroll_sets_the_probe_up_and_doctor_sees_its_token_accepted(sqlite_collector, tmp_path):
    code = enrol_code(sqlite_collector)
    done = run_enroll(tmp_path, sqlite_collector.base, code)
    assert "enrolled as probe-1 for Xã Cẩm Xuyên (18673)" in done.stdout, done.stdout + done.stderr
    config = tmp_path / "etc" / "agent.toml"
    token = tmp_path / "etc" / "token"
    assert oct(config.stat().st_mode & 0o777) == "0o644" and oct(token.stat().st_mode & 0o777) == "0o600"
    data = tomllib.loads(config.read_text())
    assert data["device_id"] == "probe-1" and data["token_credential"] == "token" and "token" not in data
    assert data["links"][0]["interface"] == "lo"
    assert "the collector at" in done.stdout and "accepts this probe's token" in done.stdout
    assert "Traceback" not in done.stderr
    status = subprocess.run([sys.executable, "-m", "xaprobe.agent", "--config", str(config), "--lang", "en",
                             "upload"], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stdout + status.stderr  # nothing pending, and the token works


def test_enroll_with_a_used_or_wrong_code_says_what_to_do(sqlite_collector, tmp_path):
    code = enrol_code(sqlite_collector)
    assert run_enroll(tmp_path / "a", sqlite_collector.base, code).returncode in (0, 1)
    again = run_enroll(tmp_path / "b", sqlite_collector.base, code)
    assert again.returncode == 1 and "used already" in again.stderr and "Traceback" not in again.stderr
    bad = run_enroll(tmp_path / "c", sqlite_collector.base, "nope")
    assert bad.returncode == 1 and "is not an enrolment code" in bad.stderr
    assert not (tmp_path / "b" / "etc").exists() and not (tmp_path / "c" / "etc").exists()
