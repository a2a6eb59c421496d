"""`xaprobe config install FILE`: put the configuration the collector's staff gave into place for the service.

The file `xaprobe-collector device add --write-config` writes holds the device token. The service runs as a
user of its own (DynamicUser=), so agent.toml must be readable by it, and the token must not be: the token
goes to a root-only file that the unit hands to the service as a systemd credential (LoadCredential=), and
agent.toml names that credential instead of holding the token.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from xaprobe.agent.config import AgentConfig, load_config
from xaprobe.errors import UserError
from xaprobe.i18n import _

CREDENTIAL = "token"
_TOKEN_LINE = re.compile(r"^\s*(token|token_file|token_credential)\s*=")
_TABLE_LINE = re.compile(r"^\s*\[")
# the warning `xaprobe-collector device add --write-config` puts at the top, no longer true once installed
_SECRET_NOTE = "Keep it secret: it holds the device's token."


def without_token(text: str) -> str:
    """The config text with its top-level token key (token, token_file or token_credential) replaced by
    `token_credential = "token"`; the rest of the file, comments included, stays as it was."""
    lines, placed, in_table = [], False, False
    for line in text.splitlines():
        line = line.replace(_SECRET_NOTE, "Its token is in a root-only file, given to the service as a credential.")
        in_table = in_table or bool(_TABLE_LINE.match(line))
        if not in_table and _TOKEN_LINE.match(line):
            if not placed:
                lines.append(f'token_credential = "{CREDENTIAL}"')
                placed = True
            continue
        lines.append(line)
    if not placed:
        lines.insert(0, f'token_credential = "{CREDENTIAL}"')
    return "\n".join(lines) + "\n"


def write_file(path: Path, data: str, mode: int) -> None:
    """Write path atomically with the given mode (a reader sees the old file or the new one, whole)."""
    tmp = path.with_name(f".{path.name}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def install_config(given: Path, target: Path) -> AgentConfig:
    """Check the given config, write its token to the credential file beside target (0600) and the rest to
    target (0644); return the installed config as the service will read it."""
    config = load_config(given)
    if not config.token:
        raise UserError(_("{path} has no device token (token, token_file or token_credential)").format(path=given))
    target.parent.mkdir(parents=True, exist_ok=True)
    write_file(target.parent / CREDENTIAL, config.token.reveal() + "\n", 0o600)
    write_file(target, without_token(given.read_text(encoding="utf-8")), 0o644)
    return load_config(target)
