"""#11: every number `xaprobe-collector` takes has a range, every bad collector.toml value names its key,
both in one line with no traceback; targets are at least 1 everywhere; `device add --write-config` writes
TOML that no id, token or URL can break out of."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from xaprobe.collector.agent_config import agent_toml
from xaprobe.errors import UserError
from xaprobe.tomlschema import toml_string


def cli(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "xaprobe.collector", "--db", f"sqlite:///{tmp_path / 'c.db'}", *args],
                          capture_output=True, text=True, timeout=60)


def one_line(done) -> str:
    assert done.returncode in (1, 2) and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize("args, expected", [
    (("device", "add", "--commune", "18673", "--name", "a", "--target", "0"),
     "argument --target: must be a whole number from 1 to 10000, got '0'"),
    (("device", "add", "--commune", "18673", "--name", "a", "--target", "-5"),
     "argument --target: must be a whole number from 1 to 10000, got '-5'"),
    (("device", "add", "--commune", "18673", "--name", "a", "--target", str(10**21)),
     "argument --target: must be a whole number from 1 to 10000, got '1000000000000000000000'"),
    (("device", "set", "x", "--target", "0"), "argument --target: must be a whole number from 1 to 10000"),
    (("target", "--commune", "18673", "0"), "argument N: must be a whole number from 1 to 10000, got '0'"),
    (("device", "rotate", "x", "--grace-days", "1000000000"),
     "argument --grace-days: must be a whole number from 0 to 3650, got '1000000000'"),
    (("serve", "--port", "99999"), "argument --port: must be a whole number from 1 to 65535, got '99999'"),
    (("serve", "--workers", "0"), "argument --workers: must be a whole number from 1 to 64, got '0'"),
    (("speedtest-server", "--port", "1e3"), "argument --port: must be a whole number from 1 to 65535, got '1e3'"),
    (("serve", "--port", "9" * 5000), "argument --port: must be a whole number from 1 to 65535, got '9999"),
])
def test_numbers_out_of_range_are_one_line(tmp_path, args, expected):
    line = one_line(cli(tmp_path, *args))
    assert line.startswith("xaprobe-collector ") and expected in line, line


@pytest.mark.parametrize("text, key", [
    ('db = "postgresql://[::1"', "db: not a database URL (Invalid IPv6 URL)"),
    ('db = "postgresql://u@h:99999/x"', "db: not a database URL (Port out of range 0-65535)"),
    ('db = "mysql://x/y"', "db: must be sqlite:///PATH or postgresql://..., got 'mysql://x/y'"),
    ("target = 0", "target: must be an integer from 1 to 10000, got 0"),
    ("target = 100000000000000000", "target: must be an integer from 1 to 10000"),
    ('timezone = "Mars/Olympus"', 'timezone: "Mars/Olympus" is not a time zone'),
    ("[speedtest]\nmax_chunks = 0", "speedtest.max_chunks: must be an integer from 1 to 1024, got 0"),
    ("[speedtest]\nmax_upload_mb = 5", "speedtest.max_upload_mb: unknown key (did you mean 'max_upload_mib'?)"),
])
def test_bad_collector_toml_values_name_their_key(tmp_path, text, key):
    config = tmp_path / "collector.toml"
    config.write_text(text + "\n")
    done = subprocess.run([sys.executable, "-m", "xaprobe.collector", "--config", str(config), "device", "list"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and one_line(done).startswith(f"{config}: {key}")


def test_a_bad_db_flag_and_an_unreachable_database_are_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "xaprobe.collector", "--db", "postgresql://[::1", "fleet"],
                          capture_output=True, text=True, timeout=60)
    assert one_line(done) == "xaprobe-collector: error: --db: not a database URL (Invalid IPv6 URL)"
    done = subprocess.run([sys.executable, "-m", "xaprobe.collector", "--db",
                           "postgresql://xaprobe:s3cret@127.0.0.1:1/x", "fleet"], capture_output=True, text=True,
                          timeout=60)
    line = one_line(done)
    assert line.startswith("xaprobe-collector: error: cannot open the database postgresql://xaprobe:***@127.0.0.1:1/x")
    assert "s3cret" not in done.stderr


def test_targets_within_range_are_taken(tmp_path):
    assert cli(tmp_path, "device", "add", "--commune", "18673", "--name", "a", "--target", "10000").returncode == 0
    assert cli(tmp_path, "target", "--commune", "18673", "1").returncode == 0
    assert cli(tmp_path, "device", "set", "a", "--target", "1").returncode == 0


def test_toml_strings_round_trip():
    every = "".join(chr(i) for i in range(0, 0x80)) + 'Xã "Cẩm" \\ Xuyên \u2028 \U0001f600'
    assert tomllib.loads(f"v = {toml_string(every)}")["v"] == every
    with pytest.raises(UserError):
        toml_string("a\ud800")


def test_write_config_cannot_be_broken_out_of(tmp_path):
    url = 'http://collector.example:8080/x"\ninjected = true\n#'
    text = agent_toml("probe-1", 'xap_"token\n', "18673", url, 300)
    data = tomllib.loads(text)
    assert "injected" not in data and data["token"] == 'xap_"token\n'
    assert data["collector_url"] == url.rstrip("/") + "/" and data["engines"]["http"]["server"].endswith("/speedtest/")
    with pytest.raises(UserError):
        agent_toml('x"\ninjected = 1', "t", "18673", "http://h", 300)


@pytest.mark.parametrize("device_id", ["a b", 'x"y', "x" * 65, "", "ngõ-1", "a/b"])
def test_device_ids_are_checked(tmp_path, device_id):
    done = cli(tmp_path, "device", "add", "--commune", "18673", "--name", "n", "--id", device_id)
    assert one_line(done).startswith("xaprobe-collector: error: --id must be 1 to 64 letters, digits, '-' or '_'")


def test_write_config_is_real_toml_the_probe_accepts(tmp_path):
    config = tmp_path / "agent.toml"
    done = cli(tmp_path, "device", "add", "--commune", "18673", "--name", "n", "--id", "Probe_1-a" + "x" * 55,
               "--write-config", str(config), "--collector-url", "https://collector.example/xa")
    assert done.returncode == 0, done.stderr
    data = tomllib.loads(config.read_text())
    assert data["device_id"] == "Probe_1-a" + "x" * 55 and data["collector_url"] == "https://collector.example/xa/"
    check = subprocess.run([sys.executable, "-m", "xaprobe.agent", "config", "check", str(config)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    bad = cli(tmp_path, "device", "add", "--commune", "18673", "--name", "m", "--write-config", str(tmp_path / "b"),
              "--collector-url", "http://[::1")
    assert one_line(bad).startswith("xaprobe-collector: error: --collector-url: 'http://[::1' is not a URL")
