"""Probe configuration: the example passes; every mistake is named by its key, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from xaprobe.agent.config import load_config, parse_config
from xaprobe.errors import ConfigError


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
    ('commune_code = "99999"\n', "commune_code: 99999 is not a commune in vietnam-provinces"),
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
    return subprocess.run([sys.executable, "-m", "xaprobe.agent", *args], capture_output=True, text=True,
                          timeout=60)


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
