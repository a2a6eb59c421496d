"""Which links this machine has: cellular modems through ModemManager (interface, operator from the SIM's
MCC-MNC, radio technology), Ethernet and Wi-Fi from sysfs; what enrolment proposes and doctor checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from xaprobe.agent import context


@dataclasses.dataclass(frozen=True)
class FoundLink:
    interface: str
    access: str  # ethernet, wifi, cellular
    operator: str | None = None  # canonical name when the SIM or network says it
    technology: str | None = None
    model: str | None = None

    @property
    def suggested_name(self) -> str:
        """A link name for the config: the operator's, lower case, else the interface's."""
        return (self.operator or self.interface).lower().replace(":", "-").replace(" ", "-")


def modems() -> list[FoundLink]:
    """Every modem ModemManager knows, by the network interface that carries its data (none without mmcli)."""
    found = []
    for index in context.modem_indexes():
        modem = context.mmcli("-m", index) or {}
        generic = modem.get("modem", {}).get("generic", {})
        nets = [str(p).split(" ")[0] for p in generic.get("ports", []) if str(p).endswith("(net)")]
        if not nets:
            continue
        radio = context.parse_mmcli_modem(modem, None, None)
        model = " ".join(str(generic.get(k) or "") for k in ("manufacturer", "model")).strip() or None
        found.append(FoundLink(nets[0], "cellular", radio.operator, radio.technology, model))
    return found


def interfaces(sys_net: Path = context.SYS_NET) -> list[FoundLink]:
    """Physical Ethernet and Wi-Fi interfaces from sysfs (loopback, bridges, veth and the like left out)."""
    found = []
    for base in sorted(sys_net.iterdir()) if sys_net.exists() else []:
        access = context.access_type(base.name, sys_net)
        if access in ("ethernet", "wifi"):
            found.append(FoundLink(base.name, access))
    return found


def detect(sys_net: Path = context.SYS_NET) -> list[FoundLink]:
    """Modems first (a probe exists for them), then the wired and wireless interfaces not already a modem's."""
    cellular = modems()
    taken = {link.interface for link in cellular}
    return cellular + [link for link in interfaces(sys_net) if link.interface not in taken]
