"""Work orders: the lifecycle, its deadlines and the history of every change.

open -> dispatched -> on site -> resolved -> called back -> closed, or cancelled.
Repairs go on site; complaints, enquiries and billing questions go from dispatched
straight to resolved (the reply). A resolved order whose type needs a callback gets a
callback task; it cannot be closed before the caller was called back. A failed fix
reopens (back to dispatched). Anything else is refused with the reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlite_utils import Database

from records.db import insert_row, update_row
from records.sla import DEPARTMENTS, REPAIR_TYPES, SlaPolicy

FINAL = frozenset({"closed", "cancelled"})
# When an order enters a status, the time is written to this column.
STATUS_TIME = {"dispatched": "dispatched_at", "on_site": "on_site_at", "resolved": "resolved_at",
               "called_back": "called_back_at", "closed": "closed_at", "cancelled": "cancelled_at"}
# Each deadline and the column that says it was met.
DEADLINES = (("dispatch_due", "dispatched_at", "dispatch"), ("on_site_due", "on_site_at", "on site"),
             ("resolve_due", "resolved_at", "fixed"), ("feedback_due", "feedback_at", "feedback"),
             ("reply_due", "resolved_at", "reply"), ("callback_due", "called_back_at", "callback"))
POSTPONABLE = ("on_site_due", "resolve_due", "reply_due", "callback_due", "feedback_due")


class LifecycleError(ValueError):
    """A change the work-order rules forbid; the message says why."""


def refusal(order_type: str, status: str, target: str, *, needs_callback: bool) -> str | None:
    """Why `status -> target` is not allowed for this type, or None if it is."""
    repair = order_type in REPAIR_TYPES
    if status in FINAL:
        return f"it is already {status}"
    if target == status:
        return f"it is already {status.replace('_', ' ')}"
    if target == "cancelled":
        return None
    allowed = {
        "open": {"dispatched"},
        "dispatched": {"on_site"} if repair else {"resolved"},
        "on_site": {"resolved"},
        "resolved": {"called_back", "dispatched"} | (set() if needs_callback else {"closed"}),
        "called_back": {"closed", "dispatched"},
    }[status]
    if target in allowed:
        return None
    if target == "closed":
        if status == "resolved":
            return "the caller has not been called back yet (every repair is called back before closing)"
        return f"it is {status.replace('_', ' ')}, not resolved"
    if target == "on_site" and not repair:
        return f"a {order_type} has no site visit"
    if target == "resolved" and repair and status == "dispatched":
        return "nobody is on site yet"
    if target == "called_back":
        return f"it is {status.replace('_', ' ')}, not resolved"
    return f"it cannot go from {status.replace('_', ' ')} to {target.replace('_', ' ')}"


@dataclass(frozen=True)
class Deadline:
    name: str       # "on site", "fixed", "reply", ...
    due: float
    seconds_left: float

    @property
    def overdue(self) -> bool:
        return self.seconds_left < 0


def pending_deadlines(order: dict, now: float) -> list[Deadline]:
    """Deadlines of an order not met yet, earliest first (the seat shows these)."""
    if order["status"] in FINAL:
        return []
    out = [Deadline(label, order[due], order[due] - now) for due, met, label in DEADLINES
           if order.get(due) is not None and order.get(met) is None]
    return sorted(out, key=lambda d: d.due)


class WorkOrders:
    """Work-order operations on one database under one SLA policy."""

    def __init__(self, db: Database, policy: SlaPolicy):
        self.db, self.policy = db, policy

    def _now(self, now: float | None) -> float:
        return time.time() if now is None else now

    def get(self, order_id: int) -> dict:
        cursor = self.db.execute("SELECT * FROM work_orders WHERE id = ?", [order_id])
        row = cursor.fetchone()
        if row is None:
            raise LifecycleError(f"no work order {order_id}")
        return dict(zip([c[0] for c in cursor.description], row))

    def open(self, *, order_type: str, description: str, owner_agent_id: int | None,
             resident_id: int | None = None, unit_id: int | None = None,
             interaction_id: int | None = None, department: str | None = None,
             callback_number: str = "", now: float | None = None) -> int:
        now = self._now(now)
        rule = self.policy.rule(order_type)
        department = department or rule.department
        if department not in DEPARTMENTS:
            raise LifecycleError(f"unknown department '{department}' (expected one of: {', '.join(DEPARTMENTS)})")
        if not description.strip():
            raise LifecycleError("a work order needs a description")
        if unit_id is None and resident_id is not None:
            row = self.db.execute("SELECT unit_id FROM residents WHERE id = ?", [resident_id]).fetchone()
            unit_id = row[0] if row else None
        with self.db.atomic():
            order_id = insert_row(self.db, "work_orders", {
                "type": order_type, "department": department, "status": "open",
                "resident_id": resident_id, "unit_id": unit_id, "interaction_id": interaction_id,
                "owner_agent_id": owner_agent_id, "description": description.strip(),
                "opened_at": now, **self.policy.deadlines(order_type, now),
            })
            self._history(order_id, now, owner_agent_id, "status", None, "open")
            if rule.feedback_within is not None:
                order = self.get(order_id)
                self._callback(order, "complaint_feedback", order["feedback_due"], now, callback_number)
        return order_id

    def move(self, order_id: int, target: str, *, by_agent_id: int | None, reason: str = "",
             callback_number: str = "", now: float | None = None) -> dict:
        now = self._now(now)
        with self.db.atomic():
            order = self.get(order_id)
            needs_callback = self.policy.rule(order["type"]).callback_within is not None
            why = refusal(order["type"], order["status"], target, needs_callback=needs_callback)
            if why:
                raise LifecycleError(f"work order {order_id} cannot be {target.replace('_', ' ')}: {why}")
            changes: dict = {"status": target, STATUS_TIME[target]: now}
            if target == "dispatched" and order["status"] in ("resolved", "called_back"):
                # A failed fix: the order runs again; the old callback no longer applies.
                changes.update(resolved_at=None, called_back_at=None, callback_due=None, on_site_at=None)
                self.db.execute("UPDATE callbacks SET status = 'cancelled', notes = 'reopened' "
                                "WHERE work_order_id = ? AND kind = 'repair_callback' AND status = 'pending'",
                                [order_id])
            if target == "resolved" and needs_callback:
                changes["callback_due"] = self.policy.callback_due(order["type"], now)
            update_row(self.db, "work_orders", order_id, changes)
            self._history(order_id, now, by_agent_id, "status", order["status"], target, reason)
            if target == "resolved" and needs_callback:
                self._callback(self.get(order_id), "repair_callback", changes["callback_due"], now,
                               callback_number)
            if target == "called_back":
                self._finish_callbacks(order_id, "repair_callback", now)
            if target == "cancelled":
                self.db.execute("UPDATE callbacks SET status = 'cancelled' WHERE work_order_id = ? "
                                "AND status = 'pending'", [order_id])
        return self.get(order_id)

    def feedback_given(self, order_id: int, *, by_agent_id: int | None, notes: str = "",
                       now: float | None = None) -> None:
        """The caller heard back about their complaint (the 48-hour feedback)."""
        now = self._now(now)
        with self.db.atomic():
            order = self.get(order_id)
            if order["feedback_due"] is None:
                raise LifecycleError(f"work order {order_id} ({order['type']}) has no feedback deadline")
            if order["feedback_at"] is not None:
                raise LifecycleError(f"work order {order_id}: feedback was already given")
            update_row(self.db, "work_orders", order_id, {"feedback_at": now})
            self._history(order_id, now, by_agent_id, "feedback_at", None, str(now), notes)
            self._finish_callbacks(order_id, "complaint_feedback", now)

    def postpone(self, order_id: int, deadline: str, new_due: float, *, by_agent_id: int | None,
                 reason: str, now: float | None = None) -> None:
        now = self._now(now)
        if deadline not in POSTPONABLE:
            raise LifecycleError(f"'{deadline}' cannot be postponed (one of: {', '.join(POSTPONABLE)})")
        if not reason.strip():
            raise LifecycleError("a postponement needs a reason the caller was told")
        with self.db.atomic():
            order = self.get(order_id)
            if order["status"] in FINAL:
                raise LifecycleError(f"work order {order_id} is {order['status']}")
            if order["postponements"] >= self.policy.max_postponements:
                raise LifecycleError(
                    f"work order {order_id} was already postponed {order['postponements']} time(s); "
                    f"the standard allows {self.policy.max_postponements}")
            current = order[deadline]
            if current is None:
                raise LifecycleError(f"work order {order_id} has no {deadline.replace('_', ' ')}")
            if new_due <= current:
                raise LifecycleError("a postponement must move the deadline later")
            latest = self.policy.latest_promise(order["opened_at"])
            if new_due > latest:
                raise LifecycleError(
                    f"the new deadline is more than {self.policy.max_promise / 86400:g} days after "
                    "the order was opened; promised times are never longer than that")
            update_row(self.db, "work_orders", order_id,
                       {deadline: new_due, "postponements": order["postponements"] + 1})
            self._history(order_id, now, by_agent_id, deadline, str(current), str(new_due), reason)
            kind = {"callback_due": "repair_callback", "feedback_due": "complaint_feedback"}.get(deadline)
            if kind:
                self.db.execute("UPDATE callbacks SET due_at = ? WHERE work_order_id = ? AND kind = ? "
                                "AND status = 'pending'", [new_due, order_id, kind])

    def history(self, order_id: int) -> list[dict]:
        cursor = self.db.execute(
            "SELECT at, agent_id, field, from_value, to_value, reason FROM work_order_events "
            "WHERE work_order_id = ? ORDER BY at, id", [order_id])
        columns = [c[0] for c in cursor.description]
        return [dict(zip(columns, row)) for row in cursor]

    def open_for_resident(self, resident_id: int, now: float | None = None) -> list[dict]:
        """Open orders of a resident with their pending deadlines, most urgent first."""
        now = self._now(now)
        cursor = self.db.execute(
            "SELECT * FROM work_orders WHERE resident_id = ? AND status NOT IN ('closed', 'cancelled') "
            "ORDER BY opened_at DESC", [resident_id])
        columns = [c[0] for c in cursor.description]
        orders = []
        for row in cursor:
            order = dict(zip(columns, row))
            order["deadlines"] = pending_deadlines(order, now)
            orders.append(order)
        far = float("inf")
        return sorted(orders, key=lambda o: o["deadlines"][0].due if o["deadlines"] else far)

    def _history(self, order_id: int, at: float, agent_id: int | None, field: str,
                 from_value: str | None, to_value: str | None, reason: str = "") -> None:
        insert_row(self.db, "work_order_events", {
            "work_order_id": order_id, "at": at, "agent_id": agent_id, "field": field,
            "from_value": from_value, "to_value": to_value, "reason": reason})

    def _callback(self, order: dict, kind: str, due: float, now: float, number: str) -> None:
        if not number and order["resident_id"] is not None:
            row = self.db.execute("SELECT number FROM resident_phones WHERE resident_id = ? "
                                  "ORDER BY id LIMIT 1", [order["resident_id"]]).fetchone()
            number = row[0] if row else ""
        insert_row(self.db, "callbacks", {
            "kind": kind, "status": "pending", "work_order_id": order["id"],
            "resident_id": order["resident_id"], "interaction_id": order["interaction_id"],
            "number": number, "owner_agent_id": order["owner_agent_id"], "created_at": now,
            "due_at": due})

    def _finish_callbacks(self, order_id: int, kind: str, now: float) -> None:
        self.db.execute("UPDATE callbacks SET status = 'done', done_at = ? WHERE work_order_id = ? "
                        "AND kind = ? AND status = 'pending'", [now, order_id, kind])
