"""The agent.toml `device add --write-config` hands to staff, written with every string escaped the TOML
way, so no name, id or URL can end a string early or add a key; and the device ids enrolment takes."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from xaprobe.errors import UserError
from xaprobe.tomlschema import toml_string

DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_device_id(device_id: str) -> str:
    """Return device_id if it is 1-64 letters, digits, '-' or '_'; raise UserError naming --id otherwise."""
    if not DEVICE_ID.fullmatch(device_id):
        raise UserError(f"--id must be 1 to 64 letters, digits, '-' or '_', got {device_id[:80]!r}")
    return device_id


def check_collector_url(url: str) -> str:
    """Return url if it is an http(s) address with a host; raise UserError naming --collector-url otherwise."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it checks it
    except ValueError as e:
        raise UserError(f"--collector-url: {url[:80]!r} is not a URL ({e})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"--collector-url must be http://HOST[:PORT] or https://..., got {url[:80]!r}")
    return url


def agent_toml(device_id: str, token: str, commune_code: str, collector_url: str, target: int,
               site_id: str = "") -> str:
    """A complete agent.toml for a freshly enrolled device; `xaprobe config check` accepts it."""
    base = collector_url.rstrip("/")
    device = check_device_id(device_id)
    site_line = f"site_id = {toml_string(site_id)}\n" if site_id else ""
    return f'''# xaprobe probe configuration for device {device}
# Made by `xaprobe-collector device add`. Keep it secret: it holds the device's token.
device_id = {toml_string(device)}
token = {toml_string(token)}
commune_code = {toml_string(commune_code)}
{site_line}collector_url = {toml_string(base + "/")}
target = {int(target)}
timezone = "Asia/Ho_Chi_Minh"

[engines.http]
server = {toml_string(base + "/speedtest/")}

# One [[links]] per modem or network the probe measures; the interface name is on `ip link`.
[[links]]
name = "main"
interface = "eth0"
operator = ""
access = "auto"
'''
