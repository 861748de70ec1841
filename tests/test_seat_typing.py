"""Keys arriving in one burst, as a fast typist, a paste or tmux send them: a priority key
(enter, ctrl+s) that comes right behind the typed text must see all of it. Before the fix
each of these kept the text without its tail, or without any of it."""
from textual import events
from textual.app import App

from console.callbacks import CallbackOutcomeScreen
from console.seat import PhoneEvent, SeatApp
from console.seatlogic import SeatState
from console.transfer import TransferScreen
from records.callbacks import Callback
from telephony.softphone import IncomingCall
from test_seat import NOW, PhoneCommands, records  # noqa: F401 (records is a fixture)


def burst(app, *keys: str) -> None:
    """Every key posted before any is handled, the way the terminal driver delivers a burst."""
    for key in keys:
        app.post_message(events.Key(key, key if len(key) == 1 else None))


class Host(App):
    """A bare app that shows one dialog and keeps what it was dismissed with."""

    def __init__(self, screen):
        super().__init__()
        self.dialog, self.result = screen, "not dismissed"

    def on_mount(self) -> None:
        self.push_screen(self.dialog, lambda result: setattr(self, "result", result))


async def test_callback_notes_typed_then_enter_at_once_are_kept_whole():
    callback = Callback(1, "survey_care", NOW, "+85291234567", 1, "Chan Tai Man", None, "", "", 0, "", "")
    app = Host(CallbackOutcomeScreen(callback, talked=True, code=200))
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press("tab")
        burst(app, *"Satisfied with the follow-up", "enter")
        await pilot.pause(0.3)
    assert app.result == ("reached", "Satisfied with the follow-up")


async def test_an_extension_typed_then_enter_at_once_transfers_to_it_not_to_the_highlighted_queue():
    app = Host(TransferScreen(("repair", "billing"), "1001", frozenset({"1002"})))
    async with app.run_test() as pilot:
        await pilot.pause()
        burst(app, *"1002", "enter")
        await pilot.pause(0.3)
    assert app.result == ("ext", "1002")


async def test_the_notes_typed_then_ctrl_s_at_once_are_saved_whole(records, tmp_path):  # noqa: F811
    from telephony.control import ControlServer
    from telephony.control_client import ControlClient
    from telephony.switchcore import SwitchCore

    db, rid = records
    db["interactions"].insert({"uid": "c9", "direction": "inbound", "caller_number": "+85291234567",
                               "resident_id": rid, "queue": "repair", "entered_at": NOW - 60,
                               "agent_ext": "1001", "outcome": "answered", "ended_at": NOW - 5})
    server = ControlServer(SwitchCore(db, clock=lambda: NOW))
    await server.start_unix(tmp_path / "c.sock")
    client = await ControlClient.connect(str(tmp_path / "c.sock"))
    await client.ask("login", ext="1001", pin="1111")
    try:
        app = SeatApp(seat=SeatState("1001", "Ann Lee"), phone=PhoneCommands(), db=db, control=client,
                      clock=lambda: NOW, agent_id=1)
        async with app.run_test(size=(100, 34)) as pilot:
            app.post_message(PhoneEvent(IncomingCall(5, "+85291234567", "", {
                "X-Hotline-Queue": "repair", "X-Hotline-Interaction": "c9", "X-Hotline-Resident": str(rid)})))
            await pilot.pause()
            app.query_one("#outcome").value = "resolved on the call"
            await pilot.press("n")
            burst(app, *"Reset the breaker, power back", "ctrl+s")
            await pilot.pause(0.3)
            assert "Saved: repair: resolved on the call" in str(app.query_one("#notice").render())
        notes = db.execute("SELECT notes FROM interactions WHERE uid = 'c9'").fetchone()[0]
        assert notes == "Reset the breaker, power back"
    finally:
        await client.close()
        await server.close()


async def test_enter_before_the_matches_caught_up_with_the_typing_links_nobody(records):  # noqa: F811
    db, rid = records
    from records.directory import NewResident, add_resident

    add_resident(db, NewResident(name="Chan Mei Ling", kind="tenant", phones=("+85291110000",)))
    app = SeatApp(seat=SeatState("1001", "Ann Lee"), phone=PhoneCommands(), db=db, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        app.post_message(PhoneEvent(IncomingCall(1, "+85290001111", "", {"X-Hotline-Interaction": "c1"})))
        await pilot.pause()
        await pilot.press("i", *"chan")          # two matches on screen
        await pilot.pause()
        burst(app, *" tai", "enter")              # enter lands before the list narrowed to one
        await pilot.pause(0.3)
        screen = app.screen
        assert "changed as you typed" in str(screen.query_one("#identify-problem").render())
        assert screen.query_one("#matches").row_count == 1
        await pilot.press("enter", "enter")   # asked, then yes
        await pilot.pause()
        assert "Chan Tai Man" in str(app.query_one("#caller").render())
    from records.directory import resident_by_phone
    assert resident_by_phone(db, "+85290001111")["id"] == rid


async def test_backspaces_and_letters_in_one_burst_are_applied_in_order():
    # found by a new user: "noise", five backspaces, "fee" in the knowledge search left "noi"
    # (Textual ran the backspaces as bindings once they reached the app, after the letters)
    from console.answers import AnswersScreen
    from records.knowledge import load_knowledge

    app = Host(AnswersScreen(load_knowledge()))
    async with app.run_test() as pilot:
        await pilot.pause()
        burst(app, *"noise", *["backspace"] * 5, *"fee", "left", "left", "delete", "home", "c")
        await pilot.pause(0.5)
        assert app.screen.query_one("#search").value == "cfe"


async def test_arrows_then_enter_at_once_take_the_break_reason_they_reached():
    # found by a new user: b, then down down down enter in one burst took "lunch" (the first)
    # and queue_log said PAUSE|lunch: enter ran before the arrows had moved the list
    from console.choices import BreakScreen

    app = Host(BreakScreen({"lunch": 60, "training": 60, "meeting": 30, "personal": 15}))
    async with app.run_test() as pilot:
        await pilot.pause()
        burst(app, "down", "down", "down", "enter")
        await pilot.pause(0.3)
    assert app.result == "personal"


async def test_arrows_then_enter_at_once_dial_the_follow_up_they_reached():
    from console.callbacks import CallbacksScreen

    calls = [Callback(i, "survey_care", NOW, f"+8529123456{i}", i, f"Resident {i}", None, "", "", 0, "", "")
             for i in range(1, 4)]
    app = Host(CallbacksScreen(calls, NOW))
    async with app.run_test() as pilot:
        await pilot.pause()
        burst(app, "down", "down", "enter")
        await pilot.pause(0.3)
    assert app.result is calls[2]


def ring_known_caller(app, resident_id):
    """Chan Tai Man's call ringing at the seat, named by the switch (as in the demo)."""
    app.post_message(PhoneEvent(IncomingCall(5, "+85291234567", "Chan Tai Man", {
        "X-Hotline-Queue": "repair", "X-Hotline-Interaction": "c9", "X-Hotline-Resident": str(resident_id)})))


def seat_for(db):
    return SeatApp(seat=SeatState("1001", "Ann Lee"), phone=PhoneCommands(), db=db, clock=lambda: NOW)


async def rung(app, pilot, resident_id):
    """The known caller's pop drawn, caller and form."""
    await pilot.pause()
    ring_known_caller(app, resident_id)
    await pilot.pause()


async def test_notes_typed_in_the_pops_first_frame_are_kept(records):  # noqa: F811
    """The pop's first frame draws only the caller (its form follows a frame later): `n`
    and text in the same burst as the ring still land in the notes, whole."""
    db, rid = records
    app = seat_for(db)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        ring_known_caller(app, rid)
        burst(app, "n", *"leak under the sink")
        await pilot.pause(0.3)
        assert app.query_one("#pop-body").display and app.query_one("#notes").value == "leak under the sink"


async def test_a_select_opened_and_chosen_in_one_burst_takes_the_option_chosen(records):  # noqa: F811
    """enter, down, down, enter sent at once to the form's outcome picks what the same keys
    pick one by one (before, the burst was lost and the outcome stayed empty)."""
    db, rid = records
    app = seat_for(db)
    async with app.run_test(size=(100, 30)) as pilot:
        await rung(app, pilot, rid)
        outcome = app.query_one("#outcome")
        app.set_focus(outcome)
        await pilot.pause()
        for key in ("enter", "down", "down", "enter"):
            await pilot.press(key)
            await pilot.pause(0.1)
        one_by_one = outcome.value
        outcome.value = outcome.NULL
        app.set_focus(outcome)
        await pilot.pause()
        burst(app, "enter", "down", "down", "enter")
        await pilot.pause(0.5)
        assert one_by_one != outcome.NULL and outcome.value == one_by_one and not outcome.expanded


async def test_tab_through_the_form_stops_only_where_the_focus_shows(records):  # noqa: F811
    """Tab from the work-order description goes to the orders table, then the contact
    history's table, then round to the form: never to the history's scrolling container,
    where the focus showed nothing and the letters typed next were taken as keys (a demo
    trial lost most of a work-order description that way)."""
    db, rid = records
    app = seat_for(db)
    async with app.run_test(size=(100, 30)) as pilot:
        await rung(app, pilot, rid)
        app.set_focus(app.query_one("#order_description"))
        await pilot.pause()
        stops = []
        for _ in range(8):
            await pilot.press("tab")
            await pilot.pause()
            stops.append(app.focused.id if app.focused is not None else None)
        assert "contacts" not in stops and None not in stops
        assert stops[:2] == ["orders", "history"] and "reason" in stops and "order_description" in stops
