"""ASCII identifiers from Vietnamese names: 'Xã Cẩm Xuyên 1' -> 'xa-cam-xuyen-1'."""

from __future__ import annotations

import re
import unicodedata


def slugify(text: str, limit: int = 48) -> str:
    folded = text.replace("đ", "d").replace("Đ", "D")
    ascii_text = unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:limit]
