"""Default probe paths: system paths for root (or a service), XDG paths for a laptop user."""

from __future__ import annotations

import os
from pathlib import Path


def _is_system() -> bool:
    return os.geteuid() == 0 or bool(os.environ.get("STATE_DIRECTORY"))


def default_config_path() -> Path:
    """Return /etc/xaprobe/agent.toml for root, else $XDG_CONFIG_HOME/xaprobe/agent.toml."""
    if os.environ.get("XAPROBE_CONFIG"):
        return Path(os.environ["XAPROBE_CONFIG"])
    if _is_system():
        return Path("/etc/xaprobe/agent.toml")
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "xaprobe" / "agent.toml"


def default_store_path() -> Path:
    """Return the probe's SQLite file: $STATE_DIRECTORY, /var/lib/xaprobe, or XDG data home."""
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0]) / "probe.db"
    if os.geteuid() == 0:
        return Path("/var/lib/xaprobe/probe.db")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "xaprobe" / "probe.db"
