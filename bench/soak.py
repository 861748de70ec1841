"""Soak: the switch at a steady rate for a long time, sampled every second.

SIPp callers -> `hotline switch` (media anchored and recorded, as in production) ->
registered SIPp seats, as bench/switch.py sets them up, but for minutes rather than
seconds and without message traces (they would fill the disk). Every second: calls
SIPp placed in that second, calls in progress, the switch's resident memory and CPU.
Printed: a line a minute, then the rate's lowest second after the first minute, the
seconds the rate fell below 90% of the target (stalls; SIPp's own seconds), the switch's
memory (each minute's highest, and its trend over the second half and the last three
minutes), SIPp's failures, and every call placed against the rows the switch wrote.

    python bench/soak.py [--rate 40] [--minutes 30] [--hold-ms 5000] [--agents 400]

With --scenario FILE, a scenario live instead (`hotline simulate --live`'s driver): at
--load times its rate (2), compressed into --minutes of wall time (10), the switch's
memory and CPU every 10 s; printed: calls placed, rows written, calls lost, failures by
cause, memory at the start and the end, and the live-vs-virtual table.

    python bench/soak.py --scenario scenarios/library/weekday.yaml --load 2 --minutes 10
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from switch import SCENARIOS, SIPP, BenchSwitch, Sipp, cpu_seconds, rss_mb  # noqa: E402

from records.db import connect  # noqa: E402
from scenarios.live import free_udp_port  # noqa: E402


def sipp_rows(stats: Path) -> list[dict]:
    lines = [line.split(";") for line in stats.read_text().splitlines() if line.strip()]
    if len(lines) < 2:
        return []
    header = lines[0]
    return [dict(zip(header, row)) for row in lines[1:] if len(row) >= len(header) - 1]


def memory_summary(samples: list[tuple[float, float]]) -> str:
    """The switch's memory over a soak, from (seconds, MB) samples a second apart: each
    minute's highest (the switch gives memory back every minute, so one sample a minute
    lands anywhere in that saw-tooth), and their trend over the second half and over the
    last three minutes."""
    minutes = [max(rss for t, rss in samples if m * 60 <= t < (m + 1) * 60) for m in range(int(samples[-1][0] // 60))
               ] if samples else []
    if len(minutes) < 4:
        return "switch memory: too short a run to say"

    def slope(part: list[float]) -> float:   # least squares, MB a minute
        mean_i, mean_m = (len(part) - 1) / 2, sum(part) / len(part)
        return sum((i - mean_i) * (m - mean_m) for i, m in enumerate(part)) / sum((i - mean_i) ** 2 for i in range(len(part)))

    return (f"switch memory, each minute's highest: {', '.join(f'{m:.1f}' for m in minutes)} MB; "
            f"trend {slope(minutes[len(minutes) // 2:]):+.2f} MB a minute over the second half, "
            f"{slope(minutes[-3:]):+.2f} over the last three minutes")


def scenario_soak(args) -> int:
    """A scenario at `--load` times its rate, compressed (--speed) into `--minutes` of wall
    time, live through `hotline simulate --live`'s driver; the switch sampled every 10 s."""
    import asyncio
    import dataclasses
    import threading

    from scenarios.live_run import print_comparison, run_live
    from scenarios.runs import RunWriter
    from scenarios.schema import load_scenario

    scenario = load_scenario(args.scenario)
    scenario = dataclasses.replace(scenario, segments=tuple((t, rate * args.load) for t, rate in scenario.segments))
    speed = (scenario.horizon_s or 3600.0) / (args.minutes * 60)
    workdir = Path(tempfile.mkdtemp(prefix="hotline-soak-scenario-"))
    samples: list[tuple[float, float, float]] = []   # (t, rss MB, CPU %)
    done = threading.Event()
    places: list = []

    def sample() -> None:
        last_cpu = last_wall = None
        started = time.monotonic()
        while not done.wait(10.0):
            if not places or places[0].process is None or places[0].process.poll() is not None:
                continue
            pid = places[0].process.pid
            cpu, wall = cpu_seconds(pid), time.monotonic()
            if last_cpu is not None:
                samples.append((wall - started, rss_mb(pid), 100 * (cpu - last_cpu) / (wall - last_wall)))
                print(f"  {wall - started:5.0f} s: switch {samples[-1][1]:6.1f} MB, CPU {samples[-1][2]:5.1f}%",
                      flush=True)
            last_cpu, last_wall = cpu, wall

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    print(f"soak: {scenario.name} at {args.load:g}x its rate, x{speed:.1f} ({args.minutes:g} min of wall time), "
          f"work directory {workdir}", flush=True)
    try:
        report = asyncio.run(run_live(scenario, args.scenario, RunWriter(workdir / "run", args.scenario),
                                      seed=scenario.seed, calls=None, speed=speed, residents=2000,
                                      on_switch=places.append, say=lambda text: print(text, flush=True),
                                      callers="sipp" if SIPP else "phones"))
    finally:
        done.set()
    count = report["accounting"]
    print(f"calls placed {count['placed']}, rows written {count['rows']}, calls lost {count['lost']} "
          f"(unexpected rows {count['unexpected_rows']}); outcomes {count['outcomes']}")
    print(f"failures by cause: {count['failed_by_cause'] or 'none'}")
    if samples:
        print(f"switch memory: {samples[0][1]:.1f} MB at the start, {samples[-1][1]:.1f} MB at the end; CPU mean "
              f"{sum(s[2] for s in samples) / len(samples):.1f}%, highest {max(s[2] for s in samples):.1f}%")
    print(f"clocks: {report['simulated_s'] / 3600:.2f} scenario hours in {report['wall_s'] / 60:.1f} min")
    print("live against virtual:")
    print_comparison(report["comparison"])
    print(f"run directory {workdir / 'run'}")
    return 0 if count["lost"] == 0 and count["unexpected_rows"] == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", metavar="FILE", help="soak a scenario live instead of a constant rate "
                                                           "(with --load and --minutes)")
    parser.add_argument("--load", type=float, default=2.0, help="--scenario: times its arrival rate (2)")
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--hold-ms", type=int, default=5000)
    parser.add_argument("--agents", type=int, default=400)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--full-gc-every", type=float, metavar="S",
                        help="the switch's full garbage collection at least every S seconds (memory.full_every_s; "
                             "default 900), each logged in the work directory's switch.log: to see memory come back")
    args = parser.parse_args()
    if args.scenario:
        if "--minutes" not in sys.argv:
            args.minutes = 10.0
        return scenario_soak(args)
    if SIPP is None:
        print("bench/soak.py needs sipp (apt-get install sip-tester)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="hotline-soak-"))
    seconds = args.minutes * 60
    bench = BenchSwitch(workdir, args.agents, name="soak", extra_config=(
        f"memory:\n  full_every_s: {args.full_gc_every}\n  slow_s: 0\n" if args.full_gc_every else ""))
    agents = callers = None
    samples: list[tuple[float, int, float, float]] = []   # (t, in progress, rss, cpu%)
    sipp_seconds: list[tuple[float, int]] = []   # (t read, calls placed): one for each of SIPp's seconds
    try:
        switch_pid = bench.process.pid
        print(f"switch pid {switch_pid} (py-spy record --pid {switch_pid} profiles it)", flush=True)
        agents = bench.bring_up_seats(trace=False)
        calls = int(args.rate * seconds)
        callers = Sipp("callers", workdir, [f"127.0.0.1:{bench.sip_port}", "-sf", str(SCENARIOS / "caller.xml"),
                                            "-s", "2000", "-d", str(args.hold_ms), "-r", str(args.rate),
                                            "-m", str(calls), "-l", str(args.agents), "-p", str(free_udp_port()),
                                            "-timeout", f"{seconds + args.hold_ms / 1000 + 120:.0f}s"],
                       trace=False).start()
        print(f"soak: {args.rate:g} calls/s for {args.minutes:g} min, each held {args.hold_ms} ms, {args.agents} "
              f"seats, media anchored and recorded; work directory {workdir}", flush=True)
        started = time.monotonic()
        cpu_last, wall_last = cpu_seconds(switch_pid), started
        seen = 0
        while callers.process.poll() is None:
            # on the second (not a second after the last sample): the switch's own minutely
            # work (the allocator's trim) then keeps its place in each minute's samples
            time.sleep(max(0.0, started + len(samples) + 1 - time.monotonic()))
            now = time.monotonic()
            rows = sipp_rows(callers.stats)
            new = rows[seen:]
            seen = len(rows)
            # SIPp writes a row for each of its own seconds, on its own clock: the rate is
            # judged per row (a sample taken just before SIPp's write would see none)
            sipp_seconds.extend((now - started, int(row.get("OutgoingCall(P)", 0) or 0)) for row in new)
            current = int(rows[-1].get("CurrentCall", 0) or 0) if rows else 0
            cpu = cpu_seconds(switch_pid)
            samples.append((now - started, current, rss_mb(switch_pid), 100 * (cpu - cpu_last) / (now - wall_last)))
            cpu_last, wall_last = cpu, now
            if len(samples) % 60 == 0:
                minute = samples[-60:]
                rate = [n for t, n in sipp_seconds if t > minute[0][0] - 1] or [0]
                print(f"  {len(samples) // 60:3d} min: placed {sum(rate):5d} "
                      f"(lowest second {min(rate)}), in progress {minute[-1][1]:4d}, "
                      f"switch {minute[-1][2]:6.1f} MB (this minute {min(s[2] for s in minute):.1f}-"
                      f"{max(s[2] for s in minute):.1f}), CPU {sum(s[3] for s in minute) / 60:5.1f}%", flush=True)
        ok, failed = callers.counts()
    finally:
        for sipp in (callers, agents):
            if sipp is not None:
                sipp.stop()
        bench.stop()
    db = connect(bench.db_path, migrate=False)
    outcomes = dict(db.execute("SELECT outcome, count(*) FROM interactions GROUP BY outcome").fetchall())
    rows_written = sum(outcomes.values())
    db.close()
    steady = [n for t, n in sipp_seconds if 60 <= t <= seconds]   # SIPp's rate settles in the first seconds
    stalls = [n for n in steady if n < 0.9 * args.rate]
    print(f"calls placed {ok + failed}, completed {ok}, failed {failed} (SIPp's count)")
    print(f"rows written {rows_written}: {outcomes}; calls without a row {ok + failed - rows_written}")
    if steady:
        print(f"rate after the first minute: lowest second {min(steady)} calls, "
              f"{len(stalls)} of {len(steady)} seconds below {0.9 * args.rate:g} calls/s")
    print(memory_summary([(t, rss) for t, _, rss, _ in samples if t <= seconds]))
    errors = workdir / "callers.err"
    if failed and errors.exists():   # what SIPp said about its failed calls, before anything is deleted
        print("SIPp's callers' errors (last lines):\n" + "\n".join(errors.read_text(errors="replace").splitlines()[-12:]))
    if args.keep or failed:
        print(f"work directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if failed == 0 and not stalls and rows_written == ok + failed else 1


if __name__ == "__main__":
    sys.exit(main())
