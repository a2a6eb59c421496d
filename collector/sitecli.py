"""`xaprobe-collector site add|list|set`: the places in a commune where probes and field sessions measure
(`device add|set --site` puts a probe at one; `target --min-residential` asks for a residential share)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from xaprobe import communes
from xaprobe import sites as kinds
from xaprobe.errors import UserError
from xaprobe.fields import WireError, check_text
from xaprobe.months import utc_now

if TYPE_CHECKING:
    from xaprobe.collector.settings import CollectorSettings
    from xaprobe.collector.store import CollectorStore

Opener = Callable[[argparse.Namespace], "tuple[CollectorSettings, CollectorStore]"]
KIND_HELP = ", ".join(f"{k} ({vi} / {en})" for k, (vi, en, _) in kinds.KINDS.items())


def _text(value: str | None, option: str, limit: int) -> str | None:
    if value is None:
        return None
    try:
        return check_text(value, option, limit).strip()
    except WireError as e:
        raise UserError(f"{option}: {e.problem}") from None


def site_id_argument(value: str) -> str:
    try:
        return kinds.check_site_id(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _residential(args: argparse.Namespace) -> bool | None:
    return True if args.residential else False if args.not_residential else None


def _shown(site: Any, lang: str = "vi") -> str:
    where = f"{site.lat:.5f}, {site.lon:.5f}" if site.lat is not None else "—"
    home = "khu dân cư / residential" if site.residential else "không phải khu dân cư / not residential"
    hamlet = f" · {site.hamlet}" if site.hamlet else ""
    return f"{site.id:<32} {site.name} ({kinds.kind_label(site.kind, lang)}{hamlet}) · {home} · {where}"


def cmd_site_add(args: argparse.Namespace, open_store: Opener) -> int:
    from xaprobe.collector.sites import Site

    unit = communes.commune(args.commune)
    if unit is None:
        raise UserError(f"--commune: {args.commune} is not the code of a commune (xã/phường) since the 2025 reform; "
                        "find it with: xaprobe-collector communes --search NAME")
    name = _text(args.name, "--name", 200) or ""
    if not name:
        raise UserError("--name: give the site's name, e.g. \"Trường THCS Cẩm Xuyên\"")
    residential = _residential(args)
    site = Site(id=args.id or kinds.suggested_id(unit.code, name), commune_code=unit.code, name=name,
                kind=args.kind, hamlet=_text(args.hamlet, "--hamlet", 200) or "", lat=args.lat, lon=args.lon,
                residential=kinds.residential_by_default(args.kind) if residential is None else residential,
                created_at=utc_now(), created_by="staff")
    _, store = open_store(args)
    store.sites.add(site)
    if args.json:
        print(json.dumps(site.to_json(), ensure_ascii=False))
    else:
        print(f"Đã thêm điểm đo / site added in {unit.name}, {unit.province_name}:")
        print("  " + _shown(site))
        print(f"Đặt một thiết bị tại đây / put a probe here: xaprobe-collector device set ID --site {site.id}")
    return 0


def cmd_site_list(args: argparse.Namespace, open_store: Opener) -> int:
    codes = None
    if args.commune:
        unit = communes.commune(args.commune)
        if unit is None:
            raise UserError(f"--commune: {args.commune} is not the code of a commune (xã/phường)")
        codes = [unit.code]
    elif args.province:
        if communes.province_name(args.province) is None:
            raise UserError(f"--province: {args.province} is not a province code in vietnam-provinces")
        codes = [c.code for c in communes.communes_of(communes.normalise_code(args.province))]
    _, store = open_store(args)
    found = store.sites.of_communes(codes)
    if args.json:
        print(json.dumps([s.to_json() for s in found], ensure_ascii=False))
        return 0
    if not found:
        print("Chưa có điểm đo nào / no sites yet: xaprobe-collector site add --commune CODE --name NAME --kind KIND")
    for site in found:
        print(_shown(site))
    return 0


def cmd_site_set(args: argparse.Namespace, open_store: Opener) -> int:
    if (args.lat is None) != (args.lon is None):
        raise UserError("give both --lat and --lon, or neither")
    _, store = open_store(args)
    site = store.sites.update(args.site_id, name=_text(args.name, "--name", 200) or None, kind=args.kind,
                              hamlet=_text(args.hamlet, "--hamlet", 200), lat=args.lat, lon=args.lon,
                              residential=_residential(args))
    print("Đã sửa / updated: " + _shown(site))
    return 0


def cmd_min_residential(args: argparse.Namespace, open_store: Opener, commune_code: str) -> str:
    """Apply `target --min-residential P` (0 clears it); return what to print."""
    _, store = open_store(args)
    percent = args.min_residential or None
    store.sites.set_min_residential(commune_code, percent)
    return (f"tối thiểu {percent}% mẫu đo từ khu dân cư / at least {percent}% of samples from residential sites"
            if percent else "không đặt tỷ lệ khu dân cư tối thiểu / no residential minimum")


def _coordinates(s: argparse.ArgumentParser) -> None:
    s.add_argument("--lat", type=float, help="latitude (with --lon), e.g. 18.2577")
    s.add_argument("--lon", type=float, help="longitude (with --lat), e.g. 106.0025")
    group = s.add_mutually_exclusive_group()
    group.add_argument("--residential", action="store_true", help="samples here count as from a residential area")
    group.add_argument("--not-residential", action="store_true", help="they do not")


def register(sub: Any, open_store: Opener) -> None:
    """Add the `site` command and its subcommands to the collector's parser."""
    site = sub.add_parser("site", help="where in a commune probes measure: add, list, set").add_subparsers(
        dest="site_command", required=True, metavar="COMMAND")
    s = site.add_parser("add", help="a new site in a commune (an office, a school, a hamlet's cultural house, ...)")
    s.add_argument("--commune", required=True, metavar="CODE")
    s.add_argument("--name", required=True, help='e.g. "Trường THCS Cẩm Xuyên"')
    s.add_argument("--kind", required=True, choices=tuple(kinds.KINDS), metavar="KIND", help=KIND_HELP)
    s.add_argument("--hamlet", metavar="TEXT", help="thôn/xóm/tổ dân phố, e.g. \"Thôn 3\"")
    s.add_argument("--id", type=site_id_argument, help="the site's id (default: commune code and name)")
    _coordinates(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=lambda args: cmd_site_add(args, open_store))

    s = site.add_parser("list", help="the sites of a commune, a province, or all")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--commune", metavar="CODE")
    where.add_argument("--province", metavar="CODE")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=lambda args: cmd_site_list(args, open_store))

    s = site.add_parser("set", help="change a site's name, kind, hamlet, coordinates or residential flag")
    s.add_argument("site_id")
    s.add_argument("--name")
    s.add_argument("--kind", choices=tuple(kinds.KINDS), metavar="KIND", help=KIND_HELP)
    s.add_argument("--hamlet", metavar="TEXT")
    _coordinates(s)
    s.set_defaults(func=lambda args: cmd_site_set(args, open_store))
