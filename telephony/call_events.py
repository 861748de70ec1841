"""Events of the switch's SIP side that are not routing decisions (those are in
telephony/acd/events.py). Each goes to the event log and to subscribers like the
routing events, by its class name; `agent_id` names the seat it concerns."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """Base of the switch's own events: frozen, and turned into a dict by field."""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PhoneRegistration(Event):
    """An agent's phone became reachable (registered, at `contact`) or went away
    (expired, unregistered). Refreshes that change nothing are not events."""
    t: float
    agent_id: str
    registered: bool
    contact: str        # host:port, "" when gone


# What a call's legs did that the routing core does not decide. The switch's recorder
# (telephony/recorder.py) writes the interactions row from these, in the transaction
# that logs them.
@dataclass(frozen=True)
class MenuEntered(Event):
    """A caller reached the voice menu: their contact (and its row) begins here."""
    t: float
    call_id: str
    number: str
    dialled: str
    resident_id: int | None


@dataclass(frozen=True)
class MenuKeyPressed(Event):
    """The caller chose: `key` ("" when they pressed nothing in time) led to `queue`."""
    t: float
    call_id: str
    key: str
    queue: str


@dataclass(frozen=True)
class MenuAbandoned(Event):
    """The caller hung up in the menu, `wait_s` after entering it."""
    t: float
    call_id: str
    wait_s: float


@dataclass(frozen=True)
class OutboundDialled(Event):
    """A seat dialled out (a follow-up call) through the trunk."""
    t: float
    call_id: str
    agent_id: str
    number: str
    resident_id: int | None


@dataclass(frozen=True)
class OutboundAnswered(Event):
    t: float
    call_id: str
    agent_id: str
    wait_s: float     # ringing at the far end


@dataclass(frozen=True)
class OutboundEnded(Event):
    """`outcome`: answered, no_answer, abandoned (the agent gave up) or interrupted;
    talk and hold count only when answered; the agent then wraps up `wrap_up_s`."""
    t: float
    call_id: str
    agent_id: str
    outcome: str
    talk_s: float
    hold_s: float
    wrap_up_s: float


@dataclass(frozen=True)
class OutsideAnswered(Event):
    """An outside number a caller was transferred to answered (after ringing `ring_s`)."""
    t: float
    call_id: str
    number: str
    ring_s: float


@dataclass(frozen=True)
class OutsideNotAnswered(Event):
    """An outside number a caller was transferred to refused, was busy or rang out after
    `ring_s`: the caller goes back to the queue they were in."""
    t: float
    call_id: str
    number: str
    ring_s: float


@dataclass(frozen=True)
class OutsideEnded(Event):
    """A caller transferred to an outside number is gone: `outcome` answered (they
    talked `talk_s` there) or interrupted (the switch stopped). Their contact ends here."""
    t: float
    call_id: str
    number: str
    outcome: str
    talk_s: float


@dataclass(frozen=True)
class CallFailed(Event):
    """A call the switch turned away or could not place; `cause` is the SIP status sent
    ("503 No Trunk Configured"). `agent_id` is the seat's for an outbound call, else ""."""
    t: float
    call_id: str
    number: str
    dialled: str
    agent_id: str
    cause: str


@dataclass(frozen=True)
class RecordingSaved(Event):
    t: float
    call_id: str
    path: str        # the WAV, both sides


@dataclass(frozen=True)
class CallerIdentified(Event):
    """An agent said who an unknown caller is."""
    t: float
    call_id: str
    agent_id: str
    resident_id: int


@dataclass(frozen=True)
class DispositionSet(Event):
    """An agent's disposition and notes on a contact (each agent keeps their own)."""
    t: float
    call_id: str
    agent_id: str
    disposition: str
    notes: str

