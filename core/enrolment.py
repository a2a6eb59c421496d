"""One-time enrolment codes, as staff read them out and officers type them: 8 characters of Crockford's base 32
(no I, L, O or U to misread), shown as two groups of four (XQ7K-M2PD); 40 random bits, single use, 7 days."""

from __future__ import annotations

import re
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CODE = re.compile(rf"^[{ALPHABET}]{{8}}$")
_MISREAD = str.maketrans({"O": "0", "I": "1", "L": "1", "-": None, " ": None})


def new_code() -> str:
    """A fresh random code, XXXX-XXXX."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def normalise(code: str) -> str:
    """The code in its one written form (upper case, one dash, O read as 0, I and L as 1); ValueError if none."""
    raw = code.strip().upper().translate(_MISREAD)
    if not _CODE.match(raw):
        raise ValueError(f"{code!r} is not an enrolment code (8 letters and digits, like XQ7K-M2PD)")
    return f"{raw[:4]}-{raw[4:]}"
