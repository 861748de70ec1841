"""A scenario's callers, drawn ahead: who arrives when, for which queue, how patient,
how long they talk and the agent's wrap-up after them. No I/O, no routing.

The draws are the virtual-time simulator's own (the same streams, seeded alike, in the
same order: scenarios/simulator.py `_arrive`), so a seed gives the same callers to
`hotline simulate` and to a live run: what differs between the two is the switch, the
network and the clock, never the callers. A test holds the two to that.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Iterator

from scenarios.schema import Scenario
from scenarios.simulator import Sampler, _cumulative, _pick, rate_segments


@dataclass(frozen=True)
class PlannedCaller:
    number: int          # 1, 2, ... (the simulator's call id)
    at_s: float          # arrival, scenario seconds from its start
    queue: str           # the call type, which is the queue dialled
    vip: bool
    repeat: bool         # calls again (the simulator gives them their last agent)
    patience_s: float    # math.inf: waits for ever
    handle_s: float      # talk once answered
    wrap_s: float        # the agent's wrap-up after the call
    burst: str = ""      # the label of the burst that brought them ("" for the everyday calls)


def caller_plan(scenario: Scenario, *, seed: int | None = None, calls: int | None = None) -> Iterator[PlannedCaller]:
    seed = scenario.seed if seed is None else seed
    max_calls = calls if calls is not None else scenario.calls
    horizon = scenario.horizon_s if scenario.horizon_s is not None else math.inf
    streams = {name: random.Random(f"hotline-sim:{seed}:{name}")
               for name in ("arrivals", "mix", "patience", "handle", "wrap")}
    arrival_random, mix_random = streams["arrivals"].random, streams["mix"].random
    segments = rate_segments(scenario)
    types = list(scenario.mix)
    weights = _cumulative([scenario.mix[t] for t in types])
    all_types = sorted(set(types) | {t for b in scenario.bursts for t in (b.mix or {})})
    patience = Sampler(scenario.patience, streams["patience"])
    handle = {t: Sampler(scenario.dist_for(scenario.handle_time, t), streams["handle"]) for t in all_types}
    wrap = {t: Sampler(scenario.dist_for(scenario.wrap_up, t), streams["wrap"]) for t in all_types}
    skilled = {skill: sum(g.count for g in scenario.groups if skill in g.skills) for skill in all_types}
    segment = 0

    def next_arrival(after: float) -> float:
        nonlocal segment
        need = -math.log(1.0 - arrival_random())
        t, i = after, segment
        while True:
            seg = segments[i]
            if seg.rate > 0:
                span = (seg.end - t) * seg.rate
                if span >= need:
                    segment = i
                    return t + need / seg.rate
                need -= span
            if seg.end == math.inf:
                return math.inf
            i += 1
            t = segments[i].start

    arrived = 0
    at = next_arrival(0.0)
    if not (at < horizon and (max_calls is None or max_calls > 0)):
        return
    while True:
        arrived += 1
        seg = segments[segment]
        burst = ""
        if seg.burst_mix and mix_random() < seg.burst_share:
            burst_types = list(seg.burst_mix)
            call_type = burst_types[_pick(_cumulative([seg.burst_mix[x] for x in burst_types]), mix_random())]
            burst = next((b.label or "burst" for b in reversed(scenario.bursts)
                          if b.mix and b.at_s <= at < b.at_s + b.for_s), "burst")
        else:
            call_type = types[_pick(weights, mix_random())]
        vip = scenario.vip_share > 0 and mix_random() < scenario.vip_share
        repeat = False
        if scenario.repeat_share > 0 and mix_random() < scenario.repeat_share and skilled.get(call_type):
            repeat = True
            mix_random()   # the simulator's choice of their last agent
        waits = patience.draw()
        yield PlannedCaller(arrived, at, call_type, vip, repeat, waits, handle[call_type].draw(),
                            wrap[call_type].draw(), burst)
        if max_calls is not None and arrived >= max_calls:
            return
        at = next_arrival(at)
        if not at < horizon:
            return
