"""What reaches the seat's screen from outside its key presses: the phone's events
(posted from its pump thread) and the switch's (from the control connection)."""

from __future__ import annotations

from textual.message import Message

from telephony.wire import Delivered


class PhoneEvent(Message):
    """A softphone event, posted from the pump thread."""

    def __init__(self, event: object):
        super().__init__()
        self.event = event


class SwitchEvent(Message):
    """An event from the switch's control API (own calls and status), decoded."""

    def __init__(self, delivered: Delivered):
        super().__init__()
        self.delivered = delivered


class SwitchLost(Message):
    """The control connection closed."""
