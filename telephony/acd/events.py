"""What the routing core says happened. Immutable; named after the event.

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
