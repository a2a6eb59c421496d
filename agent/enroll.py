"""`sudo xaprobe enroll URL CODE`: a probe set up from a one-time code, in one command.

It asks the collector for this probe's identity (POST /api/v1/enroll with the code: single use, valid
for 7 days), finds the machine's links (modems with their SIM's operator, Ethernet, Wi-Fi), lets the
officer confirm or edit them, writes agent.toml (readable by the service) and the token (a root-only
file the unit hands to the service as a credential), starts the service, and runs doctor.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import requests

from xaprobe import enrolment, operators
from xaprobe.agent import context
from xaprobe.agent.install import CREDENTIAL, write_file
from xaprobe.agent.links import FoundLink
from xaprobe.errors import UserError
from xaprobe.fields import WireError, check_integer, check_text
from xaprobe.i18n import _
from xaprobe.secret import Secret
from xaprobe.sites import is_site_id
from xaprobe.tomlschema import toml_value
from xaprobe.uploader.transport import TransportError, json_object, post

ENROLL_PATH = "/api/v1/enroll"


@dataclasses.dataclass(frozen=True)
class Identity:
    """What the collector hands a probe that redeems its code."""

    device_id: str
    token: Secret
    commune_code: str
    commune_name: str
    speedtest_url: str
    target: int | None
    site_id: str = ""  # the site staff enrolled it for ("" when they named none, or an older collector)
    site_name: str = ""


def normalise_code(code: str) -> str:
    """The code as the collector keeps it (upper case, one dash); UserError when it cannot be one."""
    try:
        return enrolment.normalise(code)
    except ValueError:
        raise UserError(_("{code!r} is not an enrolment code: it has 8 letters and digits, like XQ7K-M2PD").format(
            code=code)) from None


def fetch_identity(session: requests.Session, collector_url: str, code: str, timeout_s: float = 30.0) -> Identity:
    """Redeem the code at the collector; UserError saying why when it does not give an identity."""
    parts = urlsplit(collector_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(_("{url!r} is not the collector's address: it starts with https://").format(url=collector_url))
    url = collector_url.rstrip("/") + ENROLL_PATH
    try:
        answer = post(session, url, json.dumps({"code": code}).encode(), {"Content-Type": "application/json"},
                      timeout_s, 64 * 1024)
    except TransportError as e:
        raise UserError(_("cannot reach the collector: {error}").format(error=e)) from None
    body = json_object(answer)
    if answer.status != 200 or body is None:
        detail = body.get("detail") if body else None
        raise UserError(_("the collector at {url} did not accept the code ({status}): {detail}").format(
            url=collector_url, status=answer.status, detail=str(detail or "-")[:200]))
    try:
        return Identity(
            device_id=check_text(body.get("device_id"), "device_id", 64),
            token=Secret(check_text(body.get("token"), "token", 200)),
            commune_code=check_text(body.get("commune_code"), "commune_code", 10),
            commune_name=check_text(body.get("commune_name", ""), "commune_name", 200),
            speedtest_url=check_text(body.get("speedtest_url", ""), "speedtest_url", 2000),
            target=None if body.get("target") is None else check_integer(body["target"], "target", 10_000, 1),
            site_id=_site_id(body.get("site_id")),
            site_name=check_text(body.get("site_name") or "", "site_name", 200))
    except WireError as e:
        raise UserError(_("the collector's answer is not usable ({error})").format(error=e)) from None


def _site_id(value: object) -> str:
    site = check_text(value or "", "site_id", 64)
    if site and not is_site_id(site):
        raise WireError("site_id", f"{site!r} is not a site id")
    return site


Ask = Callable[[str], str]


def confirm_links(found: list[FoundLink], ask: Ask | None) -> list[FoundLink]:
    """The links to measure: all found ones when ask is None (--yes), else the ones the officer keeps, each
    with an operator (asked for when the SIM did not say it, and always on a cellular link)."""
    kept = []
    for link in found:
        label = {"cellular": _("mobile"), "ethernet": _("wired"), "wifi": _("Wi-Fi")}.get(link.access, link.access)
        shown = f"{link.interface} ({label}" + (f", {link.operator}" if link.operator else "") + \
            (f", {link.technology}" if link.technology else "") + ")"
        if ask is not None and ask(_("Measure on {link}? [Y/n] ").format(link=shown)).strip().lower() in ("n", "no",
                                                                                                         "k", "không"):
            continue
        operator = link.operator
        while ask is not None and (operator is None and link.access == "cellular" or operator == ""):
            typed = ask(_("Operator of {interface} ({names}; or other:<name>): ").format(
                interface=link.interface, names=operators.known_names()))
            operator = operators.canonical(typed) or ("" if link.access == "cellular" else None)
        kept.append(dataclasses.replace(link, operator=operator))
    if not kept:
        raise UserError(_("no link to measure: plug in a modem (or a network cable) and run enroll again"))
    return kept


def agent_toml(identity: Identity, collector_url: str, links: list[FoundLink], budget_mb: float,
               daily_quota_mb: float) -> str:
    """The probe's agent.toml: identity, the credential that holds the token, the test server and one
    [[links]] per kept link (every value written by the TOML writer, so any name is safe)."""
    lines = [f"# xaprobe probe {identity.device_id}: {identity.commune_name} ({identity.commune_code}).",
             "# Written by `xaprobe enroll`; check it with: xaprobe config check",
             f"device_id = {toml_value(identity.device_id)}",
             f'token_credential = "{CREDENTIAL}"',
             f"commune_code = {toml_value(identity.commune_code)}",
             f"collector_url = {toml_value(collector_url.rstrip('/') + '/')}"]
    if identity.target:
        lines.append(f"target = {identity.target}")
    if identity.site_id:
        lines.append(f"site_id = {toml_value(identity.site_id)}" + (f"  # {toml_value(identity.site_name)}"
                                                                   if identity.site_name else ""))
    lines += ["", "[engines.http]",
              f"server = {toml_value(identity.speedtest_url or collector_url.rstrip('/') + '/speedtest/')}"]
    names: set[str] = set()
    for link in links:
        name = link.suggested_name
        while name in names:
            name += "-2"
        names.add(name)
        lines += ["", "[[links]]", f"name = {toml_value(name)}", f"interface = {toml_value(link.interface)}",
                  f"access = {toml_value(link.access)}"]
        if link.operator:
            lines.append(f"operator = {toml_value(link.operator)}")
        if link.access == "cellular" and budget_mb:
            lines.append(f"budget_mb = {toml_value(float(budget_mb))}")
        if link.access == "cellular" and daily_quota_mb:
            lines.append(f"daily_quota_mb = {toml_value(float(daily_quota_mb))}")
    return "\n".join(lines) + "\n"


def write_probe_config(text: str, token: Secret, target: Path) -> None:
    """agent.toml readable by the service (0644), the token beside it readable by root only (0600)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    write_file(target.parent / CREDENTIAL, token.reveal() + "\n", 0o600)
    write_file(target, text, 0o644)


def start_service() -> str | None:
    """Enable and (re)start the probe's service when systemd runs here; what went wrong, or None."""
    if not context.systemd_running():
        return _("systemd is not running here: start the probe with `xaprobe run`")
    done = subprocess.run(["systemctl", "enable", "--now", "xaprobe-agent"], capture_output=True, text=True,
                          timeout=60, check=False)
    if done.returncode == 0:
        subprocess.run(["systemctl", "restart", "xaprobe-agent"], capture_output=True, timeout=60, check=False)
        return None
    return done.stderr.strip() or _("systemctl could not start xaprobe-agent")
