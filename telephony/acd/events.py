"""What the routing core says happened. Immutable; named after the event.

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

from typing import NamedTuple


class CallQueued(NamedTuple):
    t: float
    call_id: str
    queue: str
    position: int
    number: str
    priority: str


class CallOffered(NamedTuple):
    t: float
    call_id: str
    queue: str
    agent_id: str


class CallbackDue(NamedTuple):
    t: float
    call_id: str
    queue: str
    agent_id: str
    number: str


class RingNoAnswer(NamedTuple):
    t: float
    call_id: str
    queue: str
    agent_id: str
    ring_s: float


class CallConnected(NamedTuple):
    t: float
    call_id: str
    queue: str
    agent_id: str
    wait_s: float
    ring_s: float


class CallCompleted(NamedTuple):
    t: float
    call_id: str
    queue: str
    agent_id: str
    by: str              # "caller" or "agent": who hung up
    wait_s: float
    talk_s: float
    hold_s: float
    original_position: int
    wrap_up_s: float     # the agent's wrap-up timer; 0: straight back to idle


class CallAbandoned(NamedTuple):
    t: float
    call_id: str
    queue: str
    position: int
    original_position: int
    wait_s: float


class CallTimedOut(NamedTuple):
    """Left the queue at max wait; `action` says where it went (voicemail, overflow:Q, callback)."""
    t: float
    call_id: str
    queue: str
    position: int
    original_position: int
    wait_s: float
    action: str


class CallRejectedFull(NamedTuple):
    t: float
    call_id: str
    queue: str
    action: str


class CallToVoicemail(NamedTuple):
    t: float
    call_id: str
    queue: str
    wait_s: float


class CallbackOffered(NamedTuple):
    t: float
    call_id: str
    queue: str


class CallbackAccepted(NamedTuple):
    t: float
    call_id: str
    queue: str
    number: str


class PriorityChanged(NamedTuple):
    t: float
    call_id: str
    queue: str
    priority: str


class AgentStatusChanged(NamedTuple):
    """Set by people: logged_out, available, on_break (with a reason code)."""
    t: float
    agent_id: str
    status: str
    reason: str
    previous: str


class AgentStateChanged(NamedTuple):
    """Set by the system: idle, ringing, in_call, on_hold, wrap_up."""
    t: float
    agent_id: str
    state: str


class CallOfferWithdrawn(NamedTuple):
    """Stop ringing this agent: another agent answered, or the caller hung up."""
    t: float
    call_id: str
    queue: str
    agent_id: str


def agent_state_after(event) -> tuple[str, str] | None:
    """(agent_id, state) that `event` puts an agent in, or None."""
    kind = type(event)
    if kind is AgentStateChanged:
        return event.agent_id, event.state
    if kind is CallOffered or kind is CallbackDue:
        return event.agent_id, "ringing"
    if kind is CallConnected:
        return event.agent_id, "in_call"
    if kind is CallCompleted:
        return event.agent_id, "wrap_up" if event.wrap_up_s > 0 else "idle"
    if kind is RingNoAnswer or kind is CallOfferWithdrawn:
        return event.agent_id, "idle"
    return None
