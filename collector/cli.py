"""`xaprobe-collector`: init, serve, speedtest-server, device add|list|revoke|rotate|set, admin add|list|revoke,
fleet, target, report, alerts. Every number it takes has a range, checked by argparse before anything runs."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from xaprobe import __version__, communes
from xaprobe.argtypes import OneLineParser, int_range
from xaprobe.collector.sitecli import cmd_min_residential, site_id_argument
from xaprobe.collector.sitecli import register as register_sites
from xaprobe.commands import run_command
from xaprobe.errors import UserError
from xaprobe.health import MAX_TARGET
from xaprobe.months import month_of, parse_month, utc_now
from xaprobe.slug import slugify

if TYPE_CHECKING:
    from xaprobe.collector.settings import CollectorSettings
    from xaprobe.collector.store import CollectorStore


def _open(args: argparse.Namespace) -> tuple[CollectorSettings, CollectorStore]:
    import sqlalchemy as sa

    from xaprobe.collector.db import open_engine, shown_url
    from xaprobe.collector.settings import load_settings
    from xaprobe.collector.store import CollectorStore

    settings = load_settings(Path(args.config) if args.config else None, args.db)
    _say_which_database(args, settings)
    try:
        engine = open_engine(settings.db_url)
    # a database that cannot be reached, a URL that does not parse, a folder that cannot be made: all settings
    except (sa.exc.OperationalError, sa.exc.ArgumentError, OSError, ValueError) as e:
        first_line = (str(e).strip() or type(e).__name__).splitlines()[0]  # not SQLAlchemy's "Background" line
        raise UserError(f"cannot open the database {shown_url(settings.db_url)}: {first_line}") from None
    return settings, CollectorStore(engine)


def _say_which_database(args: argparse.Namespace, settings: CollectorSettings) -> None:
    """On stderr, name the database when it is not the configured one (--db differs from collector.toml), or
    when nothing is configured and the default SQLite file is used: a second database is never silent."""
    from xaprobe.collector.db import shown_url
    from xaprobe.collector.settings import DEFAULT_CONFIG, config_path, load_settings

    path = config_path(Path(args.config) if args.config else None)
    if path is None:
        if not args.db:
            print(f"xaprobe-collector: using database {shown_url(settings.db_url)} (nothing configured: "
                  f"{DEFAULT_CONFIG} does not exist; `xaprobe-collector init` writes it)", file=sys.stderr)
        return
    configured = load_settings(path).db_url
    if settings.db_url != configured:
        print(f"xaprobe-collector: using database {shown_url(settings.db_url)} (not the configured "
              f"{shown_url(configured)} of {path})", file=sys.stderr)


def _commune(code: str) -> communes.Commune:
    unit = communes.commune(code)
    if unit is None:
        raise UserError(f"--commune: {code} is not the code of a commune (xã/phường) since the 2025 reform; "
                        "find it with: xaprobe-collector communes --search NAME")
    return unit


def cmd_init(args) -> int:
    from xaprobe.collector.db import shown_url
    from xaprobe.collector.install import init_collector
    from xaprobe.collector.settings import DEFAULT_CONFIG

    result = init_collector(Path(args.config) if args.config else DEFAULT_CONFIG, args.db, args.admin)
    print(f"Database {shown_url(result.db_url)}: schema created or brought up to date.")
    if result.config_written:
        print(f"Wrote {result.config} (mode 0600): every command and the service now use this database.")
    else:
        print(f"{result.config} names this database already; left as it was.")
    if result.admin_token:
        print(f"Admin token for {args.admin} (shown once): {result.admin_token}")
        print("Use it to sign in to the dashboard, or as Authorization: Bearer <token> for the API.")
    else:
        print(f"{result.admins} admin(s) exist already; `xaprobe-collector admin add --name NAME` adds another.")
    return 0


def cmd_device_add(args) -> int:
    from xaprobe.collector.agent_config import agent_toml, check_collector_url, check_device_id

    device_id = check_device_id(args.id) if args.id is not None else slugify(args.name)
    if not device_id:
        raise UserError("--name must contain letters or digits (or give --id)")
    if args.write_config and not args.collector_url:
        raise UserError("--write-config needs --collector-url (the address probes reach this collector at)")
    if args.collector_url:
        check_collector_url(args.collector_url)
    settings, store = _open(args)
    unit = _commune(args.commune)
    now = utc_now()
    site = _site_in(store, args.site, unit) if args.site else None
    token = store.devices.add(device_id, args.name, unit.code, args.target, now)
    if site is not None:
        store.sites.assign(device_id, site.id)
    code, expires = store.enrolment.issue(device_id, now)
    if args.write_config:
        path = Path(args.write_config)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(agent_toml(device_id, token, unit.code, args.collector_url, args.target or settings.target,
                               site.id if site else ""))
        os.chmod(path, 0o600)
    if args.json:
        print(json.dumps({"id": device_id, "name": args.name, "commune_code": unit.code, "commune_name": unit.name,
                          "token": token, "enrolment_code": code, "code_expires_at": expires.isoformat()},
                         ensure_ascii=False))
    else:
        print(f"Enrolled {device_id} for {unit.name}, {unit.province_name} ({unit.code})"
              + (f", site {site.name} ({site.id})." if site else "."))
        print(_code_lines(code, expires, settings.timezone))
        print(f"Token (shown once, keep it secret; for a probe set up from a file): {token}")
        if args.write_config:
            print(f"Probe configuration written to {args.write_config} (mode 0600).")
    return 0


def _site_in(store: CollectorStore, site_id: str, unit: communes.Commune):  # noqa: ANN202
    site = store.sites.get(site_id)
    if site is None:
        raise UserError(f"--site: no site {site_id!r} (see `xaprobe-collector site list --commune {unit.code}`)")
    if site.commune_code != unit.code:
        raise UserError(f"--site: {site_id} is a site of commune {site.commune_code}, not of {unit.code}")
    return site


def _code_lines(code: str, expires: dt.datetime, timezone: str) -> str:
    from zoneinfo import ZoneInfo

    until = expires.astimezone(ZoneInfo(timezone)).strftime("%d/%m/%Y %H:%M")
    return (f"Mã đăng ký / enrolment code: {code} (dùng một lần, đến / single use, until {until})\n"
            f"On the probe: sudo xaprobe enroll <this collector's https:// address> {code}")


def cmd_communes(args) -> int:
    found = communes.search(args.search, limit=args.limit)
    if args.json:
        print(json.dumps([dataclasses.asdict(c) for c in found], ensure_ascii=False))
    elif not found:
        print(f"no commune matches {args.search!r} (try fewer words, e.g. only the commune's name)",
              file=sys.stderr)
        return 1
    for c in found:
        print(f"{c.code:>6}  {c.name:<30} {c.province_name}")
    return 0


def cmd_device_code(args) -> int:
    settings, store = _open(args)
    if store.devices.get(args.device_id) is None:
        raise UserError(f"no device {args.device_id!r} (see `xaprobe-collector device list`)")
    if args.revoke:
        ended = store.enrolment.revoke(args.device_id, utc_now())
        print(f"{args.device_id}: {ended} open enrolment code(s) revoked")
        return 0
    code, expires = store.enrolment.issue(args.device_id, utc_now())
    print(_code_lines(code, expires, settings.timezone))
    return 0


def cmd_device_list(args) -> int:
    _, store = _open(args)
    rows = [{"id": d.id, "name": d.name, "commune_code": d.commune_code,
             "commune_name": (communes.commune(d.commune_code) or communes.Commune("", "?", "", "")).name,
             "target": d.target, "site_id": d.site_id, "revoked": d.revoked_at is not None,
             "last_seen_at": d.last_seen_at.isoformat() if d.last_seen_at else None}
            for d in store.devices.all()]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
    else:
        for r in rows:
            state = "revoked" if r["revoked"] else (r["last_seen_at"] or "never seen")
            site = f' site {r["site_id"]}' if r["site_id"] else ""
            print(f'{r["id"]:<24} {r["commune_code"]:>6} {r["commune_name"]:<28} {state}{site}')
    return 0


def cmd_device_revoke(args) -> int:
    _, store = _open(args)
    store.devices.revoke(args.device_id, utc_now())
    print(f"Revoked {args.device_id}: its token is refused from the next request on.")
    return 0


def cmd_device_rotate(args) -> int:
    _, store = _open(args)
    token = store.devices.rotate(args.device_id, utc_now(), dt.timedelta(days=args.grace_days))
    if args.json:
        print(json.dumps({"id": args.device_id, "token": token, "old_token_valid_days": args.grace_days}))
    else:
        print(f"New token for {args.device_id} (shown once): {token}")
        print(f"The old token stays valid for {args.grace_days} days.")
    return 0


def cmd_device_set(args) -> int:
    _, store = _open(args)
    now = utc_now()
    if args.commune is not None:
        unit = _commune(args.commune)
        store.devices.move(args.device_id, unit.code, now)
        print(f"{args.device_id}: measures for {unit.name}, {unit.province_name} ({unit.code}) from "
              f"{now:%Y-%m-%d %H:%M} UTC; samples it started before count for the commune it stood in then. "
              f"Set commune_code = \"{unit.code}\" in its agent.toml too.")
    if args.site or args.no_site:
        store.sites.assign(args.device_id, None if args.no_site else args.site)
        print(f"{args.device_id}: " + (f"site {args.site}" if args.site else "no site (its samples: site unknown)")
              + " (the probe takes it at its next heartbeat)")
    pause = True if args.pause else False if args.resume else None
    changed = args.commune is not None or args.site or args.no_site
    if not changed or pause is not None or args.target is not None:
        settings = store.devices.steer(args.device_id, pause, args.target, now)
        target = f"target {settings.target}" if settings.target else "target from its agent.toml"
        print(f"{args.device_id}: pause {settings.pause}, {target} (the probe takes it at its next heartbeat)")
    return 0


def cmd_admin_add(args) -> int:
    _, store = _open(args)
    token = store.admins.add(args.name, utc_now())
    if args.json:
        print(json.dumps({"name": args.name, "token": token}, ensure_ascii=False))
    else:
        print(f"Admin token for {args.name} (shown once): {token}")
        print("Paste it into the dashboard's sign-in form, or send it as Authorization: Bearer <token> to the API.")
    return 0


def cmd_admin_list(args) -> int:
    _, store = _open(args)
    admins = store.admins.all(utc_now())
    if args.json:
        print(json.dumps([{"name": a.name, "created_at": a.created_at.isoformat(), "sessions": a.sessions,
                           "revoked_at": a.revoked_at.isoformat() if a.revoked_at else None} for a in admins],
                         ensure_ascii=False))
        return 0
    for a in admins:
        state = f"revoked {a.revoked_at:%Y-%m-%d %H:%M}" if a.revoked_at else f"{a.sessions} session(s) open"
        print(f"{a.name:<24} created {a.created_at:%Y-%m-%d %H:%M}  {state}")
    return 0


def cmd_admin_revoke(args) -> int:
    _, store = _open(args)
    ended = store.admins.revoke(args.name, utc_now())
    print(f"Revoked admin {args.name}: their token is refused and {ended} dashboard session(s) ended.")
    return 0


def cmd_report(args) -> int:
    from xaprobe.collector.exports import render_report
    from xaprobe.collector.reports import monthly_report

    settings, store = _open(args)
    now = utc_now()
    month = args.month or month_of(now, settings.timezone)
    try:
        parse_month(month)
        report = monthly_report(store, settings, month, args.province or settings.province, now)
    except ValueError as e:
        raise UserError(str(e)) from None
    fmt = "json" if args.json else args.format
    if fmt == "xlsx" and not args.output:
        raise UserError("--format xlsx needs --output FILE.xlsx")
    data = render_report(report, fmt, args.lang, now, settings.timezone)
    if args.output:
        Path(args.output).write_bytes(data)
        print(f"Wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
    return 0


def cmd_fleet(args) -> int:
    from xaprobe.collector.fleet import fleet

    settings, store = _open(args)
    health = fleet(store, utc_now(), communes.normalise_code(args.province) if args.province else None,
                   settings.timezone)
    if args.json:
        print(json.dumps([h.to_json() for h in health], ensure_ascii=False))
        return 0
    for h in health:
        seen = h.last_seen_at.strftime("%Y-%m-%d %H:%M") if h.last_seen_at else "never"
        print(f"{h.status:<8} {h.id:<24} {h.commune_name:<26} last seen {seen:<16} backlog {h.backlog or 0}"
              + (" DISK FULL" if h.disk_full else "") + (" clock NOT synced" if h.clock_synced is False else "")
              + (f" id conflicts {h.id_conflicts}" if h.id_conflicts else "")
              + (f" rejected {h.rejected_this_month} ({h.rejected_why[0]})" if h.rejected_this_month else "")
              + (f" suspect {h.suspect_this_month}" if h.suspect_this_month else ""))
    return 0


def cmd_target(args) -> int:
    unit = _commune(args.commune)
    if args.min_residential is not None:
        print(f"{unit.name}: {cmd_min_residential(args, _open, unit.code)}")
        if args.target is None:
            return 0
    _, store = _open(args)
    store.devices.set_commune_target(unit.code, args.target)
    print(f"{unit.name}: target {args.target if args.target else 'back to the default'}")
    return 0


def cmd_serve(args) -> int:
    import uvicorn

    from xaprobe.collector import asgi

    settings, store = _open(args)  # checks the settings and migrates the database once, up front
    store.engine.dispose()
    if args.province:
        if communes.province_name(args.province) is None:
            raise UserError(f"--province: {args.province} is not a province code in vietnam-provinces")
        os.environ[asgi.PROVINCE_ENV] = communes.normalise_code(args.province)
    os.environ[asgi.CONFIG_ENV] = str(Path(args.config).resolve()) if args.config else ""
    os.environ[asgi.DB_ENV] = settings.db_url
    uvicorn.run("xaprobe.collector.asgi:app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level="info", proxy_headers=True)
    return 0


def cmd_speedtest_server(args) -> int:
    import uvicorn

    from xaprobe.collector.speedtest_app import speedtest_app

    logging.getLogger("asyncio").setLevel(logging.ERROR)  # clients end tests by hanging up mid-body
    uvicorn.run(speedtest_app, host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_alerts(args) -> int:
    """The daily "đôn đốc" check: send (or with --dry-run, print) what is due today."""
    from xaprobe.collector.alerts import run_alerts

    settings, store = _open(args)
    province = communes.normalise_code(args.province) if args.province else settings.province
    if communes.province_name(province) is None:
        raise UserError(f"--province: {args.province} is not a province code in vietnam-provinces")
    if not args.dry_run and not settings.alerts.configured():
        raise UserError("no [alerts.smtp] or [alerts.webhook] in collector.toml: nothing to send with "
                        "(--dry-run shows what would be sent)")
    alert, errors = run_alerts(store, settings, province, utc_now(), dry_run=args.dry_run)
    if alert is None:
        print("Nothing to send: no probe silent too long, no commune behind (or all told today already).")
        return 0
    if args.dry_run:
        channels = [c for c, on in (("e-mail", settings.alerts.smtp), ("webhook", settings.alerts.webhook)) if on]
        print(f"Would send by {' and '.join(channels) or 'no channel (none configured)'}:\n")
    sys.stdout.write(alert.text())
    for error in errors:
        print(f"xaprobe-collector: alert not delivered: {error}", file=sys.stderr)
    return 1 if errors else 0


PORT = int_range(1, 65535)
TARGET = int_range(1, MAX_TARGET)  # what the probe accepts from the collector
SPLIT_HELP = ("this probe's monthly target, on each of its links (the planner plans every probe on its own); a "
              "commune's target (xaprobe-collector target) is what all its probes' samples add up to, e.g. 300 "
              "from an office and two schools: --target 100 on each")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="xaprobe-collector", description="The xaprobe central collector.")
    p.add_argument("--version", action="version", version=f"xaprobe {__version__}")
    p.add_argument("--config", metavar="PATH", help="collector.toml (optional)")
    p.add_argument("--db", metavar="URL", help="SQLAlchemy URL: sqlite:///path.db or postgresql://...")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="run the collector (API, dashboard, /speedtest/)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=PORT, default=8080)
    s.add_argument("--province", help="the province the dashboard opens on (code)")
    s.add_argument("--workers", type=int_range(1, 64), default=1, help="worker processes (the collector keeps no state "
                   "of its own, so they share the database; about one per core)")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("init", help="create or migrate the database, write /etc/xaprobe/collector.toml naming it, "
                       "create the first admin")
    # SUPPRESS: `init --db URL` and `--db URL init` both set args.db, and leaving it out keeps the global one
    s.add_argument("--db", metavar="URL", default=argparse.SUPPRESS, help="the database (default: the configured "
                   "one, else a SQLite file in /var/lib/xaprobe-collector)")
    s.add_argument("--admin", default="admin", metavar="NAME", help="the first admin's name (default admin)")
    s.set_defaults(func=cmd_init)

    s = sub.add_parser("communes", help="find a commune's code by its name, diacritics optional")
    s.add_argument("--search", required=True, metavar="TEXT", help='e.g. "cam xuyen" or "Cẩm Xuyên Hà Tĩnh"')
    s.add_argument("--limit", type=int_range(1, 500), default=20, help="at most this many (default 20)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_communes)

    s = sub.add_parser("speedtest-server", help="serve only the speed-test endpoints, with no database")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=PORT, default=8081)
    s.set_defaults(func=cmd_speedtest_server)

    dev = sub.add_parser("device", help="enrol, list, revoke and rotate probes").add_subparsers(
        dest="device_command", required=True, metavar="ACTION")
    s = dev.add_parser("add", help="enrol a probe and print its token once")
    s.add_argument("--commune", required=True, metavar="CODE", help="commune code (vietnam-provinces)")
    s.add_argument("--name", required=True)
    s.add_argument("--id", help="device id: letters, digits, '-' and '_', at most 64 (default: from the name)")
    s.add_argument("--target", type=TARGET, help=SPLIT_HELP)
    s.add_argument("--site", type=site_id_argument, metavar="SITE",
                   help="the site it will measure from (xaprobe-collector site add/list); the probe receives it")
    s.add_argument("--write-config", metavar="PATH", help="write a complete agent.toml for the probe (0600)")
    s.add_argument("--collector-url", metavar="URL", help="how the probe reaches this collector")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_device_add)
    s = dev.add_parser("list", help="list enrolled probes")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_device_list)
    s = dev.add_parser("revoke", help="refuse a probe's token from its next request on")
    s.add_argument("device_id")
    s.set_defaults(func=cmd_device_revoke)
    s = dev.add_parser("set", help="steer a probe from the centre: pause it, resume it, change its target")
    s.add_argument("device_id")
    group = s.add_mutually_exclusive_group()
    group.add_argument("--pause", action="store_true")
    group.add_argument("--resume", action="store_true")
    s.add_argument("--target", type=TARGET, metavar="N", help=SPLIT_HELP)
    s.add_argument("--commune", metavar="CODE", help="the probe was moved: it measures for this commune from now on")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--site", type=site_id_argument, metavar="SITE",
                       help="the site it measures from (one of its commune's: xaprobe-collector site list)")
    where.add_argument("--no-site", action="store_true", help="forget its site (its samples become site unknown)")
    s.set_defaults(func=cmd_device_set)
    s = dev.add_parser("code", help="a new one-time enrolment code for a probe (valid 7 days; earlier codes end)")
    s.add_argument("device_id")
    s.add_argument("--revoke", action="store_true", help="end the probe's open codes instead")
    s.set_defaults(func=cmd_device_code)
    s = dev.add_parser("rotate", help="give a probe a new token; the old one stays valid for a while")
    s.add_argument("device_id")
    s.add_argument("--grace-days", type=int_range(0, 3650), default=90)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_device_rotate)

    adm = sub.add_parser("admin", help="admin tokens for the dashboard and reports").add_subparsers(
        dest="admin_command", required=True, metavar="ACTION")
    s = adm.add_parser("add", help="create an admin token and print it once")
    s.add_argument("--name", required=True)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_admin_add)
    s = adm.add_parser("list", help="list admins and their open dashboard sessions")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_admin_list)
    s = adm.add_parser("revoke", help="refuse an admin's token and end their dashboard sessions")
    s.add_argument("name")
    s.set_defaults(func=cmd_admin_revoke)

    s = sub.add_parser("fleet", help="every probe's health: last contact, backlog, clock, status")
    s.add_argument("--province", metavar="CODE")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_fleet)

    s = sub.add_parser("target", help="set a commune's monthly sample target (omit N for the default), or the "
                                      "least share of it from residential sites")
    s.add_argument("--commune", required=True, metavar="CODE")
    s.add_argument("target", type=TARGET, nargs="?", metavar="N")
    s.add_argument("--min-residential", type=int_range(0, 100), metavar="PERCENT",
                   help="at least this share (%%) of the month's samples from residential sites (0: none; given "
                        "alone, the target stays as it is)")
    s.set_defaults(func=cmd_target)

    register_sites(sub, _open)

    s = sub.add_parser("report", help="a province's communes for one month")
    s.add_argument("--month", metavar="YYYY-MM", help="default: this month")
    s.add_argument("--province", metavar="CODE", help="default: the configured province")
    s.add_argument("--format", choices=("table", "json", "csv", "xlsx"), default="table")
    s.add_argument("--output", metavar="PATH")
    s.add_argument("--lang", choices=("vi", "en"), default="vi")
    s.add_argument("--json", action="store_true", help="same as --format json")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("alerts", help="send today's alerts (probes silent, communes behind) by e-mail and/or webhook")
    s.add_argument("--province", metavar="CODE", help="default: the configured province")
    s.add_argument("--dry-run", action="store_true", help="print what would be sent; send and record nothing")
    s.set_defaults(func=cmd_alerts)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run_command("xaprobe-collector", args)
