"""What the seat looks like, at 80x24 and 120x40, with a frozen clock: idle, ringing
with a known VIP (overdue order, history), an unknown caller, in a call with notes
typed, and wrap-up. Update with `pytest --snapshot-update` after a deliberate change
and look at the SVGs in tests/__snapshots__ before committing them."""
import pytest

from console.seat import PhoneEvent, SeatApp, SwitchEvent
from console.seatlogic import SeatState
from records.agents import add_agent
from records.db import connect
from records.directory import NewResident, add_resident
from records.sla import load_policy
from records.workorders import WorkOrders
from telephony.acd.events import CallCompleted
from telephony.softphone import CallState, IncomingCall, Registration
from telephony.wire import Delivered

NOW = 1_800_000_000.0   # 2027-01-15 16:00 in Hong Kong


class PhoneCommands:
    def __getattr__(self, name):
        return lambda *args: None


def seat_app(tmp_path):
    db = connect(tmp_path / "r.db", create=True)
    agent = add_agent(db, ext="1001", name="Ann Lee", pin="1111")
    other = add_agent(db, ext="1002", name="Bob Wong", pin="2222")
    rid = add_resident(db, NewResident(name="Chan Tai Man", name_alt="陳大文", kind="tenant",
                                       phones=("+85291234567",), segment="vip", arrears_cents=250000,
                                       language="yue"), now=NOW - 400 * 86400)
    orders = WorkOrders(db, load_policy())
    orders.open(order_type="urgent_repair", description="No water in the kitchen", owner_agent_id=agent,
                resident_id=rid, now=NOW - 20 * 3600)
    orders.open(order_type="complaint", description="Noise from the flat above at night", owner_agent_id=other,
                resident_id=rid, now=NOW - 3600)
    for i, (queue, disposition, notes) in enumerate([("repair", "work order opened", "kitchen tap dripping"),
                                                     ("billing", "balance explained", "asked about the late fee"),
                                                     ("complaint", "complaint logged", "noise at night")]):
        db["interactions"].insert({"uid": f"old-{i}", "direction": "inbound", "caller_number": "+85291234567",
                                   "resident_id": rid, "queue": queue, "entered_at": NOW - (i + 1) * 86400 * 3,
                                   "outcome": "answered", "agent_id": agent if i % 2 == 0 else other,
                                   "disposition": disposition, "notes": notes})
    seat = SeatState("1001", "Ann Lee")
    seat.status_changed("available")
    app = SeatApp(seat=seat, phone=PhoneCommands(), db=db, clock=lambda: NOW)
    return app, rid


def ring(app, rid, number="+85291234567", known=True):
    headers = {"X-Hotline-Queue": "repair", "X-Hotline-Wait": "14", "X-Hotline-Interaction": "1800000000.7"}
    if known:
        headers["X-Hotline-Resident"] = str(rid)
    app.post_message(PhoneEvent(Registration(True, 200, "OK")))
    app.post_message(PhoneEvent(IncomingCall(5, number, "", headers)))


SIZES = [(80, 24), (120, 40)]


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_idle(snap_compare, tmp_path, size):
    app, _ = seat_app(tmp_path)

    async def registered(pilot):
        app.post_message(PhoneEvent(Registration(True, 200, "OK")))
        await pilot.pause()
    assert snap_compare(app, terminal_size=size, run_before=registered)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_ringing_with_profile(snap_compare, tmp_path, size):
    app, rid = seat_app(tmp_path)

    async def ringing(pilot):
        ring(app, rid)
        await pilot.pause()
        await app.workers.wait_for_complete()   # the records follow the ring's own facts
        await pilot.pause()
    assert snap_compare(app, terminal_size=size, run_before=ringing)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_unknown_caller(snap_compare, tmp_path, size):
    app, rid = seat_app(tmp_path)

    async def ringing(pilot):
        ring(app, rid, number="+85290000000", known=False)
        await pilot.pause()
    assert snap_compare(app, terminal_size=size, run_before=ringing)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_in_call_with_notes(snap_compare, tmp_path, size):
    app, rid = seat_app(tmp_path)

    async def talking(pilot):
        ring(app, rid)
        app.post_message(PhoneEvent(CallState(5, "connected", 200, "OK")))
        await pilot.pause()
        await pilot.press("n", *"Water off since 9am", "escape")
        await pilot.pause()
    assert snap_compare(app, terminal_size=size, run_before=talking)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_wrap_up(snap_compare, tmp_path, size):
    app, rid = seat_app(tmp_path)

    async def wrapping(pilot):
        ring(app, rid)
        app.post_message(PhoneEvent(CallState(5, "connected", 200, "OK")))
        app.post_message(PhoneEvent(CallState(5, "ended", 200, "Normal call clearing")))
        app.post_message(SwitchEvent(Delivered(CallCompleted(NOW, "1800000000.7", "repair", "1001", "agent", 3, 60,
                                                              0, 1, 30))))
        await pilot.pause()
    assert snap_compare(app, terminal_size=size, run_before=wrapping)
