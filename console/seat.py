"""`hotline agent`: the agent seat, a Textual app with the pjsua2 softphone built in.

The phone (telephony/softphone.py) posts its frozen events into the app with
`post_message` from its pump thread; the switch's events come over the control API
(telephony/control_client.py), decoded. What to show and how the seat's state moves is
in console/seatlogic.py; this module only lays it out and maps keys to commands. Its
messages are in console/seat_messages.py, its styles in console/seat.tcss, its dialogs
in console/{dialogs,answers,callbacks,choices,identify,keypad,transfer}.py (widgets the
supervisor console can share), and what starts and ends it in console/seat_run.py and
console/last_resort.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Awaitable, Callable

from rich.markup import escape
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Select, Static

from console.desk import Desk, DeskError, LocalDesk, SwitchDesk, on_this_call
from console.dialogs import ChoiceSelect, MainScreen, TextField, typing_caught_up
from console.last_resort import LastResort, terminal_fd
from records.desk import pop_from_wire, pop_headers
from records.knowledge import Answer
from console.seat_messages import PhoneEvent, SwitchEvent, SwitchLost
from console.seatlogic import (CALL_OUTCOMES, CONTACT_REASONS, NO_ORDER, UNFINISHED, Draft, Drafts, Pop, SeatState,
                               cut, header_pop, money, order_preview, time_left, when)
from telephony.acd.events import (AgentStateChanged, AgentStatusChanged, BreakOverrun, CallCompleted, CallOffered,
                                   CallTransferred)
from telephony.control_client import ControlClient, ControlError
from telephony.wire import Delivered
from console.external_phone import ExternalPhone, PhoneUnable
from telephony.softphone import CallHeld, CallState, IncomingCall, PhoneError, Registration

BREAK_REASONS = ("lunch", "training", "meeting", "personal")   # when the switch gives no list
WRAP_EXTENSION_S = 60   # the one extension of a wrap-up an agent may ask for


# ctrl+p: what each key does, in a few words (found using the demo: "the seat's break key")
COMMAND_HELP = {
    "answer": "pick up the ringing call", "decline": "pass the ringing call to the next agent",
    "hang_up": "end the call", "hold": "put the caller on hold (they hear music)", "resume": "back to the caller",
    "mute": "the caller stops hearing you", "unmute": "the caller hears you again", "keypad": "send tones (a menu at the far end)",
    "transfer": "pass the caller to a queue, an agent or an outside number",
    "extend_wrap_up": "60 s more wrap-up, once", "identify": "say who an unknown caller is",
    "answers": "search the standard answers", "callbacks": "your follow-up calls, the most urgent first",
    "unfinished": "forms not saved in time, to finish", "available": "take calls",
    "on_break": "stop taking calls for a while (choose why)", "end_wrap_up": "ready for the next call now",
    "close_form": "close an earlier call's form", "save": "save the form (disposition, notes, work order)",
}


class SeatApp(App):
    """One agent's seat. `phone` has answer/decline/hang_up/hold/send_dtmf (a Softphone);
    `control` is a logged-in ControlClient (or None), and records come through it (the
    switch answers: console/desk.py); a seat with no switch to ask reads `db` instead.
    `reconnect` (optional) makes a new logged-in, subscribed one when the switch comes back."""

    TITLE = "hotline seat"
    CSS_PATH = "seat.tcss"
    BINDINGS = [
        Binding("a", "answer", "Answer"),
        Binding("d", "decline", "Decline"),
        Binding("h", "hang_up", "Hang up"),
        Binding("o", "hold", "Hold"),
        Binding("o", "resume", "Resume"),   # the same key; the footer names what it does now
        Binding("m", "mute", "Mute"),
        Binding("m", "unmute", "Unmute"),   # the same key, named for what it does now
        Binding("k", "keypad", "Keypad"),
        Binding("t", "transfer", "Transfer"),
        Binding("e", "extend_wrap_up", "More time"),
        Binding("i", "identify", "Identify"),
        Binding("slash", "answers", "Knowledge"),
        Binding("c", "callbacks", "Follow-ups"),
        Binding("u", "unfinished", "Unfinished"),
        Binding("v", "available", "Ready"),
        Binding("b", "on_break", "Break"),
        Binding("w", "end_wrap_up", "End wrap"),
        Binding("x", "close_form", "Close form"),
        # the notes field says "(n)"; priority: it takes the focus before the keys typed
        # right behind it reach the screen (they would be lost), unless a field is being typed in
        Binding("n", "notes", "Notes", show=False, priority=True),
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "leave_form", "Leave form", show=False),
        Binding("q", "quit", "Quit"),
    ]
    SEAT_ACTIONS = frozenset(b.action for b in BINDINGS if isinstance(b, Binding) and b.action != "quit")
    # Nothing takes the focus by itself (Textual's default focuses the first field whenever
    # the seat's screen comes back from a dialog): the seat's keys are single letters, and
    # enter must never open a form field the agent did not go to.
    AUTO_FOCUS = None
    # The footer shows only what can be done now, so every key fits on 80 columns.
    WHEN = {"answer": ("ringing",), "decline": ("ringing",), "hang_up": ("in_call", "on_hold", "dialling"),
            "callbacks": ("idle", "wrap_up"),
            "hold": ("in_call",), "resume": ("on_hold",), "mute": ("in_call", "on_hold"),
            "unmute": ("in_call", "on_hold"), "keypad": ("in_call", "on_hold"),
            "transfer": ("in_call", "on_hold"),
            "available": ("idle", "wrap_up"), "on_break": ("idle", "wrap_up"), "end_wrap_up": ("wrap_up",)}
    _took_the_screen: int | None = None   # a ringing call whose pop replaced a form being finished
    BACK_WITH_V = "v when you are back."   # ends the notices that a break asks to end
    WRAP_WARNING_S = 10      # this long before wrap-up ends, an unsaved form is said (and wrap-up extended once)
    RECONNECT_S = (1, 2, 5, 10)   # waits between tries to reach the switch again (the last repeats)
    OFFER_WAIT_S = 0.3   # a ring whose offer has not arrived waits this long for it, then asks for the pop
    NOTICE_S = 60.0      # a notice is news: after this it goes (what stays true is in the header)

    def __init__(self, *, seat: SeatState, phone, db=None, control: ControlClient | None = None,
                 clock: Callable[[], float] = time.time, wrap_up_s: float = 30.0, agent_id: int | None = None,
                 drafts: Drafts | None = None, policy=None, queues: tuple[str, ...] = (),
                 reconnect: Callable[[int | None], Awaitable[tuple[ControlClient, dict]]] | None = None,
                 registrar: str = "", desk: Desk | None = None):
        from records.sla import load_policy

        super().__init__()
        self.seat, self.phone, self.control, self.clock = seat, phone, control, clock
        self.wrap_up_s, self.agent_id = wrap_up_s, agent_id
        self.pop: Pop | None = None
        self.policy = policy or load_policy()
        if desk is None:
            desk = SwitchDesk(self._switch_ask) if control is not None or db is None else \
                LocalDesk(db, agent_id=agent_id, clock=clock, policy=self.policy)
        self.desk = desk
        # call id -> its pop: the switch's CallOffered carries it, usually before the INVITE rings
        self._offered: dict[str, asyncio.Future] = {}
        self.drafts_store = drafts
        self.drafts: dict[str, Draft] = drafts.load() if drafts is not None else {}
        self._filling = False   # set while the form is filled from a draft (no change events then)
        self.pop_latencies: list[float] = []   # INVITE at the phone -> pop on screen, seconds
        self._footer_for: tuple = ()
        self.knowledge: list[Answer] | None = None   # the standard answers, read on first use
        self.queues = tuple(queues)   # the switch's queues, transfer targets
        self.callback_calls: dict = {}   # the phone's call key -> the follow-up task it is for
        self.quit_question = "Log out and quit the seat?"   # hotline demo: quitting ends the whole demo
        self._transferred: int | None = None   # the call this seat last transferred away
        self._declined: int | None = None      # the call this agent last declined (not a miss)
        self._cut_off: int | None = None       # the call a restarted switch no longer had
        self.reconnect, self.registrar = reconnect, registrar
        self._reconnecting: asyncio.Task | None = None
        self._wanted_status: tuple[str, str] | None = None   # what the agent had chosen when the switch went away
        self._started = clock()
        self._notice_at: float | None = None   # when the notice line was last written
        self._wrap_warned = False
        self.leaving = False

    def check_action(self, action: str, parameters) -> bool | None:
        if len(self.screen_stack) > 1 and action in self.SEAT_ACTIONS:
            return False   # a dialog (identify, keypad, ...) is open: its own keys, ctrl+s included
        if action == "notes" and isinstance(self.focused, Input):
            return False   # an n typed into a field
        return self._available(action)

    def _available(self, action: str) -> bool:
        """What the seat's state allows, whatever is on the screen."""
        seat = self.seat
        if action == "available":
            return seat.state in self.WHEN[action] and seat.status != "available"
        if action == "on_break":
            return seat.state in self.WHEN[action] and seat.status != "on_break"
        if action in ("mute", "unmute"):   # a desk phone mutes itself: the seat cannot know, so "Mute"
            return seat.state in self.WHEN[action] and (seat.muted == (action == "unmute"))
        if action in self.WHEN:
            return seat.state in self.WHEN[action]
        if action == "extend_wrap_up":
            return seat.state == "wrap_up" and not seat.wrap_extended
        if action == "identify":
            return self.pop is not None and not self.pop.known
        if action == "save":
            return self.pop is not None and bool(self.pop.interaction)   # a callback is recorded on its task
        if action == "unfinished":
            return seat.state in ("idle", "wrap_up") and bool(self._unfinished())
        if action == "close_form":
            return seat.state == "idle" and self.pop is not None
        return True

    def _why_not(self, action: str) -> str:
        """What a seat key that does nothing now would have done, and when it works."""
        seat, pop = self.seat, self.pop
        during_call = "works during a call"
        reasons = {
            "answer": "No call is ringing.", "decline": "No call is ringing.",
            "hang_up": "It is ringing: a answers, d declines (the caller goes to the next agent)."
            if seat.state == "ringing" else "There is no call to hang up.",
            "hold": f"Hold {during_call}.", "resume": f"Hold {during_call}.", "mute": f"Mute {during_call}.", "unmute": f"Mute {during_call}.",
            "keypad": f"The keypad {during_call}.", "transfer": f"Transfer {during_call}.",
            "extend_wrap_up": "Wrap-up was already extended once." if seat.state == "wrap_up" and seat.wrap_extended
            else "More time is for wrap-up.",
            "identify": "No caller on screen to identify." if pop is None
            else f"This caller is already identified: {pop.name or pop.number}.",
            "callbacks": "Follow-up calls are made when idle or in wrap-up: finish this call first.",
            "unfinished": "No unfinished forms." if not self._unfinished()
            else "Unfinished forms open when idle or in wrap-up: finish this call first.",
            "available": "You are already available." if seat.status == "available"
            else "v works when idle or in wrap-up: finish this call first.",
            "on_break": "You are already on a break (v when you are back)." if seat.status == "on_break"
            else "A break starts once the call is over.",
            "end_wrap_up": "You are not in wrap-up.",
            "close_form": "There is no form to close." if pop is None else "x closes the form once the call is over.",
            "save": "No call to save." if pop is None
            else "A follow-up call is recorded on its task: its outcome is asked when the call ends.",
            "notes": "No form open: notes are for a call.",
        }
        return reasons.get(action, "")

    def _key_does_nothing_now(self, key: str) -> None:
        """A seat key pressed when it does nothing (the footer hides it): said, not ignored."""
        if len(self.screen_stack) > 1 or isinstance(self.focused, Input):
            return   # a dialog's own keys, or text typed into a field
        actions = [b.action for b in self.BINDINGS if isinstance(b, Binding) and b.key == key]
        if any(self._available(action) for action in actions):
            return   # it ran (or is running): nothing to say
        why = next((text for action in actions if (text := self._why_not(action))), "")
        if why:
            self.notice(why)

    def get_system_commands(self, screen):
        """ctrl+p: every seat key that works now, by name (for whoever forgot the letter).
        Only the seat's own: Textual's (its quit among them, which would not ask before
        cutting a caller off; screenshots; themes) are not an agent's."""
        from textual.app import SystemCommand

        for binding in self.BINDINGS:
            if binding.action in self.SEAT_ACTIONS and binding.show and self._available(binding.action):
                key = binding.key.replace("slash", "/")
                yield SystemCommand(f"{binding.description} ({key})", COMMAND_HELP.get(binding.action, ""),
                                    getattr(self, f"action_{binding.action}"))
        yield SystemCommand("Quit (q)", "log out and leave the seat (it asks first)", self.action_quit)

    # --- layout --------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="header")
        yield Static(id="notice")
        yield Static(self._idle_text(), id="idle")
        with Vertical(id="pop"):
            yield Static(id="caller")
            # the caller is drawn first; the rest of the pop follows a frame later (show_pop)
            with Vertical(id="pop-body"):
                with Vertical(id="form"):
                    with Horizontal():
                        yield ChoiceSelect([(r, r) for r in CONTACT_REASONS], prompt="contact reason", id="reason")
                        yield ChoiceSelect([(o, o) for o in CALL_OUTCOMES], prompt="outcome", id="outcome")
                        yield ChoiceSelect([(t.replace("_", " "), t) for t in self.policy.types],
                                           prompt="no work order", id="order_type")
                    # select_on_focus off: coming back to a field must never make the next key wipe it
                    yield TextField(placeholder="notes (n)", id="notes", select_on_focus=False)
                    yield TextField(placeholder="work-order description", id="order_description",
                                    select_on_focus=False)
                    yield Static(id="preview")
                yield Static("Open work orders", classes="section")
                yield DataTable(id="orders", cursor_type="row", zebra_stripes=True)
                yield Static("Contact history", classes="section")
                # not a Tab stop of its own: the table in it is (focus on the container showed nothing,
                # and the letters typed next were taken as keys; found by a demo trial)
                with VerticalScroll(id="contacts", can_focus=False):
                    yield DataTable(id="history", cursor_type="row", zebra_stripes=True)
        # compact, and no palette hint: every call key must fit on an 80-column terminal
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self._columns()
        self.query_one("#pop").display = False
        if self.control is not None:
            self._use_client(self.control)
        if self.agent_id is not None or self.control is not None:
            self.run_worker(self._load_today(), exit_on_error=False)
        self.set_interval(1.0, self._tick)
        self._refresh_header()
        # SIGTERM (shutdown, kill), SIGHUP (the SSH session or terminal went away) and a
        # terminal that vanishes: the same clean way out as q, within seconds, whatever
        # the screen is doing (LastResort).
        self.last_resort = LastResort(self, terminal_fd=terminal_fd())
        self.last_resort.install()

    def on_unmount(self) -> None:
        self.last_resort.uninstall()

    async def _load_today(self) -> None:
        """Today so far, from records: a restarted seat forgets nothing."""
        try:
            self.seat.calls_today, self.seat.talk_today_s = await self.desk.today()
        except DeskError:
            return   # the header counts from zero; the switch's records still have the day
        self._refresh_header()

    async def _switch_ask(self, op: str, **fields) -> dict:
        if self.control is None or self.control.closed:
            raise ConnectionError("not connected to the switch")
        return await self.control.ask(op, **fields)

    def _use_client(self, client: ControlClient) -> None:
        self.control = client
        client.on_event = self._switch_said
        client.on_close = lambda: self.post_message(SwitchLost())

    def _switch_said(self, delivered: Delivered) -> None:
        """An event from the switch, as its line is read. An offer's pop is taken at once,
        not behind the screen's queue: the INVITE it belongs to may be ringing already."""
        if isinstance(delivered.event, CallOffered) and delivered.agent_id == self.seat.ext:
            self._offered_pop(delivered)
        self.post_message(SwitchEvent(delivered))
        if isinstance(self.phone, ExternalPhone):   # a desk phone's calls are the switch's events
            self.phone.switch_said(delivered)

    @property
    def _desk_phone(self) -> bool:
        """The extension's phone is one the seat does not drive (--phone external)."""
        return isinstance(self.phone, ExternalPhone)

    def _idle_text(self) -> str:
        return ("Waiting for calls.\n\nWhen a call rings, the caller's profile appears here before you "
                "answer.\nThe footer shows the keys that work now: a answer, d decline, h hang up, o hold, "
                "m mute, k keypad, t transfer, i identify a caller, / knowledge, n notes, ctrl+s save, "
                "w end wrap-up, e more wrap-up time, c follow-up calls, u unfinished forms, v ready, b break, "
                "q quit; ctrl+p lists them by name.")

    # --- the header -----------------------------------------------------------------------------
    def _refresh_header(self) -> None:
        seat, now = self.seat, self.clock()
        name, phone, status, state, today = seat.header_parts(now, max(40, (self.size.width or 80) - 2))
        header = Text(f"{name} │ {phone} │ ")
        header.append(status, style="bold reverse" if seat.over_break_limit(now) or not seat.switch_connected else "")
        header.append(f" │ {state} │ {today}")
        self.query_one("#header", Static).update(header)
        footer_for = (seat.state, seat.status, seat.wrap_extended, seat.muted, self.pop is not None and self.pop.known,
                      self.pop.interaction if self.pop is not None else None, bool(self._unfinished()))
        if footer_for != self._footer_for:
            self._footer_for = footer_for
            self.refresh_bindings()

    def _tick(self) -> None:
        # the interval can fire once more while Textual is tearing the screen down
        if not self.is_running:
            return
        now = self.clock()
        if self.seat.state == "wrap_up" and self.seat.wrap_until is not None:
            if now >= self.seat.wrap_until:
                self._wrap_up_ended()
            elif self.seat.wrap_until - now <= self.WRAP_WARNING_S:
                self._warn_unsaved()
        if not self.seat.registered and now - self._started > 10 and self.registrar:
            self.seat.no_registrar(self.registrar)
        if self._notice_at is not None and now - self._notice_at > self.NOTICE_S:
            self.notice("")
        self._refresh_header()

    def notice(self, text: str) -> None:
        self._notice_at = self.clock() if text else None
        self.query_one("#notice", Static).update(text)

    # --- the pop ----------------------------------------------------------------------------------
    NARROW = 100   # below this many columns the tables fold a column into another

    def _columns(self) -> None:
        """Column widths that fit the terminal: the free text (notes, descriptions) takes
        what is left, cut with … rather than pushed off the right edge; below NARROW
        columns the orders' status joins their type and the history leaves out the queue."""
        width = max(60, self.size.width or 80) - 2
        narrow = width < self.NARROW
        layouts = {   # an order's status: 11, the longest ("called back") whole
            "orders": [("#", 5), ("type, status" if narrow else "type", 20 if narrow else 13)]
            + ([] if narrow else [("status", 11)]) + [("next deadline", 25), ("description", 0)],
            "history": [("when", 12)] + ([] if narrow else [("queue", 9)])
            + [("agent", 12 if narrow else 16), ("outcome", 17 if narrow else 22), ("notes", 0)],
        }
        self._widths = {}
        for table_id, columns in layouts.items():
            table = self.query_one(f"#{table_id}", DataTable)
            table.clear(columns=True)   # an empty table keeps no widths from the last caller
            used = sum(w for _, w in columns) + 2 * len(columns) + 2
            for label, column_width in columns:
                table.add_column(label, key=label, width=column_width or max(12, width - used))
            self._widths[table_id] = {label: column_width or max(12, width - used) for label, column_width in columns}
        self._narrow = narrow

    def get_default_screen(self) -> Screen:
        return MainScreen()

    def on_screen_resize(self) -> None:
        self._columns()
        if self.pop is not None:
            self._show_tables(self.pop)

    def show_pop(self, pop: Pop) -> None:
        if self.pop is not None and self.pop.interaction and self.pop.interaction != pop.interaction:
            self._keep_unfinished(self.pop.interaction)   # a form left for another call is never dropped
        self.pop = pop
        self._show_caller(pop)
        panel = self.query_one("#pop")
        if not panel.display:
            # From the idle screen, the first frame draws only who is calling (a fraction of
            # a full repaint); the form and tables, filled now, show in the next frame.
            self.query_one("#pop-body").display = False
            self.call_after_refresh(self._show_pop_body)
        self.query_one("#idle").display = False
        panel.display = True
        self._fill_form(pop)

    def _show_pop_body(self) -> None:
        if self.pop is not None:
            self.query_one("#pop-body").display = True

    def _show_caller(self, pop: Pop) -> None:
        caller = Text()
        if pop.known:
            caller.append(pop.name, style="bold")
            if pop.name_alt:
                caller.append(f" {pop.name_alt}")
            if pop.vip:
                caller.append("  VIP", style="bold reverse")
            if pop.looking_up:   # the name came with the call; the profile is on its way
                caller.append(f"\n{pop.number}  ·  looking up the caller's records...")
                caller.append(f"\nqueue {pop.queue or '?'}, waited {pop.waited_s} s")
            else:
                caller.append(f"\n{pop.number}  ·  {pop.unit or 'no unit'}"
                              f"{'  ·  ' + pop.place if pop.place else ''}  ·  language {pop.language or '?'}")
                arrears = money(pop.arrears_cents) if pop.arrears_cents else "none"
                caller.append(f"\nqueue {pop.queue or '?'}, waited {pop.waited_s} s  ·  arrears ")
                caller.append(arrears, style="bold red" if pop.arrears_cents > 0 else "")
                if pop.notes:
                    caller.append(f"\nnote: {pop.notes}")
        else:
            caller.append(f"{pop.number or 'withheld number'}", style="bold")
            # "unknown" only once the records said so, never while they are being asked
            caller.append("  looking up the caller's records..." if pop.looking_up
                          else "  unknown caller: i to find or add the resident")
            caller.append(f"\nqueue {pop.queue or '?'}, waited {pop.waited_s} s")
        self.query_one("#caller", Static).update(caller)
        self._show_tables(pop)

    def _pop_filled_in(self, pop: Pop) -> None:
        """The switch's records for a call already on screen: the profile, orders and
        history are drawn; the form, and anything typed into it, is left as it is."""
        if pop.call in self.seat.pops:
            self.seat.pops[pop.call] = pop
        if self.pop is not None and self.pop.call == pop.call and self.pop.interaction == pop.interaction:
            self.pop = pop
            self._show_caller(pop)
            if self.seat.state == "ringing" and self.seat.call == pop.call and pop.known:
                self.notice(f"Ringing: {pop.name} from the {pop.queue or '?'} queue (a to answer)")

    async def _fill_pop(self, shown: Pop, headers: dict[str, str], offered: asyncio.Future | None = None,
                        received: float | None = None) -> None:
        """The records of a call whose pop shows only what it said itself: the switch's
        offer brings them (its event may come a moment after the INVITE); failing that,
        they are asked for."""
        fetched = None
        if offered is not None:
            try:
                fetched = await asyncio.wait_for(asyncio.shield(offered), self.OFFER_WAIT_S)
            except (asyncio.TimeoutError, DeskError):
                fetched = None
            self._offered.pop(shown.interaction, None)
        try:
            if fetched is None:
                fetched = await self.desk.pop(shown.call, shown.number, headers)
        except DeskError as exc:
            self._pop_filled_in(replace(shown, looking_up=False))
            self.notice(f"No records for this caller ({exc}): the number is all there is.")
            return
        self._pop_filled_in(on_this_call(fetched, shown.call, shown.number, headers))
        if received is not None:
            self.call_after_refresh(lambda: self.pop_latencies.append(time.monotonic() - received))

    async def _redraw_records(self, shown: Pop) -> None:
        """The caller's records asked for again after this seat changed them (found in a
        demo trial: a work order read as before the call after its follow-up was recorded
        as reached); the form and anything typed into it are left as they are."""
        headers = pop_headers(shown)
        try:
            fetched = await self.desk.pop(shown.call, shown.number, headers)
        except DeskError:
            return   # the table stays as it was; the notice has said what was recorded
        self._pop_filled_in(on_this_call(fetched, shown.call, shown.number, headers))

    def _ring(self, pop: Pop, received: float, *, complete: bool, offered: asyncio.Future | None = None) -> None:
        """A ringing call on screen. Incomplete: what the call said of itself, with the
        switch's records asked for (an unknown caller has none: they are asked once)."""
        if self.seat.call != pop.call:
            if not complete:
                self.run_worker(self._fill_pop(pop, pop_headers(pop), offered), exit_on_error=False)
            return   # it rings behind the current call; its pop shows when that call is over
        self._clear_dialogs_for_ringing()
        earlier = self.drafts.get(self.pop.interaction) if self.pop is not None and self.pop.interaction else None
        # a form being finished, replaced under the agent's hands: its keys must not save here
        self._took_the_screen = pop.call if earlier is not None and earlier.interaction != pop.interaction \
            and earlier.owed else None
        self.show_pop(pop)
        if complete:
            self.call_after_refresh(lambda: self.pop_latencies.append(time.monotonic() - received))
        else:
            self.run_worker(self._fill_pop(pop, pop_headers(pop), offered, received), exit_on_error=False)
        self.bell()
        self.notice(f"Ringing: {pop.name or pop.number} from the {pop.queue or '?'} queue (a to answer)")

    def _offer(self, call_id: str) -> asyncio.Future:
        if call_id not in self._offered:
            if len(self._offered) > 100:   # offers that never rang here (withdrawn, answered elsewhere)
                for old in list(self._offered)[:50]:
                    del self._offered[old]
            self._offered[call_id] = asyncio.get_running_loop().create_future()
        return self._offered[call_id]

    def _offered_pop(self, delivered: Delivered) -> None:
        """The switch offered this seat a call: its INVITE is on the way, its pop is here."""
        call_id = delivered.call_id
        if not call_id:
            return
        future = self._offer(call_id)
        if future.done():
            return
        if delivered.pop is not None:
            try:
                future.set_result(pop_from_wire(dict(delivered.pop)))
                return
            except (TypeError, ValueError):
                logging.getLogger("hotline.seat").warning("the offer of %s carried a pop this seat cannot read",
                                                          call_id)

        async def ask() -> None:   # a switch that sends no pop with its offers
            try:
                pop = await self.desk.pop(0, "", {"X-Hotline-Interaction": call_id})
            except DeskError as exc:
                if not future.done():
                    future.set_exception(exc)
                    future.exception()   # retrieved: a missing pop is said when the call rings
                return
            if not future.done():
                future.set_result(pop)
        asyncio.ensure_future(ask())

    def _show_tables(self, pop: Pop) -> None:
        now, narrow = self.clock(), self._narrow
        widths = self._widths
        orders = self.query_one("#orders", DataTable)
        orders.clear()
        for order in pop.orders:
            left = time_left(order.seconds_left) if order.deadline else "-"
            style = "bold red" if order.overdue else ""
            kind, status = order.type.replace("_", " "), order.status.replace("_", " ")
            cells: list[str | Text] = [str(order.id), cut(f"{kind}, {status}", widths["orders"]["type, status"]) if narrow else kind]
            if not narrow:
                cells.append(status)
            cells += [Text(f"{order.deadline} {left}".strip(), style=style),
                      escape(cut(order.description, widths["orders"]["description"]))]
            orders.add_row(*cells)
        history = self.query_one("#history", DataTable)
        history.clear()
        columns = widths["history"]
        for contact in pop.contacts:
            cells = [when(contact.at, now, self.policy.timezone), *([] if narrow else [contact.queue])]
            cells += [cut(contact.agent or "-", columns["agent"]),
                      cut(contact.disposition or contact.outcome, columns["outcome"]),
                      escape(cut(contact.notes, columns["notes"]))]
            history.add_row(*cells)

    # --- the form ---------------------------------------------------------------------------------
    def _draft(self) -> Draft | None:
        pop = self.pop
        if pop is None or not pop.interaction:
            return None
        draft = self.drafts.get(pop.interaction)
        if draft is None:
            reason = pop.queue if pop.queue in CONTACT_REASONS else ""
            draft = self.drafts[pop.interaction] = Draft(
                pop.interaction, reason=reason, number=pop.number, resident_id=pop.resident_id,
                caller=pop.name or pop.number, started=self.clock())
        return draft

    def _fill_form(self, pop: Pop) -> None:
        draft = self._draft()
        self._filling = True
        try:
            for name in ("reason", "outcome", "order_type"):
                value = getattr(draft, name) if draft is not None else ""
                self.query_one(f"#{name}", Select).value = value if value else Select.NULL
            for name in ("notes", "order_description"):
                field = self.query_one(f"#{name}", Input)
                field.value = getattr(draft, name) if draft is not None else ""
                field.cursor_position = len(field.value)   # coming back, the agent types on at the end
        finally:
            self.call_after_refresh(setattr, self, "_filling", False)
        self._show_preview()

    def _show_preview(self) -> None:
        draft = self._draft()
        text = order_preview(self.policy, draft.order_type, self.clock()) if draft is not None else ""
        self.query_one("#preview", Static).update(text and f"work order: {text}")

    def _take_form(self, draft: Draft) -> None:
        """The form as it stands on screen into the draft: the Changed messages of the
        last keys may still be on their way up when ctrl+s arrives."""
        if self._filling or self.pop is None or draft.interaction != self.pop.interaction:
            return
        chosen = {name: self.query_one(f"#{name}", Select).value for name in ("reason", "outcome", "order_type")}
        on_screen = {name: "" if value is Select.NULL else str(value) for name, value in chosen.items()}
        on_screen |= {name: self.query_one(f"#{name}", Input).value for name in ("notes", "order_description")}
        for name, value in on_screen.items():
            if getattr(draft, name) != value:
                self._form_changed(name, value)

    def on_select_changed(self, message: Select.Changed) -> None:
        self._form_changed(message.select.id, "" if message.value is Select.NULL else str(message.value))

    def on_input_changed(self, message: Input.Changed) -> None:
        self._form_changed(message.input.id, message.value)

    def _form_changed(self, field_name: str | None, value: str) -> None:
        draft = self._draft()
        if self._filling or draft is None or field_name is None or not hasattr(draft, field_name):
            return
        setattr(draft, field_name, value)
        if draft.saved and field_name in ("reason", "outcome", "notes"):
            draft.saved = False   # changed after saving: the change is kept until saved too
        if field_name == "order_type":
            self._show_preview()
        self._store_drafts()

    def _store_drafts(self) -> None:
        if self.drafts_store is not None:
            self.drafts_store.save(self.drafts)   # as typed: nothing is lost if the seat dies

    def _received_form(self, interaction: str, form: dict) -> None:
        """A transferred caller: what the last agent typed becomes this seat's form."""
        mine = self.drafts.get(interaction)
        if mine is not None and mine.typed:
            return   # already typed in here (the pop came first): what this agent wrote wins
        base = mine or Draft(interaction, started=self.clock())

        def given(name: str) -> str:
            return str(form[name]) if name in form else getattr(base, name)
        self.drafts[interaction] = replace(base, reason=given("reason"), outcome=given("outcome"), notes=given("notes"),
                                           order_type=given("order_type"),
                                           order_description=given("order_description"))
        self._store_drafts()
        if self.pop is not None and self.pop.interaction == interaction:
            self._fill_form(self.pop)

    def _unfinished(self) -> list[Draft]:
        """Forms of earlier calls that were never saved (their notes went to the contact as unfinished)."""
        current = self.pop.interaction if self.pop is not None else None
        return sorted((d for d in self.drafts.values() if d.owed and d.interaction != current),
                      key=lambda d: d.started)

    def _warn_unsaved(self) -> None:
        # the wrap-up's own call: an earlier unfinished form reopened meanwhile is not it
        wrapping_for = self.seat.wrapping_for
        draft = self.drafts.get(wrapping_for) if wrapping_for else self._draft()
        if draft is None or not draft.owed or self._wrap_warned:
            return
        self._wrap_warned = True
        if not self.seat.wrap_extended:
            asyncio.ensure_future(self._extend_for_unsaved())
        else:
            self.notice("Wrap-up is ending and the form is not saved: ctrl+s now. What you typed is kept either "
                        "way (u finishes it later).")

    async def _extend_for_unsaved(self) -> None:
        reply = await self._ask("extend_wrap_up", seconds=WRAP_EXTENSION_S)
        if reply is not None:
            self.seat.wrap_until, self.seat.wrap_extended = float(reply["until"]), True
            self.notice(f"The form is not saved: wrap-up extended by {WRAP_EXTENSION_S} s (once). ctrl+s saves it.")
            self._refresh_header()

    def _wrap_up_ended(self) -> None:
        if self.seat.state == "wrap_up" and "wrap-up" in str(self.query_one("#notice", Static).render()).lower():
            self.notice("")   # what was said about the wrap-up is over with it
        self.seat.wrap_up_over(self.clock())
        self._wrap_warned = False
        if self.pop is not None and self.seat.call is None:
            self.hide_pop()

    def _keep_unfinished(self, interaction: str) -> None:
        """A form the agent had no time to save: its notes go to the contact now (as
        unfinished), and the form stays on the unfinished list (u) to be finished."""
        draft = self.drafts.get(interaction)
        if draft is None or not draft.owed or draft.unfinished_sent:
            return   # a call that only rang here has nothing to finish
        draft.unfinished_sent = True
        self._store_drafts()
        disposition = draft.disposition if not draft.problems(self.policy.types) else \
            f"{draft.reason or 'general'}: {UNFINISHED}"
        asyncio.ensure_future(self._ask("disposition", call_id=interaction, disposition=disposition,
                                        notes=draft.notes))
        whose = draft.caller or "the last caller"
        # found in a demo trial: "its notes are on the contact" after a call where none were typed
        self.notice(f"The form for {whose} was not saved: its notes are on the contact as unfinished; "
                    "u finishes it." if draft.notes.strip() else
                    f"The form for {whose} was not saved (no notes were typed): the contact is recorded "
                    "as unfinished; u finishes it.")

    def action_notes(self) -> None:
        if self.pop is None:
            self.notice(self._why_not("notes"))
        else:
            self._show_pop_body()   # (a key pressed in the pop's very first frame)
            # at once, not after the queued keys (Widget.focus waits its turn): the text
            # typed right behind `n` goes into the notes
            self.set_focus(self.query_one("#notes", Input))

    def action_leave_form(self) -> None:
        self.set_focus(None)

    async def action_save(self) -> None:
        """One keystroke: the disposition and notes on the interaction, and the work
        order if one was chosen (deadlines from the SLA policy)."""
        draft = self._draft()
        if draft is None:
            self.notice("No call to save.")
            return
        if self.seat.state == "ringing" and self.pop is not None and self.pop.call == self._took_the_screen:
            # found in a new user's trial: finishing a form from u, a call rang, took the
            # screen, and ctrl+s put the disposition on a caller nobody had talked to
            self.notice("A call is ringing: a answers it. Nothing is saved on a call not answered while "
                        "another form was open; the form you were finishing is under u.")
            return
        await typing_caught_up(self)
        self._take_form(draft)
        problems = draft.problems_by_field(self.policy.types)
        if problems:
            self.notice("Not saved: " + "; ".join(text for _, text in problems) + ".")
            self._show_pop_body()
            self.query_one(f"#{problems[0][0]}").focus()   # enter opens the first thing to fix
            return
        if not await self._ask("disposition", call_id=draft.interaction, disposition=draft.disposition,
                               notes=draft.notes):
            return   # the notice says why; the draft stays
        saved = f"Saved: {draft.disposition}"
        if draft.order_type != NO_ORDER:
            resident_id = self.pop.resident_id if self.pop else draft.resident_id
            try:
                order_id, orders = await self.desk.open_work_order(
                    order_type=draft.order_type, description=draft.order_description, interaction=draft.interaction,
                    resident_id=resident_id, number=self.pop.number if self.pop else draft.number)
            except DeskError as exc:
                self.notice(f"Disposition saved; the work order was not: {exc}")
                return
            saved += f"; work order #{order_id} ({order_preview(self.policy, draft.order_type, self.clock())})"
            if self.pop is not None and self.pop.resident_id is not None and self.pop.resident_id == resident_id:
                self.pop = replace(self.pop, orders=orders)   # the new order shows at once
                self._show_tables(self.pop)
            # saved: a second ctrl+s updates the disposition but does not open the order again
            draft.order_id, draft.order_type, draft.order_description = order_id, NO_ORDER, ""
        draft.saved = True   # kept for this pop (a correction is saved again), no longer on disk
        self._store_drafts()
        self._filling = True
        try:
            self.query_one("#order_type", Select).value = Select.NULL
            self.query_one("#order_description", Input).value = ""
        finally:
            self.call_after_refresh(setattr, self, "_filling", False)
        self._show_preview()   # the order is opened: its preview goes with the type
        self.set_focus(None)   # the call keys work again at once (h hangs up, it does not type an h)
        self.notice(saved)

    def hide_pop(self) -> None:
        if self.pop is not None and self.pop.interaction:
            self._keep_unfinished(self.pop.interaction)
        for key in [key for key, draft in self.drafts.items() if draft.saved]:
            del self.drafts[key]
        self.pop = None
        self.set_focus(None)
        self.query_one("#pop").display = False
        self.query_one("#idle").display = True

    # --- events -----------------------------------------------------------------------------------
    def on_phone_event(self, message: PhoneEvent) -> None:
        event, now = message.event, self.clock()
        if isinstance(event, Registration):
            self.seat.registration(event.ok, event.code, event.reason)
            if self._desk_phone:
                self.notice("Your phone is registered at the switch: calls ring there and pop here." if event.ok
                            else f"Your phone is not registered at the switch: register it as extension "
                                 f"{self.seat.ext} with your PIN; calls ring there and pop here.")
            elif not event.ok:
                self.notice(f"The phone is not registered ({event.code} {event.reason}); it tries again by itself.")
        elif isinstance(event, IncomingCall):
            pop = header_pop(event.call, event.number, event.headers, event.display)
            # a seat with a switch hears of the call (with its pop) as its INVITE rings
            offered = self._offered.get(pop.interaction) if pop.interaction else None
            complete = False   # the switch's records are in it
            if offered is not None and offered.done():
                self._offered.pop(pop.interaction, None)
                if offered.exception() is None:
                    pop, complete = on_this_call(offered.result(), event.call, event.number, event.headers), True
                offered = None
            self.seat.ringing(pop, now)
            # drawn at once; if its offer has not come with its pop, the records are asked for
            self._ring(pop, event.received, complete=complete, offered=offered)
        elif isinstance(event, CallState):
            if event.state == "connected":
                self.seat.connected(event.call, now)
                self.notice("")
                if event.call == self.seat.call and (draft := self._draft()) is not None:
                    draft.talked = True
                    self._store_drafts()
            elif event.state == "ended":
                was_current = event.call == self.seat.call
                missed = self.seat.pops.get(event.call) if was_current and self.seat.state == "ringing" else None
                rang_s = now - self.seat.since
                if event.call in self.callback_calls:
                    self._callback_over(event.call, self.seat.connected_at is not None and was_current, event.code)
                cut_off = was_current and event.call == self._cut_off
                # the restarted switch has this agent free after a cut-off call: a wrap-up
                # counted only here would say "wrap-up" while calls ring; the form stays to save
                self.seat.ended(event.call, now, 0.0 if cut_off else self.wrap_up_s,
                                interaction=self.pop.interaction if was_current and self.pop is not None else "")
                self._wrap_warned = False
                if was_current:
                    self._close_call_dialogs()
                if was_current and event.call != self._transferred:
                    if missed is not None and event.call == self._declined:
                        self.notice(f"Declined: {missed.name or missed.number or 'the caller'} goes to the next "
                                    "free agent (back to you if nobody else is free: b for a break).")
                    elif missed is not None:   # the switch took it back (ring-out) or the caller gave up
                        put_on_break = self.seat.status == "on_break" and self.seat.reason == "no_answer"
                        self.notice(f"Missed: {missed.name or missed.number or 'a caller'} rang here "
                                    f"{rang_s:.0f} s without an answer."
                                    + (" Missed calls in a row: the switch put you on a break; v when you are back."
                                       if put_on_break else ""))
                    else:
                        self.notice(f"Call ended{f' ({event.code} {event.reason})' if event.code >= 300 else ''}.")
                    if self.seat.state == "ringing":     # the next caller was already ringing
                        pop = self.seat.pops[self.seat.call]
                        self.show_pop(pop)
                        self.bell()
                        self.notice(f"Ringing: {pop.name or pop.number} from the {pop.queue or '?'} queue "
                                    "(a to answer)")
                    elif self.seat.state == "idle" and not cut_off:
                        self.hide_pop()
        elif isinstance(event, CallHeld):
            self.seat.held(event.call, event.held, now)
            self.notice("On hold: the caller hears music (o again to take them back)." if event.held else
                        ("Back from hold: still muted, the caller does not hear you (m to unmute)." if self.seat.muted
                         else "Back from hold: the caller hears you again."))
        elif isinstance(event, PhoneError):
            self.notice(event.message)
        self._refresh_header()

    def _close_call_dialogs(self) -> None:
        """The call is over: the keypad and the transfer dialog have nothing left to act on."""
        while len(self.screen_stack) > 1 and getattr(self.screen, "NEEDS_A_CALL", False):
            self.screen.dismiss(None)

    def _clear_dialogs_for_ringing(self) -> None:
        """A call rings: pick-from-a-list dialogs (the follow-up list, breaks, unfinished
        forms) make way for its pop, and nothing on the seat has the focus, so a key meant
        for the list (enter, an arrow) does nothing there. A dialog one types into stays:
        keys typed into it as it vanished would become seat keys ('a' answers)."""
        closed = False
        while len(self.screen_stack) > 1:
            screen = self.screen
            if screen.query(Input):
                self.notify("A call is ringing: esc here, then a to answer.", severity="warning", timeout=8)
                return
            screen.dismiss(None)
            closed = True
        if closed:   # never while the agent types in the seat's own form: their letters stay letters
            self.set_focus(None)

    def on_switch_event(self, message: SwitchEvent) -> None:
        delivered = message.delivered
        event = delivered.event
        if delivered.agent_id != self.seat.ext:
            return   # a seat subscribes to its own events; a supervisor's login sees everyone's
        if isinstance(event, AgentStatusChanged):
            self.seat.status_changed(event.status, event.reason, event.since)
            if event.status == "on_break" and event.reason == "no_answer":
                self.notice("You missed calls in a row, so the switch put you on a break: " + self.BACK_WITH_V)
            elif event.status != "on_break" and self.BACK_WITH_V in str(self.query_one("#notice", Static).render()):
                self.notice("")   # found in a demo trial: "over its limit: v when ..." stayed after v
        elif isinstance(event, CallOffered) and delivered.form is not None:
            self._received_form(event.call_id, dict(delivered.form))
        elif isinstance(event, (CallCompleted, CallTransferred)):
            self.seat.switch_wrap_said(event.call_id, event.t + event.wrap_up_s)
        elif isinstance(event, AgentStateChanged) and event.state == "idle":
            self._wrap_up_ended()
        elif isinstance(event, BreakOverrun):
            self.notice(f"Your {event.reason} break is over its {event.limit_s / 60:g}-minute limit: "
                        + self.BACK_WITH_V)
        self._refresh_header()

    def on_switch_lost(self, message: SwitchLost) -> None:
        self._switch_lost()
        self._refresh_header()

    def _switch_lost(self) -> None:
        if self.leaving:
            return
        self.seat.switch_connected = False
        if self.seat.status != "logged_out":
            self._wanted_status = (self.seat.status, self.seat.reason)
        if self.reconnect is None:
            self.notice("The switch closed the control connection: status and wrap-up are not in sync.")
            return
        self.notice("Lost the switch: trying to reach it again (calls may not ring meanwhile).")
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.ensure_future(self._reconnect())

    async def _reconnect(self) -> None:
        assert self.reconnect is not None
        attempt = 0
        while not self.leaving:
            await asyncio.sleep(self.RECONNECT_S[min(attempt, len(self.RECONNECT_S) - 1)])
            attempt += 1
            try:
                # what happened while the connection was down comes first (the event log)
                client, me = await self.reconnect(self.control.last_seq if self.control is not None else None)
            except ControlError as exc:
                if exc.code == "bad_credentials":   # a seat started while the switch was away, with a typo
                    self.notice(f"The switch refuses this seat: {exc.message}. q, then start it again.")
                    return
                self.notice(f"The switch did not take the login ({exc.message}); trying again.")
                continue
            except (OSError, ConnectionError, asyncio.TimeoutError) as exc:
                self.notice(f"The switch is still unreachable ({exc}); trying again.")
                continue
            self._use_client(client)
            self.seat.switch_connected = True
            first = not self.seat.name
            self.seat.name = me.get("agent", {}).get("name") or self.seat.name
            if me.get("queues"):
                self.queues = tuple(me["queues"])
            if me.get("breaks"):
                self.seat.break_limits = dict(me["breaks"])
            if self._desk_phone and "registered" in me:
                self.phone.registered(bool(me["registered"]))   # the desk phone as the switch sees it now
            elif me.get("registered") is False and hasattr(self.phone, "register_again"):
                # a restarted switch has no binding for this seat: without a REGISTER now,
                # no call rings here until the next refresh (minutes), while the seat says "available"
                self.phone.register_again()
            if first:   # the seat started without the switch: today so far comes now
                self.run_worker(self._load_today(), exit_on_error=False)
            self.seat.status_changed(me.get("status", "logged_out"), me.get("reason", ""), self.clock())
            cut_off = self._drop_calls_the_switch_forgot(me.get("state", "idle"))
            wrap_dropped = self.seat.state == "wrap_up" and me.get("state") != "wrap_up"
            form = self.drafts.get(self.pop.interaction) if self.pop is not None else None
            form_unsaved = form is not None and form.owed
            if wrap_dropped:   # the switch restarted during it: its agent is free there, so here too
                self._wrap_up_ended()
            wanted, self._wanted_status = self._wanted_status, None
            if wanted is not None and wanted[0] in ("available", "on_break") and self.seat.status == "logged_out":
                reason = wanted[1] if wanted[0] == "on_break" else ""
                await self._ask("status", status=wanted[0], **({"reason": reason} if reason else {}))
            now_status = self.seat.status_text()
            if cut_off:
                self.notice(f"The switch restarted and cut off the call; its form stays here to save. You are "
                            f"{now_status}.")
            elif wrap_dropped and form_unsaved:
                self.notice(f"The switch restarted during your wrap-up, which ended there; its unsaved form is on "
                            f"the unfinished list (u). You are {now_status}.")
            elif wrap_dropped:   # (the trial: a saved form was said to be on an empty list)
                self.notice(f"The switch restarted during your wrap-up, which ended there; its form is saved. "
                            f"You are {now_status}.")
            elif wanted is not None and self.seat.status == wanted[0]:
                self.notice(f"Reconnected to the switch; you are {now_status} again.")
            elif self.seat.status == "logged_out":
                self.notice("Reconnected to the switch; you are logged out there: v to be available.")
            else:
                self.notice(f"Reconnected to the switch; you are {now_status}.")
            self._refresh_header()
            return

    def _drop_calls_the_switch_forgot(self, switch_state: str) -> bool:
        """After a reconnect: a call the seat still holds but the switch does not know (it
        restarted: the caller is gone) is hung up here, or the seat would look busy on a
        dead call while the switch offers it new ones."""
        if self.seat.call is None or self.seat.state not in ("ringing", "in_call", "on_hold", "dialling"):
            return False
        if switch_state in ("ringing", "in_call", "on_hold"):
            return False
        call = self.seat.call
        self._transferred = call   # its end is this news, said once (not "Call ended.")
        self._cut_off = call       # and no wrap-up here the switch does not count
        if self._desk_phone:
            self.phone.forget(call)   # the switch has no such call to hang up: it ends here
        else:
            self.phone.hang_up(call)
        return True

    # --- keys ---------------------------------------------------------------------------------------
    def action_answer(self) -> None:
        if self.seat.state == "ringing" and self.seat.call is not None:
            self.phone.answer(self.seat.call)
        else:
            self.notice("Nothing is ringing.")

    def action_decline(self) -> None:
        if self.seat.state == "ringing" and self.seat.call is not None:
            self._declined = self.seat.call
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
            self.phone.hold(self.seat.call, hold)   # the header changes when the phone says it took effect
            self.notice("Putting the caller on hold..." if hold else "Taking the caller off hold...")
        else:
            self.notice("No call to hold.")

    def action_resume(self) -> None:
        self.action_hold()

    def action_mute(self) -> None:
        if self.seat.call is not None and self._desk_phone:
            self.phone.mute(self.seat.call)   # a desk phone mutes itself: the seat says so
            return
        if self.seat.call is not None:
            muted = not self.seat.muted
            self.phone.mute(self.seat.call, muted)
            self.seat.muted = muted
            self.notice("Muted: the caller cannot hear you (m again to unmute)." if muted else "Unmuted.")
            self._refresh_header()

    def action_unmute(self) -> None:
        self.action_mute()

    def action_keypad(self) -> None:
        from console.keypad import KeypadScreen

        if self.seat.call is not None and self.seat.state in ("in_call", "on_hold"):
            call = self.seat.call
            if self._desk_phone:
                self.phone.send_dtmf(call, "")   # a desk phone's keys are on the phone
                return
            self.push_screen(KeypadScreen(lambda digit: self.phone.send_dtmf(call, digit)))

    async def action_answers(self) -> None:
        from console.answers import AnswersScreen

        if self.knowledge is None:
            try:
                self.knowledge = await self.desk.answers()
            except DeskError as exc:
                self.notice(f"No standard answers: {exc}")
                return
        self.push_screen(AnswersScreen(self.knowledge, on_call=self.seat.state not in ("idle", "wrap_up")))

    async def action_transfer(self) -> None:
        from console.transfer import TransferScreen

        if self.seat.call is not None and self.pop is not None:
            try:
                extensions = await self.desk.extensions()
            except DeskError:
                extensions = frozenset()   # any extension may still be typed; the switch checks it
            if self.seat.call is not None and self.pop is not None:
                self.push_screen(TransferScreen(self.queues, self.seat.ext, extensions), self._transfer_to)

    async def _transfer_to(self, target) -> None:
        if target is None or self.pop is None:
            return
        if self.seat.state not in ("in_call", "on_hold"):
            self.notice("The call ended before the transfer: there is nobody to transfer.")
            return
        kind, where = target
        draft = self._draft()
        form = {k: getattr(draft, k) for k in ("reason", "outcome", "notes", "order_type", "order_description")
                if getattr(draft, k)} if draft is not None else {}
        call = self.seat.call
        if await self._ask("transfer", call_id=self.pop.interaction, form=form, **{kind: where}):
            self._transferred = call   # its end (the switch's BYE) is this transfer, not news
            if kind != "number":
                # the switch keeps what was typed on the contact, as this agent's notes, and
                # the form went with the caller: the receiving seat finishes it, and this one
                # has nothing left to save (the contact is no longer this agent's to write)
                if draft is not None:
                    self.drafts.pop(draft.interaction, None)
                    self._store_drafts()
                self.hide_pop()
            to = {"ext": "extension ", "queue": "the queue ", "number": ""}[kind] + where
            self.notice(f"Transferred to {to}; your notes are on the contact and went with the call."
                        if kind != "number" else f"Transferred to {to}; your notes stay with the contact for you "
                        "to save.")

    async def action_extend_wrap_up(self) -> None:
        if self.seat.wrap_extended:
            self.notice("Wrap-up was already extended once for this call: ctrl+s saves, w ends it.")
            return
        reply = await self._ask("extend_wrap_up", seconds=WRAP_EXTENSION_S)
        if reply is None:
            return
        self.seat.wrap_until, self.seat.wrap_extended = float(reply["until"]), True
        self.notice(f"Wrap-up extended by {WRAP_EXTENSION_S} s (once per call).")
        self._refresh_header()

    async def action_callbacks(self) -> None:
        from console.callbacks import CallbacksScreen

        try:
            due = await self.desk.callbacks()
        except DeskError as exc:
            self.notice(f"No follow-up list: {exc}")
            return
        if self.seat.state in ("idle", "wrap_up"):   # nothing rang while the list was on its way
            self.push_screen(CallbacksScreen(due, self.clock()), self._dial_callback)

    def _dial_callback(self, callback) -> None:
        if callback is None:
            return
        if self.seat.state not in ("idle", "wrap_up"):
            self.notice("Finish this call first.")
            return
        try:
            key = self.phone.dial(callback.number)
        except PhoneUnable:   # a desk phone: the agent dials there, then says how it went
            self.notice(f"Dial {callback.number} on your phone{f' ({callback.resident})' if callback.resident else ''}, "
                        "then record how it went.")
            self._ask_outcome(callback, True, 0, "")
            return
        headers = {"X-Hotline-Queue": "callback"}
        if callback.resident_id is not None:
            headers["X-Hotline-Resident"] = str(callback.resident_id)
        pop = header_pop(key, callback.number, headers)
        self.callback_calls[key] = callback
        self.seat.dialling(pop, self.clock())
        self.show_pop(pop)
        self.run_worker(self._fill_pop(pop, headers), exit_on_error=False)
        order = f" about work order #{callback.work_order_id}" if callback.work_order_id else ""
        self.notice(f"Calling {callback.resident or callback.number}{order} (h to hang up).")
        self._refresh_header()

    def _callback_over(self, key: int, talked: bool, code: int) -> None:
        callback = self.callback_calls.pop(key)
        # a follow-up call has no form of its own to save: its notes go with its outcome
        ours = self.pop is not None and self.pop.call == key
        notes = self.query_one("#notes", Input)
        typed = notes.value.strip() if ours else ""
        self._ask_outcome(callback, talked, code, typed, typing=ours and self.focused is notes)

    def _ask_outcome(self, callback, talked: bool, code: int, typed: str, typing: bool = False) -> None:
        from console.callbacks import CallbackOutcomeScreen

        async def record(result) -> None:
            if result is None:
                return
            outcome, notes = result
            try:
                self.notice(await self.desk.callback_outcome(callback.id, outcome, notes))
            except DeskError as exc:
                self.notice(f"Not recorded: {exc}")
                return
            shown = self.pop
            if shown is not None and callback.resident_id is not None and shown.resident_id == callback.resident_id:
                await self._redraw_records(shown)   # the outcome may have moved one of their work orders on

        self.push_screen(CallbackOutcomeScreen(callback, talked, code, notes=typed, typing=typing), record)

    def action_unfinished(self) -> None:
        from console.choices import UnfinishedScreen

        self.push_screen(UnfinishedScreen(self._unfinished(), self.policy.timezone), self._reopen)

    def _reopen(self, draft: Draft | None) -> None:
        """The form of an earlier call, with that caller's profile, to finish and save."""
        if draft is None or self.seat.state not in ("idle", "wrap_up"):
            return
        headers = {"X-Hotline-Interaction": draft.interaction, "X-Hotline-Queue": draft.reason}
        if draft.resident_id is not None:
            headers["X-Hotline-Resident"] = str(draft.resident_id)
        pop = header_pop(0, draft.number, headers)
        self.show_pop(pop)
        self.run_worker(self._fill_pop(pop, headers), exit_on_error=False)
        self.notice(f"The form for {draft.caller or draft.number or 'an earlier call'}: finish it and ctrl+s; "
                    "x closes it.")

    def action_close_form(self) -> None:
        if self.seat.state == "idle" and self.pop is not None:
            self.hide_pop()

    def action_identify(self) -> None:
        from console.identify import IdentifyScreen

        if self.pop is not None:
            self.push_screen(IdentifyScreen(self.desk, self.pop), self._identified)

    async def _identified(self, result) -> None:
        if result is None:
            return
        pop, said = result
        if pop.call in self.seat.pops:
            self.seat.pops[pop.call] = pop
        draft = self.drafts.get(pop.interaction) if pop.interaction else None
        if draft is not None:   # the unfinished list and its notices name them from now on
            draft.caller, draft.resident_id = pop.name or draft.caller, pop.resident_id
            self._store_drafts()
        if self.pop is not None and self.pop.call == pop.call:
            self.show_pop(pop)
        self.notice(said)

    async def action_available(self) -> None:
        await self._ask("status", status="available")

    def action_on_break(self) -> None:
        from console.choices import BreakScreen

        reasons = self.seat.break_limits or {reason: 0 for reason in BREAK_REASONS}
        self.push_screen(BreakScreen(reasons), self._take_break)

    async def _take_break(self, reason: str | None) -> None:
        if reason is not None:
            await self._ask("status", status="on_break", reason=reason)

    async def action_end_wrap_up(self) -> None:
        if self.seat.state != "wrap_up":
            self.notice("Not in wrap-up.")
            return
        if await self._ask("end_wrap_up"):
            self._wrap_up_ended()
            self._refresh_header()

    async def action_quit(self) -> None:
        """q: asked first (a caller must never be cut off, nor a working seat closed, by a stray key)."""
        from console.choices import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                asyncio.ensure_future(self.leave())
        # always asked: q is also a letter typed on a screen the agent thought had a field
        if self.seat.call is not None and self.seat.state != "ringing":
            question = "A call is up: hang up on the caller and quit?"
        elif self.seat.state == "ringing":
            question = "A call is ringing: log out (the caller goes to the next agent) and quit?"
        else:
            question = self.quit_question
        # the same count as u shows, and the form on screen said apart (found using the demo:
        # u listed 1, this said 2)
        current = self.drafts.get(self.pop.interaction) if self.pop is not None else None
        kept = []
        if current is not None and current.owed:
            kept.append("this call's form")
        if earlier := len(self._unfinished()):
            kept.append(f"{earlier} unfinished form{'s' if earlier > 1 else ''}")
        if kept:
            question += f" ({' and '.join(kept)} kept for next time)"
        self.push_screen(ConfirmScreen(question), answered)

    async def leave(self, urgent: bool = False) -> None:
        """Log out first (the switch stops offering calls), then hang up and leave.
        `urgent` (a signal, the terminal gone): the phone is released before the screen is
        closed too, since closing a screen whose terminal is gone can hang."""
        if self.leaving:
            return
        self.leaving = True
        if self.pop is not None and self.pop.interaction:
            self._keep_unfinished(self.pop.interaction)
        if self.seat.call is not None and self.phone is not None:
            self.phone.hang_up(self.seat.call)
        if self.control is not None and not self.control.closed:
            try:
                await asyncio.wait_for(self.control.ask("logout"), 3)
            except (ControlError, ConnectionError, asyncio.TimeoutError):
                pass
        if urgent and self.phone is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.phone.stop)   # unregisters
        self.exit()

    async def _ask(self, op: str, **fields) -> dict | None:
        """The switch's reply, or None with the reason in the notice line."""
        if self.control is None or self.control.closed:
            self.notice("Not connected to the switch" + (" (reconnecting)." if self.reconnect else "."))
            return None
        try:
            return await self.control.ask(op, **fields)
        except ControlError as exc:
            self.notice(exc.message)
        except (ConnectionError, asyncio.TimeoutError):
            self.notice("The switch did not answer.")
        return None


def _said_if_it_does_nothing(key: str):
    def handler(self: SeatApp) -> None:
        self._key_does_nothing_now(key)
    return handler


# Textual calls key_<name> for a key no binding took (here: refused by check_action).
for _binding in SeatApp.BINDINGS:
    if isinstance(_binding, Binding) and _binding.action in SeatApp.SEAT_ACTIONS:
        setattr(SeatApp, f"key_{_binding.key.replace('+', '_')}", _said_if_it_does_nothing(_binding.key))
