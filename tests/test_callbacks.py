import pytest

from records.agents import add_agent
from records.callbacks import GIVE_UP_AFTER, due_callbacks, record_attempt
from records.db import insert_row
from records.directory import NewResident, add_resident
from records.workorders import WorkOrders

T0 = 1_800_000_000.0
H = 3600


@pytest.fixture
def resolved(db, policy):
    """A repair resolved by the engineers: its 48-hour callback is on Ann's list."""
    ann = add_agent(db, ext="1001", name="Ann", pin="1234", now=T0)
    bob = add_agent(db, ext="1002", name="Bob", pin="2345", now=T0)
    resident = add_resident(db, NewResident(name="Chan Tai Man", kind="tenant", phones=("91234567",)), now=T0)
    orders = WorkOrders(db, policy)
    oid = orders.open(order_type="repair", description="Tap dripping", owner_agent_id=ann, resident_id=resident,
                      now=T0)
    for status, at in (("dispatched", 60), ("on_site", 1800), ("resolved", 5 * H)):
        orders.move(oid, status, by_agent_id=None, now=T0 + at)
    return orders, oid, ann, bob


def test_the_list_holds_my_tasks_and_unowned_voicemails_by_deadline(db, resolved):
    orders, oid, ann, bob = resolved
    insert_row(db, "callbacks", {"kind": "voicemail", "status": "pending", "number": "+85290001111",
                                 "created_at": T0, "due_at": T0 + 2 * H})
    insert_row(db, "callbacks", {"kind": "other", "status": "pending", "number": "+85290002222",
                                 "owner_agent_id": bob, "created_at": T0, "due_at": T0})
    mine = due_callbacks(db, ann)
    assert [(c.kind, c.number) for c in mine] == [("voicemail", "+85290001111"), ("repair_callback", "+85291234567")]
    assert mine[1].resident == "Chan Tai Man" and mine[1].work_order_id == oid and mine[1].order_type == "repair"
    assert [c.kind for c in due_callbacks(db, bob)] == ["other", "voicemail"]


def test_reaching_the_caller_calls_the_order_back_with_who_and_when(db, policy, resolved):
    orders, oid, ann, _ = resolved
    [task] = due_callbacks(db, ann)
    said = record_attempt(db, task.id, "no_answer", agent_id=ann, now=T0 + 6 * H, policy=policy)
    assert "Attempt 1" in said and "stays on your list" in said
    [task] = due_callbacks(db, ann)
    assert task.attempts == 1 and task.last_outcome == "no answer"
    said = record_attempt(db, task.id, "reached", agent_id=ann, now=T0 + 7 * H, notes="all fine now", policy=policy)
    assert f"work order #{oid} updated" in said
    order = orders.get(oid)
    assert order["status"] == "called_back" and order["called_back_at"] == T0 + 7 * H
    assert due_callbacks(db, ann) == []
    assert ("status", "resolved", "called_back", ann) in [(h["field"], h["from_value"], h["to_value"], h["agent_id"])
                                                         for h in orders.history(oid)]
    with pytest.raises(ValueError, match="already done"):
        record_attempt(db, task.id, "reached", agent_id=ann, now=T0 + 8 * H, policy=policy)


def test_a_caller_never_reached_is_given_up_after_the_limit(db, policy, resolved):
    _, _, ann, _ = resolved
    [task] = due_callbacks(db, ann)
    for attempt in range(GIVE_UP_AFTER):
        said = record_attempt(db, task.id, "busy", agent_id=ann, now=T0 + (6 + attempt) * H, policy=policy)
    assert "given up" in said and due_callbacks(db, ann) == []
    assert db.execute("SELECT status, attempts FROM callbacks WHERE id = ?", [task.id]).fetchone() == \
        ("failed", GIVE_UP_AFTER)
    with pytest.raises(ValueError, match="unknown callback outcome"):
        record_attempt(db, task.id, "maybe", agent_id=ann, now=T0, policy=policy)


def test_the_outcome_and_notes_go_on_the_outbound_call_row_too(db, policy, resolved):
    _, _, ann, _ = resolved
    [task] = due_callbacks(db, ann)
    row = {"direction": "outbound", "caller_number": "+85291234567", "dialled_number": "+85291234567",
           "agent_id": ann, "agent_ext": "1001", "queue": "outbound", "outcome": "answered"}
    insert_row(db, "interactions", {**row, "uid": "earlier", "entered_at": T0 + 6 * H - 10 * H})
    insert_row(db, "interactions", {**row, "uid": "this one", "entered_at": T0 + 6 * H - 60})
    record_attempt(db, task.id, "reached", agent_id=ann, now=T0 + 6 * H, notes="all fine now", policy=policy)
    rows = dict(db.execute("SELECT uid, disposition || ' | ' || notes FROM interactions").fetchall())
    assert rows == {"earlier": " | ", "this one": "callback repair callback: reached: done | all fine now"}
    # the agent's own notes on the contact too, as for every call (found using the demo:
    # follow-up calls had none in contact_notes)
    assert db.execute("SELECT agent_ext, notes FROM contact_notes").fetchall() == [("1001", "all fine now")]


def test_one_agents_notes_stand_on_the_contact_as_typed(db):
    from records.contacts import record_notes
    row = insert_row(db, "interactions", {"uid": "c1", "direction": "inbound", "entered_at": T0})
    record_notes(db, row, agent_ext="1001", agent_id=None, at=T0, disposition="repair: resolved on the call",
                 notes="  two  spaces, ends with space ")
    assert db.execute("SELECT notes FROM interactions").fetchone() == ("  two  spaces, ends with space ",)
