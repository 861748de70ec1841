"""The agent's follow-up calls: repair callbacks, complaint feedback, voicemails and
survey care calls, due first first, and what came of each attempt.

A reached caller finishes the task and, for a work order's callback, moves the order
on (called back, or feedback given) with the agent and time in its history. A caller
not reached counts an attempt and stays on the list, with when and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from records.contacts import record_notes

from records.workorders import LifecycleError, WorkOrders

REACHED = "reached"
OUTCOMES = {REACHED: "reached: done", "no_answer": "no answer", "busy": "line busy",
            "wrong_number": "wrong number", "call_later": "asked to call later"}
GIVE_UP_AFTER = 5   # attempts: then the task is failed and shows for a supervisor
CALL_ROW_WINDOW_S = 3 * 3600   # the call an outcome is about was dialled at most this long before


@dataclass(frozen=True)
class Callback:
    id: int
    kind: str
    due_at: float
    number: str
    resident_id: int | None
    resident: str
    work_order_id: int | None
    order_type: str
    order_description: str
    attempts: int
    last_outcome: str
    notes: str


def due_callbacks(db: Database, agent_id: int | None, limit: int = 50) -> list[Callback]:
    """Pending follow-ups of this agent and those nobody owns (voicemails), by deadline."""
    cursor = db.execute(
        """SELECT c.id, c.kind, c.due_at, c.number, c.resident_id, coalesce(r.name, ''), c.work_order_id,
                  coalesce(w.type, ''), coalesce(w.description, ''), c.attempts, c.outcome, c.notes
           FROM callbacks c LEFT JOIN residents r ON r.id = c.resident_id
           LEFT JOIN work_orders w ON w.id = c.work_order_id
           WHERE c.status = 'pending' AND (c.owner_agent_id = ? OR c.owner_agent_id IS NULL)
           ORDER BY c.due_at LIMIT ?""", [agent_id, limit])
    return [Callback(*row) for row in cursor]


def record_attempt(db: Database, callback_id: int, outcome: str, *, agent_id: int | None, now: float,
                   notes: str = "", policy=None) -> str:
    """What came of calling back; returns a sentence for the agent."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown callback outcome {outcome!r} (expected one of: {', '.join(OUTCOMES)})")
    row = db.execute("SELECT kind, status, work_order_id, attempts, number FROM callbacks WHERE id = ?",
                     [callback_id]).fetchone()
    if row is None:
        raise ValueError(f"no callback {callback_id}")
    kind, status, order_id, attempts, number = row
    if status != "pending":
        raise ValueError(f"callback {callback_id} is already {status}")
    attempts += 1
    text = OUTCOMES[outcome] + (f": {notes}" if notes else "")
    with db.atomic():
        _on_the_call_row(db, number, agent_id, now, f"callback {kind.replace('_', ' ')}: {OUTCOMES[outcome]}", notes)
        if outcome == REACHED:
            if order_id is not None and kind in ("repair_callback", "complaint_feedback"):
                from records.sla import load_policy

                orders = WorkOrders(db, policy or load_policy())
                try:
                    if kind == "repair_callback":
                        orders.move(order_id, "called_back", by_agent_id=agent_id, reason=text, now=now)
                    else:
                        orders.feedback_given(order_id, by_agent_id=agent_id, notes=text, now=now)
                except LifecycleError as exc:
                    raise ValueError(str(exc)) from None
            db.execute("UPDATE callbacks SET status = 'done', done_at = ?, attempts = ?, outcome = ?, notes = ? "
                       "WHERE id = ?", [now, attempts, text, notes, callback_id])
            return f"Callback done{f'; work order #{order_id} updated' if order_id else ''}."
        failed = attempts >= GIVE_UP_AFTER
        db.execute("UPDATE callbacks SET attempts = ?, outcome = ?, status = ?, done_at = ? WHERE id = ?",
                   [attempts, text, "failed" if failed else "pending", now if failed else None, callback_id])
    return (f"Attempt {attempts} recorded ({OUTCOMES[outcome]}); "
            + ("given up: a supervisor sees it." if failed else "it stays on your list."))


def _on_the_call_row(db: Database, number: str, agent_id: int | None, now: float, disposition: str,
                     notes: str) -> None:
    """The outbound call the agent just made for this task says how it went, like every
    other contact (its row is written by the switch, which does not know the task)."""
    if agent_id is None or not number:
        return
    row = db.execute("SELECT i.id, coalesce(a.ext, i.agent_ext) FROM interactions i LEFT JOIN agents a "
                     "ON a.id = i.agent_id WHERE i.direction = 'outbound' AND i.dialled_number = ? AND i.agent_id = ? "
                     "AND i.disposition = '' AND i.entered_at >= ? ORDER BY i.entered_at DESC LIMIT 1",
                     [number, agent_id, now - CALL_ROW_WINDOW_S]).fetchone()
    if row is not None:   # kept as every contact's notes are: the agent's own, then the row's (contacts.py)
        record_notes(db, row[0], agent_ext=row[1] or "", agent_id=agent_id, at=now, disposition=disposition,
                     notes=notes)
