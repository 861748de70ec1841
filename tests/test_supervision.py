"""What the supervisors' console reads from records: repeat callers, a mass complaint
forming about one building, follow-up calls given up, work orders due, the audit trail."""
import pytest

from records.directory import NewResident, add_resident
from records.supervision import (AlertSettings, acknowledged, audit, audit_lines, callbacks_given_up,
                                 mass_complaints, orders_due, repeat_callers)

NOW = 1_800_000_000.0


@pytest.fixture
def estate(db):
    estate = db["estates"].insert({"name": "Kingsway Heights"}).last_pk
    towers = [db["buildings"].insert({"estate_id": estate, "name": f"Tower {n}"}).last_pk for n in (1, 2)]
    residents = []
    for n in range(8):
        unit = db["units"].insert({"building_id": towers[0] if n < 6 else towers[1], "number": f"{n}A",
                                   "label": f"Flat {n}A"}).last_pk
        residents.append(add_resident(db, NewResident(name=f"Resident {n}", kind="tenant", unit_id=unit,
                                                      phones=(f"+8529123000{n}",))))
    return residents


def contact(db, uid, resident, at, queue="repair"):
    db["interactions"].insert({"uid": uid, "direction": "inbound", "resident_id": resident, "entered_at": at,
                               "queue": queue, "call_type": queue, "outcome": "answered"})


def test_a_mass_complaint_forms_about_one_building_and_repeat_callers_show(db, estate):
    settings = AlertSettings(mass_contacts=5, mass_within_s=1800)
    for n, resident in enumerate(estate[:5]):      # five residents of Tower 1 within 20 minutes
        contact(db, f"w{n}", resident, NOW - 1200 + n * 60, "complaint" if n % 2 else "repair")
    contact(db, "old", estate[5], NOW - 4000)       # outside the window
    [mass] = mass_complaints(db, NOW, settings)
    assert (mass["level"], mass["name"], mass["contacts"], mass["residents"]) == \
        ("building", "Tower 1, Kingsway Heights", 5, 5)
    assert mass["queues"] == ["complaint", "repair"]
    assert mass_complaints(db, NOW, AlertSettings(mass_contacts=6, mass_within_s=1800)) == []
    contact(db, "again", estate[0], NOW - 60)       # resident 0 again within 24 h
    contact(db, "y", estate[7], NOW - 90000)        # resident 7: yesterday ...
    contact(db, "y2", estate[7], NOW - 100)         # ... and now, more than 24 h later
    repeats = repeat_callers(db, NOW, NOW - 3600, AlertSettings())
    assert [(r["name"], r["contacts"]) for r in repeats] == [("Resident 0", 2)]
    for n, resident in enumerate(estate[5:8]):     # billing calls are not about a fault in the building
        contact(db, f"b{n}", resident, NOW - 600, "billing")
    assert [m["contacts"] for m in mass_complaints(db, NOW, settings)] == [6]   # its five, and 0's again


def test_given_up_follow_ups_orders_due_and_the_audit_trail(db, estate):
    db["callbacks"].insert_all([
        {"kind": "repair_callback", "status": "failed", "number": "+85291230000", "resident_id": estate[0],
         "created_at": NOW - 9000, "due_at": NOW - 5000, "attempts": 5, "done_at": NOW - 100, "outcome": "no answer"},
        {"kind": "repair_callback", "status": "pending", "number": "+85291230001", "created_at": NOW - 9000,
         "due_at": NOW - 5000, "attempts": 2, "done_at": None, "outcome": ""}])
    [given_up] = callbacks_given_up(db, NOW - 3600)
    assert (given_up["resident"], given_up["attempts"]) == ("Resident 0", 5)
    order = {"type": "repair", "department": "engineering", "description": "tap", "status": "open"}
    db["work_orders"].insert_all([{**order, "opened_at": NOW - 600, "dispatch_due": NOW - 420},      # overdue
                                  {**order, "opened_at": NOW - 60, "dispatch_due": NOW + 120},       # due soon
                                  {**order, "opened_at": NOW, "dispatch_due": NOW + 7200}])         # later
    assert [(o["id"], o["deadline"], round(o["seconds_left"])) for o in orders_due(db, NOW)] == \
        [(1, "dispatch", -420), (2, "dispatch", 120)]
    audit(db, NOW, "2001", "acknowledge", "sl:repair", "service level 60%")
    audit(db, NOW + 1, "2001", "force_status", "1001", "on_break lunch")
    assert [(a["action"], a["subject"]) for a in audit_lines(db, NOW - 10)] == \
        [("force_status", "1001"), ("acknowledge", "sl:repair")]
    assert acknowledged(db, NOW - 10) == ["sl:repair"]
