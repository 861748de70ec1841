"""The supervisors' console against a real switch core and control API over a Unix
socket: today's figures rebuilt from the event log, callers waiting, alerts that stay
until acknowledged, every action confirmed and audited, and a switch that goes away said
at once and caught up with when it is back."""

import datetime as dt

import pytest

from console.centre import Centre, QueueSettings
from console.supervisor import SupervisorApp
from records.agents import add_agent
from records.db import connect
from telephony import wire
from telephony.acd import QueueConfig
from telephony.acd import events as ev
from telephony.control import ControlServer
from telephony.call_events import MenuEntered, PhoneRegistration
from telephony.control_client import ControlClient
from telephony.switchcore import SwitchCore

HK = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2027, 1, 15, 10, 0, tzinfo=HK).timestamp()
QUEUES = {"repair": QueueSettings(15.0, 0.8), "billing": QueueSettings(20.0, 0.8)}


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


@pytest.fixture
async def centre(tmp_path):
    db = connect(tmp_path / "r.db", create=True)
    add_agent(db, ext="1001", name="Ann Lee", pin="1111", skills={"repair": 3})
    add_agent(db, ext="1002", name="Bob Wong", pin="2222", skills={"repair": 3, "billing": 2})
    add_agent(db, ext="9001", name="Sue Ho", pin="9999", role="supervisor", skills={"repair": 1})
    clock = Clock()
    core = SwitchCore(db, [QueueConfig("repair", wrap_up_s=30), QueueConfig("billing", wrap_up_s=30)], clock=clock)
    server = ControlServer(core)
    path = tmp_path / "c.sock"
    await server.start_unix(path)

    async def connect_supervisor(after_seq=None, since=None):
        client = await ControlClient.connect(str(path))
        await client.ask("login", ext="9001", pin="9999")
        if after_seq is not None:
            reply = await client.subscribe(after_seq)
        else:
            reply = await client.ask("subscribe", since=since, v=wire.EVENT_VERSION)
        return client, reply

    yield {"db": db, "core": core, "server": server, "clock": clock, "path": path, "connect": connect_supervisor}
    await server.close()
    core.close()
    db.close()


async def console(c):
    client = await ControlClient.connect(str(c["path"]))
    me = await client.ask("login", ext="9001", pin="9999")
    return SupervisorApp(me=me["agent"], client=client, connect=c["connect"], queues=QUEUES,
                         breaks={"lunch": 60.0, "training": 120.0}, tz=HK, clock=c["clock"])


def cells(app, table_id, key):
    table = app.query_one(f"#{table_id}")
    return [str(value) for value in table.get_row(key)]


async def settle(pilot, app):
    await pilot.pause()
    await app._poll_switch()
    await pilot.pause()


def test_the_centre_rebuilds_todays_figures_from_events():
    centre = Centre(QUEUES, T0 - 3600)
    events = [ev.CallQueued(T0, "c1", "repair", 1, "+852", "normal"), ev.CallOffered(T0, "c1", "repair", "1001"),
              ev.CallConnected(T0 + 5, "c1", "repair", "1001", 5, 5),
              ev.CallCompleted(T0 + 65, "c1", "repair", "1001", "caller", 5, 55, 5, 1, 30),
              ev.AgentStateChanged(T0 + 95, "1001", "idle"),
              ev.CallQueued(T0 + 100, "c2", "repair", 1, "+853", "normal"),
              ev.CallAbandoned(T0 + 130, "c2", "repair", 1, 1, 30)]
    for seq, event in enumerate(events, 1):
        centre.apply(event, seq)
    centre.apply(events[0], 1)   # seen already: not counted twice
    # found through the real switch: what a call leg did (a phone registering, the voice
    # menu) comes in the same stream and is not the statistics' to count
    centre.apply(PhoneRegistration(T0 + 1, "1001", True, "127.0.0.1:5062"), 99)
    centre.apply(MenuEntered(T0 + 2, "c3", "+852", "2000", None), 100)
    centre.take_snapshot(wire.decode_snapshot({"at": T0 + 200, "queues": {"repair": [], "billing": []}, "agents": [
        {"ext": "1001", "name": "Ann", "status": "available", "state": "idle", "since": T0 + 95, "call": None,
         "status_since": T0 - 100, "skills": {"repair": 3}, "registered": True}]}))
    [repair, billing] = centre.queue_lines(T0 + 200)
    assert (repair.offered, repair.answered, repair.abandoned, repair.service_level) == (2, 1, 1, 0.5)
    assert repair.asa_s == 5 and repair.abandon_rate == 0.5 and (repair.logged_in, repair.available) == (1, 1)
    assert billing.offered == 0 and billing.service_level is None
    [ann] = centre.agent_lines(T0 + 200)
    assert (ann.handled, ann.aht_s, ann.wrap_s) == (1, 90.0, 30.0)   # 55 talk + 5 hold + 30 wrap-up


def test_an_overdue_orders_alert_seen_comes_back_only_when_more_fall_overdue():
    centre = Centre(QUEUES, T0 - 3600)

    def overdue(count: int) -> None:
        centre.take_records({"orders_due": [
            {"id": n, "type": "water_leak", "department": "engineering", "deadline": "on site",
             "seconds_left": -600.0 - n} for n in range(count)]})

    def orders_alert():
        [alert] = [a for a in centre.alerts(T0) if a.key.startswith("orders:engineering:")]
        return alert
    overdue(3)
    assert "3 work orders overdue" in orders_alert().text and not orders_alert().acknowledged
    centre.acknowledge(orders_alert().key)
    overdue(2)                                   # one of them resolved: nothing new to see
    assert "2 work orders overdue" in orders_alert().text and orders_alert().acknowledged
    overdue(4)                                   # more than were seen: raised again
    assert not orders_alert().acknowledged


async def test_a_waiting_caller_shows_raises_an_alert_that_stays_until_acknowledged_and_is_audited(centre):
    core, clock = centre["core"], centre["clock"]
    app = await console(centre)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, app)
        header = str(app.query_one("#header").render())
        assert "Sue Ho (9001)" in header and "live" in header and "NOT LIVE" not in header
        core.caller_arrived("c1", "+85291230001", "repair")       # nobody available: waits
        clock.now += 40
        await settle(pilot, app)
        assert cells(app, "waiting", "c1")[:4] == ["repair", "1", "+85291230001", "normal"]
        assert cells(app, "queues", "repair")[:4] == ["repair", "1", "0:40", "1"]
        [alert] = [a for a in app.centre.alerts(clock.now) if a.key == "wait:c1"]
        assert "waiting 40 s in repair" in alert.text and not alert.acknowledged
        table = app.query_one("#alerts")
        table.focus()
        table.move_cursor(row=table.get_row_index("wait:c1"))
        await pilot.press("a")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause(0.3)
        assert cells(app, "alerts", "wait:c1")[2] == "seen"
        row = centre["db"].execute("SELECT by_ext, action, subject FROM audit").fetchone()
        assert row == ("9001", "acknowledge", "wait:c1")


async def test_actions_on_agents_and_callers_are_confirmed_done_and_audited(centre):
    core, db = centre["core"], centre["db"]
    app = await console(centre)
    async with app.run_test(size=(160, 48)) as pilot:
        core.set_status("1001", "available")
        await settle(pilot, app)
        agents = app.query_one("#agents")
        agents.focus()
        agents.move_cursor(row=agents.get_row_index("1001"))
        await pilot.press("v")                                   # available already: said, nothing asked
        await pilot.pause()
        assert len(app.screen_stack) == 1 and "available already" in str(app.query_one("#notice").render())
        await pilot.press("s")                                   # skills: checked as typed, before asking
        await pilot.pause()
        app.screen.query_one("#skills").value = "repair:9"
        await pilot.press("enter")
        await pilot.pause()
        assert "1-5" in str(app.screen.query_one("#skills-problem").render())
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("b")                                   # which break?
        await pilot.pause()
        assert "Put 1001 Ann Lee on which break?" in str(app.screen.query_one("Static").render())
        await pilot.press("down", "enter")                       # training
        await pilot.pause()
        await pilot.press("n")                                   # not confirmed: nothing happens
        await pilot.pause(0.2)
        assert core.view_of("1001")["status"] == "available"
        await pilot.press("b")
        await pilot.pause()
        await pilot.press("down", "enter")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause(0.3)
        assert core.view_of("1001")["status"] == "on_break" and core.view_of("1001")["reason"] == "training"
        assert "on break (training)" in cells(app, "agents", "1001")[2]
        core.set_status("1001", "logged_out")
        core.seat_registered("1001", ("127.0.0.1", 5062))       # the seat is open, its agent not ready yet
        await settle(pilot, app)
        assert cells(app, "agents", "1001")[2] == "not ready"   # (it said "logged out", found in a demo trial)
        core.seat_registered("1001", None)
        await settle(pilot, app)
        assert cells(app, "agents", "1001")[2] == "logged out"
        await pilot.press("v")                                   # gone home: said, nothing asked
        await pilot.pause()
        assert len(app.screen_stack) == 1 and "not at a seat" in str(app.query_one("#notice").render())
        core.set_status("1001", "on_break", reason="training")
        core.caller_arrived("c7", "+85291230007", "repair")      # Ann on a break, nobody else: it waits
        await settle(pilot, app)
        waiting = app.query_one("#waiting")
        waiting.focus()
        waiting.move_cursor(row=waiting.get_row_index("c7"))
        await pilot.press("m")
        await pilot.pause()
        await pilot.press("enter", "y")                           # billing, the only other queue
        await pilot.pause(0.3)
        assert [c.id for c in core.acd.waiting_calls("billing")] == ["c7"]
        audit = db.execute("SELECT action, subject, detail FROM audit ORDER BY id").fetchall()
        assert audit == [("force_status", "1001", "on_break training"),
                         ("move_caller", "c7", "repair -> billing (+85291230007)")]   # who and from where
        await settle(pilot, app)
        assert cells(app, "audit", "2")[2:4] == ["move caller", "c7"]
        # newest first, a row added while the console is open too (it went to the bottom)
        audit_table = app.query_one("#audit")
        assert [row.key.value for row in audit_table.ordered_rows] == ["2", "1"]
        assert audit_table.cursor_row == 0 and audit_table.scroll_y == 0   # the newest in view


async def test_a_switch_that_stops_answering_but_keeps_the_connection_is_not_shown_as_live(centre):
    import time
    app = await console(centre)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        assert "│ live │" in str(app.query_one("#header").render())
        app._answered_at = time.monotonic() - 12      # a frozen switch (kill -STOP): no snapshot for 12 s
        app._redraw()
        assert "NOT LIVE: no answer for 12 s" in str(app.query_one("#header").render())
        await app._poll_switch()                      # it answers again
        assert "│ live │" in str(app.query_one("#header").render())


async def test_a_switch_that_goes_away_is_said_at_once_and_caught_up_with(centre):
    core, server, clock = centre["core"], centre["server"], centre["clock"]
    app = await console(centre)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await server.close()                                      # the switch's control API goes away
        await pilot.pause(0.3)
        assert "NOT LIVE" in str(app.query_one("#header").render())
        assert "Not live" in str(app.query_one("#notice").render())
        core.caller_arrived("c9", "+85291230009", "repair")       # happens while the console is away
        clock.now += 5
        await server.start_unix(centre["path"])
        for _ in range(40):
            await pilot.pause(0.1)
            if app.live:
                break
        assert app.live and "NOT LIVE" not in str(app.query_one("#header").render())
        await settle(pilot, app)
        [repair] = [q for q in app.centre.queue_lines(clock.now) if q.name == "repair"]
        assert repair.offered == 1 and repair.waiting == 1        # caught up from the event log


async def test_the_wallboard_shows_queues_without_names_or_numbers_and_says_when_it_is_not_live(centre):
    import json

    from console.wallboard import Tile, WallboardApp

    core, server = centre["core"], centre["server"]
    core.caller_arrived("c1", "+85291230001", "repair")
    centre["clock"].now += 30
    client = await ControlClient.connect(str(centre["path"]))
    figures = (await client.ask("wallboard"))["wallboard"]   # no login: the local socket lets it in
    await client.close()
    assert "+852" not in json.dumps(figures) and "Ann" not in json.dumps(figures)
    [repair] = [q for q in figures["queues"] if q["name"] == "repair"]
    assert (repair["waiting"], repair["longest_wait_s"], repair["offered"], repair["logged_in"]) == (1, 30.0, 1, 0)

    async def connect():
        return await ControlClient.connect(str(centre["path"]))
    app = WallboardApp(connect, HK, clock=centre["clock"])
    async with app.run_test(size=(160, 48)) as pilot:
        await app.poll()
        await pilot.pause()
        [tile] = [t for t in app.query(Tile) if t.queue == "repair"]
        assert tile.query_one(".waiting").value == "1" and tile.has_class("late")
        assert "1 caller waiting" in str(app.query_one("#header").render())
        await server.close()
        await pilot.pause(0.2)
        await app.poll()
        await pilot.pause()
        assert str(app.query_one("#header").render()).startswith("NOT LIVE: the switch is not running")


async def test_the_wallboard_shows_every_queue_on_an_80_by_24_terminal(centre):
    # from demo trials: at 80x24 the tiles lost their answered, abandoned and agents lines,
    # then (scrolled instead) four of six tiles, emergency among them, were below the fold
    from console.wallboard import Tile, WallboardApp

    client = await ControlClient.connect(str(centre["path"]))
    figures = (await client.ask("wallboard"))["wallboard"]
    await client.close()
    # the shipped switch's six queues, each as the switch's answer gives one
    names = ("repair", "complaint", "billing", "enquiry", "emergency", "general")
    figures["queues"] = [dict(figures["queues"][0], name=name, waiting=2, longest_wait_s=40.0, answered=120,
                              abandoned=7, offered=127, service_level=0.81) for name in names]
    figures["queues"][4].update(waiting=3, longest_wait_s=75.0, answered=41, abandoned=9, threshold_s=20.0)

    class Answers:   # the switch's wallboard answer, as the control client returns it
        closed, on_close = False, None

        async def ask(self, op):
            return {"wallboard": figures}

    async def connect():
        return Answers()

    def screen_text(app) -> str:
        lines = app.query_one("#lines")
        assert lines.display and lines.region.bottom <= app.size.height
        return "\n".join(strip.text for strip in lines.render_lines(lines.region.reset_offset))

    app = WallboardApp(connect, HK, clock=centre["clock"])
    async with app.run_test(size=(80, 24)) as pilot:
        await app.poll()
        await pilot.pause()
        assert not app.query_one("#tiles").display
        text = screen_text(app)
        emergency = next(line for line in text.splitlines() if "EMERGENCY" in line).split()
        assert emergency[1:7] == ["3", "1:15", "81%", "80%/20s", "41", "9"], text
        assert all(name.upper() in text for name in names)
        await pilot.resize_terminal(160, 48)   # a wall screen: the tiles, none scrolled or cut
        await pilot.pause()
        grid = app.query_one("#tiles")
        assert grid.display and not app.query_one("#lines").display and grid.max_scroll_y == 0
        tiles = list(app.query(Tile))
        assert len(tiles) == 6
        for tile in tiles:   # every line of every tile has its room
            needed = sum(child.outer_size.height for child in tile.children)
            assert tile.content_size.height >= needed, (tile.queue, tile.content_size, needed)
            assert "abandoned" in str(tile.query_one(".line2").render())
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert "EMERGENCY" in screen_text(app)
        # tall enough for three rows of tiles as drawn at 80 columns, but at 62 their lines
        # wrap and the tiles grow: the lines again, not a grid scrolled out of sight
        await pilot.resize_terminal(62, 40)
        await pilot.pause()
        await pilot.pause()
        assert "EMERGENCY" in screen_text(app) and not app.query_one("#tiles").display


async def test_the_interval_report_is_a_screen_of_the_console(centre):
    core, clock = centre["core"], centre["clock"]
    core.set_status("1001", "available")
    core.caller_arrived("c1", "+85291230001", "repair")
    clock.now += 6
    core.sip_answered("c1", "1001")
    clock.now += 60
    core.sip_hung_up("c1", by="caller")
    core.caller_arrived("c2", "+85291230002", "billing")       # nobody for billing: gives up after 3 s
    clock.now += 3
    core.sip_hung_up("c2", by="caller")
    app = await console(centre)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, app)
        await pilot.press("r")
        await pilot.pause(0.5)
        table = app.screen.query_one("#report-table")
        rows = {table.get_row_at(n)[1]: [str(v) for v in table.get_row_at(n)] for n in range(table.row_count)}
        assert rows["repair"][:7] == ["10:00", "repair", "1", "1", "0", "0", "100%"]
        assert rows["billing"][:7] == ["10:00", "billing", "1", "0", "1", "1", "0%"]   # a short abandon
        assert table.cursor_row == table.row_count - 1             # today: the latest interval
        await pilot.press("home")
        assert table.cursor_row == 0
        await pilot.press("end")                                   # the last row, the time still in view
        assert table.cursor_row == table.row_count - 1 and table.scroll_x == 0
        await pilot.press("g")                                   # by agent
        await pilot.pause(0.5)
        table = app.screen.query_one("#report-table")
        assert [str(v) for v in table.get_row_at(0)][:4] == ["10:00", "1001", "1", "1"]
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.screen_stack[0]


async def test_the_screen_keeps_drawing_under_a_dialog_and_closing_mid_refresh_is_quiet(centre):
    # found by the benchmark: the once-a-second redraw looked for its widgets on whatever
    # screen was on top (a dialog, the report) and crashed the console; and a refresh under
    # way as the console closed raised NoMatches on the way out
    app = await console(centre)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("q")                     # the quit question is on top
        await pilot.pause()
        centre["core"].caller_arrived("c3", "+85291230003", "repair")
        await app._poll_switch()                   # the tick under the dialog
        await pilot.pause()
        assert app.is_running and cells(app, "waiting", "c3")[2] == "+85291230003"
        await pilot.press("y")
        await pilot.pause()
    app._redraw()                                  # after the end: nothing to draw, nothing raised


async def test_at_midnight_the_console_starts_the_new_day_on_a_fresh_connection(centre):
    clock = centre["clock"]
    app = await console(centre)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        first = app.client
        clock.now += 15 * 3600                     # 10:00 + 15 h: the next day, 01:00
        await app._poll_switch()
        for _ in range(30):
            await pilot.pause(0.1)
            if app.live:
                break
        assert app.live and app.client is not first and first.closed
        assert app.centre.day_start == dt.datetime(2027, 1, 16, tzinfo=HK).timestamp()


async def test_the_alert_column_follows_the_terminal_as_it_is_resized(centre):
    # the seat's and the wallboard's trial finding, in the console too: Textual sends the
    # app one Resize, at start, so the column kept the width the console started with
    from textual.widgets._data_table import ColumnKey
    app = await console(centre)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        alerts = app.query_one("#alerts")
        assert alerts.columns[ColumnKey("alert")].width == 120 - 16
        await pilot.resize_terminal(160, 48)
        await pilot.pause()
        await pilot.pause()
        assert alerts.columns[ColumnKey("alert")].width == 160 - 16
