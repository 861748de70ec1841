"""What the seat's search dialogs (identify, transfer, standard answers) share."""

from __future__ import annotations


def arrows_move_list(event, search, choices) -> None:
    """Up and down move the cursor of `choices` (a DataTable or an OptionList) while the
    typing cursor stays in `search`, so the agent can type, look and pick without tab."""
    if event.key in ("up", "down") and search.has_focus:
        choices.action_cursor_up() if event.key == "up" else choices.action_cursor_down()
        event.stop()
