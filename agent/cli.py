"""`xaprobe`: demo, measure, run, upload, status, config check, config sample, export.

Commands import what only they use inside their own function (lazy on purpose, not to dodge a
circle): `xaprobe status` or `config check` on a Pi loads no engine run code, no requests and no scheduler.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xaprobe import __version__, i18n
from xaprobe.agent.config import SERVICE_CONFIG, AgentConfig, LinkConfig, load_config, service_problems, token_warnings
from xaprobe.agent.engines import engine_names
from xaprobe.agent.paths import default_config_path
from xaprobe.agent.sitecmd import register as register_sites
from xaprobe.agent.status import probe_status, render_status, summary_line
from xaprobe.agent.store import Store
from xaprobe.commands import run_command
from xaprobe.errors import UserError
from xaprobe.i18n import _, number
from xaprobe.wire import Location, to_wire

if TYPE_CHECKING:
    from xaprobe.agent.quiet import Quiet


def resolve_config(args, required: bool, hint: str | None = None) -> AgentConfig:
    """Load --config, else the default file if present; else built-in defaults (or an error if required)."""
    hint = hint or _("give --config PATH")
    if args.config:
        config = load_config(Path(args.config))
    elif default_config_path().exists():
        config = load_config(default_config_path())
    elif required:
        raise UserError(_("no configuration: {path} does not exist ({hint})").format(path=default_config_path(),
                                                                                    hint=hint))
    else:
        print(_("xaprobe: warning: no config file ({path} does not exist): device fields stay empty and nothing "
                "is uploaded").format(path=default_config_path()), file=sys.stderr)
        config = AgentConfig()
    if args.store:
        config = dataclasses.replace(config, store=Path(args.store))
    return config


def _print_json(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=None))


# `xaprobe measure` options that override a setting of the chosen engine, when it has that setting
ENGINE_OPTIONS = {"duration": "duration_s", "streams": "streams"}


def _overridden(config: AgentConfig, engine: str, args) -> Any:
    """The engine's settings with --duration/--streams applied; a UserError when it has no such setting."""
    settings = config.engine_settings(engine)
    names = {f.name for f in dataclasses.fields(settings)}
    changes = {}
    for option, name in ENGINE_OPTIONS.items():
        value = getattr(args, option)
        if value is not None:
            if name not in names:
                raise UserError(_("--{option}: the {engine} engine has no {name} setting").format(
                    option=option, engine=engine, name=name))
            changes[name] = value
    return dataclasses.replace(settings, **changes)


# `xaprobe measure` options whose text ends up in the stored measurement, and the wire's limit for each
MEASUREMENT_TEXT = {"place": 200, "server": 2000}


def _measurement_text(args) -> dict[str, str]:
    """The text options, checked as the wire will check them, before any test runs: bytes that are not UTF-8
    (argparse hands them over as lone surrogates) are a one-line error naming the option."""
    from xaprobe.fields import WireError, check_text

    out = {}
    for option, limit in MEASUREMENT_TEXT.items():
        value = getattr(args, option)
        if value is not None:
            try:
                out[option] = check_text(value, f"--{option}", limit)
            except WireError as e:  # argv holds no NUL and only strings: too long, or not UTF-8
                problem = _("contains bytes that are not UTF-8 text") if "surrogate" in e.problem \
                    else _("longer than {limit} characters").format(limit=limit)
                raise UserError(f"--{option}: {problem}") from None
    return out


def site_argument(value: str) -> str:
    """argparse type of --site: a site id as the collector writes them."""
    from xaprobe.sites import is_site_id, not_a_site_id

    if not is_site_id(value):
        raise argparse.ArgumentTypeError(not_a_site_id(value))
    return value


def _quiet(config: AgentConfig, link: LinkConfig, skip: bool) -> Quiet:
    """Wait for the link to be quiet as [quiet_check] says, saying on stderr what is waited for."""
    from xaprobe.agent.quiet import NOT_CHECKED, Counters, busy_text, still_busy_text, wait_for_quiet

    if skip:
        return NOT_CHECKED
    settings = config.quiet_check

    def say(quiet: Quiet) -> None:
        print(busy_text(link.name, quiet, settings) + "; " + _(
            "waiting {seconds} s for it to be quiet ({n}/{max}; --no-quiet-check tests at once)").format(
            seconds=number(settings.wait_s, 0), n=quiet.waits + 1, max=settings.max_waits), file=sys.stderr)

    quiet = wait_for_quiet(link.interface, settings, Counters(), say)
    if quiet.busy(settings):
        print(still_busy_text(link.name, quiet, settings), file=sys.stderr)
    return quiet


def cmd_measure(args) -> int:
    from xaprobe.agent.measure import measure

    args = argparse.Namespace(**{**vars(args), **_measurement_text(args)})
    config = resolve_config(args, required=False)
    engine = args.engine or config.engine
    config = dataclasses.replace(config, engines={**config.engines, engine: _overridden(config, engine, args)})
    links = config.links if not args.link else tuple(link for link in config.links if link.name == args.link)
    if not links:
        raise UserError(_("--link: no link named {name!r} in {source} (links: {links})").format(
            name=args.link, source=config.source, links=", ".join(link.name for link in config.links)))
    location = None
    if args.place or args.lat is not None or args.lon is not None:
        if (args.lat is None) != (args.lon is None):
            raise UserError(_("--lat and --lon go together"))
        location = Location(place=args.place or "", lat=args.lat, lon=args.lon)
    store = Store.open(config.store)
    cap = int(args.cap_mb * 1_000_000) if args.cap_mb else 0
    results = [measure(config, store, link, engine, args.server, location, cap, site_id=args.site,
                       quiet=_quiet(config, link, args.no_quiet_check)) for link in links]
    if args.json:
        for m in results:
            _print_json(to_wire(m))
    else:
        for m in results:
            print(summary_line(m))
    return 0 if all(m.ok for m in results) else 2


def cmd_config_check(args) -> int:
    path = Path(args.path or args.config or default_config_path())
    config = load_config(path)
    warnings = token_warnings(config)
    # for the file the service reads, root can tell what the service (its own user; its credential read by
    # systemd) will be able to read
    service = service_problems(config) if os.geteuid() == 0 and path.resolve() == SERVICE_CONFIG else None
    if args.json:
        _print_json({"ok": not service, "path": str(path), "device_id": config.device_id,
                     "links": [link.name for link in config.links], "warnings": warnings,
                     "service_problems": service})
    else:
        print(_("{path}: ok ({n} link(s): {links})").format(path=path, n=len(config.links),
                                                          links=", ".join(link.name for link in config.links)))
        for warning in warnings:
            print(_("{path}: warning: {warning}").format(path=path, warning=warning), file=sys.stderr)
        _print_service_check(path, config, service)
    return 1 if service else 0


def _print_service_check(path: Path, config: AgentConfig, problems: list[str] | None) -> None:
    """Say whether the systemd service will be able to read everything it needs (known only to root)."""
    if problems is None:
        return
    for problem in problems:
        print(_("{path}: service: {problem}").format(path=path, problem=problem), file=sys.stderr)
    if not problems:
        token = _("token from {key} {path}").format(key=config.token_key, path=config.token_from) \
            if config.token_from else _("no token")
        print(_("{path}: the service can read everything it needs ({token}; store {store})").format(
            path=path, token=token, store=config.store))


def cmd_config_install(args) -> int:
    from xaprobe.agent.install import install_config

    target = Path(args.config or default_config_path())
    config = install_config(Path(args.path), target)
    print(_("installed {path} (mode 0644) and its token in {token} (mode 0600, given to the service as the "
            "systemd credential \"token\")").format(path=target, token=config.token_from))
    print(_("start the probe with: systemctl restart xaprobe-agent"))
    return 0


def cmd_enroll(args) -> int:
    import requests

    from xaprobe.agent import context, links
    from xaprobe.agent.doctor import flows, render, run_checks
    from xaprobe.agent.enroll import (
        agent_toml,
        confirm_links,
        fetch_identity,
        normalise_code,
        start_service,
        write_probe_config,
    )

    code = normalise_code(args.code)
    for option in ("budget_mb", "daily_quota_mb"):
        if getattr(args, option) is not None and not 0 < getattr(args, option) <= 1_000_000:
            raise UserError(_("--{option}: give the SIM's MB, from 1 to 1000000").format(
                option=option.replace("_", "-")))
    target = Path(args.config or default_config_path())
    with requests.Session() as session:
        identity = fetch_identity(session, args.url, code)
        print(_("enrolled as {device} for {commune} ({code})").format(
            device=identity.device_id, commune=identity.commune_name or identity.commune_code,
            code=identity.commune_code))
        found = [links.FoundLink(args.interface, context.access_type(args.interface) or "other")] \
            if args.interface else links.detect()
        kept = confirm_links(found, None if args.yes else input)
        write_probe_config(agent_toml(identity, args.url, kept, args.budget_mb or 0.0, args.daily_quota_mb or 0.0),
                           identity.token, target)
        print(_("wrote {path} (mode 0644) and the token beside it (mode 0600)").format(path=target))
        problem = start_service() if not args.no_start else None
        if problem:
            print(problem)
        checks = run_checks(target, session, service=not args.no_start and problem is None)
    print(render(checks))
    return 0 if flows(checks) else 1


def cmd_config_sample(args) -> int:
    from xaprobe.agent.sample import sample_config

    print(sample_config(), end="")
    return 0


def cmd_upload(args) -> int:
    import requests

    from xaprobe.uploader.upload import Destination, upload_pending

    config = resolve_config(args, required=True)
    if not config.collector_url:
        raise UserError(_("{source}: collector_url: required to upload").format(source=config.source))
    store = Store.open(config.store)
    with requests.Session() as session:
        outcome = upload_pending(store, session, Destination(config.collector_url, config.token,
                                                             config.upload.timeout_s), config.upload.batch_size)
    left = store.backlog().pending
    if args.json:
        _print_json({**dataclasses.asdict(outcome), "pending": left})
    else:
        print(_("accepted {accepted}, duplicate {duplicate}, rejected {rejected}; {left} still pending").format(
            accepted=outcome.accepted, duplicate=outcome.duplicate, rejected=outcome.rejected, left=left)
              + ("; " + _("error: {error}").format(error=outcome.error) if outcome.error else ""))
    return 0 if left == 0 else 1


def cmd_status(args) -> int:
    config = resolve_config(args, required=True, hint=_("enrol this probe first, or give --config PATH"))
    if config.store.exists():
        store = Store.open(config.store)
    else:  # nothing has run yet: show the plan without creating any file
        print(_("xaprobe: no tests stored yet ({path} does not exist: is the xaprobe-agent service running?)").format(
            path=config.store), file=sys.stderr)
        store = Store.open(":memory:")
    status = probe_status(config, store)
    if args.json:
        _print_json(status.to_wire())
    else:
        print(render_status(status))
    return 0


def cmd_export(args) -> int:
    import csv

    config = resolve_config(args, required=False)
    store = Store.open(config.store)
    out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout
    try:
        if args.format == "json":
            for m in store.measurements():
                out.write(json.dumps(to_wire(m), ensure_ascii=False) + "\n")
        else:
            columns = ["id", "seq", "started_at", "engine", "status", "download_mbps", "upload_mbps",
                       "latency_ms", "jitter_ms", "bytes_down", "bytes_up", "error"]
            writer = csv.writer(out)
            writer.writerow(["link"] + columns)
            for m in store.measurements():
                wire = to_wire(m)
                writer.writerow([m.link.name] + [wire[c] for c in columns])
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def cmd_doctor(args) -> int:
    import requests

    from xaprobe.agent.doctor import as_json, flows, render, run_checks

    path = Path(args.config) if args.config else default_config_path()
    with requests.Session() as session:
        checks = run_checks(path, session)
    print(as_json(checks) if args.json else render(checks))
    return 0 if flows(checks) else 1


def cmd_demo(args) -> int:
    # lazy: the demo runs a collector too, whose parts a probe installed alone does not have
    from xaprobe.demo import run_demo

    return run_demo(measurements=args.measurements, keep_running=args.keep_running, duration_s=args.duration,
                    as_json=args.json, store_path=Path(args.store) if args.store else None)


def cmd_run(args) -> int:
    from xaprobe.agent.daemon import run_daemon

    return run_daemon(resolve_config(args, required=True))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xaprobe", description=_("xaprobe: a speed-test probe for a commune."))
    p.add_argument("--version", action="version", version=f"xaprobe {__version__}",
                   help=_("show program's version number and exit"))  # argparse 3.11 leaves this one untranslated
    p.add_argument("--lang", choices=i18n.LANGUAGES, help=_("the language to speak (default from LANG: Vietnamese "
                                                              "unless it asks for English)"))
    p.add_argument("--config", metavar="PATH", help=_("agent.toml (default {path})").format(path=default_config_path()))
    p.add_argument("--store", metavar="PATH", help=_("the probe's SQLite file (default from the config)"))
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    as_json = _("print JSON instead of text")

    s = sub.add_parser("demo", help=_("a collector and a probe on this machine, end to end, on loopback"))
    s.add_argument("--measurements", type=int, default=5, metavar="N", help=_("tests to run (default 5)"))
    s.add_argument("--duration", type=float, default=2.0, metavar="S", help=_("seconds per direction (default 2)"))
    s.add_argument("--keep-running", action="store_true", help=_("keep the collector up until Ctrl-C"))
    s.add_argument("--json", action="store_true", help=as_json)
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("measure", help=_("run one test now on each link (or --link) and store it"))
    s.add_argument("--engine", choices=engine_names(), help=_("default from the config"))
    s.add_argument("--server", metavar="URL", help=_("test server (default from the config)"))
    s.add_argument("--link", metavar="NAME", help=_("only the link of this name"))
    s.add_argument("--duration", type=float, metavar="S", help=_("seconds per direction (engines with duration_s)"))
    s.add_argument("--streams", type=int, metavar="N", help=_("parallel streams (engines with streams)"))
    s.add_argument("--cap-mb", type=float, metavar="MB", help=_("at most this many MB per direction"))
    s.add_argument("--site", metavar="ID", type=site_argument,
                   help=_("the site where the test is made (field mode; `xaprobe site list` shows the commune's "
                          "sites, `xaprobe site add` makes one); default: the probe's own site"))
    s.add_argument("--place", metavar="TEXT", help=_("where the test is made, in words (field mode)"))
    s.add_argument("--lat", type=float, help=_("latitude of the place (with --lon)"))
    s.add_argument("--lon", type=float, help=_("longitude of the place (with --lat)"))
    s.add_argument("--no-quiet-check", action="store_true",
                   help=_("test at once, without waiting for other traffic on the link to stop"))
    s.add_argument("--json", action="store_true", help=as_json)
    s.set_defaults(func=cmd_measure)

    s = sub.add_parser("run", help=_("the long-running probe: planner, tests, uploads, heartbeats"))
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("enroll", help=_("set this probe up from the one-time code the collector staff sent: "
                                        "identity, links, configuration, service, then doctor"))
    s.add_argument("url", help=_("the collector's address, e.g. https://xaprobe.hatinh.example.vn"))
    s.add_argument("code", help=_("the enrolment code, e.g. XQ7K-M2PD (single use, valid 7 days)"))
    s.add_argument("--yes", action="store_true", help=_("keep every link found without asking"))
    s.add_argument("--interface", metavar="NAME", help=_("measure only this interface (instead of detecting)"))
    s.add_argument("--budget-mb", type=float, metavar="MB", help=_("monthly data budget of each SIM"))
    s.add_argument("--daily-quota-mb", type=float, metavar="MB", help=_("daily high-speed quota of each SIM"))
    s.add_argument("--no-start", action="store_true", help=_("write the configuration but do not start the service"))
    s.set_defaults(func=cmd_enroll)

    s = sub.add_parser("doctor", help=_("check everything that decides whether samples will flow, and say what "
                                        "to fix; exit 0 only when they will"))
    s.add_argument("--json", action="store_true", help=_("print the checks as JSON"))
    s.set_defaults(func=cmd_doctor)

    s = sub.add_parser("upload", help=_("send everything pending now; exit 0 when nothing is left"))
    s.add_argument("--json", action="store_true", help=as_json)
    s.set_defaults(func=cmd_upload)

    s = sub.add_parser("status", help=_("this month's samples per link, backlog, last upload"))
    s.add_argument("--json", action="store_true", help=as_json)
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("export", help=_("write every stored measurement as CSV or JSON lines"))
    s.add_argument("--format", choices=("csv", "json"), default="csv", help=_("csv (default) or json"))
    s.add_argument("--output", metavar="PATH", help=_("the file to write (default: the screen)"))
    s.set_defaults(func=cmd_export)

    register_sites(sub, lambda args: resolve_config(args, required=True))

    cfg = sub.add_parser("config", help=_("configuration")).add_subparsers(dest="config_command", required=True,
                                                                          metavar="ACTION")
    s = cfg.add_parser("check", help=_("check a config file and name every problem"))
    s.add_argument("path", nargs="?", help=_("the file to check (default: --config, else {path})").format(
        path=default_config_path()))
    s.add_argument("--json", action="store_true", help=as_json)
    s.set_defaults(func=cmd_config_check)
    s = cfg.add_parser("install", help=_("install the file the collector's staff gave as the service's agent.toml, "
                                         "its token in a root-only file beside it"))
    s.add_argument("path", metavar="FILE", help=_("the agent.toml the collector's staff gave"))
    s.set_defaults(func=cmd_config_install)
    s = cfg.add_parser("sample", help=_("print a commented agent.toml with every key, its help and its default"))
    s.set_defaults(func=cmd_config_sample)
    return p


def _lang_option(argv: list[str]) -> str | None:
    """--lang's value, read before the parser is built (its help texts are in that language)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--lang="):
            return arg.split("=", 1)[1]
        if arg == "--lang" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    i18n.use(i18n.choose(_lang_option(argv)))
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_command("xaprobe", args)
