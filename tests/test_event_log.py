"""The switch's event log: every event numbered and kept with the rows it caused; a client
that was away catches up from it with no gap and no event twice; old events are pruned."""
import asyncio
import json

import pytest

from records.agents import add_agent
from records.directory import NewResident, add_resident
from telephony.acd import QueueConfig
from telephony.acd.events import AgentStatusChanged
from telephony.control import ControlServer
from telephony.control_client import ControlClient, ControlError
from telephony.switchconfig import SwitchConfig
from telephony.switchcore import SwitchCore
from test_control import Clock

CALLER = "+85291234567"


@pytest.fixture
async def centre(db, tmp_path):
    add_agent(db, ext="1001", name="Ann", pin="1111", skills={"repair": 3})
    add_agent(db, ext="1002", name="Bob", pin="2222", skills={"repair": 3})
    add_agent(db, ext="2001", name="Sue", pin="9999", role="supervisor", skills={"general": 3})
    clock = Clock()
    core = SwitchCore(db, config=SwitchConfig((QueueConfig("repair", wrap_up_s=10),), events_retention_days=1),
                      clock=clock)
    server = ControlServer(core)
    path = tmp_path / "c.sock"
    await server.start_unix(path)
    clients = []

    async def log_in(ext, pin, after_seq=None):
        client = await ControlClient.connect(str(path))
        seen = []
        client.on_event = seen.append
        await client.ask("login", ext=ext, pin=pin)
        reply = await client.subscribe(after_seq)
        clients.append(client)
        return client, seen, reply
    yield core, clock, log_in, db
    for client in clients:
        await client.close()
    await server.close()
    core.close()


def a_call(core, clock, call_id, ext):
    core.caller_arrived(call_id, CALLER, "repair")
    clock.now += 2
    core.sip_answered(call_id, ext)
    clock.now += 30
    core.sip_hung_up(call_id, by="caller")


async def test_every_event_is_numbered_and_logged_with_its_rows(centre):
    core, clock, log_in, db = centre
    _, seen, _ = await log_in("2001", "9999")
    core.set_status("1001", "available")
    a_call(core, clock, "c1", "1001")
    await asyncio.sleep(0.1)
    logged = db.execute("SELECT seq, event, call_id, agent_ext, body FROM events ORDER BY seq").fetchall()
    assert [m.seq for m in seen] == [row[0] for row in logged]          # what was sent is what was kept
    assert [type(m.event).__name__ for m in seen] == [row[1] for row in logged]
    assert [row[0] for row in logged] == list(range(logged[0][0], logged[0][0] + len(logged)))   # no gaps
    completed = next(json.loads(row[4]) for row in logged if row[1] == "CallCompleted")
    assert completed["call_id"] == "c1" and completed["agent_id"] == "1001"
    # the row and the event of its end were one transaction: the row is complete
    assert db.execute("SELECT outcome, talk_s FROM interactions WHERE uid = 'c1'").fetchone() == ("answered", 30.0)


async def test_a_seat_that_was_away_catches_up_without_gaps_or_doubles(centre):
    core, clock, log_in, db = centre
    first, seen, _ = await log_in("1001", "1111")
    core.set_status("1001", "available")
    a_call(core, clock, "c1", "1001")
    await asyncio.sleep(0.1)
    last = first.last_seq
    assert last == seen[-1].seq
    first.on_close = None
    await first.close()                                   # the connection drops
    await asyncio.sleep(0.1)                              # the switch sees it: Ann is logged out
    clock.now += 15
    core._on_timer()
    core.set_status("1002", "available")                  # someone else's news: not for Ann
    a_call(core, clock, "c2", "1002")
    again, missed, reply = await log_in("1001", "1111", after_seq=last)
    await asyncio.sleep(0.1)
    logged = [row[0] for row in db.execute("SELECT seq FROM events WHERE agent_ext = '1001' AND seq > ? ORDER BY seq",
                                           [last])]
    assert reply["replayed"] == len(logged) >= 1
    assert [m.seq for m in missed] == logged            # every one of Ann's events, in order, once
    assert all(m.agent_id == "1001" for m in missed)
    assert any(isinstance(m.event, AgentStatusChanged) and m.event.status == "logged_out" for m in missed)
    core.set_status("1001", "on_break", reason="lunch")   # and the live stream goes on after them
    await asyncio.sleep(0.1)
    assert isinstance(missed[-1].event, AgentStatusChanged) and missed[-1].seq == core.last_seq
    seqs = [m.seq for m in missed]
    assert seqs == sorted(set(seqs))


async def test_the_same_event_twice_is_taken_once(centre):
    core, clock, log_in, _ = centre
    client, seen, _ = await log_in("1001", "1111")
    core.set_status("1001", "available")
    await asyncio.sleep(0.1)
    before = list(seen)
    await client.subscribe(after_seq=0)     # asks for everything again: the client drops what it had
    await asyncio.sleep(0.1)
    assert seen == before


async def test_events_older_than_the_retention_are_pruned_and_a_late_client_is_told(centre):
    core, clock, log_in, db = centre
    client, _, _ = await log_in("1001", "1111")
    core.set_status("1001", "available")
    await asyncio.sleep(0.1)
    old = client.last_seq
    core.set_status("1001", "on_break", reason="lunch")
    clock.now += 2 * 86400                                # past the 1-day retention
    core.set_status("1001", "available")
    assert core.prune_events() >= 2
    assert db.execute("SELECT count(*) FROM events WHERE at < ?", [clock.now - 86400]).fetchone()[0] == 0
    with pytest.raises(ControlError, match="no longer all kept") as refused:
        await log_in("1001", "1111", after_seq=old)       # the next one it needs was pruned
    assert refused.value.code == "pruned"
    _, _, reply = await log_in("1001", "1111", after_seq=core.last_seq)   # up to date: nothing to send
    assert reply["replayed"] == 0


async def test_a_wrong_after_seq_is_a_bad_request(centre):
    _, _, log_in, _ = centre
    client, _, _ = await log_in("1001", "1111")
    for wrong in (-1, "12", True, 1.5):
        with pytest.raises(ControlError, match="after_seq") as refused:
            await client.ask("subscribe", after_seq=wrong)
        assert refused.value.code == "bad_request"


async def test_a_new_event_log_does_not_make_the_client_drop_its_events(centre):
    core, _, log_in, _ = centre
    client, seen, _ = await log_in("1001", "1111")
    client.last_seq = 10_000                 # a seat that knew a switch with a longer log
    await client.subscribe(after_seq=10_000)
    assert client.last_seq == core.last_seq
    core.set_status("1001", "available")
    await asyncio.sleep(0.1)
    assert seen and isinstance(seen[-1].event, AgentStatusChanged)


async def test_a_client_of_another_event_version_is_refused_with_the_reason(centre):
    _, _, log_in, _ = centre
    client, _, _ = await log_in("1001", "1111")
    for old in (0, 2, "1"):
        with pytest.raises(ControlError, match="version 1") as refused:
            await client.ask("subscribe", v=old)
        assert refused.value.code == "unsupported_version"
    assert (await client.ask("subscribe", v=1))["v"] == 1


async def test_an_event_the_client_cannot_read_is_skipped_and_said_once(centre, caplog):
    """A switch of a later release: the stream goes on, the seat is not fed half an event."""
    core, _, log_in, _ = centre
    client, seen, _ = await log_in("1001", "1111")
    for line in ({"event": "CallOffered", "v": 2, "seq": core.last_seq + 1, "call_id": "x"},
                 {"event": "MoonLanded", "v": 1, "seq": core.last_seq + 2},
                 {"event": "MoonLanded", "v": 1, "seq": core.last_seq + 3},
                 {"event": "CallOffered", "v": 1, "seq": core.last_seq + 4, "t": 1.0, "call_id": 5, "queue": None,
                  "agent_id": "1001"}):
        client._received(line)
    assert seen == [] and client.last_seq == core.last_seq + 4      # numbered lines are still counted
    unreadable = [r.getMessage() for r in caplog.records if "cannot read" in r.getMessage()]
    assert len(unreadable) == 2 and "event version 2" in unreadable[0] and "MoonLanded" in unreadable[1]


async def test_what_the_legs_and_seats_do_is_logged_with_the_row_it_wrote(centre):
    """The recorder is the one writer of interactions: a refused call, a disposition and
    an identification each leave their event line and their row change together."""
    core, clock, log_in, db = centre
    _, seen, _ = await log_in("2001", "9999")
    core.call_refused("+85291234567", "2800", seat="", code=503, reason="Service Unavailable")
    core.set_status("1001", "available")
    a_call(core, clock, "c1", "1001")
    core.disposition("c1", by_ext="1001", role="agent", disposition="billing: answered", notes="fee query")
    resident = add_resident(db, NewResident(name="Chan Tai Man", kind="tenant"))
    core.identify("c1", resident, by_ext="1001", role="agent")
    await asyncio.sleep(0.1)
    kinds = [type(m.event).__name__ for m in seen]
    assert {"CallFailed", "DispositionSet", "CallerIdentified"} <= set(kinds)
    assert db.execute("SELECT resident_id FROM interactions WHERE uid = 'c1'").fetchone() == (resident,)
    failed = next(m.event for m in seen if type(m.event).__name__ == "CallFailed")
    row = db.execute("SELECT outcome, sip_cause, caller_number FROM interactions WHERE uid = ?",
                     [failed.call_id]).fetchone()
    assert row == ("failed", "503 Service Unavailable", "+85291234567") and failed.cause == "503 Service Unavailable"
    assert db.execute("SELECT disposition, notes FROM interactions WHERE uid = 'c1'").fetchone() == \
        ("billing: answered", "fee query")
    logged = {row[0] for row in db.execute("SELECT event FROM events")}
    assert {"CallFailed", "DispositionSet", "CallerIdentified"} <= logged


def test_only_the_recorder_writes_interactions_rows():
    """A structural rule: no switch module but telephony/recorder.py puts SQL that
    inserts or updates interactions into its code (the seed and migrations are records')."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    writes = re.compile(r"(INSERT\s+INTO|UPDATE)\s+\[?interactions\b|insert_row\([^,]+,\s*\"interactions\"", re.I)
    offenders = [str(path.relative_to(root)) for path in sorted((root / "telephony").rglob("*.py"))
                 if path.name != "recorder.py" and writes.search(path.read_text())]
    assert offenders == []


async def test_a_catch_up_reaches_a_handler_attached_after_subscribe(centre, tmp_path):
    """The replay is sent before subscribe's reply: a client that attaches its handler
    once subscribe() returns (as the seat does after a reconnect) still gets all of it."""
    core, clock, log_in, _ = centre
    first, _, _ = await log_in("1001", "1111")
    core.set_status("1001", "available")
    core.set_status("1001", "on_break", reason="lunch")
    await asyncio.sleep(0.1)
    mine = [seq for (seq,) in core.db.execute("SELECT seq FROM events WHERE agent_ext = '1001' ORDER BY seq")]
    late = await ControlClient.connect(str(tmp_path / "c.sock"))
    await late.ask("login", ext="1001", pin="1111")
    reply = await late.subscribe(after_seq=0)
    seen = []
    late.on_event = seen.append
    assert reply["replayed"] >= len(mine) and [m.seq for m in seen][:len(mine)] == mine
    await late.close()
