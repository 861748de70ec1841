import pytest

from records.agents import add_agent
from records.directory import NewResident, add_resident
from records.workorders import LifecycleError, WorkOrders, pending_deadlines, refusal

T0 = 1_795_000_000.0  # a Monday morning in Hong Kong (2026-11-16 ...)
H = 3600


@pytest.fixture
def setup(db, policy):
    agent = add_agent(db, ext="1001", name="Ann", pin="1234", now=T0)
    resident = add_resident(db, NewResident(name="陳大文", kind="tenant", phones=("91234567",)), now=T0)
    return WorkOrders(db, policy), agent, resident


def callbacks(db, order_id):
    return [dict(zip(("kind", "status", "due_at", "number", "owner_agent_id"), r)) for r in db.execute(
        "SELECT kind, status, due_at, number, owner_agent_id FROM callbacks WHERE work_order_id = ? ORDER BY id",
        [order_id])]


def test_repair_lifecycle_creates_and_completes_its_callback(setup, db):
    orders, agent, resident = setup
    oid = orders.open(order_type="repair", description="Tap dripping", owner_agent_id=agent,
                      resident_id=resident, now=T0)
    order = orders.get(oid)
    assert order["status"] == "open" and order["department"] == "engineering"
    assert order["owner_agent_id"] == agent and order["unit_id"] is None
    assert order["dispatch_due"] == T0 + 180 and order["on_site_due"] == T0 + H
    assert callbacks(db, oid) == []
    orders.move(oid, "dispatched", by_agent_id=None, now=T0 + 60)
    orders.move(oid, "on_site", by_agent_id=None, now=T0 + 1800)
    order = orders.move(oid, "resolved", by_agent_id=None, now=T0 + 5 * H)
    assert order["callback_due"] == T0 + 5 * H + 48 * H
    [task] = callbacks(db, oid)
    assert task == {"kind": "repair_callback", "status": "pending", "due_at": T0 + 53 * H,
                    "number": "+85291234567", "owner_agent_id": agent}
    orders.move(oid, "called_back", by_agent_id=agent, now=T0 + 30 * H)
    assert callbacks(db, oid)[0]["status"] == "done"
    order = orders.move(oid, "closed", by_agent_id=agent, now=T0 + 31 * H)
    assert order["closed_at"] == T0 + 31 * H
    history = orders.history(oid)
    assert [(h["from_value"], h["to_value"]) for h in history] == [
        (None, "open"), ("open", "dispatched"), ("dispatched", "on_site"), ("on_site", "resolved"),
        ("resolved", "called_back"), ("called_back", "closed")]
    assert history[-1]["agent_id"] == agent and history[-1]["at"] == T0 + 31 * H


def test_closing_an_unresolved_order_is_refused_with_a_reason(setup, db):
    orders, agent, resident = setup
    oid = orders.open(order_type="repair", description="Door lock", owner_agent_id=agent,
                      resident_id=resident, now=T0)
    orders.move(oid, "dispatched", by_agent_id=None, now=T0 + 60)
    with pytest.raises(LifecycleError, match="cannot be closed: it is dispatched, not resolved"):
        orders.move(oid, "closed", by_agent_id=agent, now=T0 + 120)
    with pytest.raises(LifecycleError, match="nobody is on site yet"):
        orders.move(oid, "resolved", by_agent_id=agent, now=T0 + 120)
    orders.move(oid, "on_site", by_agent_id=None, now=T0 + 600)
    orders.move(oid, "resolved", by_agent_id=None, now=T0 + 900)
    with pytest.raises(LifecycleError, match="not been called back"):
        orders.move(oid, "closed", by_agent_id=agent, now=T0 + 1000)
    assert orders.get(oid)["status"] == "resolved"
    assert len(orders.history(oid)) == 4  # refusals write nothing


def test_non_repairs_have_no_site_visit_and_enquiries_close_after_the_reply(setup):
    orders, agent, resident = setup
    oid = orders.open(order_type="enquiry", description="Pool hours", owner_agent_id=agent,
                      resident_id=resident, now=T0)
    orders.move(oid, "dispatched", by_agent_id=agent, now=T0 + 60)
    with pytest.raises(LifecycleError, match="has no site visit"):
        orders.move(oid, "on_site", by_agent_id=agent, now=T0 + 120)
    orders.move(oid, "resolved", by_agent_id=agent, now=T0 + H)
    assert orders.move(oid, "closed", by_agent_id=agent, now=T0 + 2 * H)["status"] == "closed"
    with pytest.raises(LifecycleError, match="already closed"):
        orders.move(oid, "cancelled", by_agent_id=agent, now=T0 + 3 * H)


def test_complaint_feedback_task_and_postponing_only_once(setup, db, policy):
    orders, agent, resident = setup
    oid = orders.open(order_type="complaint", description="Noise", owner_agent_id=agent,
                      resident_id=resident, department="security", now=T0)
    order = orders.get(oid)
    assert order["department"] == "security" and order["feedback_due"] == T0 + 48 * H
    [task] = callbacks(db, oid)
    assert task["kind"] == "complaint_feedback" and task["due_at"] == T0 + 48 * H
    orders.feedback_given(oid, by_agent_id=agent, now=T0 + 20 * H)
    assert callbacks(db, oid)[0]["status"] == "done"
    with pytest.raises(LifecycleError, match="already given"):
        orders.feedback_given(oid, by_agent_id=agent, now=T0 + 21 * H)
    reply_due = order["reply_due"]
    with pytest.raises(LifecycleError, match="needs a reason"):
        orders.postpone(oid, "reply_due", reply_due + H, by_agent_id=agent, reason=" ")
    with pytest.raises(LifecycleError, match="more than 7 days"):
        orders.postpone(oid, "reply_due", T0 + 8 * 86400, by_agent_id=agent, reason="contractor")
    orders.postpone(oid, "reply_due", reply_due + 86400, by_agent_id=agent, reason="waiting for CCTV",
                    now=T0 + 30 * H)
    with pytest.raises(LifecycleError, match="already postponed 1 time"):
        orders.postpone(oid, "reply_due", reply_due + 2 * 86400, by_agent_id=agent, reason="again")
    order = orders.get(oid)
    assert order["reply_due"] == reply_due + 86400 and order["postponements"] == 1
    last = orders.history(oid)[-1]
    assert (last["field"], float(last["from_value"]), float(last["to_value"]), last["reason"]) == (
        "reply_due", reply_due, reply_due + 86400, "waiting for CCTV")


def test_reopening_a_failed_fix_cancels_the_pending_callback(setup, db):
    orders, agent, resident = setup
    oid = orders.open(order_type="urgent_repair", description="Burst pipe", owner_agent_id=agent,
                      resident_id=resident, now=T0)
    for status, t in (("dispatched", 60), ("on_site", 600), ("resolved", 3000)):
        orders.move(oid, status, by_agent_id=None, now=T0 + t)
    order = orders.move(oid, "dispatched", by_agent_id=agent, reason="leaking again", now=T0 + 4000)
    assert order["resolved_at"] is None and order["callback_due"] is None and order["on_site_at"] is None
    assert callbacks(db, oid)[0]["status"] == "cancelled"


def test_cancelling_cancels_pending_callbacks(setup, db):
    orders, agent, resident = setup
    oid = orders.open(order_type="complaint", description="x", owner_agent_id=agent, resident_id=resident, now=T0)
    orders.move(oid, "cancelled", by_agent_id=agent, reason="duplicate of 7", now=T0 + 10)
    assert callbacks(db, oid)[0]["status"] == "cancelled"
    with pytest.raises(LifecycleError, match="already cancelled"):
        orders.move(oid, "dispatched", by_agent_id=agent, now=T0 + 20)


def test_pending_deadlines_show_time_left_and_overdue(setup):
    orders, agent, resident = setup
    oid = orders.open(order_type="urgent_repair", description="Lift stuck", owner_agent_id=agent,
                      resident_id=resident, now=T0)
    orders.move(oid, "dispatched", by_agent_id=None, now=T0 + 100)
    [order] = orders.open_for_resident(resident, now=T0 + 20 * 60)
    names = [(d.name, d.seconds_left, d.overdue) for d in order["deadlines"]]
    assert names == [("on site", -5 * 60, True), ("fixed", 6 * H - 20 * 60, False)]
    orders.move(oid, "on_site", by_agent_id=None, now=T0 + 25 * 60)
    assert [d.name for d in pending_deadlines(orders.get(oid), T0 + 30 * 60)] == ["fixed"]


def test_bad_requests(setup):
    orders, agent, resident = setup
    with pytest.raises(ValueError, match="unknown work-order type 'plumbing'"):
        orders.open(order_type="plumbing", description="x", owner_agent_id=agent)
    with pytest.raises(LifecycleError, match="unknown department"):
        orders.open(order_type="repair", description="x", owner_agent_id=agent, department="gardening")
    with pytest.raises(LifecycleError, match="needs a description"):
        orders.open(order_type="repair", description="  ", owner_agent_id=agent)
    with pytest.raises(LifecycleError, match="no work order 999"):
        orders.move(999, "closed", by_agent_id=agent)


def test_refusal_table_matches_the_standard():
    assert refusal("repair", "open", "dispatched", needs_callback=True) is None
    assert refusal("repair", "open", "resolved", needs_callback=True)
    assert refusal("billing", "resolved", "closed", needs_callback=False) is None
    assert refusal("repair", "called_back", "dispatched", needs_callback=True) is None
    assert refusal("repair", "open", "open", needs_callback=True) == "it is already open"
