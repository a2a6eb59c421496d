"""`xaprobe status` as a commune's IT officer reads it: local times, sizes with units, what to do."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import sys

from conftest import make_measurement

from xaprobe.agent.config import AgentConfig, LinkConfig
from xaprobe.agent.status import probe_status, render_status
from xaprobe.health import CentreSettings
from xaprobe.wire import Link

NOW = dt.datetime(2026, 11, 30, 6, 27, 22, 298480, tzinfo=dt.timezone.utc)


def run(tmp_path, *args):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
           "XDG_DATA_HOME": str(tmp_path / "data"), "XAPROBE_LANG": "en"}
    if os.geteuid() == 0:  # root's defaults are /etc and /var/lib: point them at a config that is not there
        env["XAPROBE_CONFIG"] = str(tmp_path / "cfg" / "agent.toml")
    return subprocess.run([sys.executable, "-m", "xaprobe.agent", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_status_without_a_config_says_what_is_missing_and_creates_nothing(tmp_path):
    done = run(tmp_path, "status")
    assert done.returncode == 1 and "no configuration" in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == []


def test_status_before_any_test_creates_no_store(tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text('device_id = "p1"\ncommune_code = "18673"\nstore = "probe.db"\n'
                      '[[links]]\nname = "viettel"\ninterface = "wwan0"\n')
    done = run(tmp_path, "--config", str(config), "status")
    assert done.returncode == 0, done.stderr
    assert "no tests stored yet" in done.stderr and not (tmp_path / "probe.db").exists()
    assert "viettel: 0 samples (target 300" in done.stdout


def test_status_reads_in_local_time_with_units(store):
    link = LinkConfig(name="viettel", interface="wwan0", budget_mb=6000, daily_quota_mb=300)
    config = AgentConfig(device_id="p1", commune_code="18673", links=(link,))
    store.add(make_measurement(started_at=NOW - dt.timedelta(hours=1), link=Link(name="viettel"),
                               bytes_down=20_000_000, bytes_up=4_900_000))
    store.save_centre_settings(CentreSettings(target=400, set_at=dt.datetime(2026, 11, 29, 3, 0,
                                                                             tzinfo=dt.timezone.utc)))
    text = render_status(probe_status(config, store, NOW))
    assert "target 400, set by the collector on 29/11/2026 10:00" in text  # UTC+7, day first, to the minute
    assert "last test 30/11/2026 12:27: down 42.5 Mbit/s, up 12.2 Mbit/s" in text
    assert "data used this month 24.9 MB of 6,000 MB" in text and "left of the 300 MB daily quota" in text
    assert "T" not in text.split("next test ")[1][:17] and "Z" not in text  # no ISO UTC stamps for people


def test_an_unsynchronised_clock_says_how_to_fix_it(store):
    status = probe_status(AgentConfig(), store, NOW)
    text = render_status(dataclasses.replace(status, clock_synced=False))
    assert "timedatectl set-ntp true" in text
