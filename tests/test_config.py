"""Probe configuration: the example passes; every mistake is named by its key, never a traceback."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest
from conftest import REPO

from xaprobe.agent.cli import _overridden, build_parser
from xaprobe.agent.config import load_config, parse_config
from xaprobe.agent.engines import REGISTRY, run_engine
from xaprobe.agent.engines.base import RunRequest
from xaprobe.agent.sample import sample_config
from xaprobe.errors import ConfigError, UserError
from xaprobe.months import utc_now
from xaprobe.tomlschema import setting
from xaprobe.wire import Measurement, new_id


def problems_of(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def test_example_config_passes_and_parses_links():
    config = load_config(REPO / "config" / "agent.toml")
    assert [link.name for link in config.links] == ["viettel", "vnpt"]
    assert config.links[0].interface == "wwan0" and config.links[0].budget_mb == 6000
    assert config.commune_code == "18673"
    assert config.token.reveal() == "this-is-an-example-token-replace-it"
    assert "example-token" not in repr(config)  # the token hides itself


@pytest.mark.parametrize("text, expected", [
    ('[[links]]\nname = "a"\ninterface = "wwan0"\n[[links]]\nname = "b"\n', "links[1].interface: required"),
    ('target = "abc"\n', 'target: must be a positive integer, got "abc"'),
    ('target = 0\n', "target: must be a positive integer, got 0"),
    ('commune_code = "99999"\n', "commune_code: 99999 is not the code of a commune (xã/phường) since the 2025 "
                                 "reform: the collector staff find it with xaprobe-collector communes --search NAME"),
    ('commune_code = "x1"\n', 'commune_code: must be a numeric commune code, got "x1"'),
    ('collector_url = "ftp://host"\ndevice_id = "d"\ntoken = "t"\n',
     'collector_url: must be an http:// or https:// URL, got "ftp://host"'),
    ('[engines.http]\nstream = 4\n', "engines.http.stream: unknown key (did you mean 'streams'?)"),
    ('[engines.http]\nstreams = 99\n', "engines.http.streams: must be an integer from 1 to 32, got 99"),
    ('[planner]\nquiet_hours = ["late"]\n', 'planner.quiet_hours[0]: must look like "00:30-05:00", got "late"'),
    ('[planner]\nmin_gap_s = 5\n', "planner.min_gap_s: must be a number from 30 to 86400, got 5"),
    ('collector_url = "http://c/"\n', "device_id: required when collector_url is set"),
    ('timezone = "Mars/Base"\n', 'timezone: unknown time zone "Mars/Base" (e.g. "Asia/Ho_Chi_Minh")'),
    ('token_file = "missing-token"\n', "token_file: cannot read"),
    ('[[links]]\nname = "a"\ninterface = "x"\n[[links]]\nname = "a"\ninterface = "y"\n',
     'links[1].name: "a" is used by links[0] too'),
    ('engine = "ookla"\n', "engine: must be one of 'http', 'speedtest', got \"ookla\""),
    ('[engines.http]\nservers = "servers.json"\n',
     'engines.http.servers: must be an http:// or https:// URL or an absolute file path, got "servers.json"'),
    ('[engines.http]\nservers = "ftp://example.vn/servers.json"\n',
     'engines.http.servers: must be an http:// or https:// URL, got "ftp://example.vn/servers.json"'),
    ('[quiet_check]\nwindow_s = 0\n', "quiet_check.window_s: must be a number from 0.5 to 30, got 0"),
    ('[quiet_check]\nbusy_kbps = "lots"\n', "quiet_check.busy_kbps: must be a number"),
    ('[quiet_check]\nmax_waits = -1\n', "quiet_check.max_waits: must be"),
    ('[quiet_check]\nenabled = "yes"\n', 'quiet_check.enabled: must be true or false, got "yes"'),
    ('[quiet_check]\nwait = 5\n', "quiet_check.wait: unknown key (did you mean 'wait_s'?)"),
])
def test_each_mistake_names_its_key(text, expected, tmp_path):
    problems = problems_of(text, tmp_path)
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_is_reported_at_once(tmp_path):
    problems = problems_of('target = "abc"\ncommune_code = "99999"\nbogus = 1\n', tmp_path)
    assert len(problems) == 3


def test_commune_code_may_be_a_bare_number():
    assert parse_config({"commune_code": 18673}, "inline").commune_code == "18673"


def test_not_toml_names_the_line(tmp_path):
    [problem] = problems_of('target = \n', tmp_path)
    assert problem.startswith("not valid TOML") and "line 1" in problem


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xaprobe.agent", "--lang", "en", *args], capture_output=True,
                          text=True, timeout=60)


def test_config_check_cli_exit_codes_and_no_traceback(tmp_path):
    good = run_cli("config", "check", str(REPO / "config" / "agent.toml"))
    assert good.returncode == 0, good.stderr
    assert "ok (2 link(s): viettel, vnpt)" in good.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('target = "abc"\n[[links]]\nname = "x"\n')
    result = run_cli("config", "check", str(bad))
    assert result.returncode == 1
    assert f'{bad}: target: must be a positive integer, got "abc"' in result.stderr
    assert f"{bad}: links[0].interface: required" in result.stderr
    assert "Traceback" not in result.stderr
    missing = run_cli("config", "check", str(tmp_path / "nope.toml"))
    assert missing.returncode == 1 and "file not found" in missing.stderr and "Traceback" not in missing.stderr


def test_config_agent_toml_is_the_sample_command_output():
    sample = run_cli("config", "sample")
    assert sample.returncode == 0, sample.stderr
    assert sample.stdout == (REPO / "config" / "agent.toml").read_text(encoding="utf-8"), \
        "config/agent.toml is generated: run `xaprobe config sample > config/agent.toml`"


def test_sample_values_are_the_defaults_where_no_example_is_given():
    config = parse_config(tomllib.loads(sample_config()), "sample", base_dir=REPO / "config")
    assert config.engine_settings("http").streams == 4 and config.engine_settings("speedtest").timeout_s == 10.0
    assert config.upload.batch_size == 500 and config.planner.min_gap_s == 30.0
    assert [link.target for link in config.links] == [300, 300]


def test_parsing_a_config_does_not_load_speedtest_cli():
    code = ("import sys; from pathlib import Path; from xaprobe.agent.config import load_config; "
            f"load_config(Path({str(REPO / 'config' / 'agent.toml')!r})); print('speedtest' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


@dataclasses.dataclass(frozen=True)
class FakeSettings:
    level: int = setting(3, "How loud the fake engine is.", low=1, high=5)
    streams: int = setting(1, "Parallel streams.", low=1, high=8)


def fake_run(request: RunRequest, settings: FakeSettings, server: str | None = None) -> Measurement:
    return Measurement(id=new_id(), started_at=utc_now(), engine="fake", status="failed",
                       error=f"level {settings.level}")


@pytest.fixture
def fake_engine(monkeypatch):
    """A tiny engine added the way a real one is: a module, and one line in the registry."""
    module = types.ModuleType("fake_engine", "The `fake` engine: a test double.")
    module.Settings = FakeSettings
    module.run = fake_run
    monkeypatch.setitem(sys.modules, "fake_engine", module)
    monkeypatch.setitem(REGISTRY, "fake", "fake_engine")


def test_an_unregistered_engine_section_is_an_unknown_key():
    with pytest.raises(ConfigError) as info:
        parse_config({"engines": {"fake": {"level": 4}}}, "inline")
    assert info.value.problems == ["engines.fake: unknown key"]


def test_the_registry_alone_adds_an_engine_to_config_cli_and_sample(fake_engine):
    config = parse_config({"engine": "fake", "engines": {"fake": {"level": 4}}}, "inline")
    assert config.engine == "fake" and config.engine_settings("fake") == FakeSettings(level=4)
    with pytest.raises(ConfigError) as info:
        parse_config({"engines": {"fake": {"level": 9, "levle": 1}}}, "inline")
    assert info.value.problems == ["engines.fake.level: must be an integer from 1 to 5, got 9",
                                   "engines.fake.levle: unknown key (did you mean 'level'?)"]
    assert build_parser().parse_args(["measure", "--engine", "fake"]).engine == "fake"
    assert run_engine("fake", RunRequest(), config.engine_settings("fake")).error == "level 4"
    sample = sample_config()
    assert "# The `fake` engine: a test double.\n[engines.fake]\n# How loud the fake engine is. From 1 to 5.\n" \
           "level = 3\n" in sample
    assert parse_config(tomllib.loads(sample), "sample", base_dir=REPO / "config").engine_settings("fake").level == 3


def test_measure_options_override_the_chosen_engines_settings(fake_engine):
    config = parse_config({}, "inline")
    args = build_parser().parse_args(["measure", "--streams", "2", "--duration", "3"])
    assert _overridden(config, "http", args) == dataclasses.replace(config.engine_settings("http"), streams=2,
                                                                    duration_s=3.0)
    assert _overridden(config, "fake", build_parser().parse_args(["measure", "--streams", "5"])).streams == 5
    with pytest.raises(UserError, match="^--duration: the fake engine has no duration_s setting$"):
        _overridden(config, "fake", args)


def test_measure_option_the_engine_lacks_is_one_line_error(tmp_path):
    result = run_cli("--config", str(REPO / "config" / "agent.toml"), "--store", str(tmp_path / "p.db"), "measure",
                     "--engine", "speedtest", "--streams", "2")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().endswith("--streams: the speedtest engine has no streams setting")
    assert not (tmp_path / "p.db").exists()  # refused before anything was stored


@pytest.mark.parametrize("inline", [True, False])
def test_config_check_warns_when_others_can_read_the_token(tmp_path, inline):
    config = tmp_path / "agent.toml"
    token = tmp_path / "token"
    token.write_text("xap_secret\n")
    config.write_text('device_id = "p"\ncollector_url = "http://127.0.0.1:9/"\n'
                      + ('token = "xap_secret"\n' if inline else 'token_file = "token"\n'))
    exposed = config if inline else token
    os.chmod(exposed, 0o644)
    done = subprocess.run([sys.executable, "-m", "xaprobe.agent", "--lang", "en", "config", "check", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "ok" in done.stdout
    assert f"{exposed} holds the device token and other users can read it (mode 0644)" in done.stderr
    assert f"chmod 600 {exposed}" in done.stderr and ("token:" if inline else "token_file:") in done.stderr
    os.chmod(exposed, 0o600)
    quiet = subprocess.run([sys.executable, "-m", "xaprobe.agent", "config", "check", str(config), "--json"],
                           capture_output=True, text=True, timeout=60)
    assert json.loads(quiet.stdout)["warnings"] == [] and quiet.stderr == ""


@pytest.mark.parametrize("operator, access, problem", [
    ("", "cellular", "links[0].operator: required on a cellular link"),
    ("viettel 4G", "auto", 'links[0].operator: "viettel 4G" is not an operator xaprobe knows'),
    ("other:", "ethernet", 'links[0].operator: "other:" is not an operator'),
])
def test_an_operator_is_one_xaprobe_knows(operator, access, problem):
    data = {"links": [{"name": "a", "interface": "wwan0", "operator": operator, "access": access}]}
    with pytest.raises(ConfigError) as e:
        parse_config(data, "inline")
    assert any(p.startswith(problem) for p in e.value.problems), e.value.problems


@pytest.mark.parametrize("typed, name", [("viettel", "Viettel"), ("VinaPhone", "VNPT"), ("Mobi Fone", "MobiFone"),
                                         ("other:Sài Gòn Net", "other:Sài Gòn Net")])
def test_operators_are_written_one_way(typed, name):
    data = {"links": [{"name": "a", "interface": "wwan0", "operator": typed, "access": "cellular"}]}
    assert parse_config(data, "inline").links[0].operator == name


def test_a_sim_names_its_operator_by_mcc_mnc():
    from xaprobe import operators

    assert [operators.from_mcc_mnc(c) for c in ("45204", "452-01", "45202", "310260")] == \
        ["Viettel", "MobiFone", "VNPT", None]
