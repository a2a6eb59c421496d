#!/usr/bin/env python3
"""Accuracy, CPU and memory of the engines on rate-shaped links, side by side (needs root).

Two network namespaces joined by a veth, both ends shaped with tbf. The test server
(`xaprobe-collector speedtest-server`, LibreSpeed and Speedtest Mini endpoints) runs in one; each
engine runs in the other as a user runs it: `xaprobe measure --engine E --server URL --json`.
For each rate and engine: the median of N runs of download and upload against the link's TCP
goodput ceiling (rate x 1448/1514), idle latency, client CPU seconds, peak RSS and bytes used.
Then unshaped: the highest rate each engine measures on this machine.

    sudo python bench/accuracy.py [--rates 5 20 100 300] [--runs 3] [--engines http speedtest] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from netlab import NetLab, ceiling_mbps  # noqa: E402

from xaprobe.agent.engines import engine_names  # noqa: E402


def one_run(lab: NetLab, url: str, engine: str, store: Path, extra: list[str]) -> dict:
    out, cpu, rss = lab.run_client([sys.executable, "-m", "xaprobe.agent", "--store", str(store), "measure",
                                    "--engine", engine, "--server", url, "--json", *extra])
    m = json.loads(out.strip().splitlines()[-1])
    if m["status"] != "ok":
        raise RuntimeError(f"{engine}: {m['error']}")
    return {"down": m["download_mbps"], "up": m["upload_mbps"], "latency": m["latency_ms"], "cpu": cpu,
            "rss": rss, "mb": (m["bytes_down"] + m["bytes_up"]) / 1e6}


def medians(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", type=float, nargs="+", default=[5, 20, 100, 300], metavar="MBIT")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--engines", nargs="+", default=list(engine_names()), choices=engine_names(),
                   help="default: every registered engine")
    p.add_argument("--no-unshaped", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, NetLab(7) as lab:
        url = lab.start_speedtest_server()
        plan = [(rate, e) for rate in args.rates for e in args.engines]
        if not args.no_unshaped:
            plan += [(None, e) for e in args.engines]
        for rate, engine in plan:
            lab.shape(rate)
            runs = [one_run(lab, url, engine, Path(tmp) / "probe.db", []) for _ in range(args.runs)]
            m = medians(runs)
            row = {"rate_mbit": rate, "engine": engine, **{k: round(v, 4) for k, v in m.items()}}
            if rate:
                ceiling = ceiling_mbps(rate)
                row["down_ratio"] = round(m["down"] / ceiling, 4)
                row["up_ratio"] = round(m["up"] / ceiling, 4)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'rate':>8} {'engine':<10} {'down Mbit/s':>12} {'ratio':>7} {'up Mbit/s':>11} {'ratio':>7} "
          f"{'lat ms':>7} {'CPU s':>6} {'RSS MB':>7} {'MB used':>8}")
    for r in rows:
        rate = f"{r['rate_mbit']:g}" if r["rate_mbit"] else "unshaped"
        dr = f"{r['down_ratio']:.4f}" if "down_ratio" in r else "-"
        ur = f"{r['up_ratio']:.4f}" if "up_ratio" in r else "-"
        print(f"{rate:>8} {r['engine']:<10} {r['down']:>12.2f} {dr:>7} {r['up']:>11.2f} {ur:>7} "
              f"{r['latency']:>7.2f} {r['cpu']:>6.2f} {r['rss'] / 1e6:>7.1f} {r['mb']:>8.1f}")
    by = {(r["rate_mbit"], r["engine"]): r for r in rows}
    for rate in args.rates:
        if (rate, "http") in by and (rate, "speedtest") in by:
            h, s = by[(rate, "http")], by[(rate, "speedtest")]
            print(f"at {rate:g} Mbit/s: http/speedtest-cli CPU {h['cpu'] / s['cpu']:.2f}, "
                  f"peak RSS {h['rss'] / s['rss']:.2f}")
    if (None, "http") in by and (None, "speedtest") in by:
        h, s = by[(None, "http")], by[(None, "speedtest")]
        print(f"unshaped: http measures {h['down']:.0f}/{h['up']:.0f} Mbit/s, speedtest-cli "
              f"{s['down']:.0f}/{s['up']:.0f}: {h['down'] / s['down']:.1f}x / {h['up'] / s['up']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
