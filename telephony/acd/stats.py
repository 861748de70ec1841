"""Contact-centre statistics from routing events, streamed: nothing per finished call is kept.

The simulator's report and (later) the wallboard both read these. Definitions (also in
the README):
- offered: callers who entered a queue (an overflow to another queue is the same call,
  offered there too; a contact transferred or moved into another queue after an answer
  is offered there again, and answered or abandoned there with its wait since, while the
  centre's total counts the contact once);
- answered / abandoned / timed_out (left at max wait) / voicemail (queue full or timed
  out to the mailbox);
- p_wait: share of offered callers not offered to an agent at the moment they arrived;
- asa_s: mean wait (arrival to answer) of answered calls;
- service_level: answered within the threshold over offered, and over answered;
- abandon_rate: abandoned over offered;
- aht_s: mean handle time of answered calls: talk, hold and wrap-up; talk_s and hold_s
  alone are reported too;
- occupancy: agents' handling time (ringing, talking, hold, wrap-up) over their time logged
  in and not on break;
- max_queue: most callers waiting at once; longest_wait_s: longest wait of any caller;
- short_abandoned: the abandoned who hung up within SHORT_ABANDON_S (a misdial, or a
  caller who heard the greeting and rang off), counted among the abandoned and also apart.
Each call counts in the interval and the batch in which it arrived. The supervisors'
interval report (telephony/report.py) counts contacts from records with these same
Counters, so QA's figures and the supervisor's are the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from telephony.acd import events as ev

SHORT_ABANDON_S = 5.0

# Student t quantiles t(0.995, df) for 99% two-sided confidence intervals.
_T995 = {9: 3.2498, 19: 2.8609, 29: 2.7564, 39: 2.7079, 49: 2.6800}


class Counters:
    __slots__ = ("offered", "answered", "abandoned", "timed_out", "voicemail", "waited", "within",
                 "wait_answered", "wait_abandoned", "talk", "hold", "wrap", "longest_wait", "max_queue",
                 "short_abandoned", "handled")

    def __init__(self) -> None:
        self.offered = self.answered = self.abandoned = self.timed_out = self.voicemail = 0
        self.short_abandoned = self.handled = 0
        self.waited = self.within = 0
        self.wait_answered = self.wait_abandoned = self.talk = self.hold = self.wrap = 0.0
        self.longest_wait = 0.0
        self.max_queue = 0

    def answered_call(self, wait_s: float, within: bool) -> None:
        """A caller reached an agent (counted when they do, not when the call ends)."""
        self.answered += 1
        self.wait_answered += wait_s
        if within:
            self.within += 1
        if wait_s > self.longest_wait:
            self.longest_wait = wait_s

    def handled_call(self, talk_s: float, hold_s: float) -> None:
        """An answered contact ended: its talk and hold (every agent's part) count for AHT."""
        self.handled += 1
        self.talk += talk_s
        self.hold += hold_s

    def abandoned_call(self, wait_s: float) -> None:
        self.abandoned += 1
        self.wait_abandoned += wait_s
        if wait_s < SHORT_ABANDON_S:
            self.short_abandoned += 1
        if wait_s > self.longest_wait:
            self.longest_wait = wait_s

    def metrics(self, threshold_s: float) -> dict:
        offered, answered = self.offered, self.answered
        ratio = lambda a, b: a / b if b else 0.0  # noqa: E731
        return {
            "offered": offered, "answered": answered, "abandoned": self.abandoned,
            "short_abandoned": self.short_abandoned, "timed_out": self.timed_out, "voicemail": self.voicemail,
            "p_wait": ratio(self.waited, offered),
            "asa_s": ratio(self.wait_answered, answered),
            "abandon_rate": ratio(self.abandoned, offered),
            "aht_s": ratio(self.talk + self.hold + self.wrap, self.handled),
            "talk_s": ratio(self.talk, self.handled),
            "hold_s": ratio(self.hold, self.handled),
            "max_queue": self.max_queue, "longest_wait_s": self.longest_wait,
            "service_level": {"threshold_s": threshold_s,
                              "answered_within_over_offered": ratio(self.within, offered),
                              "answered_within_over_answered": ratio(self.within, answered)},
        }


def occupancy(handling_s: float, staffed_s: float) -> float:
    """Agents' handling time (ringing, talking, on hold, wrap-up) over their time logged in
    and not on break."""
    return handling_s / staffed_s if staffed_s else 0.0


class _Active:
    """A caller still in the system, with the counters they will count in. `talk` and
    `hold` add up the parts of agents who passed them on (a transfer, a lost phone);
    `first_wait` is their wait to the first answer (-1: none yet); `part_waiting`: answered
    before, they now wait in another queue (a transfer, a move), which counts their part."""
    __slots__ = ("entered", "queue", "waited", "counters", "talk", "hold", "first_wait", "part_waiting")

    def __init__(self, entered: float, queue: str, counters: list[Counters]):
        self.entered, self.queue, self.waited, self.counters = entered, queue, True, counters
        self.talk = self.hold = 0.0
        self.first_wait = -1.0
        self.part_waiting = False


@dataclass(frozen=True)
class Interval:
    start: float
    length: float


class Statistics:
    """Feed events with `add(event)`; read `report()`."""

    def __init__(self, thresholds: dict[str, float], *, start: float = 0.0, interval_s: float = 1800.0,
                 default_threshold_s: float = 15.0, batches: int = 50, expected_calls: int | None = None,
                 horizon_s: float | None = None):
        self.thresholds, self.default_threshold = thresholds, default_threshold_s
        self.start, self.interval_s = start, interval_s
        self.total = Counters()
        self.queues: dict[str, Counters] = {}
        self.priorities: dict[str, Counters] = {}   # by the priority a caller arrived with
        self.intervals: dict[int, Counters] = {}
        self.batches = [Counters() for _ in range(batches)]
        self._expected, self._horizon = expected_calls, horizon_s
        self._active: dict[str, _Active] = {}
        self._arrivals = 0
        self._queue_now: dict[str, int] = {}
        self._wrap_started: dict[str, tuple[float, str]] = {}
        self._staffed_since: dict[str, float] = {}
        self.staffed_s = 0.0
        self.ring_s = 0.0

    def add(self, event: ev.Event) -> None:
        # An isinstance chain, most frequent first: compiled, it is a pointer compare each.
        if isinstance(event, ev.CallQueued):
            self._queued(event)
        elif isinstance(event, ev.CallOffered) or isinstance(event, ev.CallbackDue):
            self._offered(event.call_id, event.t)
        elif isinstance(event, ev.CallConnected):
            self._connected(event)
        elif isinstance(event, ev.CallCompleted):
            self._completed(event)
        elif isinstance(event, ev.AgentStateChanged):
            self._state(event)
        elif isinstance(event, ev.CallAbandoned):
            self._abandoned(event)
        elif isinstance(event, ev.AgentStatusChanged):
            self._status(event)
        elif isinstance(event, ev.CallTimedOut):
            self._timed_out(event)
        elif isinstance(event, ev.CallToVoicemail):
            self._voicemail(event)
        elif isinstance(event, ev.CallRejectedFull):
            self._rejected(event)
        elif isinstance(event, ev.CallTransferred) or isinstance(event, ev.CallRequeued):
            self._passed_on(event)

    def queue_length(self, queue: str, length: int, total: int) -> None:
        """The driver reports queue lengths after arrivals (events do not carry them)."""
        counters = self.queues.get(queue)
        if counters is not None and length > counters.max_queue:
            counters.max_queue = length
        if total > self.total.max_queue:
            self.total.max_queue = total

    # --- handlers -----------------------------------------------------------------
    def _queued(self, event: ev.CallQueued) -> None:
        active = self._active.get(event.call_id)
        if active is None:
            self._arrive(event.call_id, event.queue, event.t, event.priority)
        elif active.queue != event.queue:  # overflow: the same call, counted in its new queue
            counters = self._counters(self.queues, event.queue)
            counters.offered += 1
            active.queue = event.queue
            active.counters[1] = counters
            # answered already (then transferred or moved): the new queue counts this part's
            # answer or abandon too, so its service level shows how fast it answered
            active.part_waiting = active.first_wait >= 0

    def _rejected(self, event: ev.CallRejectedFull) -> None:
        if event.call_id not in self._active:
            self._arrive(event.call_id, event.queue, event.t)

    def _arrive(self, call_id: str, queue: str, t: float, priority: str = "normal") -> None:
        interval = int((t - self.start) // self.interval_s)
        if self._expected:
            batch = min(self._arrivals * len(self.batches) // self._expected, len(self.batches) - 1)
        elif self._horizon:
            batch = min(int((t - self.start) * len(self.batches) / self._horizon), len(self.batches) - 1)
        else:
            batch = None
        self._arrivals += 1
        counters = [self.total, self._counters(self.queues, queue), self._counters(self.intervals, interval)]
        if batch is not None:
            counters.append(self.batches[batch])
        counters.append(self._counters(self.priorities, priority))
        active = _Active(t, queue, counters)
        self._active[call_id] = active
        for counter in active.counters:
            counter.offered += 1

    @staticmethod
    def _counters(table: dict[Any, Counters], key: Any) -> Counters:
        counters = table.get(key)
        if counters is None:  # not setdefault: that would build a Counters for every caller
            counters = table[key] = Counters()
        return counters

    def _offered(self, call_id: str, t: float) -> None:
        active = self._active.get(call_id)
        if active is not None and active.waited and t == active.entered:
            active.waited = False

    def _finish(self, call_id: str) -> _Active | None:
        active = self._active.pop(call_id, None)
        if active is not None and active.waited:
            for counters in active.counters:
                counters.waited += 1
        return active

    def _passed_on(self, event) -> None:
        """An agent passed the caller on (CallTransferred) or lost them (CallRequeued): the
        contact goes on, answered, with their part's talk and hold."""
        active = self._active.get(event.call_id)
        if active is None:
            return
        if isinstance(event, ev.CallTransferred) and event.wrap_up_s > 0:
            self._wrap_started[event.agent_id] = (event.t, active.queue)
        active.talk += event.talk_s
        active.hold += event.hold_s
        if isinstance(event, ev.CallTransferred) and event.target.startswith("number:"):
            # passed to an outside number: the call leaves the routing here
            self._finish(event.call_id)
            for counters in active.counters:
                counters.handled_call(active.talk, active.hold)

    def _connected(self, event: ev.CallConnected) -> None:
        self.ring_s += event.ring_s
        active = self._active.get(event.call_id)
        if active is None:
            return
        if active.first_wait >= 0:   # a later agent of a contact already answered
            if active.part_waiting:  # in another queue than before: counted there
                active.part_waiting = False
                active.counters[1].answered_call(
                    event.wait_s, event.wait_s <= self.thresholds.get(active.queue, self.default_threshold))
            return
        self._answered(active, event.wait_s)

    def _answered(self, active: _Active, wait_s: float) -> None:
        active.first_wait = wait_s
        within = wait_s <= self.thresholds.get(active.queue, self.default_threshold)
        for counters in active.counters:
            counters.answered_call(wait_s, within)

    def _completed(self, event: ev.CallCompleted) -> None:
        active = self._finish(event.call_id)
        if active is None:
            return
        if event.wrap_up_s > 0:
            self._wrap_started[event.agent_id] = (event.t, active.queue)
        if active.first_wait < 0:   # its answer was before what this run saw (a replay from mid-call)
            self._answered(active, event.wait_s)
        for counters in active.counters:
            counters.handled_call(active.talk + event.talk_s, active.hold + event.hold_s)

    def _abandoned(self, event: ev.CallAbandoned) -> None:
        active = self._finish(event.call_id)
        if active is None:
            return
        if active.first_wait >= 0:
            # answered, passed on, then they hung up waiting again: an answered contact
            # (counted at its answer), ending with the talk it had, as its row says; in
            # another queue than before, that queue counts the part abandoned
            if active.part_waiting:
                active.counters[1].abandoned_call(event.wait_s)
            for counters in active.counters:
                counters.handled_call(active.talk, active.hold)
            return
        for counters in active.counters:
            counters.abandoned_call(event.wait_s)

    def _timed_out(self, event: ev.CallTimedOut) -> None:
        active = self._active.get(event.call_id)
        if active is None:
            return
        for counters in active.counters:
            counters.timed_out += 1
            if event.wait_s > counters.longest_wait:
                counters.longest_wait = event.wait_s

    def _voicemail(self, event: ev.CallToVoicemail) -> None:
        active = self._finish(event.call_id)
        if active is None:
            return
        for counters in active.counters:
            counters.voicemail += 1

    def _status(self, event: ev.AgentStatusChanged) -> None:
        since = self._staffed_since.pop(event.agent_id, None)
        if since is not None:
            self.staffed_s += event.t - since
        if event.status == "available":
            self._staffed_since[event.agent_id] = event.t

    def _state(self, event: ev.AgentStateChanged) -> None:
        started = self._wrap_started.pop(event.agent_id, None)
        if started is not None:
            since, queue = started
            self.total.wrap += event.t - since
            self.queues[queue].wrap += event.t - since


    # --- results ------------------------------------------------------------------
    def close(self, now: float) -> None:
        """End of the run: count staffed time up to `now`."""
        for agent_id, since in list(self._staffed_since.items()):
            self.staffed_s += now - since
            self._staffed_since[agent_id] = now

    def report(self) -> dict:
        threshold = self.default_threshold
        total = self.total.metrics(threshold)
        total["occupancy"] = occupancy(self.total.talk + self.total.hold + self.total.wrap + self.ring_s,
                                       self.staffed_s)
        total["queues"] = {name: c.metrics(self.thresholds.get(name, threshold))
                           for name, c in sorted(self.queues.items())}
        total["intervals"] = [{"start": self.start + index * self.interval_s, **c.metrics(threshold)}
                              for index, c in sorted(self.intervals.items())]
        total["priorities"] = {name: {k: v for k, v in c.metrics(threshold).items() if k != "max_queue"}
                               for name, c in sorted(self.priorities.items())}   # (queue lengths are per queue)
        total["confidence_99"] = self.confidence()
        return total

    def confidence(self) -> dict:
        """99% batch-means confidence half-widths of the main ratios.

        Calls are split in arrival order into consecutive batches; with batches of
        thousands of calls, batch means are close to independent and normal, so
        mean +- t(0.995, B-1) * sd / sqrt(B) covers the long-run value 99% of the time.
        """
        used = [b for b in self.batches if b.offered]
        if len(used) < 10:
            return {}
        t = _T995.get(len(used) - 1) or _T995[min(_T995, key=lambda k: abs(k - (len(used) - 1)))]
        out = {}
        values = {
            "p_wait": [b.waited / b.offered for b in used],
            "abandon_rate": [b.abandoned / b.offered for b in used],
            "service_level_over_offered": [b.within / b.offered for b in used],
            "asa_s": [b.wait_answered / b.answered for b in used if b.answered],
        }
        for name, samples in values.items():
            if len(samples) < 2:
                continue
            mean = sum(samples) / len(samples)
            sd = math.sqrt(sum((x - mean) ** 2 for x in samples) / (len(samples) - 1))
            out[name] = {"mean": mean, "half_width": t * sd / math.sqrt(len(samples)), "batches": len(samples)}
        return out
