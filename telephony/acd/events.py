"""What the routing core says happened, named after the event; never changed once made.

Agent states that a call event already implies are not repeated as AgentStateChanged
(at a million simulated calls the duplicates were a third of the work):
CallOffered/CallbackDue -> ringing, CallConnected -> in_call, CallCompleted -> wrap_up
(wrap_up_s > 0) or idle, RingNoAnswer/CallOfferWithdrawn -> idle. AgentStateChanged
covers the rest (hold, unhold, end of wrap-up); `agent_state_after` gives the uniform view.

Some are also instructions to the driver (the switch or the simulator): CallOffered
means "ring this agent", CallbackDue "dial the caller back for this agent",
CallToVoicemail "send the caller to the mailbox", CallbackOffered "offer a callback".
Times are seconds on the driver's clock (epoch in the switch, virtual in the simulator).
"""

from __future__ import annotations

from typing import Any, ClassVar, final


class Event:
    """Base of every routing event: compared, printed and turned into a dict by field.

    Events are never changed after the core makes them (several consumers read the
    same object). They are plain classes, not NamedTuples, because the simulator
    compiles this module with mypyc, where a plain class is made ~9x faster.
    `fields` lists the attributes in order (a test checks it against __init__).
    """
    fields: ClassVar[tuple[str, ...]] = ()

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.fields}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(getattr(self, n) == getattr(other, n) for n in self.fields)

    def __hash__(self) -> int:
        return hash((type(self).__name__, *(getattr(self, n) for n in self.fields)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.fields) + ")"


@final
class CallQueued(Event):
    fields = ("t", "call_id", "queue", "position", "number", "priority")

    def __init__(self, t: float, call_id: str, queue: str, position: int, number: str, priority: str) -> None:
        self.t = t
        self.call_id = call_id
        self.queue = queue
        self.position = position
        self.number = number
        self.priority = priority


@final
class CallOffered(Event):
    fields = ("t", "call_id", "queue", "agent_id")

    def __init__(self, t: float, call_id: str, queue: str, agent_id: str) -> None:
        self.t = t
        self.call_id = call_id
        self.queue = queue
        self.agent_id = agent_id


@final
class CallbackDue(Event):
    fields = ("t", "call_id", "queue", "agent_id", "number")

    def __init__(self, t: float, call_id: str, queue: str, agent_id: str, number: str) -> None:
        self.t = t
        self.call_id = call_id
        self.queue = queue
        self.agent_id = agent_id
        self.number = number


@final
class RingNoAnswer(Event):
    """The offer ended without an answer: rang out, or `declined` at the phone (busy,
    rejected), which does not count towards the no-answer break."""
    fields = ("t", "call_id", "queue", "agent_id", "ring_s", "declined")

    def __init__(self, t: float, call_id: str, queue: str, agent_id: str, ring_s: float,
                 declined: bool = False) -> None:
        self.t = t
        self.call_id = call_id
        self.queue = queue
        self.agent_id = agent_id
        self.ring_s = ring_s
        self.declined = declined


@final
class CallConnected(Event):
    fields = ("t", "call_id", "queue", "agent_id", "wait_s", "ring_s")

    def __init__(self, t: float, call_id: str, queue: str,
                 agent_id: str, wait_s: float, ring_s: float) -> None:
        self.t = t
        self.call_id = call_id
        self.queue = queue
        self.agent_id = agent_id
        self.wait_s = wait_s
        self.ring_s = ring_s


@final
class CallCompleted(Event):
    fields = ("t", "call_id", "queue", "agent_id", "by", "wait_s", "talk_s", "hold_s", "original_position", "wrap_up_s")

    def __init__(self, t: float, call_id: str, queue: str, agent_id: str, by: str,
                 wait_s: float, talk_s: float, hold_s: float, original_position: int, wrap_up_s: float) -> None:
        self.t = t
        self.call_id = call_id
        self.queue = queue
        self.agent_id = agent_id
        self.by = by  # "caller" or "agent": who hung up
        self.wait_s = wait_s
        self.talk_s = talk_s
        self.hold_s = hold_s
        self.original_position = original_position
        self.wrap_up_s = wrap_up_s  # the agent's wrap-up timer; 0: straight back to idle


@final
class CallAbandoned(Event):
    fields = ("t", "call_id", "queue", "position", "original_position", "wait_s")

    def __init__(self, t: float, call_id: str, queue: str,
                 position: int, original_position: int, wait_s: float) -> None:
        self.t = t
        self.call_id = call_id
        self.queue = queue
        self.position = position
        self.original_position = original_position
        self.wait_s = wait_s


@final
class CallTimedOut(Event):
    """Left the queue at max wait; `action` says where it went (voicemail, overflow:Q, callback)."""
    fields = ("t", "call_id", "queue", "position", "original_position", "wait_s", "action")

    def __init__(self, t: float, call_id: str, queue: str,
                 position: int, original_position: int, wait_s: float, action: str) -> None:
        self.t = t
        self.call_id = call_id
        self.queue = queue
        self.position = position
        self.original_position = original_position
        self.wait_s = wait_s
        self.action = action


@final
class CallRejectedFull(Event):
    fields = ("t", "call_id", "queue", "action")

    def __init__(self, t: float, call_id: str, queue: str, action: str) -> None:
        self.t = t
        self.call_id = call_id
        self.queue = queue
        self.action = action


@final
class CallToVoicemail(Event):
    fields = ("t", "call_id", "queue", "wait_s")

    def __init__(self, t: float, call_id: str, queue: str, wait_s: float) -> None:
        self.t = t
        self.call_id = call_id
        self.queue = queue
        self.wait_s = wait_s


@final
class CallbackOffered(Event):
    fields = ("t", "call_id", "queue")

    def __init__(self, t: float, call_id: str, queue: str) -> None:
        self.t = t
        self.call_id = call_id
        self.queue = queue


@final
class CallbackAccepted(Event):
    fields = ("t", "call_id", "queue", "number")

    def __init__(self, t: float, call_id: str, queue: str, number: str) -> None:
        self.t = t
        self.call_id = call_id
        self.queue = queue
        self.number = number


@final
class PriorityChanged(Event):
    fields = ("t", "call_id", "queue", "priority")

    def __init__(self, t: float, call_id: str, queue: str, priority: str) -> None:
        self.t = t
        self.call_id = call_id
        self.queue = queue
        self.priority = priority


@final
class AgentStatusChanged(Event):
    """Set by people: logged_out, available, on_break (with a reason code). `since`: when
    the status began, `t` but for a break taken up again after the switch restarted
    (its clock and its limit run from when the agent went on it)."""
    fields = ("t", "agent_id", "status", "reason", "previous", "since")

    def __init__(self, t: float, agent_id: str, status: str, reason: str, previous: str,
                 since: float | None = None) -> None:
        self.t = t
        self.agent_id = agent_id
        self.status = status
        self.reason = reason
        self.previous = previous
        self.since = t if since is None else since


@final
class AgentStateChanged(Event):
    """Set by the system: idle, ringing, in_call, on_hold, wrap_up."""
    fields = ("t", "agent_id", "state")

    def __init__(self, t: float, agent_id: str, state: str) -> None:
        self.t = t
        self.agent_id = agent_id
        self.state = state


@final
class CallOfferWithdrawn(Event):
    """Stop ringing this agent: another agent answered, or the caller hung up."""
    fields = ("t", "call_id", "queue", "agent_id")

    def __init__(self, t: float, call_id: str, queue: str, agent_id: str) -> None:
        self.t = t
        self.call_id = call_id
        self.queue = queue
        self.agent_id = agent_id


@final
class CallRequeued(Event):
    """The agent's phone went away mid-call (seat killed, network lost): the caller is
    back at the head of the queue, and `talk_s` of conversation (and `hold_s` on hold)
    was cut off. The contact stays answered: the next agent's part adds to it."""
    fields = ("t", "call_id", "queue", "agent_id", "talk_s", "hold_s")

    def __init__(self, t: float, call_id: str, queue: str, agent_id: str, talk_s: float, hold_s: float) -> None:
        self.t = t
        self.call_id = call_id
        self.queue = queue
        self.agent_id = agent_id
        self.talk_s = talk_s
        self.hold_s = hold_s


@final
class CallTransferred(Event):
    """The agent passed a connected caller on (blind transfer) to `target`: a queue name
    or `agent:<ext>`; the caller's contact goes on, the agent goes to wrap-up."""
    fields = ("t", "call_id", "queue", "agent_id", "target", "wait_s", "talk_s", "hold_s", "original_position",
              "wrap_up_s")

    def __init__(self, t: float, call_id: str, queue: str, agent_id: str, target: str, wait_s: float,
                 talk_s: float, hold_s: float, original_position: int, wrap_up_s: float) -> None:
        self.t = t
        self.call_id = call_id
        self.queue = queue
        self.agent_id = agent_id
        self.target = target
        self.wait_s = wait_s
        self.original_position = original_position
        self.talk_s = talk_s
        self.hold_s = hold_s
        self.wrap_up_s = wrap_up_s


@final
class BreakOverrun(Event):
    """The agent is still on a break `limit_s` after it began: past the limit its reason has
    (a supervisor's alert; the seat says so)."""
    fields = ("t", "agent_id", "reason", "limit_s")

    def __init__(self, t: float, agent_id: str, reason: str, limit_s: float) -> None:
        self.t = t
        self.agent_id = agent_id
        self.reason = reason
        self.limit_s = limit_s


@final
class WrapUpExtended(Event):
    """The agent took more wrap-up time (once per wrap-up); it now ends at `until`."""
    fields = ("t", "agent_id", "until")

    def __init__(self, t: float, agent_id: str, until: float) -> None:
        self.t = t
        self.agent_id = agent_id
        self.until = until


def agent_state_after(event: Event) -> tuple[str, str] | None:
    """(agent_id, state) that `event` puts an agent in, or None."""
    if isinstance(event, AgentStateChanged):
        return event.agent_id, event.state
    if isinstance(event, (CallOffered, CallbackDue)):
        return event.agent_id, "ringing"
    if isinstance(event, CallConnected):
        return event.agent_id, "in_call"
    if isinstance(event, (CallCompleted, CallTransferred)):
        return event.agent_id, "wrap_up" if event.wrap_up_s > 0 else "idle"
    if isinstance(event, (RingNoAnswer, CallOfferWithdrawn, CallRequeued)):
        return event.agent_id, "idle"
    return None
