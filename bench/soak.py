#!/usr/bin/env python3
"""Soak: kill -9 the probe at random points in N measure -> store -> upload cycles; print lost/duplicated.

The same fault test as tests/test_faults.py (200 kills there), longer: a real collector on loopback,
a proxy that holds each answer 0.3 s after the collector committed, and the probe killed at a random point
of a phase of its cycle chosen at random (start-up, measuring, uploading, the moment the collector committed).

    python bench/soak.py --kills 1000 --seed 1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import running_collector  # noqa: E402
from test_faults import run_kill9_cycles  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with running_collector(f"sqlite:///{tmp}/collector.db") as collector:
            result = run_kill9_cycles(collector, Path(tmp), args.kills, args.seed)
    print(json.dumps({"kills": args.kills, **result}))
    return 0 if result["lost"] == result["duplicated"] == result["pending"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
