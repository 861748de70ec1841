"""Send touch tones into the call (an IVR at a contractor's line, a door-entry code):
each digit typed goes out at once as RFC 2833 DTMF; escape closes the keypad."""

from __future__ import annotations

from typing import Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

DIGITS = "0123456789*#ABCD"


class KeypadScreen(ModalScreen):
    NEEDS_A_CALL = True   # the seat closes it when the call ends
    DEFAULT_CSS = """
    KeypadScreen { align: center middle; }
    #keypad { width: 44; height: auto; border: round $accent; background: $surface; padding: 0 1; }
    #sent { text-style: bold; }
    """
    BINDINGS = [Binding("escape", "close", "Close keypad")]

    def __init__(self, send: Callable[[str], None]):
        super().__init__()
        self.send, self.sent = send, ""

    def compose(self) -> ComposeResult:
        with Vertical(id="keypad"):
            yield Static("Keypad: type 0-9 * # to send tones; esc closes.")
            yield Static(" ", id="sent")

    def on_key(self, event) -> None:
        digit = (event.character or "").upper()
        if digit and digit in DIGITS:
            self.send(digit)
            self.sent += digit
            self.query_one("#sent", Static).update(f"sent: {self.sent}")
            event.stop()

    def action_close(self) -> None:
        self.dismiss(None)
