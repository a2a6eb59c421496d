"""What the packages' install steps rest on: the token as a systemd credential, what `config check` says the
service can read, `xaprobe config install`, `xaprobe-collector init` and the database every command names."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from xaprobe.agent.config import load_config, service_problems
from xaprobe.agent.install import install_config
from xaprobe.errors import ConfigError

PROBE = '''# Made by `xaprobe-collector device add`. Keep it secret: it holds the device's token.
device_id = "p1"
token = "xap_secret"
collector_url = "http://127.0.0.1:9/"
store = "/var/lib/xaprobe/probe.db"

[engines.http]
server = "http://127.0.0.1:9/speedtest/"
'''


def _config(tmp_path: Path, text: str, mode: int = 0o644) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_token_credential_is_read_from_the_credentials_directory(tmp_path, monkeypatch):
    (tmp_path / "token").write_text("xap_beside\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "token").write_text("xap_from_systemd\n")
    path = _config(tmp_path, PROBE.replace('token = "xap_secret"', 'token_credential = "token"'))
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    outside = load_config(path)  # root's commands: the file the unit loads, beside agent.toml
    assert outside.token.reveal() == "xap_beside" and outside.token_from == tmp_path / "token"
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    inside = load_config(path)
    assert inside.token.reveal() == "xap_from_systemd" and inside.token_key == "token_credential"


@pytest.mark.parametrize("line, problem", [
    ('token_credential = "../token"', 'token_credential: must be a credential name (as in LoadCredential=NAME:PATH)'),
    ('token_credential = "absent"', "token_credential: cannot read"),
    ('token = "a"\ntoken_file = "token"', "token: give one of token, token_file, token_credential, not token and "
                                          "token_file"),
])
def test_token_keys_are_checked(tmp_path, monkeypatch, line, problem):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    (tmp_path / "token").write_text("xap_x\n")
    path = _config(tmp_path, PROBE.replace('token = "xap_secret"', line))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


@pytest.fixture
def open_dir():
    """A folder every user can search (pytest's tmp_path sits in a folder only its owner can)."""
    path = Path(tempfile.mkdtemp(prefix="xaprobe-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_service_problems_name_what_the_dynamic_user_cannot_read(open_dir, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    tmp_path = open_dir
    (tmp_path / "token").write_text("xap_x\n")
    (tmp_path / "token").chmod(0o600)
    root_only = load_config(_config(tmp_path, PROBE, 0o600))
    assert [p.split(":")[0] for p in service_problems(root_only)] == ["the service runs as its own user and cannot "
                                                                      f"read {tmp_path / 'agent.toml'}"]
    token_file = load_config(_config(tmp_path, PROBE.replace('token = "xap_secret"', 'token_file = "token"')))
    assert service_problems(token_file)[0].startswith(f"token_file: the service cannot read {tmp_path / 'token'}")
    credential = load_config(_config(tmp_path, PROBE.replace('token = "xap_secret"', 'token_credential = "token"')))
    assert service_problems(credential) == []
    elsewhere = load_config(_config(tmp_path, PROBE.replace('token = "xap_secret"', 'token_credential = "token"')
                                    .replace("/var/lib/xaprobe/probe.db", "/srv/probe.db")))
    assert service_problems(elsewhere) == ["store: the service can only write under /var/lib/xaprobe, not "
                                           "/srv/probe.db"]


def test_config_install_puts_the_token_in_a_root_only_file(tmp_path, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    given = tmp_path / "cam-xuyen.toml"
    given.write_text(PROBE)
    target = tmp_path / "etc" / "agent.toml"
    config = install_config(given, target)
    assert config.token.reveal() == "xap_secret" and config.token_key == "token_credential"
    assert (tmp_path / "etc" / "token").read_text() == "xap_secret\n"
    assert (tmp_path / "etc" / "token").stat().st_mode & 0o777 == 0o600 and target.stat().st_mode & 0o777 == 0o644
    text = target.read_text()
    assert "xap_secret" not in text and 'token_credential = "token"' in text and "Keep it secret" not in text
    assert 'server = "http://127.0.0.1:9/speedtest/"' in text  # the rest as it was
    assert install_config(target, target).token.reveal() == "xap_secret"  # installing it again changes nothing


def _collector(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xaprobe.collector", *args], capture_output=True, text=True,
                          timeout=120)


def test_collector_init_writes_its_config_once_and_one_first_admin(tmp_path):
    config, db = tmp_path / "collector.toml", f"sqlite:///{tmp_path / 'c.db'}"
    first = _collector("--config", str(config), "init", "--db", db)
    assert first.returncode == 0, first.stderr
    assert "Admin token for admin (shown once): xap_" in first.stdout and f"Wrote {config} (mode 0600)" in first.stdout
    assert config.stat().st_mode & 0o777 == 0o600 and f'db = "{db}"' in config.read_text()
    again = _collector("--config", str(config), "init")
    assert again.returncode == 0 and "names this database already" in again.stdout
    assert "1 admin(s) exist already" in again.stdout and "xap_" not in again.stdout
    other = _collector("--config", str(config), "init", "--db", f"sqlite:///{tmp_path / 'other.db'}")
    assert other.returncode == 1 and f"already names the database {db}" in other.stderr
    listed = _collector("--config", str(config), "device", "list")
    assert listed.returncode == 0 and listed.stderr == ""  # the configured database: nothing to say
    elsewhere = _collector("--config", str(config), "--db", f"sqlite:///{tmp_path / 'other.db'}", "device", "list")
    assert f"using database sqlite:///{tmp_path / 'other.db'} (not the configured {db} of {config})" \
        in elsewhere.stderr


def test_with_nothing_configured_the_default_database_is_named(tmp_path, monkeypatch, capsys):
    from xaprobe.collector import settings
    from xaprobe.collector.cli import _say_which_database

    monkeypatch.setattr(settings, "DEFAULT_CONFIG", tmp_path / "absent.toml")
    _say_which_database(argparse.Namespace(config=None, db=None),
                        settings.CollectorSettings(db_url="postgresql://x:pw@db/x"))
    err = capsys.readouterr().err
    assert "using database postgresql://x:***@db/x (nothing configured:" in err and "pw" not in err
    _say_which_database(argparse.Namespace(config=None, db="sqlite:///given.db"),
                        settings.CollectorSettings(db_url="sqlite:///given.db"))
    assert capsys.readouterr().err == ""  # chosen on the command line, with nothing configured to differ from


def test_the_sqlite_default_is_the_units_state_directory(monkeypatch):
    from xaprobe.collector.settings import default_db_url

    unit = (Path(__file__).resolve().parent.parent / "systemd" / "xaprobe-collector.service").read_text()
    assert "StateDirectory=xaprobe-collector\n" in unit
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/xaprobe-collector")
    assert default_db_url() == "sqlite:////var/lib/xaprobe-collector/collector.db"
    if os.geteuid() == 0:
        monkeypatch.delenv("STATE_DIRECTORY")
        assert default_db_url() == "sqlite:////var/lib/xaprobe-collector/collector.db"
