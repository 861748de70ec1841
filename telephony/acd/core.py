"""The ACD routing core: queues, agents and who gets which call. Pure.

No I/O, no threads, no wall clock: every method takes `now`, and what happened is
appended to `self.events` for the driver (the switch or the simulator) to act on and
log. Time-driven changes (ring timeouts, tier widening, ownership expiry, max wait,
end of wrap-up) are timers inside the core: the driver asks `next_timer()` and calls
`advance(now)` when that time comes.

Invariant after every public call: no idle, available agent is eligible for a
waiting caller. So a new caller only needs the idle agents, and an agent who becomes
free only needs the heads of the queues they serve.
"""

from __future__ import annotations

import random
from heapq import heapify, heappop, heappush
from typing import Any, Iterable

from telephony.acd.config import PRIORITIES, QueueConfig
from telephony.acd.events import (AgentStateChanged, AgentStatusChanged, BreakOverrun, CallAbandoned, CallbackAccepted,
                                  CallbackDue, CallbackOffered, CallCompleted, CallConnected, CallOffered,
                                  CallOfferWithdrawn, CallQueued, CallRejectedFull, CallRequeued, CallTimedOut,
                                  CallToVoicemail, CallTransferred, Event, PriorityChanged, RingNoAnswer,
                                  WrapUpExtended)

RETRY_S = 5.0  # an agent who let a call ring out is not offered the same call again for this long
NO_ANSWER_REASON = "no_answer"
MAX_WRAP_EXTENSION_S = 300.0


class AcdError(ValueError):
    """A request that does not fit the current state (unknown call, wrong agent...)."""


class Queue:
    """A queue at run time: its settings, its waiting callers and its round-robin memory."""
    __slots__ = ("config", "name", "heap", "waiting", "last_order")

    def __init__(self, config: QueueConfig):
        self.config, self.name = config, config.name
        # Waiting callers as [rank key, arrival seq, call, still waiting?]; entries of
        # callers who left are marked and dropped when they reach the top.
        self.heap: list[list[Any]] = []
        self.waiting = 0
        self.last_order = -1  # round robin: the order number of the agent offered last


class Agent:
    __slots__ = ("id", "skills", "status", "reason", "state", "idle_since", "calls", "talk_s", "missed",
                 "call", "version", "order", "queues", "reachable", "wrap_until", "wrap_extended", "breaks")

    def __init__(self, agent_id: str, skills: dict[str, int], order: int):
        self.id, self.skills, self.order = agent_id, dict(skills), order
        self.status, self.reason, self.state = "logged_out", "", "idle"
        self.idle_since = 0.0
        self.calls, self.talk_s, self.missed = 0, 0.0, 0
        self.call: Call | None = None
        self.version = 0
        self.queues: tuple[Queue, ...] = ()
        self.reachable = True  # the switch: a registered seat; the simulator: always
        self.wrap_until = 0.0
        self.wrap_extended = False  # once per wrap-up
        self.breaks = 0             # breaks begun: a break-limit timer is for one break only


class Call:
    __slots__ = ("id", "queue", "q", "number", "priority", "owner", "owner_until", "entered", "first_entered",
                 "key", "entry", "state", "ringing", "offered_at", "answered_at", "hold_started", "hold_s",
                 "declined", "original_position", "callback", "ring_version", "max_wait_at", "tier", "agent",
                 "hops", "waiting_since", "first_wait")

    def __init__(self, call_id: str, queue: Queue, number: str, priority: str, now: float):
        self.id, self.number, self.priority = call_id, number, priority
        self.q, self.queue = queue, queue.name  # the queue it waits in (changes on overflow)
        self.owner: str | None = None
        self.owner_until = 0.0
        self.entered = self.first_entered = now
        self.key = 0.0
        self.entry: list | None = None
        self.state = "waiting"           # waiting, offered, connected, callback_offer
        self.ringing: list[str] = []
        self.offered_at = self.answered_at = 0.0
        self.hold_started: float | None = None
        self.hold_s = 0.0
        self.declined: dict[str, float] = {}
        self.original_position = 0
        self.callback = False
        self.ring_version = 0
        self.max_wait_at: float | None = None
        self.tier = 0
        self.agent: Agent | None = None
        self.hops = 0  # queues joined: overflow chains end in voicemail, never loop
        # An agent's answer reports the wait since the caller was last put back to wait (a
        # transfer, their agent's phone lost); the contact's wait, for the service level and
        # its row, is the wait to its first answer, whatever came after.
        self.waiting_since = now
        self.first_wait = -1.0   # not answered yet


def _rank(call: Call) -> tuple[float, int]:
    """Where a waiting call stands: (entry time minus priority credit, arrival order)."""
    entry = call.entry
    assert entry is not None, "only waiting calls are ranked"
    return entry[0], entry[1]


class Acd:
    def __init__(self, queues: Iterable[QueueConfig], rng: random.Random | None = None,
                 break_limits: dict[str, float] | None = None):
        self.queues: dict[str, QueueConfig] = {q.name: q for q in queues}
        # break reason -> seconds: an agent still on that break after it is flagged (BreakOverrun)
        self.break_limits: dict[str, float] = dict(break_limits or {})
        for config in self.queues.values():
            for action in (config.on_full, config.on_max_wait):
                if action.startswith("overflow:") and action[9:] not in self.queues:
                    raise ValueError(f"queue {config.name}: overflow to unknown queue '{action[9:]}'")
        self.rng = rng or random.Random(0)
        self.agents: dict[str, Agent] = {}
        self.calls: dict[str, Call] = {}
        self.events: list[Event] = []
        self._queues: dict[str, Queue] = {name: Queue(config) for name, config in self.queues.items()}
        self._idle: dict[str, Agent] = {}    # available and idle, in idle-since order
        self._timers: list[tuple[float, int, str, Any, Any]] = []  # (at, seq, kind, call or agent, version)
        self._compact_timers_at = 1024
        # Ring timeouts are armed when the driver next looks at the clock: most offers
        # are answered (or refused) before that, and need no timer at all.
        self._unarmed_rings: list[tuple[float, Call, int]] = []
        self._seq = 0  # tie-breaker for heap entries: first in, first out

    # --- reading -------------------------------------------------------------------
    def waiting(self, queue: str) -> int:
        return self._queues[queue].waiting

    def waiting_total(self) -> int:
        return sum(q.waiting for q in self._queues.values())

    def waiting_calls(self, queue: str) -> list[Call]:
        """Waiting callers of a queue in the order they will be served."""
        return [entry[2] for entry in sorted(e for e in self._queues[queue].heap if e[3])]

    def next_timer(self) -> float:
        if self._unarmed_rings:
            self._arm_rings()
        return self._timers[0][0] if self._timers else float("inf")

    def _arm_rings(self) -> None:
        for at, call, version in self._unarmed_rings:
            if call.ring_version == version and call.state == "offered":
                self._timer(at, "ring", call, version)
        self._unarmed_rings.clear()

    def drain(self) -> list[Event]:
        events, self.events = self.events, []
        return events

    # --- agents --------------------------------------------------------------------
    def add_agent(self, agent_id: str, skills: dict[str, int]) -> None:
        if agent_id in self.agents:
            raise AcdError(f"agent {agent_id} already exists")
        agent = Agent(agent_id, skills, len(self.agents))
        agent.queues = self._queues_for(agent.skills)
        self.agents[agent_id] = agent

    def set_skills(self, agent_id: str, skills: dict[str, int], now: float) -> None:
        agent = self._agent(agent_id)
        agent.skills = dict(skills)
        agent.queues = self._queues_for(agent.skills)
        if agent.id in self._idle:
            self._route_agent(agent, now)

    def _queues_for(self, skills: dict[str, int]) -> tuple[Queue, ...]:
        """Queues whose tiers name any of these skills (proficiency is checked per call)."""
        return tuple(q for q in self._queues.values()
                     if any(s in skills for tier in q.config.tiers for s in tier.skills))

    def set_status(self, agent_id: str, status: str, now: float, reason: str = "",
                   began: float | None = None) -> None:
        """logged_out, available or on_break (with a reason). A call in progress goes on.
        `began`: a break taken up again after a restart began then, not now (its limit runs
        from then)."""
        agent = self._agent(agent_id)
        if status not in ("logged_out", "available", "on_break"):
            raise AcdError(f"unknown status '{status}' (expected logged_out, available or on_break)")
        if status == agent.status and reason == agent.reason:
            return
        previous = agent.status
        agent.status, agent.reason = status, reason if status == "on_break" else ""
        if status == "available":
            agent.missed = 0
        since = min(began, now) if began is not None and status == "on_break" else now
        self.events.append(AgentStatusChanged(now, agent.id, status, agent.reason, previous, since))
        if status == "on_break":
            agent.breaks += 1
            limit = self.break_limits.get(agent.reason)
            if limit is not None:
                self._timer(max(now, since + limit), "break", agent, (agent.breaks, limit))
        if status == "available" and agent.state == "idle":
            agent.idle_since = now
            if agent.reachable:
                self._idle[agent.id] = agent
                self._route_agent(agent, now)
        else:
            self._idle.pop(agent.id, None)

    def set_reachable(self, agent_id: str, reachable: bool, now: float) -> None:
        """Whether a call can reach the agent's phone at all (the switch: a live SIP
        registration). Status is the agent's own word and stays as it is; an unreachable
        agent is simply not offered calls, and a reachable one again is offered at once."""
        agent = self._agent(agent_id)
        if agent.reachable == reachable:
            return
        agent.reachable = reachable
        if not reachable:
            self._idle.pop(agent.id, None)
        elif agent.status == "available" and agent.state == "idle":
            self._idle[agent.id] = agent
            self._route_agent(agent, now)

    def lose_agent(self, agent_id: str, now: float) -> None:
        """The agent's phone is gone (seat killed, network down). It is offered nothing
        until it is reachable again; a call ringing there moves on without counting a
        miss; a caller they were talking to goes back to the head of the queue rather
        than being cut off (a talk already cut short should not wait behind new callers)."""
        agent = self._agent(agent_id)
        self.set_reachable(agent_id, False, now)
        call = agent.call
        if call is None:
            return
        if call.state == "offered" and agent.id in call.ringing:
            self.ring_no_answer(call.id, agent.id, now, counts=False)
        elif call.state == "connected" and call.agent is agent:
            if call.hold_started is not None:
                call.hold_s += now - call.hold_started
                call.hold_started = None
            talk = now - call.answered_at - call.hold_s
            call.agent, agent.call = None, None
            call.state, call.max_wait_at, call.waiting_since = "waiting", None, now
            call.key = float("-inf")
            self._push(call)
            self.events.append(CallRequeued(now, call.id, call.queue, agent.id, talk, call.hold_s))
            call.hold_s = 0.0   # the next agent's part is counted on its own
            self._become_idle(agent, now, announce=False)
            self._route_call(call, now)

    def end_wrap_up(self, agent_id: str, now: float) -> None:
        agent = self._agent(agent_id)
        if agent.state != "wrap_up":
            raise AcdError(f"agent {agent_id} is not in wrap-up")
        self._become_idle(agent, now)

    # --- callers -------------------------------------------------------------------
    def enqueue(self, call_id: str, queue: str, now: float, *, number: str = "", priority: str = "normal",
                owner: str | None = None) -> None:
        if call_id in self.calls:
            raise AcdError(f"call {call_id} is already in the system")
        if queue not in self.queues:
            raise AcdError(f"unknown queue '{queue}'")
        if priority not in PRIORITIES:
            raise AcdError(f"unknown priority '{priority}' (expected one of: {', '.join(PRIORITIES)})")
        call = Call(call_id, self._queues[queue], number, priority, now)
        self.calls[call_id] = call
        if owner is not None and owner in self.agents:
            call.owner = owner
        self._join(call, queue, now)

    def _join(self, call: Call, queue: str, now: float) -> None:
        q = self._queues[queue]
        config = q.config
        call.q, call.queue, call.entered, call.tier, call.declined = q, queue, now, 0, {}
        call.hops += 1
        if call.hops > len(self.queues):
            self._exit(call, "voicemail", now)
            return
        if config.max_length is not None and q.waiting >= config.max_length:
            self.events.append(CallRejectedFull(now, call.id, queue, config.on_full))
            self._exit(call, config.on_full, now)
            return
        call.key = call.first_entered - config.priority_credit_s[call.priority]
        self._push(call)
        # Most callers at most loads find the queue empty: no need to count who is ahead.
        call.original_position = self._position(call) if q.waiting > 1 else 1
        self.events.append(CallQueued(now, call.id, queue, call.original_position, call.number, call.priority))
        owner = self.agents.get(call.owner) if call.owner else None
        if owner is not None and owner.status == "available" and config.owner_wait_s > 0:
            call.owner_until = now + config.owner_wait_s
            self._timer(call.owner_until, "reroute", call)
        if config.max_wait_s is not None:
            call.max_wait_at = now + config.max_wait_s
            self._timer(call.max_wait_at, "max_wait", call)
        if len(config.tiers) > 1:
            self._timer(now + config.tiers[1].after_s, "tier", call, (now, 0))
        self._route_call(call, now)

    def abandon(self, call_id: str, now: float) -> None:
        """The caller hung up before being connected."""
        call = self._call(call_id)
        if call.state == "connected":
            raise AcdError(f"call {call_id} is connected; use hangup")
        position = self._position(call) if call.state == "waiting" else 1
        self._leave(call)
        for agent_id in call.ringing:
            self._withdraw(call, self.agents[agent_id], now)
        # the wait since they were last put back to wait (a transfer, a lost phone), as CONNECT's
        self.events.append(CallAbandoned(now, call.id, call.queue, position, call.original_position,
                                         now - call.waiting_since))

    def answer(self, call_id: str, agent_id: str, now: float) -> None:
        call = self._call(call_id)
        if call.state != "offered" or agent_id not in call.ringing:
            raise AcdError(f"call {call_id} is not ringing at agent {agent_id}")
        agent = self.agents[agent_id]
        for other in call.ringing:
            if other != agent_id:
                self._withdraw(call, self.agents[other], now)
        call.ringing = []
        call.ring_version += 1
        call.state, call.answered_at, call.agent = "connected", now, agent
        if call.first_wait < 0:
            call.first_wait = now - call.first_entered
        agent.state, agent.call, agent.missed = "in_call", call, 0
        self.events.append(CallConnected(now, call.id, call.queue, agent.id, now - call.waiting_since,
                                         now - call.offered_at))

    def ring_no_answer(self, call_id: str, agent_id: str, now: float, *, counts: bool = True) -> None:
        """The agent did not answer (counts=True) or declined/was busy (counts=False)."""
        call = self._call(call_id)
        if call.state != "offered" or agent_id not in call.ringing:
            raise AcdError(f"call {call_id} is not ringing at agent {agent_id}")
        agent = self.agents[agent_id]
        call.ringing.remove(agent_id)
        self.events.append(RingNoAnswer(now, call.id, call.queue, agent.id, now - call.offered_at, not counts))
        call.declined[agent.id] = now + RETRY_S
        if not call.ringing:
            call.ring_version += 1
            call.state = "waiting"
            self._push(call)  # same key: back where it was, at the head unless someone outranks it
            self._timer(now + RETRY_S, "reroute", call)
        agent.call = None
        if counts:
            agent.missed += 1
            if agent.missed >= call.q.config.max_no_answer and agent.status == "available":
                agent.status, agent.reason = "on_break", NO_ANSWER_REASON
                self.events.append(AgentStatusChanged(now, agent.id, "on_break", NO_ANSWER_REASON, "available"))
        self._become_idle(agent, now, announce=False)
        if call.state == "waiting":
            if call.max_wait_at is not None and call.max_wait_at <= now:
                self._timed_out(call, now)
            else:
                self._route_call(call, now)

    def hangup(self, call_id: str, now: float, *, by: str = "caller", wrap_up_s: float | None = None) -> None:
        """End a connected call; the agent goes to wrap-up (queue default or `wrap_up_s`)."""
        call = self._call(call_id)
        if call.state != "connected":
            if by == "caller":
                return self.abandon(call_id, now)
            raise AcdError(f"call {call_id} is not connected")
        agent = self._connected_agent(call)
        if call.hold_started is not None:
            call.hold_s += now - call.hold_started
            call.hold_started = None
        talk = now - call.answered_at - call.hold_s   # talk and hold are reported apart
        del self.calls[call.id]
        agent.call = None
        agent.calls += 1
        agent.talk_s += talk
        wrap = call.q.config.wrap_up_s if wrap_up_s is None else wrap_up_s
        self.events.append(CallCompleted(now, call.id, call.queue, agent.id, by, call.first_wait,
                                         talk, call.hold_s, call.original_position, wrap))
        self._wrap_up(agent, wrap, now)

    def _wrap_up(self, agent: Agent, wrap: float, now: float) -> None:
        if wrap > 0:
            agent.state, agent.wrap_until, agent.wrap_extended = "wrap_up", now + wrap, False
            agent.version += 1
            self._timer(now + wrap, "wrap", agent, agent.version)
        else:
            self._become_idle(agent, now, announce=False)

    def extend_wrap_up(self, agent_id: str, seconds: float, now: float) -> float:
        """Once per wrap-up the agent may ask for more time (a long note, a callback to book).
        Returns when the wrap-up now ends."""
        agent = self._agent(agent_id)
        if agent.state != "wrap_up":
            raise AcdError(f"agent {agent_id} is not in wrap-up")
        if agent.wrap_extended:
            raise AcdError(f"agent {agent_id} has already extended this wrap-up once")
        if not 0 < seconds <= MAX_WRAP_EXTENSION_S:
            raise AcdError(f"a wrap-up extension is 1 to {MAX_WRAP_EXTENSION_S:.0f} seconds")
        agent.wrap_until, agent.wrap_extended = max(agent.wrap_until, now) + seconds, True
        agent.version += 1
        self._timer(agent.wrap_until, "wrap", agent, agent.version)
        self.events.append(WrapUpExtended(now, agent.id, agent.wrap_until))
        return agent.wrap_until

    def start_outbound(self, agent_id: str, now: float) -> None:
        """The agent dials out (a callback): busy until `end_outbound`, offered nothing.
        From idle or from wrap-up (callbacks are often made there), never over a ringing call."""
        agent = self._agent(agent_id)
        if agent.state not in ("idle", "wrap_up") or agent.call is not None:
            raise AcdError(f"agent {agent_id} is {agent.state.replace('_', ' ')}: no outbound call now")
        self._idle.pop(agent.id, None)
        agent.state = "in_call"
        agent.version += 1   # a running wrap-up timer no longer applies
        self.events.append(AgentStateChanged(now, agent.id, "in_call"))

    def hold_outbound(self, agent_id: str, held: bool, now: float) -> None:
        """The agent put the person they called on hold (or took them off it)."""
        agent = self._agent(agent_id)
        if agent.state not in ("in_call", "on_hold") or agent.call is not None:
            raise AcdError(f"agent {agent_id} is not on an outbound call")
        state = "on_hold" if held else "in_call"
        if agent.state != state:
            agent.state = state
            self.events.append(AgentStateChanged(now, agent.id, state))

    def end_outbound(self, agent_id: str, now: float, wrap_up_s: float = 0.0) -> None:
        agent = self._agent(agent_id)
        if agent.state not in ("in_call", "on_hold") or agent.call is not None:
            raise AcdError(f"agent {agent_id} is not on an outbound call")
        if wrap_up_s > 0:
            self.events.append(AgentStateChanged(now, agent.id, "wrap_up"))
            self._wrap_up(agent, wrap_up_s, now)
        else:
            self._become_idle(agent, now)

    def transfer(self, call_id: str, now: float, *, queue: str = "", to_agent: str = "", outside: str = "",
                 wrap_up_s: float | None = None) -> None:
        """Blind transfer of a connected caller to a queue (served ahead of callers who came
        later, as they waited since their first call), to one free agent (if that agent
        does not answer, the caller goes back to the queue they came from, at their place),
        or to an outside number (the call leaves the ACD: the driver connects it).
        The transferring agent goes to wrap-up as after a call."""
        call = self._call(call_id)
        if call.state != "connected":
            raise AcdError(f"call {call_id} is not connected")
        agent = self._connected_agent(call)
        if (queue != "") + (to_agent != "") + (outside != "") != 1:
            raise AcdError("transfer to one queue, agent or outside number")
        if queue and queue not in self.queues:
            raise AcdError(f"unknown queue '{queue}'")
        target: Agent | None = None
        if to_agent:
            target = self._agent(to_agent)
            if target is agent:
                raise AcdError("that is the agent already on the call")
            if target.id not in self._idle:
                doing = {"in_call": "on a call", "ringing": "taking another call", "on_hold": "on a call",
                         "wrap_up": "in wrap-up"}.get(target.state, "")
                if target.status != "available":
                    doing = target.status.replace("_", " ").replace("on break", "on a break")
                raise AcdError(f"extension {to_agent} is not free to take a call ({doing or target.state}): "
                               "transfer to their queue instead")
        if call.hold_started is not None:
            call.hold_s += now - call.hold_started
            call.hold_started = None
        talk = now - call.answered_at - call.hold_s
        agent.call = None
        agent.calls += 1
        agent.talk_s += talk
        wrap = call.q.config.wrap_up_s if wrap_up_s is None else wrap_up_s
        where = queue or (f"agent:{to_agent}" if to_agent else f"number:{outside}")
        self.events.append(CallTransferred(now, call.id, call.queue, agent.id, where, call.first_wait, talk,
                                           call.hold_s, call.original_position, wrap))
        call.agent, call.state, call.hold_s, call.max_wait_at = None, "waiting", 0.0, None
        call.waiting_since = now
        self._wrap_up(agent, wrap, now)
        if outside:
            del self.calls[call.id]
        elif target is not None:
            call.ringing, call.declined = [], {}
            self._offer(call, [target], now)
        else:
            call.hops = 0   # a person chose this queue: not an overflow chain
            self._join(call, queue, now)

    def hold(self, call_id: str, now: float) -> None:
        call = self._call(call_id)
        if call.state != "connected" or call.hold_started is not None:
            raise AcdError(f"call {call_id} cannot be held now")
        call.hold_started = now
        agent = self._connected_agent(call)
        agent.state = "on_hold"
        self.events.append(AgentStateChanged(now, agent.id, "on_hold"))

    def unhold(self, call_id: str, now: float) -> None:
        call = self._call(call_id)
        if call.hold_started is None:
            raise AcdError(f"call {call_id} is not on hold")
        call.hold_s += now - call.hold_started
        call.hold_started = None
        agent = self._connected_agent(call)
        agent.state = "in_call"
        self.events.append(AgentStateChanged(now, agent.id, "in_call"))

    def set_priority(self, call_id: str, priority: str, now: float) -> None:
        call = self._call(call_id)
        if priority not in PRIORITIES:
            raise AcdError(f"unknown priority '{priority}' (expected one of: {', '.join(PRIORITIES)})")
        call.priority = priority
        call.key = call.first_entered - call.q.config.priority_credit_s[priority]
        if call.state == "waiting":
            self._leave_heap(call)
            self._push(call)  # re-ordered at once
        self.events.append(PriorityChanged(now, call.id, call.queue, priority))

    def move(self, call_id: str, queue: str, now: float) -> None:
        """A supervisor moves a waiting (or ringing) caller to another queue: they keep
        their place by arrival time there, and are offered to its agents at once."""
        call = self._call(call_id)
        if call.state not in ("waiting", "offered"):
            raise AcdError(f"call {call_id} is not waiting in a queue")
        if queue not in self.queues:
            raise AcdError(f"unknown queue '{queue}'")
        if queue == call.queue:
            raise AcdError(f"call {call_id} is already in {queue}")
        self._leave_heap(call)
        for agent_id in call.ringing:
            self._withdraw(call, self.agents[agent_id], now)
        call.ringing, call.state, call.max_wait_at = [], "waiting", None
        call.ring_version += 1
        call.hops = 0   # a person chose this queue: not an overflow chain
        self._join(call, queue, now)

    def accept_callback(self, call_id: str, now: float) -> None:
        """The caller takes a callback: they hang up but keep their place."""
        call = self._call(call_id)
        if call.state not in ("waiting", "callback_offer"):
            raise AcdError(f"call {call_id} is not waiting")
        call.callback = True
        if call.state == "callback_offer":  # offered because the queue was full
            call.state = "waiting"
            self._push(call)
            call.original_position = self._position(call)
        self.events.append(CallbackAccepted(now, call.id, call.queue, call.number))
        self._route_call(call, now)

    def decline_callback(self, call_id: str, now: float) -> None:
        """Only for a caller offered a callback because the queue was full: voicemail instead."""
        call = self._call(call_id)
        if call.state == "callback_offer":
            del self.calls[call.id]
            self.events.append(CallToVoicemail(now, call.id, call.queue, now - call.first_entered))

    # --- time ----------------------------------------------------------------------
    def advance(self, now: float) -> None:
        if self._unarmed_rings:
            self._arm_rings()
        timers = self._timers
        while timers and timers[0][0] <= now:
            at, _, kind, target, version = heappop(timers)
            if kind == "wrap":
                agent: Agent = target
                if agent.version == version and agent.state == "wrap_up":
                    self._become_idle(agent, at)
                continue
            if kind == "break":
                agent = target
                if agent.status == "on_break" and agent.breaks == version[0]:
                    self.events.append(BreakOverrun(at, agent.id, agent.reason, version[1]))
                continue
            call: Call = target
            if self.calls.get(call.id) is not call:
                continue  # the call is gone
            if kind == "ring":
                if call.ring_version == version and call.state == "offered":
                    for agent_id in list(call.ringing):
                        self.ring_no_answer(call.id, agent_id, at)
            elif kind == "max_wait":
                # max_wait_at moves when a call overflows to another queue (its own limit)
                # and is cleared when a cut-off caller is requeued: only the current one counts.
                if call.state == "waiting" and call.max_wait_at is not None and call.max_wait_at <= at:
                    self._timed_out(call, at)
            elif kind == "tier":
                tiers = call.q.config.tiers
                if version == (call.entered, call.tier) and call.state == "waiting":
                    call.tier += 1
                    if call.tier + 1 < len(tiers):
                        self._timer(call.entered + tiers[call.tier + 1].after_s, "tier", call,
                                    (call.entered, call.tier))
                    self._route_call(call, at)
            elif call.state == "waiting":  # reroute: ownership or a retry ban ended
                self._route_call(call, at)

    # --- internals -------------------------------------------------------------------
    def _agent(self, agent_id: str) -> Agent:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise AcdError(f"unknown agent {agent_id}") from None

    def _call(self, call_id: str) -> Call:
        try:
            return self.calls[call_id]
        except KeyError:
            raise AcdError(f"unknown call {call_id}") from None

    def _connected_agent(self, call: Call) -> Agent:
        if call.agent is None:
            raise AcdError(f"call {call.id} has no agent")
        return call.agent

    def _timer(self, at: float, kind: str, target: Any, version: Any = 0) -> None:
        self._seq += 1
        heappush(self._timers, (at, self._seq, kind, target, version))
        if len(self._timers) > self._compact_timers_at:
            self._forget_finished_calls_timers()

    def _forget_finished_calls_timers(self) -> None:
        """Timers are cancelled lazily (skipped when their time comes), so a finished call's
        ring and max-wait timers (and every wrap-up's) stayed in the heap, holding the whole call, until their
        time: at 125 calls/s and a 10-minute max wait, 150,000 calls' worth (the switch's
        memory grew for ten minutes of a soak). Rebuilt without them whenever the heap has
        doubled since the last time: amortised, a constant per timer."""
        calls = self.calls
        kept = []
        for entry in self._timers:
            kind, target, version = entry[2], entry[3], entry[4]
            if kind == "wrap":   # the same tests advance() makes when the time comes
                live = target.version == version and target.state == "wrap_up"
            elif kind == "break":
                live = target.status == "on_break" and target.breaks == version[0]
            else:
                live = calls.get(target.id) is target
            if live:
                kept.append(entry)
        heapify(kept)
        self._timers[:] = kept   # the same list: advance() may be popping from it
        self._compact_timers_at = max(1024, 2 * len(kept))

    def _push(self, call: Call) -> None:
        self._seq += 1
        entry = [call.key, self._seq, call, True]
        call.entry = entry
        heappush(call.q.heap, entry)
        call.q.waiting += 1

    def _leave_heap(self, call: Call) -> None:
        entry = call.entry
        if entry is not None and entry[3]:
            entry[3] = False
            call.q.waiting -= 1
            heap = call.q.heap
            if heap[0] is entry:  # the usual case: the head is served; keep the heap free of leftovers
                heappop(heap)
        call.entry = None

    def _leave(self, call: Call) -> None:
        self._leave_heap(call)
        self.calls.pop(call.id, None)

    def _position(self, call: Call) -> int:
        if call.entry is None:
            return 0
        mine = call.entry[:2]
        return 1 + sum(1 for e in call.q.heap if e[3] and e[:2] < mine)

    def _eligible(self, agent: Agent, call: Call, now: float) -> bool:
        if call.declined and call.declined.get(agent.id, 0.0) > now:
            return False
        if call.owner is not None and agent.id != call.owner and now < call.owner_until:
            owner = self.agents[call.owner]
            if owner.status == "available":
                return False  # reserved for the agent who owns the caller's open work order
        skills = agent.skills
        tiers = call.q.config.tiers
        for index in range(call.tier + 1):  # the tiers opened so far (no slice: this runs per offer)
            tier = tiers[index]
            for skill in tier.skills:
                if skills.get(skill, 0) >= tier.min_proficiency:
                    return True
        return False

    def _route_call(self, call: Call, now: float) -> None:
        if not self._idle:
            return
        strategy = call.q.config.strategy
        if strategy == "longest_idle":
            for agent in self._idle.values():
                if self._eligible(agent, call, now):
                    self._offer(call, [agent], now)
                    return
            return
        candidates = [a for a in self._idle.values() if self._eligible(a, call, now)]
        if not candidates:
            return
        if strategy == "ring_all":
            chosen = candidates
        elif strategy == "round_robin":
            last = call.q.last_order
            chosen = [min(candidates, key=lambda a: (a.order <= last, a.order))]
            call.q.last_order = chosen[0].order
        elif strategy == "fewest_calls":
            chosen = [min(candidates, key=lambda a: (a.calls, a.idle_since))]
        elif strategy == "least_talk_time":
            chosen = [min(candidates, key=lambda a: (a.talk_s, a.idle_since))]
        else:  # random
            chosen = [self.rng.choice(candidates)]
        self._offer(call, chosen, now)

    def _route_agent(self, agent: Agent, now: float) -> None:
        best: Call | None = None
        for queue in agent.queues:
            if not queue.waiting:
                continue
            heap = queue.heap
            while heap and not heap[0][3]:
                heappop(heap)  # drop entries of calls that left
            head = heap[0][2]
            if self._eligible(agent, head, now):
                candidate = head
            else:  # the head is reserved or needs a wider tier: look further down
                candidate = next((e[2] for e in sorted(heap) if e[3] and self._eligible(agent, e[2], now)), None)
            if candidate is not None and (best is None or _rank(candidate) < _rank(best)):
                best = candidate
        if best is not None:
            if best.q.config.strategy == "round_robin":
                best.q.last_order = agent.order
            self._offer(best, [agent], now)

    def _offer(self, call: Call, agents: list[Agent], now: float) -> None:
        self._leave_heap(call)
        call.state, call.offered_at = "offered", now
        call.ringing = [a.id for a in agents]
        call.ring_version += 1
        config = call.q.config
        for agent in agents:
            del self._idle[agent.id]
            agent.state, agent.call = "ringing", call
            if call.callback:
                self.events.append(CallbackDue(now, call.id, call.queue, agent.id, call.number))
            else:
                self.events.append(CallOffered(now, call.id, call.queue, agent.id))
        self._unarmed_rings.append((now + config.ring_timeout_s, call, call.ring_version))

    def _withdraw(self, call: Call, agent: Agent, now: float) -> None:
        agent.call = None
        self.events.append(CallOfferWithdrawn(now, call.id, call.queue, agent.id))
        self._become_idle(agent, now, announce=False)

    def _become_idle(self, agent: Agent, now: float, *, announce: bool = True) -> None:
        """announce=False where the triggering call event already says the agent is idle."""
        agent.state, agent.idle_since = "idle", now
        agent.version += 1
        if announce:
            self.events.append(AgentStateChanged(now, agent.id, "idle"))
        if agent.status == "available" and agent.reachable:
            self._idle[agent.id] = agent
            self._route_agent(agent, now)

    def _timed_out(self, call: Call, now: float) -> None:
        action = call.q.config.on_max_wait
        if action == "callback":
            if not call.callback:
                self.events.append(CallbackOffered(now, call.id, call.queue))
            return  # the caller stays in the queue either way
        position = self._position(call)
        self._leave_heap(call)
        self.events.append(CallTimedOut(now, call.id, call.queue, position, call.original_position,
                                        now - call.first_entered, action))
        self._exit(call, action, now)

    def _exit(self, call: Call, action: str, now: float) -> None:
        """Where a caller goes when the queue is full or they waited too long."""
        if action.startswith("overflow:"):
            self._join(call, action[9:], now)
        elif action == "callback" and not call.callback:
            call.state = "callback_offer"
            self.events.append(CallbackOffered(now, call.id, call.queue))
        else:
            del self.calls[call.id]
            self.events.append(CallToVoicemail(now, call.id, call.queue, now - call.first_entered))
