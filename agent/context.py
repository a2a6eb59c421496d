"""What describes a test's conditions: the interface's access type, the modem's radio, the clock."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import shutil
import subprocess
from pathlib import Path

from xaprobe import operators
from xaprobe.wire import Radio

SYS_NET = Path("/sys/class/net")
TIME_ERROR = 5  # adjtimex(2): the kernel clock is not synchronised


def access_type(interface: str, sys_net: Path = SYS_NET) -> str:
    """Classify an interface from sysfs as ethernet, wifi, cellular or other ('' when unknown)."""
    if not interface:
        return ""
    base = sys_net / interface
    if not base.exists():
        return ""
    if (base / "wireless").exists() or (base / "phy80211").exists():
        return "wifi"
    try:
        kind = int((base / "type").read_text().strip())
    except (OSError, ValueError):
        return "other"
    uevent = ""
    try:
        uevent = (base / "uevent").read_text()
    except OSError:
        pass
    if kind == 519 or "DEVTYPE=wwan" in uevent or interface.startswith(("wwan", "rmnet", "usb")):
        return "cellular"  # 519 is ARPHRD_RAWIP, what qmi_wwan/mhi modems present
    if kind == 1 and not (base / "device").exists():
        return "other"  # virtual: veth, bridge, loopback-like
    return "ethernet" if kind == 1 else "other"


def systemd_running() -> bool:
    """True when this machine was booted with systemd and systemctl can be asked (not in a container or a chroot
    without it)."""
    return bool(shutil.which("systemctl")) and Path("/run/systemd/system").exists()


def clock_synced() -> bool | None:
    """True when the kernel says its clock is NTP-synchronised, False when not, None if unknown."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        buffer = ctypes.create_string_buffer(512)  # struct timex with modes = 0: a read-only query
        state = libc.adjtimex(buffer)
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != TIME_ERROR


def _number(value: object) -> float | None:
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number


def parse_mmcli_modem(modem: dict, signal: dict | None, location: dict | None = None) -> Radio:
    """Read operator, technology, signal and cell from `mmcli -J -m N`, `--signal-get`, `--location-get`."""
    generic = modem.get("modem", {}).get("generic", {})
    gpp = modem.get("modem", {}).get("3gpp", {})
    techs = [t for t in generic.get("access-technologies", []) if t and t != "--"]
    tech = techs[-1] if techs else None
    sig = (signal or {}).get("modem", {}).get("signal", {})
    rsrp = rsrq = sinr = rssi = None
    for key in ("5g", "lte", "umts", "gsm"):  # the newest radio that reports a level
        block = sig.get(key) or {}
        if any(_number(block.get(k)) is not None for k in ("rsrp", "rssi")):
            rsrp, rsrq, sinr, rssi = (_number(block.get(k)) for k in ("rsrp", "rsrq", "snr", "rssi"))
            break
    cell = ((location or {}).get("modem", {}).get("location", {}).get("3gpp") or {}).get("cid")
    quality = generic.get("signal-quality", {}).get("value")
    return Radio(technology=tech, operator=sim_operator(gpp), rsrp_dbm=rsrp, rsrq_db=rsrq,
                 sinr_db=sinr, rssi_dbm=rssi, cell_id=None if cell in (None, "--") else str(cell),
                 signal_percent=_number(quality))


def sim_operator(gpp: dict) -> str | None:
    """The operator of the network the modem is on: by MCC-MNC, else by the name the network gives."""
    name = str(gpp.get("operator-name") or "").strip()
    by_code = operators.from_mcc_mnc(str(gpp.get("operator-code") or ""))
    return by_code or operators.canonical(name) or (name if name and name != "--" else None)


def parse_wifi(iw_link: str, proc_wireless: str, interface: str) -> Radio | None:
    """Read the SSID from `iw dev IF link` and the signal from /proc/net/wireless; None when not associated."""
    ssid = signal = None
    for line in iw_link.splitlines():
        line = line.strip()
        if line.startswith("SSID:"):
            ssid = line[5:].strip() or None
        elif line.startswith("signal:"):
            signal = _number(line.split()[1])
    for line in proc_wireless.splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == interface and signal is None:
            fields = rest.split()
            signal = _number(fields[2].rstrip(".")) if len(fields) > 2 else None
    if ssid is None and signal is None:
        return None
    return Radio(technology="wifi", ssid=ssid, rssi_dbm=signal)


def wifi_radio(interface: str) -> Radio | None:
    """The Wi-Fi network and signal of an interface (iw and /proc/net/wireless), None if unknown."""
    try:
        proc = Path("/proc/net/wireless").read_text()
    except OSError:
        proc = ""
    iw = ""
    if shutil.which("iw"):
        try:
            iw = subprocess.run(["iw", "dev", interface, "link"], capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.TimeoutExpired):
            pass
    return parse_wifi(iw, proc, interface)


def mmcli(*args: str) -> dict | None:
    """`mmcli -J ARGS` as JSON; None without mmcli, on an error, or after 10 s."""
    if not shutil.which("mmcli"):
        return None
    try:
        done = subprocess.run(["mmcli", "-J", *args], capture_output=True, text=True, timeout=10, check=False)
        return json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None


def modem_indexes() -> list[str]:
    """The indexes of the modems ModemManager knows (empty without mmcli)."""
    listing = mmcli("-L") or {}
    return [str(path).rsplit("/", 1)[-1] for path in listing.get("modem-list", [])]


def cellular_radio(interface: str) -> Radio | None:
    """Ask ModemManager for the modem whose data port is this interface; None without mmcli or modem."""
    for index in modem_indexes():
        modem = mmcli("-m", index)
        if not modem:
            continue
        ports = modem.get("modem", {}).get("generic", {}).get("ports", [])
        if any(str(p).split(" ")[0] == interface for p in ports):
            return parse_mmcli_modem(modem, mmcli("-m", index, "--signal-get"),
                                     mmcli("-m", index, "--location-get"))
    return None
