"""What an agent's desk asks of records, answered where the records are (the switch).

A seat runs on the agent's own machine with no database: everything its screens show
or change about residents, work orders and follow-ups is one control API op, answered
by the switch from these functions (telephony/control.py). They return the frozen
classes the seat draws; `to_wire`/`*_from_wire` carry them as JSON and back.

`screen_pop` turns a ringing call (its number and the switch's X-Hotline-* headers)
plus records into everything the agent needs before saying hello: who, which unit, VIP
or not, arrears, open work orders with time left to each deadline (overdue first), and
the contact history.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from sqlite_utils import Database

from records.callbacks import Callback
from records.directory import (DirectoryError, NewResident, add_phone, add_resident, find_units, last_contacts,
                               phones_of, resident, resident_by_phone, search_residents)
from records.knowledge import Answer
from records.workorders import pending_deadlines


@dataclass(frozen=True)
class OrderLine:
    id: int
    type: str
    status: str
    description: str
    deadline: str          # the next deadline not met ("on site", "fixed", ...), or ""
    seconds_left: float    # negative: overdue

    @property
    def overdue(self) -> bool:
        return bool(self.deadline) and self.seconds_left < 0


@dataclass(frozen=True)
class ContactLine:
    at: float
    direction: str
    queue: str
    outcome: str
    agent: str
    disposition: str
    notes: str


@dataclass(frozen=True)
class Pop:
    """Everything the seat shows for one call."""
    call: int                       # the softphone's key for the call
    number: str
    queue: str
    waited_s: int
    interaction: str                # the switch's call id (control API, queue_log)
    resident_id: int | None = None
    name: str = ""
    name_alt: str = ""
    unit: str = ""
    place: str = ""                 # building, estate
    vip: bool = False
    language: str = ""
    arrears_cents: int = 0
    notes: str = ""
    orders: tuple[OrderLine, ...] = ()
    contacts: tuple[ContactLine, ...] = ()
    looking_up: bool = False        # only what the call said of itself yet: records are on the way

    @property
    def known(self) -> bool:
        return self.resident_id is not None

    @property
    def overdue_orders(self) -> int:
        return sum(1 for order in self.orders if order.overdue)


def header_pop(call: int, number: str, headers: dict[str, str], display: str = "") -> Pop:
    """What a ringing call says about itself (number, queue, wait; the resident and their
    name when the switch knows the caller), before records do: the seat draws it at once
    and fills in the profile when the switch answers. `display`, the From's display name,
    is the switch's name for the resident only with X-Hotline-Resident; without it, it is
    whatever the caller's own phone claimed, and not shown as a name."""
    try:
        waited = int(headers.get("X-Hotline-Wait", "0"))
    except ValueError:
        waited = 0
    try:
        resident_id: int | None = int(headers.get("X-Hotline-Resident") or "")
    except ValueError:
        resident_id = None
    name = display.strip() if resident_id is not None else ""
    return Pop(call=call, number=number, queue=headers.get("X-Hotline-Queue", ""), waited_s=waited,
               interaction=headers.get("X-Hotline-Interaction", ""), looking_up=True,
               resident_id=resident_id if name else None, name=name)


def pop_headers(pop: Pop, resident_id: int | None = None) -> dict[str, str]:
    """The headers that pop `pop`'s call again (for another resident, if given)."""
    headers = {"X-Hotline-Queue": pop.queue, "X-Hotline-Wait": str(pop.waited_s),
               "X-Hotline-Interaction": pop.interaction}
    chosen = resident_id if resident_id is not None else pop.resident_id
    if chosen is not None:
        headers["X-Hotline-Resident"] = str(chosen)
    return headers


def screen_pop(db: Database, call: int, number: str, headers: dict[str, str], now: float,
               *, history: int = 10) -> Pop:
    """The pop for a ringing call. The switch's resident id wins (it may have matched a
    number we format differently); otherwise the caller's number is looked up."""
    ringing = header_pop(call, number, headers)
    base = Pop(call=call, number=number, queue=ringing.queue, waited_s=ringing.waited_s,
               interaction=ringing.interaction)
    profile = None
    resident_id = headers.get("X-Hotline-Resident", "")
    if resident_id.isdigit():
        profile = resident(db, int(resident_id))
    if profile is None and number:
        profile = resident_by_phone(db, number)
    if profile is None:
        return base
    place = ", ".join(part for part in (profile.get("building"), profile.get("estate")) if part)
    # the switch wrote this call's own row when it was queued: it is not "history"
    row = db.execute("SELECT id FROM interactions WHERE uid = ?", [base.interaction]).fetchone()
    current = row[0] if row else None
    return dataclasses.replace(base, resident_id=profile["id"], name=profile["name"], name_alt=profile.get("name_alt") or "",
               unit=profile.get("unit") or "", place=place, vip=profile["segment"] == "vip",
               language=profile.get("language") or "", arrears_cents=profile.get("arrears_cents") or 0,
               notes=profile.get("notes") or "", orders=tuple(open_orders(db, profile["id"], now)),
               contacts=tuple(ContactLine(c["entered_at"], c["direction"], c["queue"], c["outcome"] or "",
                                          c["agent"] or "", c["disposition"] or "", c["notes"] or "")
                              for c in last_contacts(db, profile["id"], history + 1)
                              if c["id"] != current)[:history])


# --- an unknown caller: find them, or add them -------------------------------------------------
@dataclass(frozen=True)
class Match:
    resident_id: int
    name: str
    unit: str
    place: str
    phones: str
    vip: bool


def find_callers(db: Database, text: str, limit: int = 20) -> list[Match]:
    """Residents by name, romanised name, unit or phone (any part of it), each with both
    forms of the name: two residents called 陳大文 are told apart by the rest."""
    out = []
    for row in search_residents(db, text, limit):
        phones = " ".join(p["number"] for p in phones_of(db, row["id"]))
        place = ", ".join(part for part in (row.get("building"), row.get("estate")) if part)
        name = " ".join(part for part in (row["name"], row.get("name_alt") or "") if part)
        out.append(Match(row["id"], name, row.get("unit") or "", place, phones, row["segment"] == "vip"))
    return out


def identified(db: Database, pop: Pop, resident_id: int, now: float, *, link: bool = True) -> tuple[Pop, str]:
    """The pop for `pop`'s call once the agent says who is calling; the caller's number is
    linked to them so the next call pops by itself. Returns the new pop and what happened."""
    profile = resident(db, resident_id)
    if profile is None:
        raise DirectoryError(f"no resident with id {resident_id}")
    said = f"This call is from {profile['name']}."
    if link and pop.number:
        try:
            number = add_phone(db, resident_id, pop.number)
            said = f"{number} is now linked to {profile['name']}: their next call pops by itself."
        except DirectoryError as exc:
            said += f" The number was not linked: {exc}."
    return screen_pop(db, pop.call, pop.number, pop_headers(pop, resident_id), now), said


def new_caller(db: Database, pop: Pop, name: str, unit_text: str, kind: str, now: float) -> tuple[Pop, str]:
    """Add the unknown caller as a resident (in the one unit `unit_text` names, if given),
    with this call's number, and pop them."""
    unit_id = None
    if unit_text.strip():
        units = find_units(db, unit_text, limit=2)
        if not units:
            raise DirectoryError(f"no unit matches '{unit_text}'")
        if len(units) > 1:
            raise DirectoryError(f"'{unit_text}' matches more than one unit ({units[0]['label']}, "
                                 f"{units[1]['label']}, ...): add the building or estate")
        unit_id = units[0]["id"]
    phones = (pop.number,) if pop.number else ()
    resident_id = add_resident(db, NewResident(name=name, kind=kind, phones=phones, unit_id=unit_id), now=now)
    fresh, _ = identified(db, pop, resident_id, now, link=False)
    return fresh, f"{fresh.name} added{' in ' + fresh.unit if fresh.unit else ''}" + \
        (f" with {pop.number}." if pop.number else ".")


def open_orders(db: Database, resident_id: int, now: float) -> list[OrderLine]:
    """The resident's open work orders, overdue ones first, then by the next deadline."""
    cursor = db.execute("SELECT * FROM work_orders WHERE resident_id = ? AND status NOT IN ('closed', 'cancelled')",
                        [resident_id])
    columns = [c[0] for c in cursor.description]
    lines = []
    for row in cursor:
        order = dict(zip(columns, row))
        deadlines = pending_deadlines(order, now)
        first = deadlines[0] if deadlines else None
        lines.append(OrderLine(order["id"], order["type"], order["status"], order["description"],
                               first.name if first else "", first.seconds_left if first else 0.0))
    return sorted(lines, key=lambda o: (not o.overdue, o.seconds_left if o.deadline else float("inf")))



def today_totals(db: Database, agent_id: int | None, now: float, tz: dt.tzinfo | None) -> tuple[int, float]:
    """Calls the agent talked today (in the site's time zone) and their talk time, from
    records: a seat restarted at noon still says what the morning was. Each agent's own
    part of a contact counts (interaction_legs): a call they passed on is theirs too."""
    if agent_id is None:
        return 0, 0.0
    midnight = dt.datetime.fromtimestamp(now, tz).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    row = db.execute("SELECT count(DISTINCT interaction_id), coalesce(sum(talk_s), 0) FROM interaction_legs "
                     "WHERE agent_id = ? AND answered_at >= ? AND ended_at IS NOT NULL",
                     [agent_id, midnight]).fetchone()
    return int(row[0]), float(row[1])


# --- on the wire (the control API's JSON) ------------------------------------------------------
def to_wire(value) -> dict:
    """A desk class as JSON-ready fields (tuples become lists)."""
    return dataclasses.asdict(value)


def pop_from_wire(fields: dict) -> Pop:
    known = {f.name for f in dataclasses.fields(Pop)}
    values = {k: v for k, v in fields.items() if k in known}   # a newer switch may say more
    values["orders"] = tuple(OrderLine(**_known(OrderLine, o)) for o in fields.get("orders") or ())
    values["contacts"] = tuple(ContactLine(**_known(ContactLine, c)) for c in fields.get("contacts") or ())
    return Pop(**values)


def match_from_wire(fields: dict) -> Match:
    return Match(**_known(Match, fields))


def order_from_wire(fields: dict) -> OrderLine:
    return OrderLine(**_known(OrderLine, fields))


def callback_from_wire(fields: dict) -> Callback:
    return Callback(**_known(Callback, fields))


def answer_from_wire(fields: dict) -> Answer:
    values = _known(Answer, fields)
    values["keywords"] = tuple(values.get("keywords") or ())
    return Answer(**values)


def _known(cls, fields: dict) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in fields.items() if k in names}


# --- what a seat changed, as the event log has it ------------------------------------------------
@dataclass(frozen=True)
class DeskEvent:
    t: float
    agent_id: str     # the extension of the agent who did it (the event's subscriber)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ResidentAdded(DeskEvent):
    resident_id: int
    name: str
    unit: str
    number: str


@dataclass(frozen=True)
class PhoneLinked(DeskEvent):
    resident_id: int
    number: str


@dataclass(frozen=True)
class WorkOrderOpened(DeskEvent):
    order_id: int
    order_type: str
    resident_id: int | None
    call_id: str


@dataclass(frozen=True)
class CallbackAttempted(DeskEvent):
    callback_id: int
    outcome: str
