"""The agent's follow-up calls (records/callbacks.py): due first, one key dials, and
when the call ends the agent says how it went, which is recorded against the task and
its work order."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, OptionList, Static

from console.dialogs import ChoiceList, ChoiceTable, TextField, typing_caught_up
from console.seatlogic import time_left
from records.callbacks import OUTCOMES, Callback

# the kind column says what the follow-up is about, in one word ("other", "voicemail" as stored)
SHORT_KINDS = {"repair_callback": "repair", "complaint_feedback": "complaint", "survey_care": "survey"}


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
        headers = ("due", "kind", "resident", "number", "order", "tries", "last try")
        rows = [[time_left(callback.due_at - self.now), SHORT_KINDS.get(callback.kind, callback.kind),
                 callback.resident or "-", callback.number or "no number",
                 f"#{callback.work_order_id} {callback.order_type.replace('_', ' ')}" if callback.work_order_id else "-",
                 str(callback.attempts), callback.last_outcome or "-"] for callback in self.callbacks]
        # the resident's name and the order share what the other columns leave, so the list
        # fits the terminal without a sideways scroll (found at 100 columns: the last column cut)
        natural = [max([cell_len(h), *(cell_len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
        scrollbar = 2 if len(rows) > 15 else 0
        spare = self.app.size.width - 4 - 2 * len(headers) - scrollbar - (sum(natural) - natural[2] - natural[4])
        if natural[2] + natural[4] <= spare:
            widths = {2: natural[2], 4: natural[4]}
        else:
            order = min(natural[4], max(8, spare // 3))
            widths = {2: max(10, spare - order), 4: order}
        table.add_columns(*headers)
        for callback, row in zip(self.callbacks, rows):
            late = callback.due_at - self.now < 0
            cells: list[str | Text] = [Text(row[0], style="bold red" if late else ""), *row[1:]]
            for column, width in widths.items():
                text = Text(row[column], no_wrap=True, overflow="ellipsis")
                text.truncate(width, overflow="ellipsis")
                cells[column] = text
            table.add_row(*cells)
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

    def __init__(self, callback: Callback, talked: bool, code: int, notes: str = "", typing: bool = False):
        super().__init__()
        self.callback, self.talked, self.code, self.notes = callback, talked, code, notes
        self.typing = typing   # the agent was typing notes as the call ended: they go on typing here

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
        if self.typing:
            # found using the demo: the resident hung up mid-sentence, the dialog took the
            # rest of the sentence as list keys, and it was lost
            self.query_one("#callback_notes", TextField).focus()
        else:
            outcomes.focus()

    async def action_record(self) -> None:
        await typing_caught_up(self.app)
        index = self.query_one("#outcomes", OptionList).highlighted or 0
        self.dismiss((list(OUTCOMES)[index], self.query_one("#callback_notes", Input).value.strip()))
