"""The seat's "who is calling?" screen for a number records do not know.

The agent types any part of a name, unit or phone number; matching residents list as
they type. Enter on the highlighted resident asks first, and enter again links the
caller's number to them (the next call pops by itself); ctrl+o says the call is theirs
without linking the number (a neighbour's phone); ctrl+n adds a new resident in a unit found the same way. The records
are the switch's (console/desk.py): each search and each change is one op, awaited in a
worker or an action, never in a message handler.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Select, Static

from console.desk import Desk, DeskError
from console.dialogs import ChoiceSelect, ChoiceTable, TextField, arrows_move_list, typing_caught_up
from console.seatlogic import Pop
from records.schema import RESIDENT_KINDS


class IdentifyScreen(ModalScreen):
    """Dismissed with (new Pop, what happened) or None."""

    DEFAULT_CSS = """
    IdentifyScreen { align: center middle; }
    #identify { width: 100%; max-width: 110; height: auto; max-height: 100%; border: round $accent;
                background: $surface; padding: 0 1; }
    #identify Input { height: 1; border: none; padding: 0 1; background: $boost; margin: 0 0 1 0; }
    #identify Input:focus { background: $accent 30%; }
    #matches { height: auto; max-height: 8; }
    #new { height: auto; display: none; }
    #new Input { width: 1fr; margin: 0 1 0 0; }
    #new Select { width: 16; height: 1; }
    #new SelectCurrent { border: none; height: 1; padding: 0 1; background: $boost; }
    #identify-help { color: $text-muted; }
    #identify-problem { color: $warning; height: auto; }
    """
    BINDINGS = [
        Binding("enter", "link", "Link number", priority=True),
        Binding("ctrl+o", "this_call_only", "This call only", priority=True),
        Binding("ctrl+n", "new", "New resident", priority=True),
        Binding("ctrl+s", "create", "Create", priority=True, show=False),
        Binding("escape", "close", "Back"),
    ]

    def __init__(self, desk: Desk, pop: Pop):
        super().__init__()
        self.desk, self.pop = desk, pop
        self.matches: list = []
        self.searched = ""   # the query self.matches answers
        self.confirming: int | None = None   # the resident a first enter asked about

    def compose(self) -> ComposeResult:
        with Vertical(id="identify"):
            yield Static(f"Who is calling from {self.pop.number or 'a withheld number'}? "
                         "Type part of a name, unit or phone number.")
            yield TextField(placeholder="name, unit, phone", id="query", select_on_focus=False)
            # what went wrong stays in sight above the list, however long the list is
            yield Static(id="identify-problem")
            yield ChoiceTable(id="matches", cursor_type="row", zebra_stripes=True)
            with Vertical(id="new"):
                yield Static("New resident (ctrl+s adds them with this number):")
                with Horizontal():
                    yield TextField(placeholder="full name", id="new_name", select_on_focus=False)
                    yield TextField(placeholder="unit, e.g. 12A Tower 3", id="new_unit", select_on_focus=False)
                    yield ChoiceSelect([(k.replace("_", " "), k) for k in RESIDENT_KINDS], value="tenant",
                                       allow_blank=False, id="new_kind")
            yield Static("↑↓ choose · enter link the number to them · ctrl+o this call only · ctrl+n new resident · "
                         "esc back", id="identify-help")

    def on_mount(self) -> None:
        self.query_one("#matches", DataTable).add_columns("name", "unit", "building, estate", "phones")
        self.query_one("#query", Input).focus()

    def on_input_changed(self, message: Input.Changed) -> None:
        # the field as it is now: late Changed messages of a burst carry older values
        if message.input.id == "query" and message.input.value != self.searched:
            self._unconfirm()
            self.run_worker(self._search(message.input.value), group="search", exclusive=True, exit_on_error=False)

    async def _search(self, query: str) -> None:
        try:
            matches = await self.desk.find_callers(query) if query.strip() else []
        except DeskError as exc:
            self.problem(f"Could not search: {exc}")
            return
        if query != self.query_one("#query", Input).value:
            return   # the agent typed on: the next search answers
        self.searched, self.matches = query, matches
        table = self.query_one("#matches", DataTable)
        table.clear()
        for match in self.matches:
            table.add_row(match.name + ("  VIP" if match.vip else ""), match.unit, match.place, match.phones)
        self.problem("" if self.matches or len(query.strip()) < 2 else
                     "Nobody matches: try fewer letters, the unit, or ctrl+n to add them.")

    def on_key(self, event) -> None:
        arrows_move_list(event, self.query_one("#query"), self.query_one("#matches", DataTable))

    def problem(self, text: str) -> None:
        self.query_one("#identify-problem", Static).update(text)

    async def action_link(self) -> None:
        if self.query_one("#new").display:
            await self.action_create()
            return
        await typing_caught_up(self.app)
        query = self.query_one("#query", Input).value
        if query != self.searched:   # enter came before the list caught up with the typing
            await self._search(query)
            self.problem("The list changed as you typed: check it, then enter links the number.")
            return
        if not self.matches:
            self.problem("Choose a resident first (type to search).")
            return
        match = self._highlighted()
        number = self.pop.number
        if number and self.confirming != match.resident_id:   # a link outlives the call: asked first
            self.confirming = match.resident_id
            self.problem(f"Link {number} to {match.name} ({match.unit or 'no unit'})? enter again: yes, their next "
                         f"call pops by itself · ctrl+o: this call only · ↑↓ someone else")
            return
        await self._identify(match, link=True)

    async def action_this_call_only(self) -> None:
        await typing_caught_up(self.app)
        if self.query_one("#new").display or self.query_one("#query", Input).value != self.searched:
            return
        if not self.matches:
            self.problem("Choose a resident first (type to search).")
            return
        await self._identify(self._highlighted(), link=False)

    def _highlighted(self):
        row = self.query_one("#matches", DataTable).cursor_row
        return self.matches[min(max(row, 0), len(self.matches) - 1)]

    async def _identify(self, match, *, link: bool) -> None:
        try:
            self.dismiss(await self.desk.identify(self.pop, match.resident_id, link=link))
        except DeskError as exc:
            self.problem(str(exc))

    def on_data_table_row_highlighted(self, message: DataTable.RowHighlighted) -> None:
        if self.confirming is not None and self.matches and self._highlighted().resident_id != self.confirming:
            self._unconfirm()

    def _unconfirm(self) -> None:
        if self.confirming is not None:
            self.confirming = None
            self.problem("")

    def action_new(self) -> None:
        self.query_one("#new").display = True
        name = self.query_one("#new_name", Input)
        query = self.query_one("#query", Input).value.strip()
        if query and not name.value and not any(c.isdigit() for c in query):
            name.value = query
        name.focus()

    async def action_create(self) -> None:
        if not self.query_one("#new").display:
            return
        await typing_caught_up(self.app)
        name = self.query_one("#new_name", Input).value
        unit = self.query_one("#new_unit", Input).value
        kind = str(self.query_one("#new_kind", Select).value)
        if not name.strip():
            self.problem("Not added: type their full name.")
            return
        try:
            self.dismiss(await self.desk.new_caller(self.pop, name, unit, kind))
        except DeskError as exc:
            self.problem(f"Not added: {exc}")

    def action_close(self) -> None:
        self.dismiss(None)
