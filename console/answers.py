"""The standard answers (records/knowledge.py), searched as the agent types, read
while the caller waits: up/down choose, escape goes back to the call."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Markdown, OptionList, Static

from console.dialogs import ChoiceList, TextField, arrows_move_list
from records.knowledge import Answer, search_knowledge


class AnswersScreen(ModalScreen):
    DEFAULT_CSS = """
    AnswersScreen { align: center middle; }
    /* the header (call state, its clock) stays in sight above it */
    #answers { width: 100%; max-width: 110; height: auto; max-height: 85%; border: round $accent;
               background: $surface; padding: 0 1; }
    #answers Input { height: 1; border: none; padding: 0 1; background: $boost; }
    #answers Input:focus { background: $accent 30%; }
    #titles { height: auto; max-height: 6; border: none; }
    #answer { height: auto; max-height: 24; }
    #answers-help { color: $text-muted; }
    """
    BINDINGS = [Binding("escape", "close", "Back")]

    def __init__(self, answers: list[Answer], query: str = "", *, on_call: bool = True):
        super().__init__()
        self.answers, self.query_text = answers, query
        self.back_to = "the call" if on_call else "the seat"
        self.found: list[Answer] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="answers"):
            yield TextField(value=self.query_text, placeholder="search the standard answers: gas, lift, fee ...",
                        id="search", select_on_focus=False)
            yield ChoiceList(id="titles")
            with VerticalScroll(id="answer"):
                yield Markdown(id="text")
            yield Static(f"type to search · ↑↓ choose · esc back to {self.back_to}", id="answers-help")

    def on_mount(self) -> None:
        self.query_one("#search", Input).focus()
        self._search(self.query_text)

    def on_input_changed(self, message: Input.Changed) -> None:
        self._search(message.value)

    def _search(self, text: str) -> None:
        self.found = search_knowledge(self.answers, text)
        titles = self.query_one("#titles", OptionList)
        titles.clear_options()
        titles.add_options([answer.title for answer in self.found])
        if self.found:
            titles.highlighted = 0
        self._show(0)

    def _show(self, index: int | None) -> None:
        text = self.query_one("#text", Markdown)
        if not self.found or index is None:
            text.update("*Nothing matches: try one word, such as water, lift, fee or noise.*")
        else:
            answer = self.found[index]
            text.update(f"**{answer.title}**\n\n{answer.text}")

    def on_option_list_option_highlighted(self, message: OptionList.OptionHighlighted) -> None:
        self._show(message.option_index)

    def on_key(self, event) -> None:
        arrows_move_list(event, self.query_one("#search"), self.query_one("#titles", OptionList))

    def action_close(self) -> None:
        self.dismiss(None)
