"""The agent's follow-up calls (records/callbacks.py): due first, one key dials, and
when the call ends the agent says how it went, which is recorded against the task and
its work order."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, OptionList, Static

from console.dialogs import ChoiceList, ChoiceTable, TextField, typing_caught_up
from console.seatlogic import time_left
from records.callbacks import OUTCOMES, Callback

KINDS = {"repair_callback": "repair callback", "complaint_feedback": "complaint feedback",
         "voicemail": "voicemail", "survey_care": "survey care", "other": "other"}


class CallbacksScreen(ModalScreen):
    """Dismissed with the Callback to dial, or None."""

    DEFAULT_CSS = """
    CallbacksScreen { align: center middle; }
    #callbacks { width: 100%; max-width: 120; height: auto; max-height: 100%; border: round $accent;
                 background: $surface; padding: 0 1; }
    #due { height: auto; max-height: 16; }
    #callbacks-help { color: $text-muted; }
    """
    BINDINGS = [Binding("enter", "dial", "Dial", priority=True), Binding("escape", "close", "Back")]

    def __init__(self, callbacks: list[Callback], now: float):
        super().__init__()
        self.callbacks, self.now = callbacks, now

    def compose(self) -> ComposeResult:
        with Vertical(id="callbacks"):
            yield Static(f"Your follow-up calls: {len(self.callbacks)} due, the most urgent first."
                         if self.callbacks else "No follow-up calls are waiting for you.")
            yield ChoiceTable(id="due", cursor_type="row", zebra_stripes=True)
            yield Static("↑↓ choose · enter dial · esc back", id="callbacks-help")

    def on_mount(self) -> None:
        table = self.query_one("#due", DataTable)
        table.add_columns("due", "kind", "resident", "number", "order", "tries", "last try")
        for callback in self.callbacks:
            left = callback.due_at - self.now
            table.add_row(Text(time_left(left), style="bold red" if left < 0 else ""), KINDS.get(callback.kind, callback.kind),
                          callback.resident or "-", callback.number or "no number",
                          f"#{callback.work_order_id} {callback.order_type.replace('_', ' ')}"
                          if callback.work_order_id else "-", str(callback.attempts), callback.last_outcome or "-")
        table.focus()

    async def action_dial(self) -> None:
        await typing_caught_up(self.app)   # arrows sent just before enter move the cursor first
        if not self.callbacks:
            self.dismiss(None)
            return
        callback = self.callbacks[self.query_one("#due", DataTable).cursor_row]
        if not callback.number:
            self.app.bell()
            return
        self.dismiss(callback)

    def action_close(self) -> None:
        self.dismiss(None)


class CallbackOutcomeScreen(ModalScreen):
    """After a callback call: how it went (dismissed with (outcome key, notes))."""

    DEFAULT_CSS = """
    CallbackOutcomeScreen { align: center middle; }
    #outcome-box { width: 64; height: auto; border: round $accent; background: $surface; padding: 0 1; }
    #outcome-box Input { height: 1; border: none; padding: 0 1; background: $boost; margin: 1 0 0 0; }
    #outcomes { height: auto; border: none; }
    """
    BINDINGS = [Binding("enter", "record", "Record", priority=True)]

    def __init__(self, callback: Callback, talked: bool, code: int, notes: str = ""):
        super().__init__()
        self.callback, self.talked, self.code, self.notes = callback, talked, code, notes

    def compose(self) -> ComposeResult:
        with Vertical(id="outcome-box"):
            who = self.callback.resident or self.callback.number
            yield Static(f"How did the call to {who} go? (↑↓ then enter)")
            yield ChoiceList(*OUTCOMES.values(), id="outcomes")
            # what the agent typed in the seat's notes during the call comes along
            yield TextField(self.notes, placeholder="notes (optional)", id="callback_notes", select_on_focus=False)

    def on_mount(self) -> None:
        keys = list(OUTCOMES)
        guess = "reached" if self.talked else ("busy" if self.code == 486 else "no_answer")
        outcomes = self.query_one("#outcomes", OptionList)
        outcomes.highlighted = keys.index(guess)
        outcomes.focus()

    async def action_record(self) -> None:
        await typing_caught_up(self.app)
        index = self.query_one("#outcomes", OptionList).highlighted or 0
        self.dismiss((list(OUTCOMES)[index], self.query_one("#callback_notes", Input).value.strip()))
