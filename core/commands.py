"""What both command-line programs share: the one place a command's user-facing failures are printed."""

from __future__ import annotations

import argparse
import sys

from xaprobe.errors import ConfigError, UserError

# Top-level modules xaprobe imports from other distributions, and how a user gets each back.
_PROBE = "it comes with xaprobe itself: reinstall the probe (pip install xaprobe, or the .deb)"
_COLLECTOR = "the collector's parts come with pip install 'xaprobe[collector]'"
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
    return f"the Python module {name!r} is missing; {provider}" if provider else None


def run_command(prog: str, args: argparse.Namespace) -> int:
    """Run the parsed command; turn user-facing failures into one line each on stderr, never a traceback."""
    try:
        return args.func(args)
    except ConfigError as e:
        for problem in e.problems:
            print(f"{e.source}: {problem}", file=sys.stderr)
        return 1
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as e:
        message = missing_module_message(e)
        if message is None:
            raise  # a module of xaprobe's own, or a typo in the code: a programming error, shown as one
        print(f"{prog}: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
