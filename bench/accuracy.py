#!/usr/bin/env python3
"""Accuracy, CPU and memory of the engines on rate-shaped links, side by side (needs root).

Two network namespaces joined by a veth, both ends shaped with tbf. The test server
(`xaprobe-collector speedtest-server`, LibreSpeed and Speedtest Mini endpoints) runs in one; each
engine runs in the other as a user runs it: `xaprobe measure --engine E --server URL --json`.
For each rate and engine: the median of N runs of download and upload against the link's TCP
goodput ceiling (rate x 1448/1514), idle latency, client CPU seconds, peak RSS and bytes used.
Then unshaped: the highest rate each engine measures on this machine.

    sudo python bench/accuracy.py [--rates 5 20 100 300] [--runs 3] [--engines http speedtest] [--json]

With --emulated, the link is tests/linkemu.c instead of tbf (RTT, loss, a rate trace), and each engine is
compared with iperf3 run on the same path with the same streams and duration (iperf3 -P N -t D -O 2):
RTT x loss x (rate or LTE-like trace) columns, each cell the ratio engine / iperf3 and iperf3 / ceiling.

    sudo python bench/accuracy.py --emulated [--rtts 20 60 120] [--losses 0 0.005] [--rates 3 12 40 120]
                                  [--trace] [--runs 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from emulated import EmulatedLab, lte_trace, trace_mean_mbit  # noqa: E402
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


STREAMS = {"http": (4, 4), "speedtest": (8, 8)}  # (download, upload) streams each engine opens at these rates


def iperf3(lab: NetLab, streams: int, seconds: float, reverse: bool) -> float:
    """Mbit/s iperf3 received on the lab's path, its first 2 s (slow start) left out as the engines do."""
    import subprocess
    import time

    server = lab.spawn(lab.server_ns, ["iperf3", "-s", "-1"], stdout=subprocess.DEVNULL)
    time.sleep(0.3)
    out, _, _ = lab.run_client(["iperf3", "-c", lab.server_ip, "-P", str(streams), "-t", f"{seconds:g}", "-O", "2",
                                "-J", *(["-R"] if reverse else [])], timeout=seconds + 60)
    server.wait(timeout=15)  # iperf3 -s -1 leaves after its one test: the next one may then listen
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6


def emulated(args: argparse.Namespace) -> list[dict]:
    """Every engine and iperf3 on each emulated path; one row per (RTT, loss, rate or trace, engine)."""
    import time

    links: list[tuple[str, float, list | None]] = [(f"{r:g}", r, None) for r in args.rates]
    if args.trace:
        trace = lte_trace(seconds=30)
        links.append(("lte", trace_mean_mbit(trace), trace))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for rtt in args.rtts:
            for loss in args.losses:
                for name, mean, trace in links:
                    with EmulatedLab(7, rate_mbit=mean, rtt_ms=rtt, loss=loss, trace=trace) as lab:
                        url = lab.start_speedtest_server()
                        for engine in args.engines:
                            down_n, up_n = STREAMS[engine]
                            runs = [one_run(lab, url, engine, Path(tmp) / "probe.db", []) for _ in range(args.runs)]
                            m = medians(runs)
                            time.sleep(1)
                            ref_down = iperf3(lab, down_n, 10, reverse=True)
                            ref_up = iperf3(lab, up_n, 10, reverse=False)
                            ceiling = ceiling_mbps(mean)
                            row = {"rtt_ms": rtt, "loss": loss, "link": name, "engine": engine,
                                   "down": round(m["down"], 3), "up": round(m["up"], 3),
                                   "iperf_down": round(ref_down, 3), "iperf_up": round(ref_up, 3),
                                   "down_vs_iperf": round(m["down"] / ref_down, 4),
                                   "up_vs_iperf": round(m["up"] / ref_up, 4),
                                   "iperf_fill_down": round(ref_down / ceiling, 4),
                                   "iperf_fill_up": round(ref_up / ceiling, 4), "latency": m["latency"]}
                            rows.append(row)
                            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def print_emulated(rows: list[dict]) -> None:
    print(f"{'RTT':>4} {'loss':>6} {'link':>5} {'engine':<10} {'down/iperf3':>11} {'up/iperf3':>9} "
          f"{'iperf3 fill d/u':>15} {'down':>7} {'up':>7} {'lat ms':>7}")
    for r in rows:
        print(f"{r['rtt_ms']:>4g} {r['loss'] * 100:>5.1f}% {r['link']:>5} {r['engine']:<10} "
              f"{r['down_vs_iperf']:>11.4f} {r['up_vs_iperf']:>9.4f} "
              f"{r['iperf_fill_down']:>7.3f}/{r['iperf_fill_up']:<7.3f} {r['down']:>7.2f} "
              f"{r['up']:>7.2f} {r['latency']:>7.2f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", type=float, nargs="+", default=[5, 20, 100, 300], metavar="MBIT")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--engines", nargs="+", default=list(engine_names()), choices=engine_names(),
                   help="default: every registered engine")
    p.add_argument("--no-unshaped", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("--emulated", action="store_true", help="through tests/linkemu.c, against iperf3")
    p.add_argument("--rtts", type=float, nargs="+", default=[20, 60, 120], metavar="MS")
    p.add_argument("--losses", type=float, nargs="+", default=[0, 0.005], metavar="SHARE")
    p.add_argument("--trace", action="store_true", help="add an LTE-like rate trace column")
    args = p.parse_args()
    if args.emulated:
        rows = emulated(args)
        print(json.dumps(rows)) if args.json else print_emulated(rows)
        return 0
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
