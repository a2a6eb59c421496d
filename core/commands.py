"""What both command-line programs share: the user-error type and the one way a command's errors print."""

from __future__ import annotations

import argparse
import sys

from xaprobe.tomlcheck import ConfigError


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit code 1."""


def run_command(prog: str, args: argparse.Namespace) -> int:
    """Run the parsed command; turn user mistakes into one line each on stderr, never a traceback."""
    try:
        return args.func(args)
    except ConfigError as e:
        for problem in e.problems:
            print(f"{e.source}: {problem}", file=sys.stderr)
        return 1
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except ImportError as e:
        print(f"{prog}: {e.name} is missing; the collector's parts come with pip install 'xaprobe[collector]'",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
