"""The desk's control ops: what a seat with no database asks of the switch (the pop, the
search, a new resident, work orders, follow-ups, today, standard answers), answered from
real records, each write with its line in the event log, and bad input refused clearly."""
import json

import pytest

from console.desk import DeskError, SwitchDesk
from records.callbacks import record_attempt  # noqa: F401 (the same function the op runs)
from records.desk import pop_from_wire
from records.directory import NewResident, add_resident
from records.workorders import WorkOrders
from test_control import Client, switch  # noqa: F401 (switch is a fixture)

NUMBER = "+85291234567"


@pytest.fixture
async def desk(switch, db, policy):  # noqa: F811
    core, clock, connect, _ = switch
    resident = add_resident(db, NewResident(name="Chan Tai Man", name_alt="陳大文", kind="tenant", phones=(NUMBER,),
                                            segment="vip", arrears_cents=120000), now=clock.now - 86400)
    agent_id = db.execute("SELECT id FROM agents WHERE ext = '1001'").fetchone()[0]
    WorkOrders(db, policy).open(order_type="urgent_repair", description="No water", owner_agent_id=agent_id,
                                resident_id=resident, now=clock.now - 20 * 3600)
    db.conn.commit()
    ann = await connect()
    await ann.call("login", ext="1001", pin="1111")
    await ann.call("subscribe")
    return core, clock, ann, resident


def logged(db, event):
    return [json.loads(body) for body, in db.execute("SELECT body FROM events WHERE event = ? ORDER BY seq", [event])]


async def test_the_pop_of_an_offered_call_comes_from_the_switch_by_its_id(desk, db):
    core, clock, ann, resident = desk
    await ann.call("status", status="available")
    core.call_arrived("c1", "repair", NUMBER)
    await ann.call("ping")
    assert [e["event"] for e in ann.events][-1] == "CallOffered"
    reply = await ann.call("pop", call_id="c1")
    pop = pop_from_wire(reply["pop"])
    assert (pop.resident_id, pop.name, pop.name_alt, pop.vip, pop.arrears_cents) == \
        (resident, "Chan Tai Man", "陳大文", True, 120000)
    assert pop.number == NUMBER and pop.queue == "repair" and pop.interaction == "c1"
    assert [o.description for o in pop.orders] == ["No water"] and pop.orders[0].overdue
    assert pop.contacts == ()   # this call is not its own history
    by_number = pop_from_wire((await ann.call("pop", number=NUMBER))["pop"])
    assert by_number.resident_id == resident
    assert (await ann.call("pop", call_id="nope"))["error"]["code"] == "not_found"
    assert (await ann.call("pop"))["error"]["code"] == "bad_request"
    assert (await ann.call("pop", number=NUMBER, resident_id="x"))["error"]["code"] == "bad_request"


async def test_an_unknown_caller_is_found_linked_or_added_by_the_switch(desk, db):
    core, clock, ann, resident = desk
    await ann.call("status", status="available")
    core.call_arrived("c2", "repair", "+85298765432")
    await ann.call("ping")
    assert pop_from_wire((await ann.call("pop", call_id="c2"))["pop"]).resident_id is None
    matches = (await ann.call("search_residents", text="chan"))["matches"]
    assert [m["resident_id"] for m in matches] == [resident] and "陳大文" in matches[0]["name"]
    assert (await ann.call("search_residents", text=" "))["error"]["code"] == "bad_request"
    linked = await ann.call("identify", call_id="c2", resident_id=resident, number="+85298765432", link=True)
    assert linked["ok"], linked
    assert pop_from_wire(linked["pop"]).name == "Chan Tai Man" and "linked" in linked["said"]
    assert db.execute("SELECT resident_id FROM interactions WHERE uid = 'c2'").fetchone()[0] == resident
    assert db.execute("SELECT count(*) FROM resident_phones WHERE number = '+85298765432'").fetchone()[0] == 1
    assert [(e["resident_id"], e["number"], e["agent_id"]) for e in logged(db, "PhoneLinked")] == \
        [(resident, "+85298765432", "1001")]

    refused = await ann.call("add_resident", name="Lee Siu Ming", unit="no such unit", number="+85290000001")
    assert refused["error"]["code"] == "bad_request" and "no unit matches" in refused["error"]["message"]
    assert (await ann.call("add_resident", name=" ", number="+85290000001"))["error"]["code"] == "bad_request"
    added = await ann.call("add_resident", name="Lee Siu Ming", kind="tenant", number="+85290000001")
    assert added["ok"], added
    new = pop_from_wire(added["pop"])
    assert new.name == "Lee Siu Ming" and new.number == "+85290000001"
    assert [e["resident_id"] for e in logged(db, "ResidentAdded")] == [new.resident_id]


async def test_a_work_order_and_a_follow_up_are_written_by_the_switch(desk, db):
    core, clock, ann, resident = desk
    await ann.call("status", status="available")
    core.call_arrived("c3", "repair", NUMBER)
    clock.now += 2
    core.call_answered("c3", "1001")
    bad = await ann.call("open_work_order", type="teleport", description="x", resident_id=resident)
    assert bad["error"]["code"] == "bad_request" and "urgent_repair" in bad["error"]["message"]
    empty = await ann.call("open_work_order", type="urgent_repair", description=" ", resident_id=resident)
    assert empty["error"]["code"] == "bad_request"
    opened = await ann.call("open_work_order", type="urgent_repair", description="Leak under the sink",
                            call_id="c3", resident_id=resident, number=NUMBER)
    assert opened["ok"], opened
    order = db.execute("SELECT resident_id, interaction_id, owner_agent_id, description FROM work_orders "
                       "WHERE id = ?", [opened["order_id"]]).fetchone()
    interaction = db.execute("SELECT id FROM interactions WHERE uid = 'c3'").fetchone()[0]
    assert order == (resident, interaction, db.execute("SELECT id FROM agents WHERE ext = '1001'").fetchone()[0],
                     "Leak under the sink")
    assert {o["description"] for o in opened["orders"]} == {"No water", "Leak under the sink"}
    assert [(e["order_id"], e["call_id"]) for e in logged(db, "WorkOrderOpened")] == [(opened["order_id"], "c3")]

    agent_id = db.execute("SELECT id FROM agents WHERE ext = '1001'").fetchone()[0]
    db["callbacks"].insert({"kind": "voicemail", "status": "pending", "number": NUMBER, "resident_id": resident,
                            "due_at": clock.now + 3600, "created_at": clock.now, "owner_agent_id": agent_id})
    db.conn.commit()
    due = (await ann.call("callbacks"))["callbacks"]
    assert [(c["number"], c["resident"]) for c in due] == [(NUMBER, "Chan Tai Man")]
    assert (await ann.call("callback_outcome", callback_id=due[0]["id"], outcome="lost"))["error"]["code"] == \
        "bad_request"
    said = (await ann.call("callback_outcome", callback_id=due[0]["id"], outcome="no_answer", notes="rang out"))
    assert said["ok"] and "Attempt 1" in said["said"]
    assert db.execute("SELECT attempts FROM callbacks WHERE id = ?", [due[0]["id"]]).fetchone()[0] == 1
    assert [e["outcome"] for e in logged(db, "CallbackAttempted")] == ["no_answer"]


async def test_today_answers_and_extensions_for_the_seat(desk, db):
    core, clock, ann, resident = desk
    assert (await ann.call("today")) | {"id": None} == {"id": None, "ok": True, "calls": 0, "talk_s": 0.0}
    answers = (await ann.call("knowledge"))["answers"]
    assert answers and {"title", "keywords", "text"} <= set(answers[0])
    assert (await ann.call("extensions"))["extensions"] == ["1001", "1002", "2001"]


async def test_the_seat_side_decodes_the_replies_and_says_what_went_wrong(desk, db):
    core, clock, ann, resident = desk

    async def ask(op, **fields):
        from telephony.control_client import ControlError

        reply = await ann.call(op, **fields)
        if not reply["ok"]:
            raise ControlError(op, reply["error"]["code"], reply["error"]["message"])
        return reply

    seat = SwitchDesk(ask)
    pop = await seat.pop(7, NUMBER, {"X-Hotline-Queue": "repair", "X-Hotline-Wait": "12"})
    assert (pop.call, pop.waited_s, pop.queue, pop.name) == (7, 12, "repair", "Chan Tai Man")
    assert [m.resident_id for m in await seat.find_callers("Tai Man")] == [resident]
    with pytest.raises(DeskError, match="no unit matches"):
        await seat.new_caller(pop, "Someone", "Nowhere 99", "tenant")
    assert await seat.today() == (0, 0.0)

    async def unreachable(op, **fields):
        raise ConnectionError("gone")

    with pytest.raises(DeskError, match="did not answer"):
        await SwitchDesk(unreachable).callbacks()
