"""What the seat's dialogs (identify, transfer, standard answers, callbacks) share."""

from __future__ import annotations

from textual.widgets import Input


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



class TextField(Input):
    """The seat's text field: every key typed into it is handled in the order it came.

    Textual runs an Input's editing keys (backspace, delete, arrows, home, end) as
    bindings once the key has bubbled up to the app, while the characters typed after
    them are already queued on the field: a burst such as "noise", five backspaces,
    "fee" came out as "noi". Here the field runs its own bindings as the key arrives.
    Nothing is selected when it gets the focus: coming back must never make the next key
    replace what is there."""

    def __init__(self, *args, select_on_focus: bool = False, **kwargs):
        super().__init__(*args, select_on_focus=select_on_focus, **kwargs)
        self._keying = False   # True while this field runs its own binding for a key
        self._own_actions = frozenset(binding.action for bindings in self._bindings.key_to_bindings.values()
                                      for binding in bindings)

    async def _on_key(self, event) -> None:
        if not event.is_printable:
            for binding in self._bindings.key_to_bindings.get(event.key, ()):
                self._keying = True
                try:
                    await self.run_action(binding.action)
                finally:
                    self._keying = False
        # the key goes on as usual: the screen's and the app's bindings for it still run
        # (the field's own, run again when it bubbles, is refused by check_action)
        await super()._on_key(event)

    def check_action(self, action: str, parameters) -> bool | None:
        # the app would run this field's binding a second time, late, when the key
        # reaches it: only the run in order (from _on_key above) counts
        if action in self._own_actions and not self._keying:
            return False
        return super().check_action(action, parameters)
