"""The seat's small choosing dialogs: why the agent takes a break, whether to really quit
with a call up, and which unfinished form to finish."""

from __future__ import annotations

import datetime as dt

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static

from console.dialogs import ChoiceList, typing_caught_up
from console.seatlogic import Draft


class BreakScreen(ModalScreen):
    """Dismissed with the reason chosen (from the switch's list), or None."""

    DEFAULT_CSS = """
    BreakScreen { align: center middle; }
    #break-box { width: 50; height: auto; border: round $accent; background: $surface; padding: 0 1; }
    #reasons { height: auto; border: none; }
    """
    BINDINGS = [Binding("enter", "choose", "Take the break", priority=True), Binding("escape", "close", "Back")]

    def __init__(self, reasons: dict[str, float], question: str = "Why are you taking a break?"):
        super().__init__()
        self.reasons, self.question = list(reasons.items()), question

    def compose(self) -> ComposeResult:
        with Vertical(id="break-box"):
            yield Static(f"{self.question} (↑↓ then enter, esc back)")
            yield ChoiceList(*(f"{reason.replace('_', ' ')} (up to {minutes:g} min)" for reason, minutes in self.reasons),
                             id="reasons")

    def on_mount(self) -> None:
        reasons = self.query_one("#reasons", OptionList)
        reasons.highlighted = 0
        reasons.focus()

    async def action_choose(self) -> None:
        await typing_caught_up(self.app)   # arrows sent just before enter move the list first
        index = self.query_one("#reasons", OptionList).highlighted
        self.dismiss(self.reasons[index][0] if index is not None and self.reasons else None)

    def action_close(self) -> None:
        self.dismiss(None)


class PickScreen(ModalScreen):
    """One of several choices (label, value); dismissed with the value, or None."""

    DEFAULT_CSS = """
    PickScreen { align: center middle; }
    #pick-box { width: 60; height: auto; border: round $accent; background: $surface; padding: 0 1; }
    #choices { height: auto; max-height: 14; border: none; }
    """
    BINDINGS = [Binding("enter", "choose", "Choose", priority=True), Binding("escape", "close", "Back")]

    def __init__(self, question: str, choices: list[tuple[str, str]]):
        super().__init__()
        self.question, self.choices = question, choices

    def compose(self) -> ComposeResult:
        with Vertical(id="pick-box"):
            yield Static(f"{self.question} (↑↓ then enter, esc back)")
            yield ChoiceList(*(label for label, _ in self.choices), id="choices")

    def on_mount(self) -> None:
        choices = self.query_one("#choices", OptionList)
        choices.highlighted = 0
        choices.focus()

    async def action_choose(self) -> None:
        await typing_caught_up(self.app)
        index = self.query_one("#choices", OptionList).highlighted
        self.dismiss(self.choices[index][1] if index is not None and self.choices else None)

    def action_close(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen):
    """A yes/no question; dismissed with True (y) or False (n, esc)."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    #confirm-box { width: 60; height: auto; border: round $warning; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n", "answer(False)", "No"),
                Binding("escape", "answer(False)", "No")]

    def __init__(self, question: str):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(f"{self.question}  y yes · n no")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class UnfinishedScreen(ModalScreen):
    """Forms not saved before their wrap-up ran out; dismissed with the one to finish, or None."""

    DEFAULT_CSS = """
    UnfinishedScreen { align: center middle; }
    #unfinished-box { width: 100%; max-width: 100; height: auto; max-height: 100%; border: round $accent;
                      background: $surface; padding: 0 1; }
    #forms { height: auto; max-height: 12; border: none; }
    """
    BINDINGS = [Binding("enter", "choose", "Finish it", priority=True), Binding("escape", "close", "Back")]

    def __init__(self, drafts: list[Draft], tz: dt.tzinfo | None):
        super().__init__()
        self.drafts, self.tz = drafts, tz

    def compose(self) -> ComposeResult:
        with Vertical(id="unfinished-box"):
            count = len(self.drafts)
            yield Static(("1 form is not saved yet: its contact is" if count == 1 else
                          f"{count} forms are not saved yet: their contacts are") + " recorded as unfinished, "
                         "with any notes typed. Enter opens one to finish and save; esc back."
                         if self.drafts else "Every form is saved.")
            yield ChoiceList(*(self._line(draft) for draft in self.drafts), id="forms")

    def _line(self, draft: Draft) -> str:
        when = dt.datetime.fromtimestamp(draft.started, self.tz).strftime("%H:%M") if draft.started else "--:--"
        notes = draft.notes.strip().replace("\n", " ")
        return f"{when}  {draft.caller or draft.number or 'unknown caller'}  {draft.reason or '?'}  " \
               f"{notes[:50] + ('…' if len(notes) > 50 else '') if notes else '(no notes)'}"

    def on_mount(self) -> None:
        forms = self.query_one("#forms", OptionList)
        if self.drafts:
            forms.highlighted = 0
        forms.focus()

    async def action_choose(self) -> None:
        await typing_caught_up(self.app)
        index = self.query_one("#forms", OptionList).highlighted
        self.dismiss(self.drafts[index] if index is not None and self.drafts else None)

    def action_close(self) -> None:
        self.dismiss(None)
