"""Simulator benchmark: M/M/50+M (90% load, AHT 180 s, patience 120 s) against SimPy.

Our run goes through the full routing core (the same code the switch runs) and the
streaming statistics; the peer is an idiomatic SimPy model of the same queue
(Resource, request | timeout for patience). Both run in this process, one after the
other, and both results are checked against Erlang A so neither is fast by being wrong.
Peak memory of our run is measured with tracemalloc in a separate pass.

    python bench/simulator.py [--calls 1000000] [--simpy-calls 200000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scenarios.erlang import erlang_a  # noqa: E402
from scenarios.schema import scenario_from_text  # noqa: E402
from scenarios.simulator import Simulation  # noqa: E402

AGENTS, AHT, PATIENCE, LOAD, THRESHOLD = 50, 180.0, 120.0, 0.9, 20.0
RATE = LOAD * AGENTS / AHT  # calls per second

SCENARIO = f"""
name: mmn-m-50
seed: 1
calls: {{calls}}
arrivals: {{{{rate_per_hour: {RATE * 3600}}}}}
handle_time: {{{{dist: exponential, mean_s: {AHT}}}}}
patience: {{{{dist: exponential, mean_s: {PATIENCE}}}}}
agents: {{{{count: {AGENTS}}}}}
service_level: {{{{threshold_s: {THRESHOLD}}}}}
"""


def run_ours(calls: int) -> tuple[float, dict]:
    scenario = scenario_from_text(SCENARIO.format(calls=calls), "bench")
    start = time.perf_counter()
    report = Simulation(scenario).run()
    return time.perf_counter() - start, report


def run_simpy(calls: int, seed: int = 1) -> tuple[float, dict]:
    import simpy

    rng = random.Random(seed)
    env = simpy.Environment()
    agents = simpy.Resource(env, capacity=AGENTS)
    stats = {"offered": 0, "answered": 0, "abandoned": 0, "waited": 0, "within": 0, "wait_sum": 0.0}

    def caller(patience: float, service: float):
        arrived = env.now
        with agents.request() as request:
            outcome = yield request | env.timeout(patience)
            wait = env.now - arrived
            if wait > 0:
                stats["waited"] += 1
            if request in outcome:
                stats["answered"] += 1
                stats["wait_sum"] += wait
                if wait <= THRESHOLD:
                    stats["within"] += 1
                yield env.timeout(service)
            else:
                stats["abandoned"] += 1

    def source():
        for _ in range(calls):
            yield env.timeout(rng.expovariate(RATE))
            stats["offered"] += 1
            env.process(caller(rng.expovariate(1 / PATIENCE), rng.expovariate(1 / AHT)))

    env.process(source())
    start = time.perf_counter()
    env.run()
    elapsed = time.perf_counter() - start
    offered = stats["offered"]
    return elapsed, {"p_wait": stats["waited"] / offered, "abandon_rate": stats["abandoned"] / offered,
                     "sl": stats["within"] / offered, "asa_s": stats["wait_sum"] / stats["answered"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--simpy-calls", type=int, default=200_000,
                        help="SimPy's rate is steady after ~100k calls; a smaller run keeps the bench short")
    args = parser.parse_args()
    formula = erlang_a(AGENTS, RATE, AHT, PATIENCE, THRESHOLD)

    ours_s, report = run_ours(args.calls)
    ours_rate = args.calls / ours_s
    theirs_s, peer = run_simpy(args.simpy_calls)
    theirs_rate = args.simpy_calls / theirs_s

    print(f"M/M/{AGENTS}+M, load {LOAD:.0%}, AHT {AHT:g} s, patience {PATIENCE:g} s; "
          f"routing core {report['engine']}")
    print(f"{'':<10} {'calls':>10} {'calls/s':>10} {'P(wait)':>9} {'abandon':>9} {'SL 20s':>9} {'ASA s':>8}")
    print(f"{'Erlang A':<10} {'':>10} {'':>10} {formula.p_wait:9.4f} {formula.p_abandon:9.4f} "
          f"{formula.sl_over_offered:9.4f} {formula.asa_s:8.3f}")
    print(f"{'hotline':<10} {args.calls:>10,} {ours_rate:>10,.0f} {report['p_wait']:9.4f} {report['abandon_rate']:9.4f} "
          f"{report['service_level']['answered_within_over_offered']:9.4f} {report['asa_s']:8.3f}")
    print(f"{'SimPy':<10} {args.simpy_calls:>10,} {theirs_rate:>10,.0f} {peer['p_wait']:9.4f} {peer['abandon_rate']:9.4f} "
          f"{peer['sl']:9.4f} {peer['asa_s']:8.3f}")
    print(f"ratio: hotline is {ours_rate / theirs_rate:.2f}x SimPy (target >= 3x, aim 5x; >= 150k calls/s)")

    memory_calls = min(args.calls, 1_000_000)
    tracemalloc.start()
    run_ours(memory_calls)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"peak Python memory for {memory_calls:,} calls (tracemalloc): {peak / 2**20:.1f} MiB (target < 300 MB)")


if __name__ == "__main__":
    main()
