"""What both command-line programs share: the one place a command's user-facing failures are printed."""

from __future__ import annotations

import argparse
import sys

from xaprobe.errors import ConfigError, UserError
from xaprobe.i18n import N_, _

# Top-level modules xaprobe imports from other distributions, and how a user gets each back.
_PROBE = N_("it comes with xaprobe itself: reinstall the probe (pip install xaprobe, or the .deb)")
_COLLECTOR = N_("the collector's parts come with pip install 'xaprobe[collector]'")
PROVIDERS = {
    "requests": _PROBE, "schedule": _PROBE, "sqlite_utils": _PROBE, "speedtest": _PROBE,
    "fastapi": _COLLECTOR, "starlette": _COLLECTOR, "uvicorn": _COLLECTOR, "sqlalchemy": _COLLECTOR,
    "psycopg": _COLLECTOR, "jinja2": _COLLECTOR, "vietnam_provinces": _COLLECTOR, "pygal": _COLLECTOR,
    "openpyxl": _COLLECTOR, "multipart": _COLLECTOR, "python_multipart": _COLLECTOR, "pydantic": _COLLECTOR,
}


def missing_module_message(error: ModuleNotFoundError) -> str | None:
    """Name the missing module and what provides it; None when it is not one of xaprobe's dependencies."""
    name = (error.name or "").split(".")[0]
    provider = PROVIDERS.get(name)
    return _("the Python module {name!r} is missing; {provider}").format(name=name, provider=_(provider)) \
        if provider else None


def run_command(prog: str, args: argparse.Namespace) -> int:
    """Run the parsed command; turn user-facing failures into one line each on stderr, never a traceback."""
    try:
        return args.func(args)
    except ConfigError as e:
        for problem in e.problems:
            print(f"{e.source}: {problem}", file=sys.stderr)
        return 1
    except UserError as e:
        print(_("{prog}: error: {message}").format(prog=prog, message=e), file=sys.stderr)
        return 1
    except ModuleNotFoundError as e:
        message = missing_module_message(e)
        if message is None:
            raise  # a module of xaprobe's own, or a typo in the code: a programming error, shown as one
        print(f"{prog}: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
