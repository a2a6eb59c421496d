"""`python -m xaprobe.agent` is the `xaprobe` command."""

import sys

from xaprobe.agent.cli import main

sys.exit(main())
