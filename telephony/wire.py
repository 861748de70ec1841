"""Events on the control API: one JSON object per event, with its version, and back.

The switch sends every event as `{"event": <class name>, "v": EVENT_VERSION, <fields>}`
(plus `seq`, its line in the event log, and on an offer to the ringing seat its `pop`
and a transferred caller's `form`). `decode` turns such a line back into the same
class the switch made, so a client matches on types (`isinstance(d.event,
CallOffered)`), not on strings. A line of another version or an unknown name is a
`WireError`, never a half-read event.

A field added with a default (`ADDED_WITH_DEFAULT`) is not: a line logged before it reads
as the default, and an older client ignores it. Any other new field or a new event is a
new version: the switch refuses a subscriber that asks
for a version it does not send (`subscribe` with `v`), so an old seat is told to
upgrade instead of mis-reading calls. Lines logged before versions were written (no
`v`) are version 1.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Union

from records import desk
from telephony.acd import events as ev
from telephony import call_events as ce

EVENT_VERSION = 1

RoutingEvent = Union[ev.CallQueued, ev.CallOffered, ev.CallbackDue, ev.RingNoAnswer, ev.CallConnected,
                     ev.CallCompleted, ev.CallAbandoned, ev.CallTimedOut, ev.CallRejectedFull, ev.CallToVoicemail,
                     ev.CallbackOffered, ev.CallbackAccepted, ev.PriorityChanged, ev.AgentStatusChanged,
                     ev.AgentStateChanged, ev.CallOfferWithdrawn, ev.CallRequeued, ev.CallTransferred,
                     ev.BreakOverrun, ev.WrapUpExtended]
CallEvent = Union[ce.PhoneRegistration, ce.MenuEntered, ce.MenuKeyPressed, ce.MenuAbandoned, ce.OutboundDialled,
                  ce.OutboundAnswered, ce.OutboundEnded, ce.OutsideAnswered, ce.OutsideNotAnswered,
                  ce.OutsideEnded, ce.CallFailed,
                  ce.RecordingSaved, ce.CallerIdentified, ce.DispositionSet]
SwitchEvent = Union[RoutingEvent, CallEvent, desk.ResidentAdded, desk.PhoneLinked, desk.WorkOrderOpened,
                    desk.CallbackAttempted]

ROUTING_EVENTS: tuple[type, ...] = RoutingEvent.__args__   # type: ignore[attr-defined]
TYPES: dict[str, type] = {cls.__name__: cls for cls in SwitchEvent.__args__}   # type: ignore[attr-defined]


# The JSON type of each field, by name (a name means the same in every event; a test checks
# this against the classes' annotations). Anything not listed is text. Checked here, not
# left to the classes: interpreted, they would take a number for a call id.
NUMBERS = frozenset({"t", "since", "until", "wait_s", "talk_s", "hold_s", "ring_s", "wrap_up_s", "limit_s"})
INTEGERS = frozenset({"position", "original_position", "order_id", "callback_id", "resident_id"})
FLAGS = frozenset({"registered", "declined"})
ADDED_WITH_DEFAULT: dict[tuple[str, str], Any] = {("RingNoAnswer", "declined"): False,
                                                  ("AgentStatusChanged", "since"): None}   # None: = t
MAY_BE_NULL = frozenset({("WorkOrderOpened", "resident_id"), ("MenuEntered", "resident_id"),
                         ("OutboundDialled", "resident_id")})


class WireError(ValueError):
    """A line that is not an event this client can read."""


def field_names(cls: type) -> tuple[str, ...]:
    if dataclasses.is_dataclass(cls):
        return tuple(f.name for f in dataclasses.fields(cls))
    return tuple(cls.fields)   # type: ignore[attr-defined]   # a routing event (telephony/acd/events.py)


def encode(event: SwitchEvent) -> dict[str, Any]:
    """The event as the switch sends it and logs it."""
    return {"event": type(event).__name__, "v": EVENT_VERSION, **event.as_dict()}


@dataclass(frozen=True)
class Delivered:
    """One event as a client received it."""
    event: SwitchEvent
    seq: int | None = None                  # its line in the switch's event log (None: not logged)
    pop: Mapping[str, Any] | None = None    # an offer to this seat: what its first screen needs
    form: Mapping[str, Any] | None = None   # an offer of a transferred caller: what the last agent typed

    @property
    def agent_id(self) -> str:
        return str(getattr(self.event, "agent_id", "") or "")

    @property
    def call_id(self) -> str:
        return str(getattr(self.event, "call_id", "") or "")


def decode(message: Mapping[str, Any]) -> Delivered:
    """A received event line (already parsed from JSON) as the switch's own class."""
    name = message.get("event")
    version = message.get("v", 1)
    if version != EVENT_VERSION:
        raise WireError(f"{name}: event version {version!r}; this client reads version {EVENT_VERSION}")
    cls = TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise WireError(f"unknown event {name!r}")
    names = field_names(cls)
    missing = [n for n in names if n not in message and (name, n) not in ADDED_WITH_DEFAULT]
    if missing:
        raise WireError(f"{name} without {', '.join(missing)}")
    event = cls(**{n: _checked(cls.__name__, n, message[n]) for n in names if n in message})
    seq = message.get("seq")
    pop, form = message.get("pop"), message.get("form")
    return Delivered(event, seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
                     pop if isinstance(pop, Mapping) else None, form if isinstance(form, Mapping) else None)


def _checked(event: str, field: str, value: Any) -> Any:
    if value is None and (event, field) in MAY_BE_NULL:
        return None
    if field in NUMBERS:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        wanted = "a number"
    elif field in INTEGERS:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        wanted = "an integer"
    elif field in FLAGS:
        if isinstance(value, bool):
            return value
        wanted = "true or false"
    else:
        if isinstance(value, str):
            return value
        wanted = "text"
    raise WireError(f"{event}: {field} is {value!r}, not {wanted}")


# --- the supervisors' snapshot, typed ------------------------------------------------------------
@dataclass(frozen=True)
class WaitingCaller:
    call_id: str
    number: str
    priority: str
    wait_s: float
    callback: bool = False


@dataclass(frozen=True)
class AgentView:
    ext: str
    name: str
    status: str            # logged_out, available, on_break
    reason: str
    state: str             # idle, ringing, in_call, on_hold, wrap_up
    since: float           # in that state since
    status_since: float
    call: str | None
    caller: str            # the current call's number ("" with none)
    queue: str
    skills: tuple[tuple[str, int], ...]
    registered: bool
    reachable: bool

    def serves(self, queue: str) -> bool:
        return any(name == queue for name, _ in self.skills)


@dataclass(frozen=True)
class Lockout:
    kind: str              # "ext" or "address"
    key: str
    seconds_left: float


@dataclass(frozen=True)
class Snapshot:
    """The `snapshot` op's reply as the switch's state at `at`, immutable."""
    at: float
    queues: tuple[tuple[str, tuple[WaitingCaller, ...]], ...] = ()
    agents: tuple[AgentView, ...] = ()
    locked_out: tuple[Lockout, ...] = ()

    def waiting(self, queue: str) -> tuple[WaitingCaller, ...]:
        return next((callers for name, callers in self.queues if name == queue), ())


def decode_snapshot(fields: Mapping[str, Any]) -> Snapshot:
    """The snapshot's JSON as a Snapshot (fields a newer switch adds are ignored)."""
    try:
        return Snapshot(
            at=float(fields["at"]),
            queues=tuple((str(name), tuple(WaitingCaller(str(c["call_id"]), str(c.get("number", "")),
                                                         str(c.get("priority", "normal")), float(c["wait_s"]),
                                                         bool(c.get("callback", False))) for c in callers))
                         for name, callers in (fields.get("queues") or {}).items()),
            agents=tuple(AgentView(
                ext=str(a["ext"]), name=str(a.get("name", "")), status=str(a["status"]), reason=str(a.get("reason", "")),
                state=str(a["state"]), since=float(a["since"]), status_since=float(a.get("status_since", a["since"])),
                call=a.get("call") or None, caller=str(a.get("caller", "")), queue=str(a.get("queue", "")),
                skills=tuple(sorted((str(k), int(v)) for k, v in (a.get("skills") or {}).items())),
                registered=bool(a.get("registered")), reachable=bool(a.get("reachable")))
                for a in fields.get("agents") or ()),
            locked_out=tuple(Lockout(str(x["kind"]), str(x["key"]), float(x["seconds_left"]))
                             for x in fields.get("locked_out") or ()))
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"a snapshot this client cannot read: {exc!r}") from None
