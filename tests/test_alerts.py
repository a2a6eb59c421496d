"""#14 alerts ("đôn đốc"): a real SMTP server (aiosmtpd, STARTTLS and a login) and a local webhook receiver
get the right items, once a day, with links; nothing when all is well; a redirect is not followed; the [alerts]
table is checked key by key; `alerts --dry-run` prints and sends nothing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
import json
import ssl
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from conftest import free_port
from officer import BEHIND, NOW, province
from testserver import serving

from xaprobe.collector.alert_config import AlertSettings, SmtpSettings, WebhookSettings
from xaprobe.collector.alerts import run_alerts
from xaprobe.collector.settings import CollectorSettings, load_settings
from xaprobe.errors import ConfigError
from xaprobe.secret import Secret

aiosmtpd = pytest.importorskip("aiosmtpd")


@pytest.fixture
def certificate(tmp_path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
def mail_server(certificate):
    """aiosmtpd on loopback: STARTTLS required, then a login (officer / s3cret) required, messages kept."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    class Keep:
        messages: list[tuple[str, list[str], str]] = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
            self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.content.decode("utf-8")))
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=isinstance(auth_data, LoginPassword) and auth_data.login == b"officer"
                          and auth_data.password == b"s3cret")

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    handler = Keep()
    handler.messages = []
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), tls_context=context,
                            require_starttls=True, authenticator=authenticator, auth_required=True)
    controller.start()
    yield controller.port, handler.messages
    controller.stop()


@pytest.fixture
def receiver():
    """A webhook receiver on loopback: /hook answers 200, /moved redirects to /hook; every POST is kept."""
    posts: list[tuple[str, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            posts.append((self.path, json.loads(body)))
            if self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "/hook")
            else:
                self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    with serving(Handler) as server:
        yield server.base, posts


def settings_for(mail_port: int, cert: Path, hook: str) -> CollectorSettings:
    smtp = SmtpSettings(host="127.0.0.1", port=mail_port, username="officer", password=Secret("s3cret"),
                        sender="xaprobe@hatinh.example", recipients=("so-tttt@hatinh.example",), timeout_s=10,
                        ca_file=str(cert))
    return CollectorSettings(province="42", alerts=AlertSettings(
        silent_hours=4, dashboard_url="https://xaprobe.hatinh.example", smtp=smtp, webhook=WebhookSettings(hook)))


def test_the_right_items_once_a_day_by_mail_and_webhook(tmp_path, mail_server, receiver, certificate):
    port, messages = mail_server
    base, posts = receiver
    settings = settings_for(port, certificate[0], base + "/hook")
    with province(f"sqlite:///{tmp_path / 'c.db'}") as p:
        alert, errors = run_alerts(p.store, settings, "42", NOW)
        assert errors == [] and alert is not None
        assert {i.key for i in alert.items} == {"probe:p-cam-xuyen", "probe:p-son-hong", f"commune:{BEHIND}"}
        assert len(messages) == 1 and len(posts) == 1
        sender, recipients, raw = messages[0]
        assert sender == "xaprobe@hatinh.example" and recipients == ["so-tttt@hatinh.example"]
        mail = email.message_from_string(raw, policy=email.policy.default)
        assert mail["Subject"].startswith("[xaprobe] Đôn đốc Hà Tĩnh ngày 20/11/2026: 2 thiết bị mất liên lạc")
        body = mail.get_content()
        assert "p-cam-xuyen (Xã Cẩm Xuyên) mất liên lạc, lần cuối: 20/11/2026 07:00" in body
        assert "Xã Cẩm Xuyên: 80/300 mẫu, dự kiến cuối tháng 123, cần thêm 21,0 mẫu/ngày" in body
        assert f"https://xaprobe.hatinh.example/commune/{BEHIND}?month=2026-11&lang=vi" in body
        path, payload = posts[0]
        assert path == "/hook" and "Đôn đốc Hà Tĩnh" in payload["text"]
        assert sorted(x["id"] for x in payload["probes"]) == ["p-cam-xuyen", "p-son-hong"]
        assert [c["code"] for c in payload["communes"]] == [BEHIND] and payload["communes"][0]["needed_per_day"] == 21.0
        assert payload["probes"][0]["url"].startswith("https://xaprobe.hatinh.example/commune/")
        # later the same day (the other probes still within their 4 hours): already told
        again, _ = run_alerts(p.store, settings, "42", NOW + dt.timedelta(hours=2))
        assert again is None and len(messages) == 1 and len(posts) == 1
        # the next day: told again (and by now every probe has been silent for a day)
        tomorrow, _ = run_alerts(p.store, settings, "42", NOW + dt.timedelta(days=1))
        assert tomorrow is not None and len(messages) == 2 and len(posts) == 2
        assert {i.key for i in tomorrow.items} == {"probe:p-cam-xuyen", "probe:p-son-hong", "probe:p-huong-son",
                                                   "probe:p-on-track", f"commune:{BEHIND}"}


def test_nothing_is_sent_when_all_is_well(tmp_path, mail_server, receiver, certificate):
    from xaprobe.collector.db import open_engine
    from xaprobe.collector.store import CollectorStore
    from xaprobe.health import Heartbeat

    port, messages = mail_server
    base, posts = receiver
    store = CollectorStore(open_engine(f"sqlite:///{tmp_path / 'well.db'}"))
    store.devices.add("p-well", "Máy đo", BEHIND, None, NOW - dt.timedelta(days=3))
    store.devices.record_heartbeat("p-well", Heartbeat("p-well", "0.1.0", NOW), NOW - dt.timedelta(hours=1))
    alert, errors = run_alerts(store, settings_for(port, certificate[0], base + "/hook"), "42", NOW)
    assert alert is None and errors == [] and messages == [] and posts == []
    store.engine.dispose()


def test_a_redirect_is_not_followed_and_what_failed_is_sent_again(tmp_path, receiver):
    base, posts = receiver
    settings = dataclasses.replace(CollectorSettings(province="42"), alerts=AlertSettings(
        silent_hours=4, webhook=WebhookSettings(base + "/moved", timeout_s=5)))
    with province(f"sqlite:///{tmp_path / 'c.db'}") as p:
        alert, errors = run_alerts(p.store, settings, "42", NOW)
        assert alert is not None and len(errors) == 1 and "302" in errors[0]
        assert [path for path, _ in posts] == ["/moved"]  # /hook never asked
        retry, _ = run_alerts(p.store, settings, "42", NOW + dt.timedelta(minutes=5))
        assert retry is not None  # not recorded as sent: tried again


def test_alerts_table_is_checked_key_by_key(tmp_path):
    config = tmp_path / "collector.toml"
    config.write_text('[alerts]\nsilent_hours = 6\ndashboard_url = "https://x.example"\n'
                      '[alerts.smtp]\nhost = "mail.example"\nport = 587\nusername = "u"\npassword = "p4ss"\n'
                      'from = "a@example"\nto = ["b@example"]\n[alerts.webhook]\nurl = "https://chat.example/hook"\n',
                      encoding="utf-8")
    alerts = load_settings(config).alerts
    assert alerts.silent_hours == 6 and alerts.smtp is not None and alerts.smtp.recipients == ("b@example",)
    assert alerts.smtp.password.reveal() == "p4ss" and "p4ss" not in repr(alerts)
    assert alerts.webhook == WebhookSettings("https://chat.example/hook")
    config.write_text('[alerts]\nsilent_hours = 0\nsilnet = 1\n[alerts.smtp]\nhost = "m"\nport = 70000\n'
                      'from = "a@e"\nusername = "u"\nstarttls = false\n[alerts.webhook]\nurl = "ftp://x"\n',
                      encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    problems = "\n".join(caught.value.problems)
    for key in ("alerts.silent_hours", "alerts.silnet: unknown key", "alerts.smtp.port", "alerts.smtp.to",
                "alerts.smtp.starttls", "alerts.webhook.url"):
        assert key in problems, problems


def test_dry_run_prints_and_sends_nothing(tmp_path, receiver):
    base, posts = receiver
    db = f"sqlite:///{tmp_path / 'c.db'}"
    config = tmp_path / "collector.toml"
    config.write_text(f'db = "{db}"\nprovince = "42"\n[alerts]\nsilent_hours = 4\n'
                      f'dashboard_url = "https://x.example"\n[alerts.webhook]\nurl = "{base}/hook"\n', encoding="utf-8")
    with province(db):
        pass  # the database with its data, the server gone
    done = subprocess.run([sys.executable, "-m", "xaprobe.collector", "--config", str(config), "alerts", "--dry-run"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Would send by webhook" in done.stdout and "p-cam-xuyen" in done.stdout
    assert f"https://x.example/commune/{BEHIND}" in done.stdout and posts == []
