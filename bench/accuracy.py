#!/usr/bin/env python3
"""Accuracy, CPU and memory of the engines on rate-shaped links, side by side (needs root).

Two network namespaces joined by a veth, both ends shaped with tbf. The test server
(`xaprobe-collector speedtest-server`, LibreSpeed and Speedtest Mini endpoints) runs in one; each
engine runs in the other as a user runs it: `xaprobe measure --engine E --server URL --json`.
For each rate and engine: the median of N runs of download and upload against the link's TCP
goodput ceiling (rate x 1448/1514), idle latency, client CPU seconds, peak RSS and bytes used.
Then unshaped: the highest rate each engine measures on this machine.

    sudo python bench/accuracy.py [--rates 5 20 100 300] [--runs 3] [--engines http speedtest] [--json]
                                  [--duration S] [--busy N]

--busy N runs N busy-looping processes beside the engines, as on a board doing other work; with --duration 3
(the http engine's seconds a direction) it measures short tests there: 30 runs at 20 Mbit/s with one busy
process read 0.999-1.072 of the ceiling before the steady rate's ends were searched over at least 1 s (#15).

With --emulated, the link is tests/linkemu.c instead of tbf (RTT, loss, a rate trace), and each engine is
compared with iperf3 on the same path with the same streams (bench/accuracy_emulated.py says how): a table per
engine of engine / iperf3, iperf3 / ceiling and engine / ceiling per RTT x loss x (rate or LTE-like trace) cell;
on the trace, over the seconds of the trace the engine measured (bench/measure_windows.py).

    sudo python bench/accuracy.py --emulated [--quick] [--rtts 20 60 120] [--losses 0 0.005]
                                  [--rates 3 12 40 120] [--no-trace | --trace-only] [--runs 1]
                                  [--http-streams 8] [--iperf-seconds 6]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import accuracy_emulated  # noqa: E402
from accuracy_emulated import one_run  # noqa: E402
from netlab import NetLab, ceiling_mbps  # noqa: E402

from xaprobe.agent.engines import engine_names  # noqa: E402


def medians(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", type=float, nargs="+", metavar="MBIT",
                   help="default 5 20 100 300; with --emulated 3 12 40 120")
    p.add_argument("--runs", type=int, help="default 3; with --emulated 1")
    p.add_argument("--engines", nargs="+", default=list(engine_names()), choices=engine_names(),
                   help="default: every registered engine")
    p.add_argument("--no-unshaped", action="store_true")
    p.add_argument("--duration", type=float, metavar="S", help="the http engine's seconds a direction (its own "
                                                                "default: 10)")
    p.add_argument("--busy", type=int, default=0, metavar="N", help="N busy-looping processes beside the runs")
    p.add_argument("--json", action="store_true")
    p.add_argument("--emulated", action="store_true", help="through tests/linkemu.c, against iperf3")
    accuracy_emulated.add_arguments(p)
    args = p.parse_args()
    if args.emulated:
        args.rates, args.runs = args.rates or [3, 12, 40, 120], args.runs or 1
        rows = accuracy_emulated.run(args)
        print(json.dumps(rows)) if args.json else accuracy_emulated.print_tables(rows)
        return 0
    args.rates, args.runs = args.rates or [5, 20, 100, 300], args.runs or 3
    rows = []
    extra = {"http": ["--duration", f"{args.duration:g}"] if args.duration else []}
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        with tempfile.TemporaryDirectory() as tmp, NetLab(7) as lab:
            url = lab.start_speedtest_server()
            plan = [(rate, e) for rate in args.rates for e in args.engines]
            if not args.no_unshaped:
                plan += [(None, e) for e in args.engines]
            for rate, engine in plan:
                lab.shape(rate)
                runs = [one_run(lab, url, engine, Path(tmp) / "probe.db", extra.get(engine, []))
                        for _ in range(args.runs)]
                m = medians(runs)
                row = {"rate_mbit": rate, "engine": engine, **{k: round(v, 4) for k, v in m.items()}}
                if rate:
                    ceiling = ceiling_mbps(rate)
                    for way in ("down", "up"):
                        row[f"{way}_ratio"] = round(m[way] / ceiling, 4)
                        row[f"{way}_range"] = [round(min(r[way] for r in runs) / ceiling, 4),
                                               round(max(r[way] for r in runs) / ceiling, 4)]
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        for p in busy:
            p.kill()
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
        if "down_range" in r and args.runs > 1:
            (dl, dh), (ul, uh) = r["down_range"], r["up_range"]
            print(f"{'':>8} {'':<10} {'runs ' + f'{dl:.4f}-{dh:.4f}':>20} {f'{ul:.4f}-{uh:.4f}':>19}")
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
