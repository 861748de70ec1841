"""What the agent seat shows and how its state moves: no Textual, no pjsua2, tested alone.

`screen_pop` turns a ringing call (the softphone's IncomingCall: caller number and the
switch's X-Hotline-* headers) plus records into everything the agent needs before
saying hello: who, which unit, VIP or not, arrears, open work orders with time left to
each deadline (overdue first), and the contact history. `SeatState` follows the phone
and the switch (registration, status, idle/ringing/in call/on hold/wrap-up with its
countdown, today's counts) so the header can always say where the agent stands.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlite_utils import Database

from records.directory import (DirectoryError, NewResident, add_phone, add_resident, find_units, last_contacts,
                               phones_of, resident, resident_by_phone, search_residents)
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

    @property
    def known(self) -> bool:
        return self.resident_id is not None

    @property
    def overdue_orders(self) -> int:
        return sum(1 for order in self.orders if order.overdue)


def screen_pop(db: Database, call: int, number: str, headers: dict[str, str], now: float,
               *, history: int = 10) -> Pop:
    """The pop for a ringing call. The switch's resident id wins (it may have matched a
    number we format differently); otherwise the caller's number is looked up."""
    try:
        waited = int(headers.get("X-Hotline-Wait", "0"))
    except ValueError:
        waited = 0
    base = dict(call=call, number=number, queue=headers.get("X-Hotline-Queue", ""), waited_s=waited,
                interaction=headers.get("X-Hotline-Interaction", ""))
    profile = None
    resident_id = headers.get("X-Hotline-Resident", "")
    if resident_id.isdigit():
        profile = resident(db, int(resident_id))
    if profile is None and number:
        profile = resident_by_phone(db, number)
    if profile is None:
        return Pop(**base)
    place = ", ".join(part for part in (profile.get("building"), profile.get("estate")) if part)
    # the switch wrote this call's own row when it was queued: it is not "history"
    row = db.execute("SELECT id FROM interactions WHERE uid = ?", [base["interaction"]]).fetchone()
    current = row[0] if row else None
    return Pop(**base, resident_id=profile["id"], name=profile["name"], name_alt=profile.get("name_alt") or "",
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
    headers = {"X-Hotline-Queue": pop.queue, "X-Hotline-Wait": str(pop.waited_s),
               "X-Hotline-Interaction": pop.interaction, "X-Hotline-Resident": str(resident_id)}
    return screen_pop(db, pop.call, pop.number, headers, now), said


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


def time_left(seconds: float) -> str:
    """'2h 05m left', '3d 4h left', 'overdue 35m' (to the minute; an agent reads it aloud)."""
    late = seconds < 0
    minutes = int(abs(seconds) // 60)
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    if days:
        text = f"{days}d {hours}h"
    elif hours:
        text = f"{hours}h {minutes:02d}m"
    else:
        text = f"{minutes}m"
    return f"overdue {text}" if late else f"{text} left"


def money(cents: int, currency: str = "HK$") -> str:
    return f"{'-' if cents < 0 else ''}{currency}{abs(cents) / 100:,.2f}"


def when(epoch: float, now: float, tz: dt.tzinfo | None = None) -> str:
    """A contact's date as an agent says it: 'today 09:14', 'yesterday 17:02', '12 Nov 10:30'."""
    moment = dt.datetime.fromtimestamp(epoch, tz)
    today = dt.datetime.fromtimestamp(now, tz).date()
    if moment.date() == today:
        return f"today {moment:%H:%M}"
    if moment.date() == today - dt.timedelta(days=1):
        return f"yesterday {moment:%H:%M}"
    return f"{moment.day} {moment:%b %H:%M}" if moment.year == today.year else f"{moment:%d %b %Y}"


# --- where the agent stands -----------------------------------------------------------------
STATES = ("idle", "ringing", "dialling", "in_call", "on_hold", "wrap_up")


def clock_text(seconds: float) -> str:
    """'1:03', '12:40', '1:02:03' (an agent reads it at a glance)."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class SeatState:
    """The header's facts, changed only by what the phone and the switch report."""
    ext: str
    name: str = ""
    registered: bool = False
    registration_text: str = "registering"
    status: str = "logged_out"          # available, on_break (with reason), logged_out
    reason: str = ""
    state: str = "idle"
    since: float = 0.0
    wrap_until: float | None = None
    wrap_extended: bool = False         # the one extension of this wrap-up is used
    calls_today: int = 0
    talk_today_s: float = 0.0
    call: int | None = None             # the softphone's current call
    connected_at: float | None = None   # when the current call was answered (its clock runs through holds)
    muted: bool = False
    pops: dict = field(default_factory=dict)   # call -> Pop
    switch_connected: bool = True       # the control connection is up (status and wrap-up are the switch's)
    break_since: float | None = None
    break_limits: dict = field(default_factory=dict)   # reason -> minutes (the switch's list)

    def registration(self, ok: bool, code: int, reason: str) -> None:
        self.registered = ok
        self.registration_text = "registered" if ok else f"not registered: {code} {reason}".strip()

    def no_registrar(self, registrar: str) -> None:
        """Nothing heard from the registrar yet (a switch that is down answers nothing)."""
        if not self.registered:
            self.registration_text = f"no answer from {registrar}"

    def status_changed(self, status: str, reason: str = "", now: float | None = None) -> None:
        if status == "on_break" and (self.status != "on_break" or reason != self.reason):
            self.break_since = now
        elif status != "on_break":
            self.break_since = None
        self.status, self.reason = status, reason if status == "on_break" else ""

    def ringing(self, pop: Pop, now: float) -> None:
        self.pops[pop.call] = pop
        if self.call is None:
            self.call, self.state, self.since = pop.call, "ringing", now

    def dialling(self, pop: Pop, now: float) -> None:
        """The agent dials out (a follow-up call)."""
        self.pops[pop.call] = pop
        self.call, self.state, self.since, self.wrap_until = pop.call, "dialling", now, None

    def connected(self, call: int, now: float) -> None:
        if call == self.call:
            self.state, self.since, self.connected_at = "in_call", now, now

    def held(self, call: int, on: bool, now: float) -> None:
        """The hold took effect (or ended); the call's own clock goes on counting."""
        if call == self.call and self.state in ("in_call", "on_hold"):
            state = "on_hold" if on else "in_call"
            if state != self.state:
                self.state, self.since = state, now

    def ended(self, call: int, now: float, wrap_up_s: float) -> None:
        """The call is over: wrap-up if it was talked, else back to idle, or straight to
        the next call if one is already ringing (with no wrap-up the switch offers the
        next caller as soon as this one ends: its INVITE can arrive before this news)."""
        self.pops.pop(call, None)
        if call != self.call:
            return
        talked = self.connected_at is not None
        if talked:
            self.calls_today += 1
            self.talk_today_s += now - self.connected_at
        self.call, self.connected_at, self.muted = None, None, False
        if talked and wrap_up_s > 0:
            self.state, self.since, self.wrap_until, self.wrap_extended = "wrap_up", now, now + wrap_up_s, False
        elif self.pops:
            self.call, self.state, self.since, self.wrap_until = next(iter(self.pops)), "ringing", now, None
        else:
            self.state, self.since, self.wrap_until = "idle", now, None

    def wrap_up_over(self, now: float) -> None:
        if self.state == "wrap_up":
            self.state, self.since, self.wrap_until = "idle", now, None

    def state_text(self, now: float) -> str:
        if self.state == "wrap_up" and self.wrap_until is not None:
            return f"wrap-up {max(0, int(self.wrap_until - now))}s"
        muted = " MUTED" if self.muted and self.call is not None else ""
        if self.state == "on_hold" and self.connected_at is not None:
            return f"on hold {clock_text(now - self.since)} · call {clock_text(now - self.connected_at)}{muted}"
        if self.state == "in_call" and self.connected_at is not None:
            return f"in call {clock_text(now - self.connected_at)}{muted}"
        if self.state == "dialling":
            return f"dialling {clock_text(now - self.since)}"
        return self.state.replace("_", " ")

    def status_text(self, now: float | None = None) -> str:
        if not self.switch_connected:
            return "switch unreachable"
        if self.status == "on_break":
            text = f"on break ({self.reason})" if self.reason else "on break"
            if now is not None and self.break_since is not None:
                text += f" {clock_text(now - self.break_since)}"
                limit = self.break_limits.get(self.reason)
                if limit is not None and now - self.break_since > limit * 60:
                    text += f" OVER {limit:g} min"
            return text
        return self.status.replace("_", " ")

    def over_break_limit(self, now: float) -> bool:
        limit = self.break_limits.get(self.reason) if self.status == "on_break" else None
        return limit is not None and self.break_since is not None and now - self.break_since > limit * 60

    def today_text(self) -> str:
        calls = self.calls_today
        return f"{calls} call{'' if calls == 1 else 's'} {clock_text(self.talk_today_s)} today"

    def header_parts(self, now: float, width: int) -> list[str]:
        """The header's fields, shortened until they fit `width` cells: the phone's state
        first, then the agent's name; the call's clock and today's totals always stay."""
        from rich.cells import cell_len

        phone = f"SIP {self.registration_text}"
        name = f"{self.name} {self.ext}"
        parts = [name, phone, self.status_text(now), self.state_text(now), self.today_text()]
        if sum(cell_len(p) for p in parts) + 3 * (len(parts) - 1) <= width:
            return parts
        parts[1] = "SIP ok" if self.registered else f"SIP {self.registration_text.split(':')[0]}"
        spare = width - sum(cell_len(p) for p in parts[1:]) - 3 * (len(parts) - 1)
        if cell_len(name) > spare:
            short = ""
            for char in self.name:
                if cell_len(f"{short}{char}… {self.ext}") > max(spare, 6):
                    break
                short += char
            parts[0] = f"{short}… {self.ext}"
        return parts


def today_totals(db: Database, agent_id: int | None, now: float, tz: dt.tzinfo | None) -> tuple[int, float]:
    """Calls the agent talked today (in the site's time zone) and their talk time, from
    records: a seat restarted at noon still says what the morning was."""
    if agent_id is None:
        return 0, 0.0
    midnight = dt.datetime.fromtimestamp(now, tz).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    row = db.execute("SELECT count(*), coalesce(sum(talk_s), 0) FROM interactions WHERE agent_id = ? "
                     "AND answered_at >= ? AND answered_at IS NOT NULL AND ended_at IS NOT NULL",
                     [agent_id, midnight]).fetchone()
    return int(row[0]), float(row[1])


# --- what the agent writes about a call ---------------------------------------------------------
CONTACT_REASONS = ("repair", "complaint", "billing", "enquiry", "emergency", "general")
CALL_OUTCOMES = ("resolved on the call", "work order opened", "callback promised", "information given",
                 "transferred", "wrong number")
NO_ORDER = ""
UNFINISHED = "unfinished"   # the disposition of a form the agent had no time to finish (its notes are kept)


@dataclass
class Draft:
    """The open form for one call; saved to disk as it is typed (a dropped call or a
    crashed seat loses nothing)."""
    interaction: str
    reason: str = ""
    outcome: str = ""
    notes: str = ""
    order_type: str = NO_ORDER
    order_description: str = ""
    saved: bool = False     # on the record already; kept only until the pop goes
    talked: bool = False    # the call was answered: its form must be saved, even if nothing was typed
    order_id: int | None = None     # the work order this form opened (a second save does not open another)
    # who the form is about, so it can be finished after the call (the unfinished list)
    number: str = ""
    resident_id: int | None = None
    caller: str = ""
    started: float = 0.0
    unfinished_sent: bool = False   # its notes went to the contact as "unfinished" when wrap-up ran out

    def problems(self, order_types) -> list[str]:
        return [text for _, text in self.problems_by_field(order_types)]

    def problems_by_field(self, order_types) -> list[tuple[str, str]]:
        """(the form field to fix, what is wrong), in the form's order."""
        out = []
        if self.reason not in CONTACT_REASONS:
            out.append(("reason", "choose the contact reason"))
        if self.outcome not in CALL_OUTCOMES:
            out.append(("outcome", "choose the outcome"))
        if self.order_type != NO_ORDER:
            if self.order_type not in order_types:
                out.append(("order_type", f"unknown work-order type {self.order_type!r}"))
            if not self.order_description.strip():
                out.append(("order_description", "a work order needs a description"))
        elif self.outcome == "work order opened" and self.order_id is None:
            out.append(("order_type", "the outcome says a work order was opened: choose its type"))
        return out

    @property
    def disposition(self) -> str:
        return f"{self.reason}: {self.outcome}"

    @property
    def typed(self) -> bool:
        """Has the agent written or chosen anything beyond what the form started with?"""
        return bool(self.outcome or self.notes.strip() or self.order_type or self.order_description.strip())

    @property
    def owed(self) -> bool:
        """Not saved, and there is something to save: a call was talked or a form typed in."""
        return not self.saved and (self.talked or self.typed)


def order_preview(policy, order_type: str, now: float) -> str:
    """'engineering · dispatch 15:03 · on site 15:15 · fixed 21:00' for the form."""
    if order_type == NO_ORDER or order_type not in policy.types:
        return ""
    due = policy.deadlines(order_type, now)
    labels = (("dispatch_due", "dispatch"), ("on_site_due", "on site"), ("resolve_due", "fixed"),
              ("feedback_due", "feedback"), ("reply_due", "reply"))
    parts = [policy.rule(order_type).department.replace("_", " ")]
    for key, label in labels:
        if due.get(key) is not None:
            moment = dt.datetime.fromtimestamp(due[key], policy.timezone)
            today = dt.datetime.fromtimestamp(now, policy.timezone).date()
            parts.append(f"{label} {moment:%H:%M}" if moment.date() == today else f"{label} {moment:%a %d %b %H:%M}")
    return " · ".join(parts)


class Drafts:
    """Per-seat drafts in a JSON file, written whole (temp file + rename) on each change."""

    def __init__(self, path):
        from pathlib import Path

        self.path = Path(path)

    def load(self) -> dict[str, Draft]:
        import json

        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            broken = self.path.with_suffix(".broken")
            self.path.replace(broken)   # keep what was there for a person to read; start clean
            return {}
        fields = set(Draft.__dataclass_fields__)
        return {key: Draft(**{k: v for k, v in value.items() if k in fields}) for key, value in data.items()
                if isinstance(value, dict) and "interaction" in value}

    def save(self, drafts: dict[str, Draft]) -> None:
        import json
        import os
        from dataclasses import asdict

        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        unsaved = {k: asdict(v) for k, v in drafts.items() if not v.saved}
        temporary.write_text(json.dumps(unsaved, ensure_ascii=False))
        os.replace(temporary, self.path)
