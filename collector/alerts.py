"""The daily "đôn đốc" check: probes silent for more than N hours and communes whose projection falls short,
each told at most once a (local) day, by e-mail and/or a webhook, each item with a link to its page; nothing
is sent when all is well."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import requests

from xaprobe.collector.alert_config import SmtpSettings, WebhookSettings
from xaprobe.collector.fleet import fleet
from xaprobe.collector.formats import Formats
from xaprobe.collector.i18n import labels
from xaprobe.collector.reports import monthly_report
from xaprobe.collector.settings import CollectorSettings
from xaprobe.collector.store import CollectorStore
from xaprobe.months import month_of

log = logging.getLogger("xaprobe.collector.alerts")


class DeliveryError(Exception):
    """A channel could not deliver the alert (the message says which and why)."""


@dataclasses.dataclass(frozen=True)
class AlertItem:
    key: str  # probe:ID or commune:CODE, what the once-a-day record keeps
    kind: str  # probe, commune
    text: str
    url: str
    data: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Alert:
    day: str
    subject: str
    items: tuple[AlertItem, ...]

    def text(self) -> str:
        lines = [self.subject, ""]
        for kind in ("probe", "commune"):
            lines += [f"- {i.text}\n  {i.url}" for i in self.items if i.kind == kind]
        return "\n".join(lines) + "\n"

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON: a ready text (chat bots post `text`) and the items as data."""
        return {"text": self.text(), "day": self.day,
                "probes": [i.data | {"url": i.url} for i in self.items if i.kind == "probe"],
                "communes": [i.data | {"url": i.url} for i in self.items if i.kind == "commune"]}


def _link(base: str, path: str) -> str:
    return (base.rstrip("/") + path) if base else path


def find_items(store: CollectorStore, settings: CollectorSettings, province: str, now: dt.datetime) -> list[AlertItem]:
    """Every probe silent for more than silent_hours (revoked ones aside) and every commune behind this month."""
    t, f = labels(settings.language), Formats(settings.language, settings.timezone)
    base, lang = settings.alerts.dashboard_url, settings.language
    limit = dt.timedelta(hours=settings.alerts.silent_hours)
    items = []
    for d in fleet(store, now, province):
        if d.status == "revoked" or (d.last_seen_at is not None and now - d.last_seen_at <= limit):
            continue
        seen = f.datetime(d.last_seen_at) if d.last_seen_at else t["never"]
        items.append(AlertItem(f"probe:{d.id}", "probe", t["alert_probe"].format(
            id=d.id, commune=d.commune_name, seen=seen), _link(base, f"/commune/{d.commune_code}?lang={lang}"),
            {"id": d.id, "name": d.name, "commune_code": d.commune_code, "commune_name": d.commune_name,
             "last_seen_at": f.local(d.last_seen_at).isoformat(timespec="seconds") if d.last_seen_at else None}))
    month = month_of(now, settings.timezone)
    for c in monthly_report(store, settings, month, province, now).communes:
        if c.status != "behind":
            continue
        needed = t["month_over"] if c.needed_per_day is None else f.number(c.needed_per_day)
        items.append(AlertItem(f"commune:{c.code}", "commune", t["alert_commune"].format(
            commune=c.name, samples=f.integer(c.samples), target=f.integer(c.target), projected=f.integer(c.projected),
            needed=needed), _link(base, f"/commune/{c.code}?month={month}&lang={lang}"),
            {"code": c.code, "name": c.name, "samples": c.samples, "target": c.target, "projected": c.projected,
             "needed_per_day": c.needed_per_day}))
    return items


def due_alert(store: CollectorStore, settings: CollectorSettings, province: str, now: dt.datetime) -> Alert | None:
    """What to send now: the items not yet sent today (local day); None when there is nothing."""
    f = Formats(settings.language, settings.timezone)
    day = f.local(now).date().isoformat()
    items = find_items(store, settings, province, now)
    sent = store.alerts.sent_on(day, [i.key for i in items])
    fresh = tuple(i for i in items if i.key not in sent)
    if not fresh:
        return None
    t = labels(settings.language)
    probes = sum(i.kind == "probe" for i in fresh)
    subject = t["alert_subject"].format(
        province=_province_name(province), day=f.datetime(now)[:10], probes=probes,
        communes=len(fresh) - probes, hours=f.number(settings.alerts.silent_hours, 0))
    return Alert(day, subject, fresh)


def _province_name(code: str) -> str:
    from xaprobe import communes

    return communes.province_name(code) or code


def send_email(smtp: SmtpSettings, alert: Alert) -> None:
    """Send the alert by SMTP: STARTTLS (certificate checked) before any login, a timeout on every step."""
    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = alert.subject, smtp.sender, ", ".join(smtp.recipients)
    message.set_content(alert.text())
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s) as client:
            client.ehlo()
            if smtp.starttls:
                client.starttls(context=ssl.create_default_context(cafile=smtp.ca_file or None))
                client.ehlo()
            if smtp.username:
                client.login(smtp.username, smtp.password.reveal())
            client.send_message(message)
    except (smtplib.SMTPException, OSError) as e:
        raise DeliveryError(f"e-mail via {smtp.host}:{smtp.port}: {e}") from e


def send_webhook(webhook: WebhookSettings, alert: Alert) -> None:
    """POST the alert's JSON; a redirect is not followed (it is an error: the URL is configured wrong)."""
    try:
        answer = requests.post(webhook.url, json=alert.payload(), timeout=webhook.timeout_s, allow_redirects=False)
    except requests.RequestException as e:
        raise DeliveryError(f"webhook {webhook.url}: {e}") from e
    if not 200 <= answer.status_code < 300:
        raise DeliveryError(f"webhook {webhook.url}: answered {answer.status_code} {answer.reason}")


def run_alerts(store: CollectorStore, settings: CollectorSettings, province: str, now: dt.datetime,
               dry_run: bool = False) -> tuple[Alert | None, list[str]]:
    """Send what is due on every configured channel and record it as sent when one channel took it; return the
    alert (None: nothing due) and the channels' errors. A dry run sends and records nothing."""
    alert = due_alert(store, settings, province, now)
    if alert is None or dry_run:
        return alert, []
    smtp, webhook = settings.alerts.smtp, settings.alerts.webhook
    channels: list[Callable[[], None]] = []
    if smtp is not None:
        channels.append(functools.partial(send_email, smtp, alert))
    if webhook is not None:
        channels.append(functools.partial(send_webhook, webhook, alert))
    errors = []
    for send in channels:
        try:
            send()
        except DeliveryError as e:
            errors.append(str(e))
    if len(errors) < len(channels):
        store.alerts.mark_sent(alert.day, [i.key for i in alert.items], now)
    return alert, errors
