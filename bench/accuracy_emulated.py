"""The engines against iperf3 on the emulated link (tests/linkemu.c): RTT x loss x (rate or LTE-like trace), one
table per engine of engine / iperf3 and iperf3 / ceiling, medians of N runs (needs root, gcc, ethtool, iperf3).

Each run is interleaved on one emulated path: every engine once (`xaprobe measure --engine E`), then iperf3 with
the engines' streams, download (-R) then upload, each for --iperf-seconds after 2 s left out (-O 2, slow start).
A cell whose iperf3 fills less than 90 % of the ceiling (rate x 1448/1514) is marked `<90%`: there the goal
(engine within 0.97-1.03 of iperf3) does not apply, the ratio is a documented reading.

An LTE-like trace (10 s of 100-500 ms steps, repeated) restarts before every engine run and every iperf3 run. A
rate that moves makes "the same duration" not enough: two windows a second apart see different rates. So on a
trace each engine runs through bench/measure_windows.py, which notes where (CLOCK_MONOTONIC, the emulator's
clock) each direction's steady stretch lies; that becomes seconds of the trace (a download's bytes are counted a
one-way delay after they left the emulated wire, an upload's when the acknowledgement is back, a round trip
after), and then iperf3 with the engine's streams runs, the trace restarting once its data has flowed for 2 s
(as -O 2 leaves out in the fixed cells), its receiving interface's byte counts read every 20 ms: the engine is
compared with what iperf3 moved over that same stretch of the trace, and both with the trace's own ceiling over
it (emulated.trace_ceiling).

The default matrix (3 RTTs x 2 losses x 4 rates + trace = 30 cells, one run each) takes about 33 minutes on a
2-core machine: both engines at 8 streams share one iperf3 -P 8 reference a cell (speedtest-cli's 8 threads are
fixed; `--http-streams 4` measures the http engine's default against its own iperf3 -P 4, ~20 s more a cell),
the http engine at 8 s a direction and iperf3 at 6 s after its 2 s (measured: 31.1 min at load 0.2-3.8 from
other sessions). `--quick`: 2 cells, ~2 min.

Reading the default tables (this 2-core machine, single runs unless said):
- iperf3 over 1.01 of the ceiling (marked `^`, up to 1.063 at 120 ms RTT): iperf3's receiver also counts what
  was still in flight when its sender stopped (about RTT + queue, 0.17 s of a 6 s window at 120 ms), so the
  engine / iperf3 ratio there is low by as much; one whose window starts inside a loss recovery reads under it
  (0.964). A 6 s iperf3 read 0.964-1.078 of the ceiling at 120 ms; with --iperf-seconds 20, 0.973-1.011 at 60-120
  ms, the http engine's downloads (rated by the segments that arrived) 0.996-1.001 throughout.
- LTE trace (http, over the same stretch of the trace): medians of 3 at 20 and 60 ms 0.988-1.012 down, 0.999-1.000
  up, the engine 0.981-1.000 of the trace's ceiling; at 120 ms medians of 3 1.002/1.015 and (loss) 0.999/1.000,
  median of 5 1.012/0.971, iperf3 filling 0.977-1.000. Single
  downloads swing (3 of 16 at 20-60 ms read 0.93-0.96: the engine under the ceiling that run, iperf3 at it), so
  a verdict on a trace takes --runs 3. Compared as before (iperf3's own 2-8 s) the same engine read 1.06-1.19.
- http: it opens its sockets with cubic (httpsession.py: what phones and PCs send with, and the most accurate on
  a shallow shaper queue), while the system here defaults to BBR. With 0.5 % loss cubic's upload collapses as
  Mathis predicts (1448 B x 8 / RTT x 1.22 / sqrt(0.005) = 3.3 Mbit/s a stream at 60 ms): against a BBR iperf3
  (--no-same-congestion) upload read 0.16-0.77 at 40-120 Mbit/s with loss, both directions 0.97-1.01 without.
  So each engine's upload is compared with an iperf3 upload on its own congestion control (the default): with
  cubic on both, 20 ms / 0.5 % / 40 Mbit/s reads 1.001 / 1.000 (iperf3 fills 1.000), and every other lossy cell
  is one where cubic iperf3 itself fills 14-71 % of the link (no goal; single runs read 0.88-1.50: cubic under
  random loss varies run to run).
- speedtest: every fixed-rate cell, single runs, within 0.97-1.03 of iperf3 both ways (download 0.988-1.021,
  upload 0.968-1.021; at 20 ms 0.993-1.005), with two readings at the edge: 120 ms / 0 / 40 upload 0.968 (median
  of 3: 0.975, runs 0.962-0.981) and 120 ms / 0.5 % / 120 download 1.032, where iperf3 read 0.966 of the ceiling
  and the engine 0.997. The engine's uploads use the system's congestion control (BBR here), as iperf3's, so with
  loss both fill the link. Before, 60-120 ms at 12-120 Mbit/s read 0.75-1.03 down and 0.74-0.97 up (medians of 3
  at 40 Mbit/s: 60 ms 0.991 / 0.874 -> now 1.003 / 1.001; 120 ms 0.920 / 0.774 -> 1.003 / 0.975): speedtest-cli
  opened a new connection from 10 segments for each of its 40 files and 51 uploads and joined its threads in
  order, so one file starved beside warm connections held every new one behind it. The engine keeps speedtest-
  cli's requests, sizes, 8 threads and 10 s, runs them on kept-alive connections and starts each thread's next
  request as soon as its own ends (speedtest_client.busy); downloads are rated by the segments that arrived, as
  the http engine's. What is left at 120 ms is the upload's request-answer round trip per body (512 KiB-7 MiB):
  a connection idles one RTT between two uploads. On the LTE-like trace (over the same stretch), medians of 3:
  20 and 60 ms 1.003-1.021 down, 0.986-1.008 up, the engine 0.940-1.000 of the trace's ceiling. At 120 ms (iperf3
  warmed before the restart) 1.023 / 0.999, and with loss 1.014 / 1.035 (median of 5; medians of 3 had read
  1.046 and 1.079), where iperf3 fills 0.91-0.95 of the trace's ceiling and the engine 0.93-0.97: the upload's
  figure is what the server acknowledged, under the ceiling (median 0.94); its 8 BBR connections move more than
  iperf3's 8 over the same seconds of a rate that steps faster than a 120 ms control loop follows.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from emulated import EmulatedLab, lte_trace, trace_ceiling, trace_mean_mbit  # noqa: E402
from netlab import NetLab, ceiling_mbps  # noqa: E402

from xaprobe.agent.engines import rates  # noqa: E402

FILL_GOAL = 0.90  # iperf3 fills at least this share of the ceiling: the 0.97-1.03 goal applies
GOAL = (0.97, 1.03)
OVER_CEILING = 1.01  # iperf3 above this share of the ceiling counted bytes from outside its window
WINDOWS_SCRIPT = Path(__file__).with_name("measure_windows.py")
SPEEDTEST_STREAMS = 8  # speedtest-cli's download and upload threads at these rates (its configuration)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rtts", type=float, nargs="+", default=[20, 60, 120], metavar="MS")
    p.add_argument("--losses", type=float, nargs="+", default=[0, 0.005], metavar="SHARE")
    p.add_argument("--no-trace", action="store_true", help="leave out the LTE-like trace column")
    p.add_argument("--trace-only", action="store_true", help="only the LTE-like trace column")
    p.add_argument("--http-streams", type=int, default=SPEEDTEST_STREAMS, metavar="N")
    p.add_argument("--http-duration", type=float, default=8.0, metavar="S")
    p.add_argument("--iperf-seconds", type=float, default=6.0, metavar="S", help="measured, after -O 2")
    p.add_argument("--same-congestion", action=argparse.BooleanOptionalAction, default=True,
                   help="compare each engine's upload with an iperf3 upload on the congestion control its sockets "
                        "use (the http engine: cubic); --no-same-congestion: iperf3 on the system's (BBR here)")
    p.add_argument("--quick", action="store_true", help="2 cells: 120 ms RTT, no loss, 12 and 40 Mbit/s")


def one_run(lab: NetLab, url: str, engine: str, store: Path, extra: list[str], windows: Path | None = None) -> dict:
    """`xaprobe measure --engine E` once in the lab's client namespace: its figures, CPU s, peak RSS, MB moved;
    with windows (a file), also where each direction's rate was measured (bench/measure_windows.py)."""
    command = ([sys.executable, str(WINDOWS_SCRIPT), str(windows)] if windows else
               [sys.executable, "-m", "xaprobe.agent"])
    out, cpu, rss = lab.run_client([*command, "--store", str(store), "measure", "--engine", engine, "--server",
                                    url, "--json", *extra])
    m = json.loads(out.strip().splitlines()[-1])
    if m["status"] != "ok":
        raise RuntimeError(f"{engine}: {m['error']}")
    result = {"down": m["download_mbps"], "up": m["upload_mbps"], "latency": m["latency_ms"], "cpu": cpu,
              "rss": rss, "mb": (m["bytes_down"] + m["bytes_up"]) / 1e6}
    if windows:
        result["windows"] = json.loads(windows.read_text())["windows"]
        if len(result["windows"]) != 2:
            raise RuntimeError(f"{engine}: {len(result['windows'])} measured stretches, not one a direction")
    return result


IPERF_START_S = 10.0  # iperf3's streams open and its data flows within this, or the run fails
FLOWING_BYTES = 100_000  # taken in by the receiving end: iperf3's data (not its control exchange) is flowing
WARM_S = 2.0  # then this long before the trace restarts, as the fixed cells leave iperf3's first 2 s out (-O 2)


def _rx_bytes(pid: int, interface: str) -> int | None:
    """Bytes the interface took in, as the network namespace of process pid counts them."""
    try:
        for line in Path(f"/proc/{pid}/net/dev").read_text().splitlines():
            name, _, counts = line.partition(":")
            if name.strip() == interface:
                return int(counts.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return None


def iperf3_over(lab: EmulatedLab, streams: int, reverse: bool, congestion: str, stretch: tuple[float, float],
                delay: float) -> float:
    """Mbit/s of goodput iperf3 moved across the emulated wire during seconds [a, b] of the trace (from a restart):
    its receiving end's interface counts, sampled every 20 ms while it runs, taken one one-way delay later than a
    and b (a frame reaches the receiver that long after leaving the wire), frames to goodput (1448 of 1514 bytes).
    The same stretch of the same trace as the engine's measured one. The trace restarts once iperf3's data has
    flowed for WARM_S (the fixed cells' -O 2), so that its streams' start is never inside the stretch, as the
    engine's own start is not; iperf3 is stopped once the stretch is covered."""
    a, b = stretch
    server = lab.spawn(lab.server_ns, ["iperf3", "-s", "-1"], stdout=subprocess.DEVNULL)
    time.sleep(0.3)
    client = lab.spawn(lab.client_ns, ["iperf3", "-c", lab.server_ip, "-P", str(streams), "-t",
                                       f"{math.ceil(IPERF_START_S + WARM_S + b + delay + 1.5)}",
                                       *(["-R"] if reverse else []), *(["-C", congestion] if congestion else [])],
                        stdout=subprocess.DEVNULL)
    receiver, interface = (client, lab.client_if) if reverse else (server, lab.server_if)
    before, spawned = _rx_bytes(receiver.pid, interface), time.monotonic()
    while (_rx_bytes(receiver.pid, interface) or 0) < (before or 0) + FLOWING_BYTES:
        if client.poll() is not None or time.monotonic() - spawned > IPERF_START_S:
            raise RuntimeError(f"iperf3's data did not flow within {IPERF_START_S:g} s")
        time.sleep(0.02)
    time.sleep(WARM_S)
    restarted = lab.restart_trace()
    samples: list[tuple[float, int]] = []
    while client.poll() is None and (not samples or samples[-1][0] < b + delay + 0.1):
        rx = _rx_bytes(receiver.pid, interface)
        if rx is not None:
            samples.append((time.monotonic() - restarted, rx))
        time.sleep(0.02)
    client.terminate()  # its -t leaves room for a slow start of its streams: no need to run it out
    client.wait(timeout=15)
    server.wait(timeout=15)
    if not samples or samples[-1][0] < b + delay:
        raise RuntimeError(f"iperf3 ended before second {b + delay:.1f} of the trace")
    moved = rates.bytes_at(samples, b + delay) - rates.bytes_at(samples, a + delay)
    return moved * 8 / (b - a) / 1e6 * 1448 / 1514


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
    out: list[tuple[str, float, list | None]] = [] if args.trace_only else [(f"{r:g}", r, None) for r in args.rates]
    if not args.no_trace:
        trace = lte_trace(seconds=10)
        out.append(("lte", trace_mean_mbit(trace), trace))
    return out


def _engine_setups(args: argparse.Namespace) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Each engine's streams and the arguments its `xaprobe measure` gets."""
    return ({"speedtest": SPEEDTEST_STREAMS, "http": args.http_streams},
            {"speedtest": [], "http": ["--streams", str(args.http_streams), "--duration", f"{args.http_duration:g}"]})


def _upload_congestion(args: argparse.Namespace, engine: str) -> str:
    """The congestion control of the iperf3 upload an engine's upload is compared with ("" the system's)."""
    return UPLOAD_CONGESTION.get(engine, "") if args.same_congestion else ""


def cell(args: argparse.Namespace, rtt: float, loss: float, link: tuple[str, float, list | None],
         store: Path) -> list[dict]:
    """Every engine and iperf3 on one emulated path, --runs times interleaved; one row per engine (medians)."""
    name, mean, trace = link
    streams, extra = _engine_setups(args)
    runs: dict[str, list[dict]] = {e: [] for e in args.engines}
    key = {e: (streams[e], _upload_congestion(args, e)) for e in args.engines}
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
                     "fill_down": round(down / ceiling, 4), "fill_up": round(up / ceiling, 4),
                     "latency": statistics.median(r["latency"] for r in runs[engine]),
                     "all_down": [r["down"] for r in runs[engine]], "all_up": [r["up"] for r in runs[engine]]})
    return rows


def traced_cell(args: argparse.Namespace, rtt: float, loss: float, link: tuple[str, float, list],
                store: Path) -> list[dict]:
    """Every engine on the emulated path with a rate trace, --runs times, each run against iperf3 (the engine's
    streams) over the same seconds of the trace as the engine's measured stretches, and against the trace's own
    ceiling over them; one row per engine (medians)."""
    name, mean, trace = link
    delay = rtt / 2 / 1000
    streams, extra = _engine_setups(args)
    runs: dict[str, list[dict]] = {e: [] for e in args.engines}
    with EmulatedLab(7, rate_mbit=mean, rtt_ms=rtt, loss=loss, trace=trace) as lab:
        url = lab.start_speedtest_server()
        for _ in range(args.runs):
            for engine in args.engines:
                restarted = lab.restart_trace()
                r = one_run(lab, url, engine, store, extra[engine], windows=store.with_suffix(".windows.json"))
                time.sleep(1)
                # the wire seconds each rate covers: a download's bytes are counted a one-way delay after they
                # left the wire, an upload's when their acknowledgement is back, a round trip after
                (d0, d1), (u0, u1) = r["windows"]
                down = (d0 - restarted - delay, d1 - restarted - delay)
                up = (u0 - restarted - 2 * delay, u1 - restarted - 2 * delay)
                r["iperf_down"] = iperf3_over(lab, streams[engine], True, "", down, delay)
                r["iperf_up"] = iperf3_over(lab, streams[engine], False, _upload_congestion(args, engine), up, delay)
                r["ceiling_down"], r["ceiling_up"] = trace_ceiling(trace, *down), trace_ceiling(trace, *up)
                r["stretches"] = [[round(x, 2) for x in down], [round(x, 2) for x in up]]
                runs[engine].append(r)

    def median(engine: str, f) -> float:
        return statistics.median(f(r) for r in runs[engine])

    rows = []
    for engine in args.engines:
        rows.append({"rtt_ms": rtt, "loss": loss, "link": name, "engine": engine, "runs": args.runs,
                     "streams": streams[engine], "upload_congestion": _upload_congestion(args, engine) or "system",
                     "down": round(median(engine, lambda r: r["down"]), 3),
                     "up": round(median(engine, lambda r: r["up"]), 3),
                     "iperf_down": round(median(engine, lambda r: r["iperf_down"]), 3),
                     "iperf_up": round(median(engine, lambda r: r["iperf_up"]), 3),
                     "down_vs_iperf": round(median(engine, lambda r: r["down"] / r["iperf_down"]), 4),
                     "up_vs_iperf": round(median(engine, lambda r: r["up"] / r["iperf_up"]), 4),
                     "iperf_fill_down": round(median(engine, lambda r: r["iperf_down"] / r["ceiling_down"]), 4),
                     "iperf_fill_up": round(median(engine, lambda r: r["iperf_up"] / r["ceiling_up"]), 4),
                     "fill_down": round(median(engine, lambda r: r["down"] / r["ceiling_down"]), 4),
                     "fill_up": round(median(engine, lambda r: r["up"] / r["ceiling_up"]), 4),
                     "latency": median(engine, lambda r: r["latency"]),
                     "stretches": [r["stretches"] for r in runs[engine]],
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
                    measure = traced_cell if link[2] else cell
                    for row in measure(args, rtt, loss, link, Path(tmp) / "probe.db"):
                        rows.append(row)
                        print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"{len(rows)} rows in {(time.monotonic() - started) / 60:.1f} min", file=sys.stderr)
    return rows


def _ratio(value: float, fill: float) -> str:
    if fill < FILL_GOAL:
        return f"{value:.3f} <90%"
    return f"{value:.3f}" + ("" if GOAL[0] <= value <= GOAL[1] else " !") + (" ^" if fill > OVER_CEILING else "")


def print_tables(rows: list[dict]) -> None:
    """One table per engine: engine / iperf3 each way, iperf3 / ceiling, engine / ceiling; `<90%` where iperf3
    fills less than 90 % of the ceiling (no goal there), `!` where the goal is missed, `^` where iperf3 read over
    the ceiling. On a trace the ceiling is the trace's over the engine's measured stretch, and iperf3's figure is
    what it moved over that same stretch of the trace."""
    for engine in dict.fromkeys(r["engine"] for r in rows):
        mine = [r for r in rows if r["engine"] == engine]
        print(f"\n{engine} (streams {mine[0]['streams']}, median of {mine[0]['runs']}, iperf3's upload on "
              f"{mine[0]['upload_congestion']} congestion control): engine / iperf3, "
              "iperf3 / ceiling, engine / ceiling (a trace's: over the engine's stretch, iperf3 over the same); `!` "
              "outside 0.97-1.03, `<90%` iperf3 under 90 % of the ceiling, `^` iperf3 over it")
        print(f"{'RTT':>4} {'loss':>5} {'link':>5} {'down/iperf3':>14} {'up/iperf3':>14} {'iperf3 fill d/u':>15} "
              f"{'engine fill d/u':>15} {'down':>7} {'up':>7} {'lat ms':>7}")
        for r in mine:
            print(f"{r['rtt_ms']:>4g} {r['loss'] * 100:>4.1f}% {r['link']:>5} "
                  f"{_ratio(r['down_vs_iperf'], r['iperf_fill_down']):>14} "
                  f"{_ratio(r['up_vs_iperf'], r['iperf_fill_up']):>14} "
                  f"{r['iperf_fill_down']:>7.3f}/{r['iperf_fill_up']:<7.3f} "
                  f"{r['fill_down']:>7.3f}/{r['fill_up']:<7.3f} {r['down']:>7.2f} {r['up']:>7.2f} "
                  f"{r['latency']:>7.2f}")
