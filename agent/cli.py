"""`xaprobe`: demo, measure, run, upload, status, config check, config sample, export.

Commands import what only they use inside their own function (lazy on purpose, not to dodge a
circle): `xaprobe status` or `config check` on a Pi loads no engine run code, no requests and no scheduler.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

from xaprobe import __version__
from xaprobe.agent.config import AgentConfig, load_config, token_warnings
from xaprobe.agent.engines import engine_names
from xaprobe.agent.paths import default_config_path
from xaprobe.agent.status import probe_status, render_status, summary_line
from xaprobe.agent.store import Store
from xaprobe.commands import run_command
from xaprobe.errors import UserError
from xaprobe.wire import Location, to_wire


def resolve_config(args, required: bool, hint: str = "give --config PATH") -> AgentConfig:
    """Load --config, else the default file if present; else built-in defaults (or an error if required)."""
    if args.config:
        config = load_config(Path(args.config))
    elif default_config_path().exists():
        config = load_config(default_config_path())
    elif required:
        raise UserError(f"no configuration: {default_config_path()} does not exist ({hint})")
    else:
        print(f"xaprobe: warning: no config file ({default_config_path()} does not exist): device fields "
              "stay empty and nothing is uploaded", file=sys.stderr)
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
                raise UserError(f"--{option}: the {engine} engine has no {name} setting")
            changes[name] = value
    return dataclasses.replace(settings, **changes)


def cmd_measure(args) -> int:
    from xaprobe.agent.measure import measure

    config = resolve_config(args, required=False)
    engine = args.engine or config.engine
    config = dataclasses.replace(config, engines={**config.engines, engine: _overridden(config, engine, args)})
    links = config.links if not args.link else tuple(link for link in config.links if link.name == args.link)
    if not links:
        raise UserError(f"--link: no link named {args.link!r} in {config.source} "
                        f"(links: {', '.join(link.name for link in config.links)})")
    location = None
    if args.place or args.lat is not None or args.lon is not None:
        if (args.lat is None) != (args.lon is None):
            raise UserError("--lat and --lon go together")
        location = Location(place=args.place or "", lat=args.lat, lon=args.lon)
    store = Store.open(config.store)
    cap = int(args.cap_mb * 1_000_000) if args.cap_mb else 0
    results = [measure(config, store, link, engine, args.server, location, cap) for link in links]
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
    if args.json:
        _print_json({"ok": True, "path": str(path), "device_id": config.device_id,
                     "links": [link.name for link in config.links], "warnings": warnings})
    else:
        print(f"{path}: ok ({len(config.links)} link(s): {', '.join(link.name for link in config.links)})")
        for warning in warnings:
            print(f"{path}: warning: {warning}", file=sys.stderr)
    return 0


def cmd_config_sample(args) -> int:
    from xaprobe.agent.sample import sample_config

    print(sample_config(), end="")
    return 0


def cmd_upload(args) -> int:
    import requests

    from xaprobe.uploader.upload import Destination, upload_pending

    config = resolve_config(args, required=True)
    if not config.collector_url:
        raise UserError(f"{config.source}: collector_url: required to upload")
    store = Store.open(config.store)
    with requests.Session() as session:
        outcome = upload_pending(store, session, Destination(config.collector_url, config.token,
                                                             config.upload.timeout_s), config.upload.batch_size)
    left = store.backlog().pending
    if args.json:
        _print_json({**dataclasses.asdict(outcome), "pending": left})
    else:
        print(f"accepted {outcome.accepted}, duplicate {outcome.duplicate}, rejected {outcome.rejected}; "
              f"{left} still pending" + (f"; error: {outcome.error}" if outcome.error else ""))
    return 0 if left == 0 else 1


def cmd_status(args) -> int:
    config = resolve_config(args, required=True, hint="enrol this probe first, or give --config PATH")
    if config.store.exists():
        store = Store.open(config.store)
    else:  # nothing has run yet: show the plan without creating any file
        print(f"xaprobe: no tests stored yet ({config.store} does not exist: is the xaprobe-agent service "
              "running?)", file=sys.stderr)
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
    p = argparse.ArgumentParser(prog="xaprobe", description="xaprobe: a speed-test probe for a commune.")
    p.add_argument("--version", action="version", version=f"xaprobe {__version__}")
    p.add_argument("--config", metavar="PATH", help=f"agent.toml (default {default_config_path()})")
    p.add_argument("--store", metavar="PATH", help="the probe's SQLite file (default from the config)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("demo", help="a collector and a probe on this machine, end to end, on loopback")
    s.add_argument("--measurements", type=int, default=5, metavar="N")
    s.add_argument("--duration", type=float, default=2.0, metavar="S", help="seconds per direction (default 2)")
    s.add_argument("--keep-running", action="store_true", help="keep the collector up until Ctrl-C")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("measure", help="run one test now on each link (or --link) and store it")
    s.add_argument("--engine", choices=engine_names(), help="default from the config")
    s.add_argument("--server", metavar="URL", help="test server (default from the config)")
    s.add_argument("--link", metavar="NAME")
    s.add_argument("--duration", type=float, metavar="S", help="seconds per direction (engines with duration_s)")
    s.add_argument("--streams", type=int, metavar="N", help="parallel streams (engines with streams)")
    s.add_argument("--cap-mb", type=float, metavar="MB", help="at most this many MB per direction")
    s.add_argument("--place", metavar="TEXT", help="where the test is made (field mode)")
    s.add_argument("--lat", type=float)
    s.add_argument("--lon", type=float)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_measure)

    s = sub.add_parser("run", help="the long-running probe: planner, tests, uploads, heartbeats")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("doctor", help="check everything that decides whether samples will flow, and say what "
                                      "to fix; exit 0 only when they will")
    s.add_argument("--json", action="store_true", help="print the checks as JSON")
    s.set_defaults(func=cmd_doctor)

    s = sub.add_parser("upload", help="send everything pending now; exit 0 when nothing is left")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_upload)

    s = sub.add_parser("status", help="this month's samples per link, backlog, last upload")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("export", help="write every stored measurement as CSV or JSON lines")
    s.add_argument("--format", choices=("csv", "json"), default="csv")
    s.add_argument("--output", metavar="PATH")
    s.set_defaults(func=cmd_export)

    cfg = sub.add_parser("config", help="configuration").add_subparsers(dest="config_command", required=True,
                                                                       metavar="ACTION")
    s = cfg.add_parser("check", help="check a config file and name every problem")
    s.add_argument("path", nargs="?")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_config_check)
    s = cfg.add_parser("sample", help="print a commented agent.toml with every key, its help and its default")
    s.set_defaults(func=cmd_config_sample)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_command("xaprobe", args)
