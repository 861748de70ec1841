"""`hotline agent`: the agent seat, a Textual app with the pjsua2 softphone built in.

The phone (telephony/softphone.py) posts its frozen events into the app with
`post_message` from its pump thread; the switch's events come over the control API
(telephony/control_client.py). What to show and how the seat's state moves is in
console/seatlogic.py; this module only lays it out and maps keys to commands.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import asdict, replace
from typing import Callable

from rich.markup import escape
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Footer, Input, Select, Static

from console.seatlogic import (CALL_OUTCOMES, CONTACT_REASONS, NO_ORDER, Draft, Drafts, Pop, SeatState, money,
                               open_orders, order_preview, screen_pop, time_left, when)
from telephony.control_client import ControlClient, ControlError
from telephony.softphone import CallState, IncomingCall, PhoneError, Registration

BREAK_REASONS = ("lunch", "training", "meeting", "personal")
WRAP_EXTENSION_S = 60   # the one extension of a wrap-up an agent may ask for


class PhoneEvent(Message):
    """A softphone event, posted from the pump thread."""

    def __init__(self, event: object):
        super().__init__()
        self.event = event


class SwitchEvent(Message):
    """An event from the switch's control API (own calls and status)."""

    def __init__(self, event: dict):
        super().__init__()
        self.event = event


class SeatApp(App):
    """One agent's seat. `phone` has answer/decline/hang_up/hold/send_dtmf (a Softphone);
    `db` reads records for the pop; `control` is a logged-in ControlClient (or None)."""

    TITLE = "hotline seat"
    CSS = """
    #header { height: 1; background: $primary; color: $text; padding: 0 1; }
    #idle { padding: 1 2; }
    #pop { height: 1fr; }
    #caller { height: auto; padding: 0 1; }
    #orders { height: auto; max-height: 8; }
    #contacts { height: 1fr; }
    #notice { height: 1; padding: 0 1; color: $warning; }
    #form { height: auto; border-top: solid $primary; }
    #form Horizontal { height: auto; }
    /* one line per field: an 80x24 terminal still shows the orders and the history */
    #form Select { width: 1fr; height: 1; margin: 0 1 0 0; }
    #form SelectCurrent { border: none; height: 1; padding: 0 1; background: $boost; }
    #form Input { width: 1fr; height: 1; border: none; padding: 0 1; margin: 0 0 0 0; background: $boost; }
    #form Input:focus, #form Select:focus > SelectCurrent { background: $accent 30%; }
    #preview { height: 1; padding: 0 1; color: $text-muted; }
    .section { padding: 0 1; text-style: bold; }
    """
    BINDINGS = [
        Binding("a", "answer", "Answer"),
        Binding("d", "decline", "Decline"),
        Binding("h", "hang_up", "Hang up"),
        Binding("o", "hold", "Hold"),
        Binding("m", "mute", "Mute"),
        Binding("k", "keypad", "Keypad"),
        Binding("t", "transfer", "Transfer"),
        Binding("e", "extend_wrap_up", "More time"),
        Binding("i", "identify", "Identify"),
        Binding("slash", "answers", "Knowledge"),
        Binding("c", "callbacks", "Callbacks"),
        Binding("v", "available", "Ready"),
        Binding("b", "on_break", "Break"),
        Binding("w", "end_wrap_up", "End wrap"),
        Binding("n", "notes", "Notes", show=False),   # the notes field says "(n)"
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "leave_form", "Leave form", show=False),
        Binding("q", "quit", "Quit"),
    ]
    SEAT_ACTIONS = frozenset(b.action for b in BINDINGS if b.action != "quit")
    # The footer shows only what can be done now, so every key fits on 80 columns.
    WHEN = {"answer": ("ringing",), "decline": ("ringing",), "hang_up": ("in_call", "on_hold", "dialling"),
            "callbacks": ("idle", "wrap_up"),
            "hold": ("in_call", "on_hold"), "mute": ("in_call", "on_hold"), "keypad": ("in_call", "on_hold"),
            "transfer": ("in_call", "on_hold"),
            "available": ("idle", "wrap_up"), "on_break": ("idle", "wrap_up"), "end_wrap_up": ("wrap_up",)}

    def __init__(self, *, seat: SeatState, phone, db, control: ControlClient | None = None,
                 clock: Callable[[], float] = time.time, wrap_up_s: float = 30.0, agent_id: int | None = None,
                 drafts: Drafts | None = None, policy=None, queues: tuple[str, ...] = ()):
        from records.sla import load_policy

        super().__init__()
        self.seat, self.phone, self.db, self.control, self.clock = seat, phone, db, control, clock
        self.wrap_up_s, self.agent_id = wrap_up_s, agent_id
        self.pop: Pop | None = None
        self.policy = policy or load_policy()
        self.drafts_store = drafts
        self.drafts: dict[str, Draft] = drafts.load() if drafts is not None else {}
        self._filling = False   # set while the form is filled from a draft (no change events then)
        self.pop_latencies: list[float] = []   # INVITE at the phone -> pop on screen, seconds
        self._footer_for: tuple = ()
        self.knowledge = None   # the standard answers, read on first use
        self.queues = tuple(queues)   # the switch's queues, transfer targets
        self.callback_calls: dict = {}   # the phone's call key -> the follow-up task it is for
        self._transferred: int | None = None   # the call this seat last transferred away

    def check_action(self, action: str, parameters) -> bool | None:
        if len(self.screen_stack) > 1 and action in self.SEAT_ACTIONS:
            return False   # a dialog (identify, keypad, ...) is open: its own keys, ctrl+s included
        return self._available(action)

    def _available(self, action: str) -> bool:
        """What the seat's state allows, whatever is on the screen."""
        if action in self.WHEN:
            return self.seat.state in self.WHEN[action]
        if action == "extend_wrap_up":
            return self.seat.state == "wrap_up" and not self.seat.wrap_extended
        if action == "identify":
            return self.pop is not None and not self.pop.known
        if action == "save":
            return self.pop is not None and bool(self.pop.interaction)   # a callback is recorded on its task
        return True

    def get_system_commands(self, screen):
        """ctrl+p: every seat key that works now, by name (for whoever forgot the letter)."""
        from textual.app import SystemCommand

        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            if binding.action in self.SEAT_ACTIONS and binding.show and self._available(binding.action):
                key = binding.key.replace("slash", "/")
                yield SystemCommand(f"{binding.description} ({key})", f"the seat's {binding.description.lower()} key",
                                    getattr(self, f"action_{binding.action}"))

    # --- layout --------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="header")
        yield Static(id="notice")
        yield Static(self._idle_text(), id="idle")
        with Vertical(id="pop"):
            yield Static(id="caller")
            with Vertical(id="form"):
                with Horizontal():
                    yield Select([(r, r) for r in CONTACT_REASONS], prompt="contact reason", id="reason")
                    yield Select([(o, o) for o in CALL_OUTCOMES], prompt="outcome", id="outcome")
                    yield Select([(t.replace("_", " "), t) for t in self.policy.types], prompt="no work order",
                                 id="order_type")
                yield Input(placeholder="notes (n)", id="notes")
                yield Input(placeholder="work-order description", id="order_description")
                yield Static(id="preview")
            yield Static("Open work orders", classes="section")
            yield DataTable(id="orders", cursor_type="row", zebra_stripes=True)
            yield Static("Contact history", classes="section")
            with VerticalScroll(id="contacts"):
                yield DataTable(id="history", cursor_type="row", zebra_stripes=True)
        # compact, and no palette hint: every call key must fit on an 80-column terminal
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#orders", DataTable).add_columns("#", "type", "status", "next deadline", "description")
        self.query_one("#history", DataTable).add_columns("when", "queue", "agent", "outcome", "notes")
        self.query_one("#pop").display = False
        if self.control is not None:
            self.control.on_event = lambda event: self.post_message(SwitchEvent(event))
            self.control.on_close = lambda: self.post_message(SwitchEvent({"event": "ControlClosed"}))
        self.set_interval(1.0, self._tick)
        self._refresh_header()
        # SIGTERM (shutdown, kill) and SIGHUP (the SSH session or terminal went away): the
        # same clean way out as q, so the phone is hung up and released, never aborted.
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, lambda: asyncio.ensure_future(self.action_quit()))

    def _idle_text(self) -> str:
        return ("Waiting for calls.\n\nWhen a call rings, the caller's profile appears here before you "
                "answer.\nThe footer shows the keys that work now: a answer, d decline, h hang up, o hold, "
                "m mute, k keypad, t transfer, i identify a caller, / knowledge, n notes, ctrl+s save, "
                "w end wrap-up, e more wrap-up time, c follow-up calls, v ready, b break, q quit; "
                "ctrl+p lists them by name.")

    # --- the header -----------------------------------------------------------------------------
    def _refresh_header(self) -> None:
        seat, now = self.seat, self.clock()
        talk = int(seat.talk_today_s)
        text = (f"{seat.name} ({seat.ext}) │ {seat.registration_text} │ {seat.status_text()} │ "
                f"{seat.state_text(now)} │ {seat.calls_today} calls · {talk // 60}:{talk % 60:02d} today")
        self.query_one("#header", Static).update(text)
        footer_for = (seat.state, seat.wrap_extended, self.pop is not None and self.pop.known,
                      self.pop.interaction if self.pop is not None else None)
        if footer_for != self._footer_for:
            self._footer_for = footer_for
            self.refresh_bindings()

    def _tick(self) -> None:
        if self.seat.state == "wrap_up" and self.seat.wrap_until is not None and self.clock() >= self.seat.wrap_until:
            self.seat.wrap_up_over(self.clock())
        self._refresh_header()

    def notice(self, text: str) -> None:
        self.query_one("#notice", Static).update(text)

    # --- the pop ----------------------------------------------------------------------------------
    def show_pop(self, pop: Pop) -> None:
        self.pop = pop
        now = self.clock()
        caller = Text()
        if pop.known:
            caller.append(pop.name, style="bold")
            if pop.name_alt:
                caller.append(f" {pop.name_alt}")
            if pop.vip:
                caller.append("  VIP", style="bold reverse")
            caller.append(f"\n{pop.number}  ·  {pop.unit or 'no unit'}"
                          f"{'  ·  ' + pop.place if pop.place else ''}  ·  language {pop.language or '?'}")
            arrears = money(pop.arrears_cents) if pop.arrears_cents else "none"
            caller.append(f"\nqueue {pop.queue or '?'}, waited {pop.waited_s} s  ·  arrears ")
            caller.append(arrears, style="bold red" if pop.arrears_cents > 0 else "")
            if pop.notes:
                caller.append(f"\nnote: {pop.notes}")
        else:
            caller.append(f"{pop.number or 'withheld number'}", style="bold")
            caller.append("  unknown caller: i to find or add the resident")
            caller.append(f"\nqueue {pop.queue or '?'}, waited {pop.waited_s} s")
        self.query_one("#caller", Static).update(caller)
        self._show_orders(pop)
        history = self.query_one("#history", DataTable)
        history.clear()
        for contact in pop.contacts:
            history.add_row(when(contact.at, now, self.policy.timezone), contact.queue, contact.agent or "-", contact.disposition
                            or contact.outcome, escape(contact.notes))
        self.query_one("#idle").display = False
        self.query_one("#pop").display = True
        self._fill_form(pop)

    def _show_orders(self, pop: Pop) -> None:
        orders = self.query_one("#orders", DataTable)
        orders.clear()
        for order in pop.orders:
            left = time_left(order.seconds_left) if order.deadline else "-"
            style = "bold red" if order.overdue else ""
            orders.add_row(str(order.id), order.type.replace("_", " "), order.status.replace("_", " "),
                           Text(f"{order.deadline} {left}".strip(), style=style), escape(order.description))

    # --- the form ---------------------------------------------------------------------------------
    def _draft(self) -> Draft | None:
        pop = self.pop
        if pop is None or not pop.interaction:
            return None
        draft = self.drafts.get(pop.interaction)
        if draft is None:
            reason = pop.queue if pop.queue in CONTACT_REASONS else ""
            draft = self.drafts[pop.interaction] = Draft(pop.interaction, reason=reason)
        return draft

    def _fill_form(self, pop: Pop) -> None:
        draft = self._draft()
        self._filling = True
        try:
            for name in ("reason", "outcome", "order_type"):
                value = getattr(draft, name) if draft is not None else ""
                self.query_one(f"#{name}", Select).value = value if value else Select.NULL
            for name in ("notes", "order_description"):
                self.query_one(f"#{name}", Input).value = getattr(draft, name) if draft is not None else ""
        finally:
            self.call_after_refresh(setattr, self, "_filling", False)
        self._show_preview()

    def _show_preview(self) -> None:
        draft = self._draft()
        text = order_preview(self.policy, draft.order_type, self.clock()) if draft is not None else ""
        self.query_one("#preview", Static).update(text and f"work order: {text}")

    def on_select_changed(self, message: Select.Changed) -> None:
        self._form_changed(message.select.id, "" if message.value is Select.NULL else str(message.value))

    def on_input_changed(self, message: Input.Changed) -> None:
        self._form_changed(message.input.id, message.value)

    def _form_changed(self, field_name: str | None, value: str) -> None:
        draft = self._draft()
        if self._filling or draft is None or field_name is None or not hasattr(draft, field_name):
            return
        setattr(draft, field_name, value)
        if field_name == "order_type":
            self._show_preview()
        if self.drafts_store is not None:
            self.drafts_store.save(self.drafts)   # as typed: nothing is lost if the seat dies

    def _received_form(self, interaction: str, form: dict) -> None:
        """A transferred caller: what the last agent typed becomes this seat's form."""
        mine = self.drafts.get(interaction)
        if mine is not None and (mine.outcome or mine.notes or mine.order_type or mine.order_description):
            return   # already typed in here (the pop came first): what this agent wrote wins
        fields = {k: str(v) for k, v in form.items()
                  if k in Draft.__dataclass_fields__ and k not in ("interaction", "saved")}
        self.drafts[interaction] = Draft(interaction, **fields)
        if self.drafts_store is not None:
            self.drafts_store.save(self.drafts)
        if self.pop is not None and self.pop.interaction == interaction:
            self._fill_form(self.pop)

    def action_notes(self) -> None:
        if self.pop is not None:
            self.query_one("#notes", Input).focus()

    def action_leave_form(self) -> None:
        self.set_focus(None)

    async def action_save(self) -> None:
        """One keystroke: the disposition and notes on the interaction, and the work
        order if one was chosen (deadlines from the SLA policy)."""
        from records.workorders import LifecycleError, WorkOrders

        draft = self._draft()
        if draft is None:
            self.notice("No call to save.")
            return
        problems = draft.problems(self.policy.types)
        if problems:
            self.notice("Not saved: " + "; ".join(problems) + ".")
            return
        if not await self._ask("disposition", call_id=draft.interaction, disposition=draft.disposition,
                               notes=draft.notes):
            return   # the notice says why; the draft stays
        saved = f"Saved: {draft.disposition}"
        if draft.order_type != NO_ORDER:
            row = self.db.execute("SELECT id FROM interactions WHERE uid = ?", [draft.interaction]).fetchone()
            try:
                order_id = WorkOrders(self.db, self.policy).open(
                    order_type=draft.order_type, description=draft.order_description, owner_agent_id=self.agent_id,
                    resident_id=self.pop.resident_id if self.pop else None, interaction_id=row[0] if row else None,
                    callback_number=self.pop.number if self.pop else "", now=self.clock())
            except (LifecycleError, ValueError) as exc:
                self.notice(f"Disposition saved; the work order was not: {exc}")
                return
            saved += f"; work order #{order_id} ({order_preview(self.policy, draft.order_type, self.clock())})"
            if self.pop is not None and self.pop.resident_id is not None:   # the new order shows at once
                self.pop = replace(self.pop, orders=tuple(open_orders(self.db, self.pop.resident_id, self.clock())))
                self._show_orders(self.pop)
            # saved: a second ctrl+s updates the disposition but does not open the order again
            draft.order_type, draft.order_description = NO_ORDER, ""
        draft.saved = True   # kept for this pop (a correction is saved again), no longer on disk
        if self.drafts_store is not None:
            self.drafts_store.save(self.drafts)
        self._filling = True
        try:
            self.query_one("#order_type", Select).value = Select.NULL
            self.query_one("#order_description", Input).value = ""
        finally:
            self.call_after_refresh(setattr, self, "_filling", False)
        self.notice(saved)

    def hide_pop(self) -> None:
        for key in [key for key, draft in self.drafts.items() if draft.saved]:
            del self.drafts[key]
        self.pop = None
        self.query_one("#pop").display = False
        self.query_one("#idle").display = True

    # --- events -----------------------------------------------------------------------------------
    def on_phone_event(self, message: PhoneEvent) -> None:
        event, now = message.event, self.clock()
        if isinstance(event, Registration):
            self.seat.registration(event.ok, event.code, event.reason)
        elif isinstance(event, IncomingCall):
            pop = screen_pop(self.db, event.call, event.number, event.headers, now)
            self.seat.ringing(pop, now)
            if self.seat.call == event.call:
                self.show_pop(pop)
                self.call_after_refresh(lambda: self.pop_latencies.append(time.monotonic() - event.received))
                self.bell()
                self.notice(f"Ringing: {pop.name or pop.number} from the {pop.queue or '?'} queue (a to answer)")
        elif isinstance(event, CallState):
            if event.state == "connected":
                self.seat.connected(event.call, now)
                self.notice("")
            elif event.state == "ended":
                was_current = event.call == self.seat.call
                if event.call in self.callback_calls:
                    self._callback_over(event.call, self.seat.connected_at is not None and was_current, event.code)
                self.seat.ended(event.call, now, self.wrap_up_s)
                if was_current and event.call != self._transferred:
                    self.notice(f"Call ended{f' ({event.code} {event.reason})' if event.code >= 300 else ''}.")
                    if self.seat.state == "ringing":     # the next caller was already ringing
                        pop = self.seat.pops[self.seat.call]
                        self.show_pop(pop)
                        self.bell()
                        self.notice(f"Ringing: {pop.name or pop.number} from the {pop.queue or '?'} queue "
                                    "(a to answer)")
                    elif self.seat.state == "idle":
                        self.hide_pop()
        elif isinstance(event, PhoneError):
            self.notice(event.message)
        self._refresh_header()

    def on_switch_event(self, message: SwitchEvent) -> None:
        event, now = message.event, self.clock()
        kind = event.get("event")
        if kind == "AgentStatusChanged" and event.get("agent_id") == self.seat.ext:
            self.seat.status_changed(event["status"], event.get("reason", ""))
        elif kind == "CallOffered" and event.get("agent_id") == self.seat.ext and isinstance(event.get("form"), dict):
            self._received_form(event["call_id"], event["form"])
        elif kind in ("CallCompleted", "CallTransferred") and event.get("agent_id") == self.seat.ext:
            # the switch's wrap-up is the truth: its queue's setting, from the call's end
            if self.seat.state == "wrap_up":
                self.seat.wrap_until = event["t"] + float(event.get("wrap_up_s", 0))
        elif kind == "AgentStateChanged" and event.get("agent_id") == self.seat.ext and event.get("state") == "idle":
            self.seat.wrap_up_over(now)
            if self.seat.call is None:
                self.hide_pop()
        elif kind == "ControlClosed":
            self.notice("The switch closed the control connection: status and wrap-up are not in sync.")
        self._refresh_header()

    # --- keys ---------------------------------------------------------------------------------------
    def action_answer(self) -> None:
        if self.seat.state == "ringing" and self.seat.call is not None:
            self.phone.answer(self.seat.call)
        else:
            self.notice("Nothing is ringing.")

    def action_decline(self) -> None:
        if self.seat.state == "ringing" and self.seat.call is not None:
            self.phone.decline(self.seat.call)
        else:
            self.notice("Nothing is ringing.")

    def action_hang_up(self) -> None:
        if self.seat.call is not None:
            self.phone.hang_up(self.seat.call)
        else:
            self.notice("No call to hang up.")

    def action_hold(self) -> None:
        if self.seat.state in ("in_call", "on_hold") and self.seat.call is not None:
            hold = self.seat.state == "in_call"
            self.phone.hold(self.seat.call, hold)
            self.seat.held(self.seat.call, hold, self.clock())
            self._refresh_header()
        else:
            self.notice("No call to hold.")

    def action_mute(self) -> None:
        if self.seat.call is not None:
            muted = not self.seat.muted
            self.phone.mute(self.seat.call, muted)
            self.seat.muted = muted
            self.notice("Muted: the caller cannot hear you (m again to unmute)." if muted else "Unmuted.")
            self._refresh_header()

    def action_keypad(self) -> None:
        from console.keypad import KeypadScreen

        if self.seat.call is not None:
            self.push_screen(KeypadScreen(lambda digit: self.phone.send_dtmf(self.seat.call, digit)))

    def action_answers(self) -> None:
        from console.answers import AnswersScreen
        from records.knowledge import KnowledgeError, load_knowledge

        if self.knowledge is None:
            try:
                self.knowledge = load_knowledge()
            except KnowledgeError as exc:
                self.notice(f"No standard answers: {exc}")
                return
        self.push_screen(AnswersScreen(self.knowledge))

    def action_transfer(self) -> None:
        from console.transfer import TransferScreen

        if self.seat.call is not None and self.pop is not None:
            extensions = frozenset(row[0] for row in self.db.execute("SELECT ext FROM agents"))
            self.push_screen(TransferScreen(self.queues, self.seat.ext, extensions), self._transfer_to)

    async def _transfer_to(self, target) -> None:
        if target is None or self.pop is None:
            return
        kind, where = target
        draft = self._draft()
        form = {k: v for k, v in asdict(draft).items() if k not in ("interaction", "saved") and v} \
            if draft is not None else {}
        call = self.seat.call
        if await self._ask("transfer", call_id=self.pop.interaction, form=form, **{kind: where}):
            self._transferred = call   # its end (the switch's BYE) is this transfer, not news
            if draft is not None and kind != "number":   # the form went with the caller: the receiving seat finishes it
                self.drafts.pop(draft.interaction, None)
                if self.drafts_store is not None:
                    self.drafts_store.save(self.drafts)
            to = {"ext": "extension ", "queue": "the queue ", "number": ""}[kind] + where
            self.notice(f"Transferred to {to}; your notes went with the call." if kind != "number" else
                        f"Transferred to {to}; your notes stay with the contact for you to save.")

    async def action_extend_wrap_up(self) -> None:
        reply = await self._ask("extend_wrap_up", seconds=WRAP_EXTENSION_S)
        if reply is None:
            return
        self.seat.wrap_until, self.seat.wrap_extended = float(reply["until"]), True
        self.notice(f"Wrap-up extended by {WRAP_EXTENSION_S} s (once per call).")
        self._refresh_header()

    def action_callbacks(self) -> None:
        from console.callbacks import CallbacksScreen
        from records.callbacks import due_callbacks

        self.push_screen(CallbacksScreen(due_callbacks(self.db, self.agent_id), self.clock()), self._dial_callback)

    def _dial_callback(self, callback) -> None:
        if callback is None:
            return
        if self.seat.state not in ("idle", "wrap_up"):
            self.notice("Finish this call first.")
            return
        key = self.phone.dial(callback.number)
        headers = {"X-Hotline-Queue": "callback"}
        if callback.resident_id is not None:
            headers["X-Hotline-Resident"] = str(callback.resident_id)
        pop = screen_pop(self.db, key, callback.number, headers, self.clock())
        self.callback_calls[key] = callback
        self.seat.dialling(pop, self.clock())
        self.show_pop(pop)
        order = f" about work order #{callback.work_order_id}" if callback.work_order_id else ""
        self.notice(f"Calling {callback.resident or callback.number}{order} (h to hang up).")
        self._refresh_header()

    def _callback_over(self, key: int, talked: bool, code: int) -> None:
        from console.callbacks import CallbackOutcomeScreen

        callback = self.callback_calls.pop(key)

        def record(result) -> None:
            from records.callbacks import record_attempt

            if result is None:
                return
            outcome, notes = result
            try:
                self.notice(record_attempt(self.db, callback.id, outcome, agent_id=self.agent_id,
                                           now=self.clock(), notes=notes, policy=self.policy))
            except ValueError as exc:
                self.notice(f"Not recorded: {exc}")

        self.push_screen(CallbackOutcomeScreen(callback, talked, code), record)

    def action_identify(self) -> None:
        from console.identify import IdentifyScreen

        if self.pop is not None:
            self.push_screen(IdentifyScreen(self.db, self.pop, self.clock), self._identified)

    async def _identified(self, result) -> None:
        if result is None:
            return
        pop, said = result
        if pop.call in self.seat.pops:
            self.seat.pops[pop.call] = pop
        if self.pop is not None and self.pop.call == pop.call:
            self.show_pop(pop)
        recorded = bool(pop.interaction) and await self._ask("identify", call_id=pop.interaction,
                                                             resident_id=pop.resident_id) is not None
        self.notice(said + ("" if recorded else " (the switch's record of this call could not say so)"))

    async def action_available(self) -> None:
        await self._ask("status", status="available")

    async def action_on_break(self) -> None:
        await self._ask("status", status="on_break", reason=BREAK_REASONS[0])

    async def action_end_wrap_up(self) -> None:
        if self.seat.state != "wrap_up":
            self.notice("Not in wrap-up.")
            return
        if await self._ask("end_wrap_up"):
            self.seat.wrap_up_over(self.clock())
            self.hide_pop()
            self._refresh_header()

    async def action_quit(self) -> None:
        """Log out first (the switch stops offering calls), then hang up and leave."""
        if self.seat.call is not None and self.phone is not None:
            self.phone.hang_up(self.seat.call)
        if self.control is not None and not self.control.closed:
            await self._ask("logout")
        self.exit()

    async def _ask(self, op: str, **fields) -> dict | None:
        """The switch's reply, or None with the reason in the notice line."""
        if self.control is None or self.control.closed:
            self.notice("Not connected to the switch.")
            return None
        try:
            return await self.control.ask(op, **fields)
        except ControlError as exc:
            self.notice(exc.message)
        except (ConnectionError, asyncio.TimeoutError):
            self.notice("The switch did not answer.")
        return None


async def run_seat(*, db_path: str, ext: str, pin: str, registrar: str, control: str | tuple[str, int] | None,
                   sip_user: str | None = None, sip_password: str | None = None,
                   token: str | None = None, audio: str = "null", hint: str = "",
                   stop: asyncio.Event | None = None, seconds: float | None = None) -> int:
    """Start the phone and the control connection, run the app, and tidy up on the way out.
    `stop` (or `seconds`) ends the seat from outside, as `hotline demo` does."""
    from records.agents import check_login
    from records.db import connect
    from telephony.softphone import Softphone

    db = connect(db_path, migrate=False)
    agent = check_login(db, ext, pin)
    if agent is None:
        db.close()
        raise PermissionError("wrong extension or PIN")
    seat = SeatState(ext, agent["name"])
    client = None
    notice = ""
    queues: tuple[str, ...] = ()
    if control is not None:
        try:
            client = await ControlClient.connect(control, token)
            me = await client.ask("login", ext=ext, pin=pin)
            seat.status_changed(me.get("status", "logged_out"), me.get("reason", ""))
            queues = tuple(me.get("queues", ()))
            await client.ask("subscribe")
        except (OSError, ControlError) as exc:
            notice = f"No control connection to the switch ({exc}): calls still ring; status is not shown."
            client = None
    from pathlib import Path

    drafts = Drafts(Path(db_path).with_suffix(".drafts") / f"{ext}.json")
    # The screen belongs to the seat: our log lines and pjsip's go to a file beside the database.
    log_handler = logging.FileHandler(Path(db_path).with_suffix(f".seat-{ext}.log"))
    log_handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    hotline_log = logging.getLogger("hotline")
    hotline_log.addHandler(log_handler)
    hotline_log.propagate, was_propagating = False, hotline_log.propagate
    if hotline_log.level == logging.NOTSET or hotline_log.level > logging.INFO:
        hotline_log.setLevel(logging.INFO)
    app = SeatApp(seat=seat, phone=None, db=db, control=client, agent_id=agent["id"], drafts=drafts, queues=queues)
    phone = Softphone(ext, sip_password or pin, registrar, lambda event: app.post_message(PhoneEvent(event)),
                      audio=audio, sip_user=sip_user)
    app.phone = phone

    async def end_from_outside():
        try:
            await asyncio.wait_for(stop.wait() if stop is not None else asyncio.Future(), seconds)
        except asyncio.TimeoutError:
            pass
        app.exit()
    ender = asyncio.get_running_loop().create_task(end_from_outside()) if stop or seconds else None
    try:
        phone.start()
        audio_note = f"Audio: {phone.audio_description}."
        app.call_later(app.notice, notice or hint or audio_note)
        await app.run_async()
    finally:
        if ender is not None:
            ender.cancel()
        phone.stop()
        if client is not None:
            await client.close()
        db.close()
        hotline_log.removeHandler(log_handler)
        hotline_log.propagate = was_propagating
        log_handler.close()
    return 0
