"""What the agent seat shows and how its state moves: no Textual, no pjsua2, tested alone.

The pop itself (who is calling, their unit, VIP, arrears, open work orders with time
left, the contact history) is read by the switch from records (records/desk.py) and
reaches the seat over the control API. `SeatState` follows the phone and the switch
(registration, status, idle/ringing/in call/on hold/wrap-up with its countdown, today's
counts) so the header can always say where the agent stands.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from records.desk import ContactLine, Match, OrderLine, Pop, header_pop  # noqa: F401 (the seat's vocabulary)


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
    held_s: float = 0.0                 # the current call's time on hold so far (not talk, as in records)
    muted: bool = False
    pops: dict = field(default_factory=dict)   # call -> Pop
    switch_connected: bool = True       # the control connection is up (status and wrap-up are the switch's)
    break_since: float | None = None
    break_limits: dict = field(default_factory=dict)   # reason -> minutes (the switch's list)
    # (interaction, wrap-up end) the switch said before the phone said the call ended (a transfer)
    switch_wrap: tuple[str, float] | None = None
    wrapping_for: str = ""              # the interaction whose wrap-up is running

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
            self.state, self.since, self.connected_at, self.held_s = "in_call", now, now, 0.0

    def held(self, call: int, on: bool, now: float) -> None:
        """The hold took effect (or ended); the call's own clock goes on counting."""
        if call == self.call and self.state in ("in_call", "on_hold"):
            state = "on_hold" if on else "in_call"
            if state != self.state:
                if self.state == "on_hold":
                    self.held_s += now - self.since
                self.state, self.since = state, now

    def switch_wrap_said(self, interaction: str, until: float) -> None:
        """The switch's wrap-up for a call (its queue's setting, from the call's end) is the
        truth; news that comes before the phone's BYE is kept for the call's end."""
        if self.state == "wrap_up":
            self.wrap_until = until
        else:
            self.switch_wrap = (interaction, until)

    def ended(self, call: int, now: float, wrap_up_s: float, interaction: str = "") -> None:
        """The call is over: wrap-up if it was talked, else back to idle, or straight to
        the next call if one is already ringing (with no wrap-up the switch offers the
        next caller as soon as this one ends: its INVITE can arrive before this news).
        `interaction`: the switch's id of the call, whose wrap-up the switch may have said."""
        self.pops.pop(call, None)
        if call != self.call:
            return
        said, self.switch_wrap = self.switch_wrap, None
        if said is not None and interaction and said[0] == interaction:
            wrap_up_s = max(0.0, said[1] - now)
        talked = self.connected_at is not None
        if self.connected_at is not None:   # talk as the switch records it: connected, minus on hold
            held = self.held_s + (now - self.since if self.state == "on_hold" else 0.0)
            self.calls_today += 1
            self.talk_today_s += max(0.0, now - self.connected_at - held)
        self.held_s = 0.0
        self.call, self.connected_at, self.muted = None, None, False
        self.wrapping_for = ""
        if talked and wrap_up_s > 0:
            self.state, self.since, self.wrap_until, self.wrap_extended = "wrap_up", now, now + wrap_up_s, False
            self.wrapping_for = interaction
        elif self.pops:
            self.call, self.state, self.since, self.wrap_until = next(iter(self.pops)), "ringing", now, None
        else:
            self.state, self.since, self.wrap_until = "idle", now, None

    def wrap_up_over(self, now: float) -> None:
        if self.state == "wrap_up":
            self.state, self.since, self.wrap_until = "idle", now, None
        self.wrapping_for = ""

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
        if self.status == "logged_out":   # logged in at the switch, not yet taking calls
            return "not ready (v)"
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
        fits = lambda: sum(cell_len(p) for p in parts) + 3 * (len(parts) - 1) <= width  # noqa: E731
        if not fits() and self.state == "on_hold" and self.connected_at is not None:
            # found using the demo: held and muted at 80 columns pushed the name and "today" out
            parts[3] = f"held {clock_text(now - self.since)}/{clock_text(now - self.connected_at)}" + \
                (" muted" if self.muted else "")
        spare = width - sum(cell_len(p) for p in parts[1:]) - 3 * (len(parts) - 1)
        if spare < 8:   # the name keeps a few letters: "today" goes first
            parts[4] = parts[4].removesuffix(" today")
            spare = width - sum(cell_len(p) for p in parts[1:]) - 3 * (len(parts) - 1)
        if cell_len(name) > spare:
            short = ""
            for char in self.name:
                if cell_len(f"{short}{char}… {self.ext}") > max(spare, 6):
                    break
                short += char
            parts[0] = f"{short}… {self.ext}"
        return parts


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
        unsaved = {k: asdict(v) for k, v in drafts.items() if v.owed}   # (a call that only rang owes nothing)
        temporary.write_text(json.dumps(unsaved, ensure_ascii=False))
        os.replace(temporary, self.path)


def cut(text: str, width: int) -> str:
    """`text` on one line of at most `width` cells, cut at a word with … if it must be."""
    from rich.cells import cell_len

    text = " ".join(text.split())
    if cell_len(text) <= width:
        return text
    out = ""
    for word in text.split(" "):
        candidate = f"{out} {word}".strip()
        if cell_len(candidate) > width - 1:
            break
        out = candidate
    if not out:   # one long word (a CJK name has no spaces): cut by cells
        for char in text:
            if cell_len(out + char) > width - 1:
                break
            out += char
    return out + "…"
