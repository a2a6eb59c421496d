"""Vietnamese first: every message a person reads from `xaprobe` goes through `_()` (gettext).

The language is chosen once at start (`use`): `--lang`, else XAPROBE_LANG, LC_ALL, LC_MESSAGES or LANG;
English when that asks for English, Vietnamese otherwise (a service started by systemd has no LANG:
its journal lines are Vietnamese). Messages are written in English in the code (the msgids); the
Vietnamese catalog ships compiled in the package (core/locale/vi/LC_MESSAGES/xaprobe.mo). The catalog
is the one process-wide setting in xaprobe, as gettext intends: argparse's own words ("usage:",
"the following arguments are required") come from the same catalog.
"""

from __future__ import annotations

import gettext
import os
from collections.abc import Mapping
from pathlib import Path

DOMAIN = "xaprobe"
LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("vi", "en")


def choose(explicit: str | None = None, environ: Mapping[str, str] = os.environ) -> str:
    """The language to speak: explicit if given, else what the environment asks for (Vietnamese by default)."""
    if explicit:
        return explicit
    for name in ("XAPROBE_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "")
        if value and value not in ("C", "POSIX") and not value.startswith("C."):
            return "en" if value.lower().startswith("en") else "vi"
    return "vi"


_spoken = ["en"]  # what `use` chose; code that never called it (a library user, a test) speaks the msgids


def use(language: str) -> None:
    """Speak language from now on, in this process and the programs it starts."""
    _spoken[0] = language
    os.environ["LANGUAGE"] = language  # gettext's first choice, for our messages and argparse's alike
    gettext.bindtextdomain(DOMAIN, str(LOCALE_DIR))
    gettext.textdomain(DOMAIN)


def _(message: str) -> str:
    """The message in the chosen language (itself when the catalog has none)."""
    return gettext.dgettext(DOMAIN, message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return gettext.dngettext(DOMAIN, singular, plural, n)


def language() -> str:
    """The language messages are spoken in now."""
    return _spoken[0]


def number(value: float, digits: int = 1) -> str:
    """A number as people write it in the language: 1.234,5 in Vietnamese, 1,234.5 in English."""
    text = f"{value:,.{digits}f}"
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".") if language() == "vi" else text


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "mark for the catalog, translate later"
    """Mark a message for the catalog without translating it here (it is translated where it is shown)."""
    return message


# argparse's own words, which it asks gettext for in the same catalog (see `use`)
ARGPARSE = (
    N_("usage: "), N_("positional arguments"), N_("options"), N_("show this help message and exit"),
    N_("show program's version number and exit"), N_("the following arguments are required: %s"),
    N_("%(prog)s: error: %(message)s\n"), N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("unrecognized arguments: %s"), N_("expected one argument"), N_("argument %(argument_name)s: %(message)s"),
    N_("invalid %(type)s value: %(value)r"), N_("not allowed with argument %s"),
    N_("one of the arguments %s is required"), N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("expected at most one argument"), N_("expected at least one argument"), N_("ignored explicit argument %r"),
)
