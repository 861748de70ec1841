"""Events of the switch's SIP side that are not routing decisions (those are in
telephony/acd/events.py). Each goes to the event log and to subscribers like the
routing events, by its class name; `agent_id` names the seat it concerns."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class PhoneRegistration:
    """An agent's phone became reachable (registered, at `contact`) or went away
    (expired, unregistered). Refreshes that change nothing are not events."""
    t: float
    agent_id: str
    registered: bool
    contact: str        # host:port, "" when gone

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
