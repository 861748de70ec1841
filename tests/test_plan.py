"""The callers a live run places are the virtual-time run's callers, draw for draw."""

import math

import pytest

from scenarios.plan import caller_plan
from scenarios.schema import load_scenario
from scenarios.simulator import simulate
from telephony.acd import events as ev


@pytest.mark.parametrize("name", ["water-outage", "vip-storm", "monday-peak", "weekday", "erlang-a"])
def test_the_plan_is_the_simulators_callers(name):
    scenario = load_scenario(f"scenarios/library/{name}.yaml")
    seen: list = []
    simulate(scenario, calls=3000, sinks=(seen.append,))
    plan = {p.number: p for p in caller_plan(scenario, calls=3000)}
    queued = {}
    for event in seen:
        if isinstance(event, (ev.CallQueued, ev.CallRejectedFull)) and event.call_id not in queued:
            queued[event.call_id] = event   # (a caller turned away by a full queue is never queued)
    assert len(plan) == len(queued) > 100
    checked = {"talk": 0, "patience": 0}
    for call_id, event in queued.items():
        planned = plan[int(call_id)]
        assert event.t == pytest.approx(planned.at_s) and event.queue == planned.queue
        want = "emergency" if planned.queue == "emergency" else ("vip" if planned.vip else "normal")
        assert getattr(event, "priority", want) == want
    for event in seen:
        if isinstance(event, ev.CallCompleted) and event.hold_s == 0:
            planned = plan[int(event.call_id)]
            assert event.talk_s == pytest.approx(planned.handle_s)
            assert event.wrap_up_s == pytest.approx(planned.wrap_s)
            checked["talk"] += 1
        elif isinstance(event, ev.CallAbandoned) and event.wait_s > 0:
            planned = plan[int(event.call_id)]
            if not math.isinf(planned.patience_s):
                assert event.wait_s == pytest.approx(planned.patience_s)
                checked["patience"] += 1
    assert checked["talk"] > 50
    if name == "water-outage":   # the outage's callers carry its label (live: one estate's residents)
        assert {p.burst for p in plan.values()} == {"", "water outage"}
