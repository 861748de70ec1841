"""What the seat's dialogs (identify, transfer, standard answers, callbacks) share."""

from __future__ import annotations


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
