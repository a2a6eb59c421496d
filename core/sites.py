"""Where in a commune a probe measures: the kinds of site, whether each counts as residential by default, their
names in Vietnamese and English, and the one written form of a site id (shared by the probe and the collector)."""

from __future__ import annotations

import re

from xaprobe.i18n import _
from xaprobe.slug import slugify

# kind -> (Vietnamese, English, residential unless staff say otherwise)
KINDS: dict[str, tuple[str, str, bool]] = {
    "office": ("Trụ sở UBND", "commune office", False),
    "school": ("Trường học", "school", False),
    "health": ("Trạm y tế", "health station", False),
    "hamlet_house": ("Nhà văn hóa thôn/tổ dân phố", "hamlet cultural house", True),
    "household": ("Hộ gia đình", "household", True),
    "other": ("Khác", "other", False),
}
_SITE_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MAX_SITES_PER_COMMUNE = 200  # made by staff
FIELD_SITES_PER_DEVICE = 20  # made by field sessions: per device, and per commune (all its devices together)
FIELD_SITES_PER_COMMUNE = 30


def kind_label(kind: str, lang: str) -> str:
    """The kind's name in the language (vi or en); an unknown kind as it is."""
    names = KINDS.get(kind)
    return kind if names is None else names[0] if lang == "vi" else names[1]


def residential_by_default(kind: str) -> bool:
    return KINDS.get(kind, ("", "", False))[2]


def is_site_id(value: object) -> bool:
    """Whether value is a site id as written: the whole text (a trailing newline is not one)."""
    return isinstance(value, str) and _SITE_ID.fullmatch(value) is not None


def not_a_site_id(value: str) -> str:
    """The one message for a site id that is not one (probe CLI, agent.toml, the collector's staff commands)."""
    return _('"{value}" is not a site id (1 to 64 lower-case letters, digits, "-" and "_", the first a letter or '
             'digit, like 18673-thcs-cam-xuyen)').format(value=value[:80])


def check_site_id(value: str) -> str:
    """The id as written; ValueError saying the rule otherwise."""
    if not is_site_id(value):
        raise ValueError(not_a_site_id(value))
    return value


def suggested_id(commune_code: str, name: str) -> str:
    """A readable id for a new site: the commune code and the name's ASCII form ('18673-thcs-cam-xuyen')."""
    return f"{commune_code}-{slugify(name, 40) or 'site'}"
