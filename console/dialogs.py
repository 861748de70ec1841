"""What the seat's dialogs (identify, transfer, standard answers, callbacks) share."""

from __future__ import annotations

import functools

from textual.screen import Screen
from textual.widgets import DataTable, Input, OptionList, Select


def arrows_move_list(event, search, choices) -> None:
    """Up and down move the cursor of `choices` (a DataTable or an OptionList) while the
    typing cursor stays in `search`, so the agent can type, look and pick without tab."""
    if event.key in ("up", "down") and search.has_focus:
        choices.action_cursor_up() if event.key == "up" else choices.action_cursor_down()
        event.stop()


async def typing_caught_up(app) -> None:
    """Wait until the focused field has taken every key already sent to it.

    A priority binding (enter, ctrl+s) runs as soon as its key reaches the app, while the
    keys typed just before it are still queued on the field: a fast typist or a paste
    followed by enter would save the text without its last characters, or without any.
    The field handles its queue in order, so a callback queued behind those keys runs
    once they are in its value."""
    import asyncio

    focused = app.focused
    if focused is None or not focused.is_running:
        return
    caught_up = asyncio.get_running_loop().create_future()
    focused.call_later(caught_up.set_result, None)
    await caught_up



class KeysInOrder:
    """A widget that runs its own key bindings as each key arrives, in order.

    Textual runs a widget's bindings (an Input's backspace and arrows, a list's up and
    down) once the key has bubbled back up to the app, while the keys sent after it are
    already queued: a burst such as "noise", five backspaces, "fee" came out as "noi",
    and down, down, down, enter in a list chose the first line, because a priority
    enter ran before any of the downs. Mixed in before the widget's class."""

    _keying = False   # True while the widget runs its own binding for a key

    @functools.cached_property
    def _own_actions(self) -> frozenset[str]:
        return frozenset(binding.action for bindings in self._bindings.key_to_bindings.values()  # type: ignore[attr-defined]
                         for binding in bindings)

    async def _on_key(self, event) -> None:
        if not event.is_printable:
            for binding in self._bindings.key_to_bindings.get(event.key, ()):  # type: ignore[attr-defined]
                self._keying = True
                try:
                    await self.run_action(binding.action)  # type: ignore[attr-defined]
                finally:
                    self._keying = False
        # the key goes on as usual: the screen's and the app's bindings for it still run
        # (the widget's own, run again when it bubbles, is refused by check_action)
        await super()._on_key(event)  # type: ignore[misc]

    def check_action(self, action: str, parameters) -> bool | None:
        # the app would run this widget's binding a second time, late, when the key
        # reaches it: only the run in order (from _on_key above) counts
        if not self._keying and action in self._own_actions:
            return False
        return super().check_action(action, parameters)  # type: ignore[misc]


class TextField(KeysInOrder, Input):
    """The seat's text field: every key typed into it is handled in the order it came
    (KeysInOrder). Nothing is selected when it gets the focus: coming back must never
    make the next key replace what is there."""

    def __init__(self, *args, select_on_focus: bool = False, **kwargs):
        super().__init__(*args, select_on_focus=select_on_focus, **kwargs)

    def _on_blur(self, _event) -> None:
        # left, a long text shows its beginning (its end, where the cursor was, looks cut off)
        self.scroll_to(0, animate=False)

    def _on_focus(self, _event) -> None:
        self.action_end()   # back in it, the agent types on at the end (a click then places the cursor)


class ChoiceSelect(KeysInOrder, Select):
    """A Select whose list takes the keys sent right behind the one that opened it:
    enter, down, down, enter as one burst picks the third option, as pressed one by one
    (the open list takes the focus only after the burst has reached the closed Select,
    so the arrows and the enter were lost)."""

    async def _on_key(self, event) -> None:
        if event.key not in ("up", "down", "enter") or not self.has_focus:
            # (not ours: a key the open list had, bubbling up; Textual goes on to
            # KeysInOrder._on_key itself, as handlers run along the MRO)
            return
        event.stop()
        event.prevent_default()   # handled here, in order: no late binding, no second handler
        if not self.expanded:
            self.action_show_overlay()
            return
        overlay = self.query_one(OptionList)   # the open list (Select's overlay is an OptionList)
        if event.key == "up":
            overlay.action_cursor_up()
        elif event.key == "down":
            overlay.action_cursor_down()
        else:
            overlay.action_select()


class ChoiceList(KeysInOrder, OptionList):
    """An OptionList whose arrows move it in the order they were pressed."""


class ChoiceTable(KeysInOrder, DataTable):
    """A DataTable whose arrows move it in the order they were pressed."""


class MainScreen(Screen):
    """An app's own screen (its `get_default_screen`). Textual sends the app one Resize,
    at start; the screen gets one every time the terminal changes size, and passes it on
    to the app's `on_screen_resize` (found in trials: the wallboard and the seat kept the
    layout they started with)."""

    def on_resize(self) -> None:
        handler = getattr(self.app, "on_screen_resize", None)
        if handler is not None:
            handler()
