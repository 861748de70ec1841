"""What the supervisors' console looks like at 80x24 and 160x48 with a frozen clock: a
quiet centre, a busy one with every kind of alert, and one whose switch went away. The
centre is fed the switch's own event classes and snapshot/supervise replies. Update with
`pytest --snapshot-update` after a deliberate change and look at the SVGs first."""
import asyncio

import pytest

from console.centre import QueueSettings
from console.supervisor import SupervisorApp
from telephony import wire
from telephony.acd import events as ev

NOW = 1_800_000_000.0   # 2027-01-15 16:00 in Hong Kong
SIZES = [(80, 24), (160, 48)]
QUEUES = {"repair": QueueSettings(15.0, 0.8), "complaint": QueueSettings(15.0, 0.8),
          "emergency": QueueSettings(10.0, 0.9)}


async def never(*_):
    await asyncio.Future()


def agent(ext, name, status, state, since, **extra):
    return {"ext": ext, "name": name, "status": status, "state": state, "since": since, "status_since": since,
            "reason": extra.pop("reason", ""), "call": extra.pop("call", None), "caller": extra.pop("caller", ""),
            "queue": extra.pop("queue", ""), "skills": extra.pop("skills", {"repair": 3, "complaint": 2}),
            "registered": extra.pop("registered", status != "logged_out"), **extra}   # logged out: gone home


QUIET = {"at": NOW, "queues": {"repair": [], "complaint": [], "emergency": []}, "locked_out": [],
         "agents": [agent("1001", "Ann Lee", "available", "idle", NOW - 300),
                    agent("1002", "Bob Wong", "available", "idle", NOW - 120)]}
BUSY = {"at": NOW, "locked_out": [{"kind": "ext", "key": "1007", "seconds_left": 540.0}],
        "queues": {"repair": [{"call_id": "c21", "number": "+85291230021", "priority": "normal", "wait_s": 95.0},
                              {"call_id": "c22", "number": "+85291230022", "priority": "vip", "wait_s": 12.0}],
                   "complaint": [{"call_id": "c23", "number": "+85291230023", "priority": "normal", "wait_s": 40.0}],
                   "emergency": []},
        "agents": [agent("1001", "Ann Lee", "available", "in_call", NOW - 130, call="c9", caller="+85291230009",
                         queue="repair"),
                   agent("1002", "Bob Wong", "on_break", "idle", NOW - 1500, reason="lunch"),
                   agent("1003", "Chan Mei", "available", "wrap_up", NOW - 20),
                   agent("1007", "Lee Ka", "logged_out", "idle", NOW - 4000)]}
RECORDS = {"orders_due": [{"id": 3015, "type": "urgent_repair", "department": "engineering", "description": "No water",
                           "deadline": "on site", "due_at": NOW - 1300, "seconds_left": -1300.0},
                          {"id": 3020, "type": "repair", "department": "engineering", "description": "Lift noise",
                           "deadline": "dispatch", "due_at": NOW + 900, "seconds_left": 900.0}],
           "callbacks_given_up": [{"id": 71, "kind": "repair_callback", "number": "+85291230071", "attempts": 5,
                                   "at": NOW - 600, "outcome": "no answer", "resident": "Wong Siu Ming",
                                   "work_order_id": 3001}],
           "repeat_callers": [{"resident_id": 44, "name": "Chan Tai Man", "contacts": 3, "last_at": NOW - 200}],
           "mass_complaints": [{"level": "building", "id": 2, "name": "Tower 2, Kingsway Heights", "contacts": 7,
                                "residents": 6, "queues": ["complaint", "repair"], "estate": "Kingsway Heights"}],
           "audit": [{"id": 1, "at": NOW - 900, "by": "2001", "by_name": "Sue Ho", "action": "force_status",
                      "subject": "1002", "detail": "on_break lunch"}],
           "acknowledged": ["repeat:44:1799999800"]}


def busy_day(app):
    """Ten repair callers this morning: six answered in time, two late, two abandoned;
    Bob's lunch ran past its limit."""
    centre = app.centre
    t = NOW - 4 * 3600
    for n in range(10):
        call = f"m{n}"
        centre.apply(ev.CallQueued(t, call, "repair", 1, f"+8529000000{n}", "normal"))
        if n < 8:
            wait = 5.0 if n < 6 else 40.0
            centre.apply(ev.CallConnected(t + wait, call, "repair", "1001", wait, 3.0))
            centre.apply(ev.CallCompleted(t + wait + 180, call, "repair", "1001", "caller", wait, 170.0, 10.0, 1, 30.0))
            centre.apply(ev.AgentStateChanged(t + wait + 210, "1001", "idle"))
        else:
            centre.apply(ev.CallAbandoned(t + 25, call, "repair", 1, 1, 25.0))
        t += 600
    centre.apply(ev.AgentStatusChanged(NOW - 1500, "1002", "on_break", "lunch", "available"))
    centre.apply(ev.BreakOverrun(NOW - 300, "1002", "lunch", 1200.0))


def console():
    app = SupervisorApp(me={"ext": "2001", "name": "Sue Ho"}, client=None, connect=never, queues=QUEUES,
                        breaks={"lunch": 60.0}, tz=__import__("datetime").timezone(
                            __import__("datetime").timedelta(hours=8)), clock=lambda: NOW)
    return app


def show(app, snapshot, records=None, live=True):
    if app._reconnecting is not None:
        app._reconnecting.cancel()
        app._reconnecting = None
    app.centre.take_snapshot(wire.decode_snapshot(snapshot))
    if records is not None:
        app.centre.take_records(records)
    app.live = live
    app.notice("")
    if not live:
        app._switch_lost("the switch closed the connection")
        app._reconnecting.cancel()
    app._redraw()


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "160x48"])
def test_quiet(snap_compare, size):
    app = console()

    async def quiet(pilot):
        await pilot.pause()
        show(app, QUIET, {"orders_due": [], "audit": [], "acknowledged": []})
        await pilot.pause()
    assert snap_compare(app, terminal_size=size, run_before=quiet)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "160x48"])
def test_busy_with_every_alert(snap_compare, size):
    app = console()

    async def busy(pilot):
        await pilot.pause()
        busy_day(app)
        show(app, BUSY, RECORDS)
        await pilot.pause()
    assert snap_compare(app, terminal_size=size, run_before=busy)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "160x48"])
def test_the_switch_went_away(snap_compare, size):
    app = console()

    async def lost(pilot):
        await pilot.pause()
        busy_day(app)
        show(app, BUSY, RECORDS, live=False)
        await pilot.pause()
    assert snap_compare(app, terminal_size=size, run_before=lost)


def test_every_kind_of_alert_is_raised_and_an_acknowledged_one_stays_seen():
    app = console()
    busy_day(app)
    app.centre.take_snapshot(wire.decode_snapshot(BUSY))
    app.centre.take_records(RECORDS)
    alerts = {a.key.split(":")[0]: a for a in app.centre.alerts(NOW)}
    assert set(alerts) == {"sl", "wait", "break", "lock", "orders", "callback", "repeat", "mass"}
    assert alerts["sl"].text == "repair: service level 60% today, target 80% within 15 s"
    assert alerts["repeat"].acknowledged and not alerts["mass"].acknowledged
    assert "mass complaint forming: 7 contacts from 6 residents of Tower 2, Kingsway Heights" in alerts["mass"].text
