"""Vietnam's network operators: one canonical name each, the names people type for them, and which one a
SIM's MCC-MNC belongs to (ModemManager's `operator-code`).

Mobile network codes under MCC 452 are those of the ITU-T E.212 list (ITU Operational Bulletin annex,
as compiled in Wikipedia's "Mobile Network Codes in ITU region 4xx"); fixed-line providers have none.
An operator not listed is written `other:<name>`, so reports still group it by one name.
"""

from __future__ import annotations

import unicodedata

# canonical name -> what people may type for it (compared without case, spaces or diacritics)
OPERATORS: dict[str, tuple[str, ...]] = {
    "Viettel": ("viettel", "viettel telecom"),
    "VNPT": ("vnpt", "vinaphone", "vina", "vnpt vinaphone", "vnpt/vinaphone"),
    "MobiFone": ("mobifone", "mobi", "mobiphone"),
    "Vietnamobile": ("vietnamobile", "vnmobile", "ht mobile"),
    "Gmobile": ("gmobile", "gtel", "beeline", "wintel"),
    "I-Telecom": ("itelecom", "i-telecom", "itel", "indochina telecom"),
    "Reddi": ("reddi", "mobicast"),
    "FPT": ("fpt", "fpt telecom"),
    "CMC": ("cmc", "cmc telecom"),
    "SCTV": ("sctv",),
}
# MCC-MNC (as ModemManager prints operator-code) -> canonical name
MCC_MNC = {"45201": "MobiFone", "45202": "VNPT", "45204": "Viettel", "45205": "Vietnamobile", "45206": "Viettel",
           "45207": "Gmobile", "45208": "I-Telecom", "45209": "Reddi"}  # 452-06 (EVN Telecom) merged into Viettel
OTHER = "other:"


def _key(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(ch for ch in folded.lower() if ch.isalnum() or ch in "-/")


_BY_ALIAS = {_key(alias): name for name, aliases in OPERATORS.items() for alias in (name, *aliases)}


def canonical(text: str) -> str | None:
    """The canonical name of an operator as typed ('viettel', 'VinaPhone', 'other:Saigon Net'), else None."""
    text = text.strip()
    if text.lower().startswith(OTHER):
        rest = text[len(OTHER):].strip()
        return f"{OTHER}{rest}" if rest else None
    return _BY_ALIAS.get(_key(text))


def from_mcc_mnc(code: str) -> str | None:
    """The operator whose SIM reports this MCC-MNC ('45204' -> 'Viettel'), None when not a Vietnamese one."""
    return MCC_MNC.get(code.replace("-", "").replace(" ", ""))


def known_names() -> str:
    """The canonical names, for messages."""
    return ", ".join(OPERATORS)
