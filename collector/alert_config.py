"""The [alerts] table of collector.toml ("đôn đốc"): who is told, by e-mail (SMTP with STARTTLS and a login)
and/or a webhook (a JSON POST for a chat bot), about probes silent for more than N hours and communes whose
projection falls short. Read key by key like the rest of the file; the password hides itself."""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

from xaprobe.secret import Secret
from xaprobe.tomlcheck import TableReader


@dataclasses.dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    starttls: bool = True  # upgrade the connection before logging in; false only for a relay on the same host
    username: str = ""
    password: Secret = Secret("")
    sender: str = ""
    recipients: tuple[str, ...] = ()
    timeout_s: float = 20.0
    ca_file: str = ""  # a private CA's certificate (PEM) for an intranet mail server; default: the system's


@dataclasses.dataclass(frozen=True)
class WebhookSettings:
    url: str
    timeout_s: float = 10.0


@dataclasses.dataclass(frozen=True)
class AlertSettings:
    silent_hours: float = 24.0
    dashboard_url: str = ""  # how people reach the dashboard: each item carries a link to its page
    smtp: SmtpSettings | None = None
    webhook: WebhookSettings | None = None

    def configured(self) -> bool:
        return self.smtp is not None or self.webhook is not None


def _url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f'must be an http:// or https:// URL, got "{url[:80]}"'
    return None


def _smtp(r: TableReader) -> SmtpSettings:
    host = r.text("host", required=True)
    settings = SmtpSettings(
        host=host, port=r.integer("port", 587, high=65535), starttls=r.boolean("starttls", True),
        username=r.text("username"), password=Secret(r.text("password")), sender=r.text("from", required=True),
        recipients=r.text_list("to"), timeout_s=r.number("timeout_s", 20.0, low=1.0, high=300.0),
        ca_file=r.text("ca_file"))
    if not settings.recipients:
        r.fail("to", "required: a list of e-mail addresses")
    if settings.username and not settings.starttls:
        r.fail("starttls", "must be true when a username is given (a password is never sent in clear)")
    r.reject_unknown()
    return settings


def read_alerts(r: TableReader) -> AlertSettings:
    """The [alerts] table (absent: no alerts); every bad key adds a problem to r's list."""
    default = AlertSettings()
    smtp = r.raw("smtp")
    webhook = r.raw("webhook")
    settings = AlertSettings(
        silent_hours=r.number("silent_hours", default.silent_hours, low=1.0, high=24.0 * 60),
        dashboard_url=r.text("dashboard_url"),
        smtp=_smtp(r.sub("smtp")) if smtp is not None else None,
        webhook=None)
    if webhook is not None:
        w = r.sub("webhook")
        url = w.text("url", required=True)
        if url and (problem := _url_problem(url)) is not None:
            w.fail("url", problem)
        settings = dataclasses.replace(settings, webhook=WebhookSettings(url, w.number("timeout_s", 10.0, low=1.0,
                                                                                        high=120.0)))
        w.reject_unknown()
    if settings.dashboard_url and (problem := _url_problem(settings.dashboard_url)) is not None:
        r.fail("dashboard_url", problem)
    r.reject_unknown()
    return settings
