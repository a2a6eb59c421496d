"""The engines against iperf3 on the emulated link (tests/linkemu.c): RTT x loss x (rate or LTE-like trace), one
table per engine of engine / iperf3 and iperf3 / ceiling, medians of N runs (needs root, gcc, ethtool, iperf3).

Each run is interleaved on one emulated path: every engine once (`xaprobe measure --engine E`), then iperf3 with
the engines' streams, download (-R) then upload, each for --iperf-seconds after 2 s left out (-O 2, slow start).
An LTE-like trace (10 s of 100-500 ms steps, repeated) restarts before every engine run and every iperf3 run, so
each sees the same rates from its start. A cell whose iperf3 fills less than 90 % of the ceiling (rate x
1448/1514, the trace's mean for a trace) is marked `<90%`: there the goal (engine within 0.97-1.03 of iperf3)
does not apply, the ratio is a documented reading.

The default matrix (3 RTTs x 2 losses x 4 rates + trace = 30 cells, one run each) takes about 33 minutes on a
2-core machine: both engines at 8 streams share one iperf3 -P 8 reference a cell (speedtest-cli's 8 threads are
fixed; `--http-streams 4` measures the http engine's default against its own iperf3 -P 4, ~20 s more a cell),
the http engine at 8 s a direction and iperf3 at 6 s after its 2 s (measured: 31.1 min at load 0.2-3.8 from
other sessions). `--quick`: 2 cells, ~2 min.

Reading the default tables (this 2-core machine, single runs unless said):
- iperf3 over 1.01 of the ceiling (marked `^`, up to 1.063 at 120 ms RTT): iperf3's receiver also counts what
  was still in flight when its sender stopped (about RTT + queue, 0.17 s of a 6 s window at 120 ms), so the
  engine / iperf3 ratio there is low by as much. A longer --iperf-seconds shrinks it.
- LTE trace: the engines' measured windows start ~1-3 s after the trace restarts, iperf3's 2 s after; they see
  different stretches of the 10 s trace, so the trace cells read 0.85-1.21 whichever the engine: a reading, not
  a verdict on either.
- http: it opens its sockets with cubic (httpsession.py: what phones and PCs send with, and the most accurate on
  a shallow shaper queue), while the system here defaults to BBR. With 0.5 % loss cubic's upload collapses as
  Mathis predicts (1448 B x 8 / RTT x 1.22 / sqrt(0.005) = 3.3 Mbit/s a stream at 60 ms): against a BBR iperf3
  (--no-same-congestion) upload read 0.16-0.77 at 40-120 Mbit/s with loss, both directions 0.97-1.01 without.
  So each engine's upload is compared with an iperf3 upload on its own congestion control (the default): with
  cubic on both, 20 ms / 0.5 % / 40 Mbit/s reads 1.001 / 1.000 (iperf3 fills 1.000), and every other lossy cell
  is one where cubic iperf3 itself fills 18-71 % of the link (no goal; single runs read 0.92-1.13: cubic under
  random loss varies run to run).
- speedtest: at 20 ms download 0.972-1.007, upload 0.913-1.004; at 3 Mbit/s within 0.97-1.03 both ways (upload
  0.972-1.018 of iperf3 in all six cells, 1.018 being 1.007 of the ceiling); at 60-120 ms and 12-120 Mbit/s
  download 0.75-1.03, upload 0.74-0.97. The engine counts what crossed the link (the kernel's counts of every
  connection, the ramp-up left out); what is missing is speedtest-cli's own traffic. It opens a new connection for
  each of its 40 files and 51 uploads, each starting from 10 segments, and joins them in order: at 60 ms and 40
  Mbit/s one slow file held new ones back so that 3-6 of its 8 files were in flight for 3 of its 10 s; at 120 ms
  its uploads had 7.45 of 8 in flight on average, yet the acknowledged rate fell to 12 Mbit/s in 0.5 s windows as
  each new connection started (30.7 Mbit/s over the direction against iperf3's 37.7 with 8 long streams). Median of
  3 at 40 Mbit/s, no loss: 60 ms 0.991 / 0.874, 120 ms 0.920 / 0.774 (before the engine reset each direction's
  connections and left the ramp-up out: 0.923 / 0.721 and 0.819 / 0.631). Fixing that would mean changing
  speedtest-cli's protocol, not its measurement.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from emulated import EmulatedLab, lte_trace, trace_mean_mbit  # noqa: E402
from netlab import NetLab, ceiling_mbps  # noqa: E402

FILL_GOAL = 0.90  # iperf3 fills at least this share of the ceiling: the 0.97-1.03 goal applies
GOAL = (0.97, 1.03)
OVER_CEILING = 1.01  # iperf3 above this share of the ceiling counted bytes from outside its window
SPEEDTEST_STREAMS = 8  # speedtest-cli's download and upload threads at these rates (its configuration)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rtts", type=float, nargs="+", default=[20, 60, 120], metavar="MS")
    p.add_argument("--losses", type=float, nargs="+", default=[0, 0.005], metavar="SHARE")
    p.add_argument("--no-trace", action="store_true", help="leave out the LTE-like trace column")
    p.add_argument("--http-streams", type=int, default=SPEEDTEST_STREAMS, metavar="N")
    p.add_argument("--http-duration", type=float, default=8.0, metavar="S")
    p.add_argument("--iperf-seconds", type=float, default=6.0, metavar="S", help="measured, after -O 2")
    p.add_argument("--same-congestion", action=argparse.BooleanOptionalAction, default=True,
                   help="compare each engine's upload with an iperf3 upload on the congestion control its sockets "
                        "use (the http engine: cubic); --no-same-congestion: iperf3 on the system's (BBR here)")
    p.add_argument("--quick", action="store_true", help="2 cells: 120 ms RTT, no loss, 12 and 40 Mbit/s")


def one_run(lab: NetLab, url: str, engine: str, store: Path, extra: list[str]) -> dict:
    """`xaprobe measure --engine E` once in the lab's client namespace: its figures, CPU s, peak RSS, MB moved."""
    out, cpu, rss = lab.run_client([sys.executable, "-m", "xaprobe.agent", "--store", str(store), "measure",
                                    "--engine", engine, "--server", url, "--json", *extra])
    m = json.loads(out.strip().splitlines()[-1])
    if m["status"] != "ok":
        raise RuntimeError(f"{engine}: {m['error']}")
    return {"down": m["download_mbps"], "up": m["upload_mbps"], "latency": m["latency_ms"], "cpu": cpu,
            "rss": rss, "mb": (m["bytes_down"] + m["bytes_up"]) / 1e6}


# the congestion control each engine's own sending sockets use ("" the system's): its upload is compared with an
# iperf3 upload that uses the same (a download's sender is the test server, on the system's default, for both)
UPLOAD_CONGESTION = {"http": "cubic", "speedtest": ""}


def iperf3(lab: EmulatedLab, streams: int, seconds: float, reverse: bool, congestion: str = "") -> float:
    """Mbit/s iperf3 received on the lab's path, its first 2 s (slow start) left out; congestion: the sender's
    congestion control ("" the system's)."""
    server = lab.spawn(lab.server_ns, ["iperf3", "-s", "-1"], stdout=subprocess.DEVNULL)
    time.sleep(0.3)
    lab.restart_trace()
    out, _, _ = lab.run_client(["iperf3", "-c", lab.server_ip, "-P", str(streams), "-t", f"{seconds:g}", "-O", "2",
                                "-J", *(["-R"] if reverse else []), *(["-C", congestion] if congestion else [])],
                               timeout=seconds + 60)
    server.wait(timeout=15)  # iperf3 -s -1 leaves after its one test: the next one may then listen
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6


def links(args: argparse.Namespace) -> list[tuple[str, float, list | None]]:
    out: list[tuple[str, float, list | None]] = [(f"{r:g}", r, None) for r in args.rates]
    if not args.no_trace:
        trace = lte_trace(seconds=10)
        out.append(("lte", trace_mean_mbit(trace), trace))
    return out


def cell(args: argparse.Namespace, rtt: float, loss: float, link: tuple[str, float, list | None],
         store: Path) -> list[dict]:
    """Every engine and iperf3 on one emulated path, --runs times interleaved; one row per engine (medians)."""
    name, mean, trace = link
    streams = {"speedtest": SPEEDTEST_STREAMS, "http": args.http_streams}
    extra = {"speedtest": [], "http": ["--streams", str(args.http_streams), "--duration", f"{args.http_duration:g}"]}
    runs: dict[str, list[dict]] = {e: [] for e in args.engines}
    key = {e: (streams[e], UPLOAD_CONGESTION.get(e, "") if args.same_congestion else "") for e in args.engines}
    refs: dict[tuple[int, str], list[tuple[float, float]]] = {key[e]: [] for e in args.engines}
    with EmulatedLab(7, rate_mbit=mean, rtt_ms=rtt, loss=loss, trace=trace) as lab:
        url = lab.start_speedtest_server()
        for _ in range(args.runs):
            for engine in args.engines:
                lab.restart_trace()
                runs[engine].append(one_run(lab, url, engine, store, extra[engine]))
                time.sleep(1)  # the reset connections' last segments leave the link
            for n, congestion in refs:
                refs[n, congestion].append((iperf3(lab, n, args.iperf_seconds, reverse=True),
                                            iperf3(lab, n, args.iperf_seconds, reverse=False, congestion=congestion)))
    ceiling = ceiling_mbps(mean)
    rows = []
    for engine in args.engines:
        down = statistics.median(r["down"] for r in runs[engine])
        up = statistics.median(r["up"] for r in runs[engine])
        ref_down = statistics.median(d for d, _ in refs[key[engine]])
        ref_up = statistics.median(u for _, u in refs[key[engine]])
        rows.append({"rtt_ms": rtt, "loss": loss, "link": name, "engine": engine, "runs": args.runs,
                     "streams": streams[engine], "upload_congestion": key[engine][1] or "system",
                     "down": round(down, 3), "up": round(up, 3),
                     "iperf_down": round(ref_down, 3), "iperf_up": round(ref_up, 3),
                     "down_vs_iperf": round(down / ref_down, 4), "up_vs_iperf": round(up / ref_up, 4),
                     "iperf_fill_down": round(ref_down / ceiling, 4), "iperf_fill_up": round(ref_up / ceiling, 4),
                     "latency": statistics.median(r["latency"] for r in runs[engine]),
                     "all_down": [r["down"] for r in runs[engine]], "all_up": [r["up"] for r in runs[engine]]})
    return rows


def run(args: argparse.Namespace) -> list[dict]:
    """Every cell of the matrix; one row per (RTT, loss, link, engine), printed to stderr as it comes."""
    if args.quick:
        args.rtts, args.losses, args.rates, args.no_trace = [120.0], [0.0], [12.0, 40.0], True
    rows = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for rtt in args.rtts:
            for loss in args.losses:
                for link in links(args):
                    for row in cell(args, rtt, loss, link, Path(tmp) / "probe.db"):
                        rows.append(row)
                        print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"{len(rows)} rows in {(time.monotonic() - started) / 60:.1f} min", file=sys.stderr)
    return rows


def _ratio(value: float, fill: float) -> str:
    if fill < FILL_GOAL:
        return f"{value:.3f} <90%"
    return f"{value:.3f}" + ("" if GOAL[0] <= value <= GOAL[1] else " !") + (" ^" if fill > OVER_CEILING else "")


def print_tables(rows: list[dict]) -> None:
    """One table per engine: engine / iperf3 each way, iperf3 / ceiling; `<90%` where iperf3 fills less than
    90 % of the ceiling (no goal there), `!` where the goal is missed, `^` where iperf3 read over the ceiling."""
    for engine in dict.fromkeys(r["engine"] for r in rows):
        mine = [r for r in rows if r["engine"] == engine]
        print(f"\n{engine} (streams {mine[0]['streams']}, median of {mine[0]['runs']}, iperf3's upload on "
              f"{mine[0]['upload_congestion']} congestion control): engine / iperf3, "
              "iperf3 / ceiling; `!` outside 0.97-1.03, `<90%` iperf3 under 90 % of the ceiling, `^` iperf3 over it")
        print(f"{'RTT':>4} {'loss':>5} {'link':>5} {'down/iperf3':>14} {'up/iperf3':>14} {'iperf3 fill d/u':>15} "
              f"{'down':>7} {'up':>7} {'lat ms':>7}")
        for r in mine:
            print(f"{r['rtt_ms']:>4g} {r['loss'] * 100:>4.1f}% {r['link']:>5} "
                  f"{_ratio(r['down_vs_iperf'], r['iperf_fill_down']):>14} "
                  f"{_ratio(r['up_vs_iperf'], r['iperf_fill_up']):>14} "
                  f"{r['iperf_fill_down']:>7.3f}/{r['iperf_fill_up']:<7.3f} {r['down']:>7.2f} {r['up']:>7.2f} "
                  f"{r['latency']:>7.2f}")
