"""Where to send the caller (blind transfer): one of the switch's queues, or another
agent's extension typed in. The switch moves the caller; this seat's phone is released
and the open form goes with the call."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static

from console.dialogs import ChoiceList, TextField, arrows_move_list, typing_caught_up


class TransferScreen(ModalScreen):
    """Dismissed with ("queue", name), ("ext", extension), ("number", outside number) or None."""

    NEEDS_A_CALL = True   # the seat closes it when the call ends

    DEFAULT_CSS = """
    TransferScreen { align: center middle; }
    #transfer { width: 60; height: auto; max-height: 100%; border: round $accent; background: $surface;
                padding: 0 1; }
    #transfer Input { height: 1; border: none; padding: 0 1; background: $boost; }
    #transfer Input:focus { background: $accent 30%; }
    #targets { height: auto; max-height: 10; border: none; }
    #transfer-problem { color: $warning; height: auto; }
    #transfer-help { color: $text-muted; }
    """
    BINDINGS = [Binding("enter", "choose", "Transfer", priority=True), Binding("escape", "close", "Back")]

    def __init__(self, queues: tuple[str, ...], own_ext: str, extensions: frozenset[str] = frozenset()):
        super().__init__()
        self.queues, self.own_ext, self.extensions = queues, own_ext, extensions

    def compose(self) -> ComposeResult:
        with Vertical(id="transfer"):
            yield Static("Transfer the caller to a queue, or type an agent's extension or an outside number:")
            yield TextField(placeholder="extension, +852 phone number, or queue", id="target", select_on_focus=False)
            yield ChoiceList(*self.queues, id="targets")
            yield Static(id="transfer-problem")
            yield Static("↑↓ choose a queue · enter transfer · esc back", id="transfer-help")

    def on_mount(self) -> None:
        # no queue chosen until the agent chooses one: a stray enter must not send a caller
        # away (found using the demo: enter on the empty field sent them to the first queue)
        self.query_one("#target", Input).focus()
        self.query_one("#targets", OptionList).highlighted = None

    def on_key(self, event) -> None:
        arrows_move_list(event, self.query_one("#target"), self.query_one("#targets", OptionList))

    async def action_choose(self) -> None:
        await typing_caught_up(self.app)
        typed = self.query_one("#target", Input).value.strip()
        digits = typed.replace(" ", "").replace("-", "")
        if typed == self.own_ext:
            self.query_one("#transfer-problem", Static).update("That is your own extension.")
            return
        if typed in self.extensions:
            self.dismiss(("ext", typed))
        elif digits.lstrip("+").isdigit():
            from records.phones import PhoneNumberError, normalise

            try:
                self.dismiss(("number", normalise(digits)))
            except PhoneNumberError as exc:
                self.query_one("#transfer-problem", Static).update(f"Not an extension or a phone number: {exc}")
        elif typed:
            if typed not in self.queues:
                self.query_one("#transfer-problem", Static).update(
                    f"No queue '{typed}'. Queues: {', '.join(self.queues) or 'none known'}.")
                return
            self.dismiss(("queue", typed))
        else:
            highlighted = self.query_one("#targets", OptionList).highlighted
            if highlighted is None or not self.queues:
                self.query_one("#transfer-problem", Static).update(
                    "Nothing chosen: type an extension or a number, or ↓ to a queue, then enter.")
                return
            self.dismiss(("queue", self.queues[highlighted]))

    def action_close(self) -> None:
        self.dismiss(None)
