"""What a supervisor's console reads from records besides the live calls: work orders
against their deadlines, follow-up calls given up, repeat callers, a mass complaint
forming, and the audit trail of supervisors' actions (who, when, what)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from records.db import insert_row
from records.workorders import pending_deadlines

HOUR_S = 3600.0


@dataclass(frozen=True)
class AlertSettings:
    repeat_within_s: float = 24 * HOUR_S   # the same resident calling again within this is a repeat caller
    mass_contacts: int = 5                 # this many contacts about one building or estate ...
    mass_within_s: float = 30 * 60.0       # ... within this: a mass complaint forming (a water or power cut)
    # the contacts that mean a fault in the building (a billing or enquiry call does not)
    mass_queues: tuple[str, ...] = ("repair", "complaint", "emergency")


def orders_due(db: Database, now: float, within_s: float = HOUR_S) -> list[dict]:
    """Open work orders overdue now or due within `within_s`, the most overdue first:
    id, type, department, description, deadline (its name), due_at, seconds_left."""
    cursor = db.execute("SELECT * FROM work_orders WHERE status NOT IN ('closed', 'cancelled')")
    columns = [c[0] for c in cursor.description]
    due = []
    for values in cursor:
        order = dict(zip(columns, values))
        deadlines = pending_deadlines(order, now)
        if deadlines and deadlines[0].seconds_left <= within_s:
            first = deadlines[0]
            due.append({"id": order["id"], "type": order["type"], "department": order["department"],
                        "description": order["description"], "deadline": first.name, "due_at": first.due,
                        "seconds_left": first.seconds_left})
    return sorted(due, key=lambda o: o["seconds_left"])


def callbacks_given_up(db: Database, since: float) -> list[dict]:
    """Follow-up calls given up after their last attempt since `since` (today, say)."""
    rows = db.execute(
        "SELECT c.id, c.kind, c.number, c.attempts, c.done_at, c.outcome, coalesce(r.name, ''), c.work_order_id "
        "FROM callbacks c LEFT JOIN residents r ON r.id = c.resident_id "
        "WHERE c.status = 'failed' AND c.done_at >= ? ORDER BY c.done_at", [since]).fetchall()
    return [{"id": i, "kind": kind, "number": number, "attempts": attempts, "at": at, "outcome": outcome,
             "resident": name, "work_order_id": order} for i, kind, number, attempts, at, outcome, name, order in rows]


def repeat_callers(db: Database, now: float, since: float, settings: AlertSettings) -> list[dict]:
    """Residents whose contact since `since` came within repeat_within_s of an earlier one."""
    rows = db.execute(
        "SELECT i.resident_id, r.name, count(*), max(i.entered_at) FROM interactions i "
        "JOIN residents r ON r.id = i.resident_id WHERE i.direction = 'inbound' AND i.entered_at >= ? "
        "GROUP BY i.resident_id HAVING count(*) >= 2 AND max(i.entered_at) >= ?",
        [now - settings.repeat_within_s, since]).fetchall()
    return [{"resident_id": rid, "name": name, "contacts": count, "last_at": last}
            for rid, name, count, last in sorted(rows, key=lambda r: -r[3])]


def mass_complaints(db: Database, now: float, settings: AlertSettings) -> list[dict]:
    """Buildings with mass_contacts or more fault contacts (mass_queues: repair,
    complaint, emergency) from different residents within the last mass_within_s, or
    estates with three times that: one coordinated answer needed. (Found in a trial: every
    call counted, the demo's ordinary traffic raised one for every estate.)"""
    since = now - settings.mass_within_s
    found: list[dict] = []
    marks = ", ".join("?" for _ in settings.mass_queues)
    for level, key_sql, name_sql, needed in (("building", "b.id", "b.name || ', ' || e.name", settings.mass_contacts),
                                             ("estate", "e.id", "e.name", 3 * settings.mass_contacts)):
        rows = db.execute(
            f"SELECT {key_sql}, {name_sql}, count(*), count(DISTINCT i.resident_id), group_concat(DISTINCT i.queue) "
            "FROM interactions i JOIN residents r ON r.id = i.resident_id JOIN units u ON u.id = r.unit_id "
            "JOIN buildings b ON b.id = u.building_id JOIN estates e ON e.id = b.estate_id "
            f"WHERE i.direction = 'inbound' AND i.entered_at >= ? AND i.call_type IN ({marks}) GROUP BY {key_sql} "
            "HAVING count(DISTINCT i.resident_id) >= ?",
            [since, *settings.mass_queues, needed]).fetchall()
        for key, name, contacts, residents, queues in rows:
            if level == "estate" and any(f["estate"] == name for f in found):
                continue   # already said for one of its buildings
            found.append({"level": level, "id": key, "name": name, "contacts": contacts, "residents": residents,
                          "queues": sorted(q for q in (queues or "").split(",") if q),
                          "estate": name if level == "estate" else name.rsplit(", ", 1)[-1]})
    return found


def audit(db: Database, at: float, by_ext: str, action: str, subject: str, detail: str = "") -> int:
    return insert_row(db, "audit", {"at": at, "by_ext": by_ext, "action": action, "subject": subject,
                                    "detail": detail})


def audit_lines(db: Database, since: float, limit: int = 50) -> list[dict]:
    rows = db.execute("SELECT a.id, a.at, a.by_ext, coalesce(g.name, ''), a.action, a.subject, a.detail FROM audit a "
                      "LEFT JOIN agents g ON g.ext = a.by_ext AND g.active = 1 WHERE a.at >= ? "
                      "ORDER BY a.id DESC LIMIT ?", [since, limit]).fetchall()
    return [{"id": i, "at": at, "by": ext, "by_name": name, "action": action, "subject": subject, "detail": detail}
            for i, at, ext, name, action, subject, detail in rows]


def acknowledged(db: Database, since: float) -> list[str]:
    """The alert keys acknowledged since `since`."""
    return [key for (key,) in db.execute("SELECT DISTINCT subject FROM audit WHERE action = 'acknowledge' AND at >= ?",
                                         [since])]
