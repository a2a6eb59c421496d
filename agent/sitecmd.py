"""`xaprobe site list|add`: a field session names the site it measures at (`xaprobe measure --site ID`) from
the commune's sites the collector keeps, or adds the place it stands at."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from xaprobe import i18n
from xaprobe.agent.config import AgentConfig
from xaprobe.errors import UserError
from xaprobe.fields import WireError, check_text
from xaprobe.i18n import _
from xaprobe.sites import KINDS, kind_label

Resolve = Callable[[argparse.Namespace], AgentConfig]


def _line(site: Any, own: str | None, lang: str) -> str:
    parts = [kind_label(site.kind, lang)] + ([site.hamlet] if site.hamlet else []) + \
        [_("residential") if site.residential else _("not residential")]
    mark = "  <- " + _("this probe's site") if site.id == own else ""
    return f"{site.id:<32} {site.name} ({', '.join(parts)}){mark}"


def cmd_site_list(args: argparse.Namespace, resolve: Resolve) -> int:
    import requests

    from xaprobe.agent.fieldsites import list_sites

    config = resolve(args)
    with requests.Session() as session:
        found, own, bad = list_sites(config, session)
    lang = i18n.language()
    if not found:
        print(_("the collector lists no site in this commune yet; add the place you are at: xaprobe site add "
                "--name NAME --kind KIND"))
    for site in found:
        print(_line(site, own, lang))
    if bad:
        print(_("{n} entries of the collector's answer were not sites and were left out").format(n=bad))
    return 0


def cmd_site_add(args: argparse.Namespace, resolve: Resolve) -> int:
    import requests

    from xaprobe.agent.fieldsites import add_site

    if (args.lat is None) != (args.lon is None):
        raise UserError(_("--lat and --lon go together"))
    try:
        name = check_text(args.name, "--name", 200).strip()
        hamlet = check_text(args.hamlet or "", "--hamlet", 200).strip()
    except WireError as e:
        raise UserError(f"{e.field}: " + _("contains bytes that are not UTF-8 text, or is too long")) from None
    if not name:
        raise UserError(_("--name: give the place's name, e.g. \"Nhà văn hóa thôn 3\""))
    config = resolve(args)
    with requests.Session() as session:
        site = add_site(config, session, name, args.kind, hamlet, args.lat, args.lon)
    print(_("site {id}: {name}; measure here with: xaprobe measure --site {id}").format(id=site.id, name=site.name))
    return 0


def register(sub: Any, resolve: Resolve) -> None:
    """Add `site list` and `site add` to the probe's parser."""
    kinds = ", ".join(f"{k} ({kind_label(k, i18n.language())})" for k in KINDS)
    site = sub.add_parser("site", help=_("the sites of this probe's commune, for field sessions (measure --site)")
                          ).add_subparsers(dest="site_command", required=True, metavar="ACTION")
    s = site.add_parser("list", help=_("the sites the collector keeps for this probe's commune"))
    s.set_defaults(func=lambda args: cmd_site_list(args, resolve))
    s = site.add_parser("add", help=_("add the place you measure at as a site of this commune"))
    s.add_argument("--name", required=True, help=_('e.g. "Nhà văn hóa thôn 3"'))
    s.add_argument("--kind", required=True, choices=tuple(KINDS), metavar="KIND", help=kinds)
    s.add_argument("--hamlet", metavar="TEXT", help=_("the hamlet (thôn/xóm/tổ dân phố)"))
    s.add_argument("--lat", type=float, help=_("latitude of the place (with --lon)"))
    s.add_argument("--lon", type=float, help=_("longitude of the place (with --lat)"))
    s.set_defaults(func=lambda args: cmd_site_add(args, resolve))
