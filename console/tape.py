"""A run's event log played back as the supervisor console would have seen it, without I/O.

`Player` holds a run's events in order and a position in its time; moving the position
feeds the events up to it into a `Centre` (the console's own model) and rebuilds the
snapshot the switch would have sent at that moment (`SnapshotBuilder`: agents' status
and state, callers waiting in the order they will be served). Seeking back starts the
day again from the first event: a 10,000-call day is about 60,000 events, replayed in
well under a second. `diff_runs` compares two runs event by event and metric by metric.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from console.centre import Centre, QueueSettings
from scenarios.runs import metric
from telephony import call_events as ce
from telephony import wire
from telephony.acd import events as ev

PRIORITY_RANK = {"emergency": 0, "vip": 1, "normal": 2}
_LEAVES_QUEUE = (ev.CallConnected, ev.CallAbandoned, ev.CallTimedOut, ev.CallToVoicemail, ev.CallCompleted,
                 ev.CallTransferred)


@dataclass
class _Agent:
    name: str
    skills: tuple[tuple[str, int], ...]
    status: str = "logged_out"
    reason: str = ""
    state: str = "idle"
    since: float = 0.0
    status_since: float = 0.0
    call: str | None = None
    queue: str = ""
    registered: bool | None = None   # None: the run logged no phone registrations


@dataclass
class _Waiting:
    call_id: str
    queue: str
    number: str
    priority: str
    since: float
    callback: bool = False


class SnapshotBuilder:
    """The switch's snapshot (wire.Snapshot), rebuilt from the events alone."""

    def __init__(self, agents: dict[str, dict], start: float = 0.0):
        # (an agent who has not logged in yet has been logged out since the run began)
        self.start = start
        self.agents = {ext: _Agent(str(a.get("name", "")), tuple(sorted((str(k), int(v)) for k, v in
                                                                       (a.get("skills") or {}).items())),
                                   since=start, status_since=start)
                       for ext, a in agents.items()}
        self.waiting: dict[str, _Waiting] = {}
        self.numbers: dict[str, str] = {}

    def apply(self, event) -> None:
        if isinstance(event, ce.PhoneRegistration):
            self._agent(event.agent_id).registered = event.registered
            return
        if isinstance(event, ce.CallFailed):   # e.g. "interrupted: switch went down": the caller is gone
            self.waiting.pop(event.call_id, None)
            for agent in self.agents.values():
                if agent.call == event.call_id:
                    agent.call, agent.queue, agent.state, agent.since = None, "", "idle", event.t
            return
        if isinstance(event, ev.CallQueued):
            number = event.number or self.numbers.get(event.call_id, "") or f"call {event.call_id}"
            self.numbers[event.call_id] = number
            previous = self.waiting.get(event.call_id)
            self.waiting[event.call_id] = _Waiting(event.call_id, event.queue, number, event.priority,
                                                   previous.since if previous else event.t,
                                                   previous.callback if previous else False)
        elif isinstance(event, ev.PriorityChanged) and event.call_id in self.waiting:
            self.waiting[event.call_id].priority = event.priority
        elif isinstance(event, ev.CallbackAccepted) and event.call_id in self.waiting:
            self.waiting[event.call_id].callback = True
        elif isinstance(event, _LEAVES_QUEUE):
            self.waiting.pop(event.call_id, None)
        if isinstance(event, ev.AgentStatusChanged):
            agent = self._agent(event.agent_id)
            agent.status, agent.reason, agent.status_since = event.status, event.reason, event.since
            if agent.status == "available" and agent.state == "idle":
                agent.since = event.t
        moved = ev.agent_state_after(event) if isinstance(event, ev.Event) else None
        if moved is not None:
            agent = self._agent(moved[0])
            if agent.state != moved[1]:
                agent.since = event.t
            agent.state = moved[1]
            if moved[1] in ("ringing", "in_call"):
                agent.call, agent.queue = event.call_id, event.queue
            elif moved[1] in ("idle", "wrap_up"):
                agent.call, agent.queue = None, ""

    def _agent(self, ext: str) -> _Agent:
        agent = self.agents.get(ext)
        if agent is None:
            agent = self.agents[ext] = _Agent(f"agent {ext}", (), since=self.start, status_since=self.start)
        return agent

    def snapshot(self, at: float, queues: list[str]) -> wire.Snapshot:
        by_queue: dict[str, list[_Waiting]] = {name: [] for name in queues}
        for caller in self.waiting.values():
            by_queue.setdefault(caller.queue, []).append(caller)
        return wire.Snapshot(
            at=at,
            queues=tuple((name, tuple(wire.WaitingCaller(c.call_id, c.number, c.priority, at - c.since, c.callback)
                                      for c in sorted(callers, key=lambda c: (PRIORITY_RANK.get(c.priority, 2),
                                                                              c.since))))
                         for name, callers in by_queue.items()),
            agents=tuple(wire.AgentView(
                ext=ext, name=a.name, status=a.status, reason=a.reason, state=a.state, since=a.since,
                status_since=a.status_since, call=a.call, caller=self.numbers.get(a.call or "", ""), queue=a.queue,
                skills=a.skills, registered=a.status != "logged_out" if a.registered is None else a.registered,
                reachable=a.status != "logged_out") for ext, a in sorted(self.agents.items())))


@dataclass
class Player:
    """A position in a run's time, and the centre as it stood there."""
    events: list[tuple[float, object]]
    queues: dict[str, QueueSettings]
    agents: dict[str, dict]
    start: float                 # the first moment that can be shown (a live run's bots log in before time 0)
    speed: float = 60.0
    origin: float | None = None  # the scenario's time 0: offsets (+1h30m) count from it
    paused: bool = False
    centre: Centre = field(init=False)
    position: float = field(init=False)
    _next: int = field(init=False, default=0)
    _times: list[float] = field(init=False)

    def __post_init__(self) -> None:
        self._times = [at for at, _ in self.events]
        self.end = self._times[-1] if self._times else self.start
        if self.origin is None:
            self.origin = self.start
        self._restart()

    def _restart(self) -> None:
        self.centre = Centre(self.queues, self.start)
        self.builder = SnapshotBuilder(self.agents, self.start)
        self.position, self._next = self.start, 0
        self.centre.take_snapshot(self.builder.snapshot(self.start, list(self.queues)))

    def seek(self, at: float) -> None:
        """Go to `at` (clamped to the run): back means the day again from its start."""
        at = min(max(at, self.start), self.end)
        if at < self.position:
            self._restart()
        self._advance(at)

    def tick(self, wall_s: float) -> None:
        """`wall_s` seconds of watching have passed: move on by that times the speed."""
        if not self.paused and self.position < self.end:
            self._advance(min(self.end, self.position + wall_s * self.speed))

    def _advance(self, to: float) -> None:
        centre, builder, queues = self.centre, self.builder, list(self.queues)
        last = bisect.bisect_right(self._times, to)
        minute = math.floor(self.position / 60)
        for at, event in self.events[self._next:last]:
            while math.floor(at / 60) > minute:   # the sparkline's one value a minute
                minute += 1
                centre.take_snapshot(builder.snapshot(minute * 60.0, queues))
            builder.apply(event)
            centre.apply(event)
        self._next = last
        self.position = to
        centre.take_snapshot(builder.snapshot(to, queues))

    @property
    def finished(self) -> bool:
        return self.position >= self.end


def player_for(run, speed: float = 60.0) -> Player:
    """A run directory (scenarios.runs.Run) ready to play from its first event."""
    events = [(at, delivered.event) for at, delivered in run.events()]
    queues = {name: QueueSettings(float(q.get("threshold_s", 15.0)), float(q.get("target", 0.8)))
              for name, q in run.meta["queues"].items()}
    first = min((at for at, _ in events), default=run.start)
    return Player(events, queues, run.meta["agents"], start=min(run.start, first), speed=speed, origin=run.start)


# --- two runs side by side ------------------------------------------------------------------
DIFF_METRICS = ("offered", "answered", "abandoned", "timed_out", "voicemail", "service_level", "abandon_rate",
                "asa_s", "aht_s", "occupancy", "max_queue", "longest_wait_s")


@dataclass(frozen=True)
class Divergence:
    index: int                 # the first differing event's place in both logs (0-based)
    a: dict | None             # its row in run A (None: A had ended)
    b: dict | None


def comparable(row: dict, start: float) -> tuple:
    """An event as two runs of one scenario can share it: its time from the run's start
    (to the millisecond) and its fields, not its line number or the node that logged it."""
    message = dict(row["message"])
    message.pop("seq", None)
    t = message.pop("t", row["at"])
    return round(float(t) - start, 3), tuple(sorted((k, str(v)) for k, v in message.items()))


def first_divergence(run_a, run_b) -> Divergence | None:
    rows_a, rows_b = run_a.rows(), run_b.rows()
    index = 0
    while True:
        a, b = next(rows_a, None), next(rows_b, None)
        if a is None and b is None:
            return None
        if a is None or b is None or comparable(a, run_a.start) != comparable(b, run_b.start):
            return Divergence(index, a, b)
        index += 1


def metric_table(report_a: dict, report_b: dict) -> list[tuple[str, str, float | None, float | None]]:
    """(scope, metric, A, B) for the whole centre, then each queue either run has."""
    rows = [("all", name, metric(report_a, name), metric(report_b, name)) for name in DIFF_METRICS]
    for queue in sorted(set(report_a.get("queues", {})) | set(report_b.get("queues", {}))):
        rows += [(queue, name, metric(report_a, name, queue), metric(report_b, name, queue))
                 for name in ("offered", "answered", "abandoned", "service_level", "asa_s", "aht_s")]
    return rows
