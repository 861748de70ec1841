"""The supervisors' view of the centre, without I/O: today's figures per queue (the
simulator's Statistics fed with the switch's events since midnight), each agent's day,
the callers waiting (from the switch's snapshots), the records' side (work orders due,
follow-up calls given up, repeat callers, mass complaints) and the alerts that follow
from all of it. console/supervisor.py draws it; tests drive it with events."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from telephony.acd import events as ev
from telephony.acd.stats import Statistics
from telephony.wire import Snapshot

SPARK_MINUTES = 60   # the callers-waiting sparkline: one value per minute over the last hour
SL_MIN_OFFERED = 5   # the service-level alert waits for enough callers to mean something


def late_by(seconds: float) -> str:
    """'12 min', '3 h 05 min', '89 days' (how late, as a supervisor says it)."""
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60:02d} min"
    return f"{minutes // 1440} days"


@dataclass(frozen=True)
class QueueSettings:
    threshold_s: float = 15.0
    target: float = 0.8


@dataclass(frozen=True)
class QueueLine:
    name: str
    waiting: int
    longest_wait_s: float
    offered: int
    answered: int
    abandoned: int
    service_level: float | None
    target: float
    threshold_s: float
    asa_s: float | None
    abandon_rate: float | None
    logged_in: int
    available: int
    in_call: int
    wrap_up: int
    on_break: int
    waiting_history: tuple[int, ...]


@dataclass(frozen=True)
class AgentLine:
    ext: str
    name: str
    status: str
    state: str
    reason: str
    in_state_s: float
    caller: str
    queue: str
    call_s: float | None
    handled: int
    aht_s: float | None
    wrap_s: float
    break_s: float
    registered: bool
    skills: str


@dataclass(frozen=True)
class WaitingLine:
    call_id: str
    queue: str
    position: int
    number: str
    priority: str
    wait_s: float


@dataclass(frozen=True)
class Alert:
    key: str          # stable: the same condition keeps its key (acknowledging it is by key)
    severity: str     # "critical", "warning"
    text: str
    acknowledged: bool


@dataclass
class _AgentDay:
    handled: int = 0
    handling_s: float = 0.0
    wrap_s: float = 0.0
    break_s: float = 0.0
    wrap_since: float | None = None
    break_since: float | None = None
    overran: str = ""   # the break reason that ran past its limit (BreakOverrun), until the break ends


@dataclass
class Centre:
    queues: dict[str, QueueSettings]
    day_start: float
    stats: Statistics = field(init=False)
    snapshot: Snapshot = field(default_factory=lambda: Snapshot(0.0))
    records: dict = field(default_factory=dict)
    agents: dict[str, _AgentDay] = field(default_factory=dict)
    last_seq: int = 0
    _history: dict[str, deque] = field(default_factory=dict)
    _minute: int = -1
    _acknowledged: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.stats = Statistics({name: q.threshold_s for name, q in self.queues.items()}, start=self.day_start,
                                interval_s=86400.0)

    # --- input ---------------------------------------------------------------------------------
    def apply(self, event, seq: int = 0) -> None:
        """One event of the switch (live, or replayed from the event log since midnight)."""
        if seq:
            if seq <= self.last_seq:
                return
            self.last_seq = seq
        if event.t < self.day_start or not isinstance(event, ev.Event):
            return   # before today; or what a call leg did (menu, phone, records): not counted here
        self.stats.add(event)
        if isinstance(event, (ev.CallCompleted, ev.CallTransferred)):
            day = self._agent(event.agent_id)
            day.handled += 1
            day.handling_s += event.talk_s + event.hold_s
            if event.wrap_up_s > 0:
                day.wrap_since = event.t
        elif isinstance(event, (ev.AgentStateChanged, ev.CallOffered, ev.CallbackDue)):
            self._wrap_over(event.agent_id, event.t)
        elif isinstance(event, ev.AgentStatusChanged):
            day = self._agent(event.agent_id)
            self._wrap_over(event.agent_id, event.t)
            if day.break_since is not None:
                day.break_s += event.t - day.break_since
                day.break_since = None
            day.overran = ""
            if event.status == "on_break":
                day.break_since = event.t
        elif isinstance(event, ev.BreakOverrun):
            self._agent(event.agent_id).overran = event.reason

    def _agent(self, ext: str) -> _AgentDay:
        day = self.agents.get(ext)
        if day is None:
            day = self.agents[ext] = _AgentDay()
        return day

    def _wrap_over(self, ext: str, t: float) -> None:
        day = self._agent(ext)
        if day.wrap_since is not None:
            seconds = t - day.wrap_since
            day.wrap_s += seconds
            day.handling_s += seconds
            day.wrap_since = None

    def take_snapshot(self, snapshot: Snapshot) -> None:
        """The switch's snapshot (agents, callers waiting): taken every second."""
        self.snapshot = snapshot
        minute = int(snapshot.at // 60)
        for name in self.queues:
            history = self._history.setdefault(name, deque(maxlen=SPARK_MINUTES))
            waiting = len(snapshot.waiting(name))
            if minute != self._minute or not history:
                history.append(waiting)
            elif waiting > history[-1]:
                history[-1] = waiting   # the most waiting in each minute
        self._minute = minute

    def take_records(self, supervision: dict) -> None:
        """The switch's `supervise` reply: work orders due, follow-ups given up, repeat
        callers, mass complaints, the audit trail, the alerts acknowledged."""
        self.records = supervision
        self._acknowledged.update(supervision.get("acknowledged", ()))

    def acknowledge(self, key: str) -> None:
        self._acknowledged.add(key)

    # --- what the screen shows ------------------------------------------------------------------
    def queue_lines(self, now: float) -> list[QueueLine]:
        report = self.stats.report()["queues"]
        lines = []
        for name, settings in self.queues.items():
            figures = report.get(name)
            waiting = self.snapshot.waiting(name)
            serving = [a for a in self.snapshot.agents if a.status != "logged_out" and a.serves(name)]
            offered = figures["offered"] if figures else 0
            answered = figures["answered"] if figures else 0
            lines.append(QueueLine(
                name=name, waiting=len(waiting), longest_wait_s=max((c.wait_s for c in waiting), default=0.0),
                offered=offered, answered=answered, abandoned=figures["abandoned"] if figures else 0,
                service_level=figures["service_level"]["answered_within_over_offered"] if offered else None,
                target=settings.target, threshold_s=settings.threshold_s,
                asa_s=figures["asa_s"] if answered else None,
                abandon_rate=figures["abandon_rate"] if offered else None,
                logged_in=len(serving),
                available=sum(1 for a in serving if a.status == "available" and a.state == "idle"),
                in_call=sum(1 for a in serving if a.state in ("in_call", "on_hold", "ringing")),
                wrap_up=sum(1 for a in serving if a.state == "wrap_up"),
                on_break=sum(1 for a in serving if a.status == "on_break"),
                waiting_history=tuple(self._history.get(name, ()))))
        return lines

    def agent_lines(self, now: float) -> list[AgentLine]:
        lines = []
        for agent in self.snapshot.agents:
            day = self.agents.get(agent.ext, _AgentDay())
            on_break = day.break_s + (now - day.break_since if day.break_since is not None else 0.0)
            wrap = day.wrap_s + (now - day.wrap_since if day.wrap_since is not None else 0.0)
            busy = agent.state in ("in_call", "on_hold")
            lines.append(AgentLine(
                ext=agent.ext, name=agent.name, status=agent.status, state=agent.state, reason=agent.reason,
                in_state_s=now - (agent.status_since if agent.status != "available" else agent.since),
                caller=agent.caller if agent.call else "", queue=agent.queue if agent.call else "",
                call_s=now - agent.since if busy else None, handled=day.handled,
                aht_s=(day.handling_s + (wrap - day.wrap_s)) / day.handled if day.handled else None,
                wrap_s=wrap, break_s=on_break, registered=agent.registered,
                skills=",".join(f"{k}:{v}" for k, v in agent.skills)))
        return lines

    def waiting_lines(self, now: float) -> list[WaitingLine]:
        """Callers waiting, in the order they will be served: each queue's order as the
        switch keeps it, the longest-waiting queue first."""
        lines = []
        for name, callers in self.snapshot.queues:
            for position, caller in enumerate(callers, 1):
                lines.append(WaitingLine(caller.call_id, name, position, caller.number, caller.priority,
                                         caller.wait_s + max(0.0, now - (self.snapshot.at or now))))
        return sorted(lines, key=lambda w: (w.position, -w.wait_s))

    def alerts(self, now: float) -> list[Alert]:
        out: list[tuple[str, str, str]] = []
        for line in self.queue_lines(now):
            if line.service_level is not None and line.offered >= SL_MIN_OFFERED and line.service_level < line.target:
                out.append((f"sl:{line.name}", "critical",
                            f"{line.name}: service level {line.service_level:.0%} today, target {line.target:.0%} "
                            f"within {line.threshold_s:.0f} s"))
        for caller in self.waiting_lines(now):
            threshold = self.queues.get(caller.queue, QueueSettings()).threshold_s
            if caller.wait_s > threshold:
                out.append((f"wait:{caller.call_id}", "warning",
                            f"{caller.number} waiting {caller.wait_s:.0f} s in {caller.queue} (target {threshold:.0f} s)"))
        for agent in self.snapshot.agents:
            day = self.agents.get(agent.ext)
            if day is not None and day.overran and agent.status == "on_break":
                minutes = (now - agent.status_since) / 60
                out.append((f"break:{agent.ext}:{agent.status_since:.0f}", "warning",
                            f"{agent.ext} {agent.name} on {day.overran} break for {minutes:.0f} min, past its limit"))
        for lock in self.snapshot.locked_out:
            what = f"extension {lock.key}" if lock.kind == "ext" else f"address {lock.key}"
            out.append((f"lock:{lock.kind}:{lock.key}", "critical",
                        f"{what} locked out after wrong PINs ({lock.seconds_left / 60:.0f} min left)"))
        records = self.records
        # overdue work orders: one alert per department (a stalled backlog would otherwise
        # bury everything else), raised again when more fall overdue
        overdue: dict[str, list[dict]] = {}
        for order in records.get("orders_due", []):
            if order["seconds_left"] < 0:
                overdue.setdefault(order["department"], []).append(order)
        for department, orders in sorted(overdue.items()):
            oldest = min(orders, key=lambda o: o["seconds_left"])
            count = f"{len(orders)} work orders" if len(orders) > 1 else "a work order"
            out.append((f"orders:{department}:{len(orders)}", "warning",
                        f"{department.replace('_', ' ')}: {count} overdue; the most: #{oldest['id']} "
                        f"{oldest['type'].replace('_', ' ')}, {oldest['deadline']} {late_by(-oldest['seconds_left'])} late"))
        for callback in records.get("callbacks_given_up", []):
            out.append((f"callback:{callback['id']}", "warning",
                        f"follow-up call to {callback['resident'] or callback['number']} given up after "
                        f"{callback['attempts']} attempts"))
        for caller in records.get("repeat_callers", []):
            out.append((f"repeat:{caller['resident_id']}:{caller['last_at']:.0f}", "warning",
                        f"{caller['name']} has called {caller['contacts']} times within 24 h"))
        for mass in records.get("mass_complaints", []):
            out.append((f"mass:{mass['level']}:{mass['id']}", "critical",
                        f"mass complaint forming: {mass['contacts']} contacts from {mass['residents']} residents of "
                        f"{mass['name']} ({', '.join(mass['queues'])})"))
        return [Alert(key, severity, text, self._seen(key)) for key, severity, text in out]

    def _seen(self, key: str) -> bool:
        if key in self._acknowledged:
            return True
        if key.startswith("orders:"):
            # raised again only when more orders fall overdue than were seen: found in a
            # trial, one of three resolved made "2 overdue" a new alert to acknowledge
            department, count = key[len("orders:"):].rsplit(":", 1)
            return any(seen.startswith(f"orders:{department}:") and int(seen.rsplit(":", 1)[1]) >= int(count)
                       for seen in self._acknowledged)
        return False
