"""`python -m xaprobe.collector` is the `xaprobe-collector` command."""

import sys

from xaprobe.collector.cli import main

sys.exit(main())
