"""The control API over a real Unix socket, against a SwitchCore on real records."""
import asyncio
import json
import os
import stat

import pytest

from records.agents import add_agent
from telephony.control import MAX_LINE, ControlServer
from telephony.switchcore import SwitchCore


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self):
        return self.now


class Client:
    def __init__(self, reader, writer):
        self.reader, self.writer, self.next_id, self.events = reader, writer, 0, []

    async def send_raw(self, data: bytes):
        self.writer.write(data)
        await self.writer.drain()

    async def read(self):
        return json.loads(await asyncio.wait_for(self.reader.readline(), 5))

    async def reply(self):
        while True:
            message = await self.read()
            if "event" in message:
                self.events.append(message)
            else:
                return message

    async def call(self, op, **fields):
        self.next_id += 1
        await self.send_raw(json.dumps({"id": self.next_id, "op": op, **fields}).encode() + b"\n")
        message = await self.reply()
        assert message["id"] == self.next_id
        return message


@pytest.fixture
async def switch(db, tmp_path):
    add_agent(db, ext="1001", name="Ann", pin="1111", skills={"repair": 3})
    add_agent(db, ext="1002", name="Bob", pin="2222", skills={"repair": 3, "billing": 2})
    add_agent(db, ext="2001", name="Sue", pin="9999", role="supervisor", skills={"general": 3})
    clock = Clock()
    core = SwitchCore(db, clock=clock, queue_log_path=tmp_path / "queue_log")
    server = ControlServer(core)
    path = tmp_path / "control.sock"
    await server.start_unix(path)
    clients = []

    async def connect():
        client = Client(*await asyncio.open_unix_connection(str(path), limit=MAX_LINE * 2))
        clients.append(client)
        return client

    yield core, clock, connect, path
    for client in clients:
        client.writer.close()
    await server.close()
    core.close()


async def test_socket_mode_and_login(switch):
    core, clock, connect, path = switch
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    seat = await connect()
    assert (await seat.call("status", status="available"))["error"]["code"] == "not_logged_in"
    bad = await seat.call("login", ext="1001", pin="0000")
    assert bad == {"id": 2, "ok": False, "error": {"code": "bad_credentials", "message": "wrong extension or PIN"}}
    assert (await seat.call("login", ext="9999", pin="1111"))["error"]["code"] == "bad_credentials"
    good = await seat.call("login", ext="1001", pin="1111")
    assert good["ok"] and good["agent"] == {"ext": "1001", "name": "Ann", "role": "agent"}


async def test_roles_are_enforced(switch):
    core, clock, connect, _ = switch
    seat = await connect()
    await seat.call("login", ext="1001", pin="1111")
    for op, fields in (("snapshot", {}), ("force_status", {"ext": "1002", "status": "on_break"}),
                       ("set_skills", {"ext": "1002", "skills": "repair:5"}),
                       ("set_priority", {"call_id": "x", "priority": "vip"})):
        reply = await seat.call(op, **fields)
        assert reply["error"]["code"] == "forbidden", op


async def test_a_call_through_the_core_reaches_the_right_seat_and_the_records(switch, db):
    core, clock, connect, path = switch
    ann, bob, sue = await connect(), await connect(), await connect()
    await ann.call("login", ext="1001", pin="1111")
    await bob.call("login", ext="1002", pin="2222")
    await sue.call("login", ext="2001", pin="9999")
    await ann.call("subscribe")
    await bob.call("subscribe")
    snapshot = (await sue.call("subscribe"))["snapshot"]
    assert {a["ext"]: a["status"] for a in snapshot["agents"]} == {"1001": "logged_out", "1002": "logged_out",
                                                                   "2001": "logged_out"}
    await ann.call("status", status="available")
    clock.now += 5
    await bob.call("status", status="available")
    clock.now += 5
    core.call_arrived("c1", "repair", "+85291234567")
    clock.now += 3
    core.call_answered("c1", "1001")
    clock.now += 60
    core.call_ended("c1", by="caller")
    await ann.call("ping")  # let the events reach the client
    ann_events = [e["event"] for e in ann.events]
    assert ann_events == ["AgentStatusChanged", "CallOffered", "CallConnected", "CallCompleted"]
    await bob.call("ping")
    assert [e["event"] for e in bob.events] == ["AgentStatusChanged"]   # not Ann's call
    await sue.call("ping")
    assert "CallQueued" in [e["event"] for e in sue.events]

    assert (await bob.call("disposition", call_id="c1", disposition="x"))["error"]["code"] == "forbidden"
    assert (await ann.call("disposition", call_id="c1", disposition="work order opened", notes="tap"))["ok"]
    row = db.execute("SELECT outcome, agent_ext, wait_s, talk_s, disposition, notes, ended_at - entered_at "
                     "FROM interactions WHERE uid = 'c1'").fetchone()
    assert row == ("answered", "1001", 3.0, 60.0, "work order opened", "tap", 63.0)
    core.queue_log.flush()
    lines = (path.parent / "queue_log").read_text().splitlines()
    assert [line.split("|")[4] for line in lines if "|c1|" in line] == ["ENTERQUEUE", "CONNECT", "COMPLETECALLER"]
    states = db.execute("SELECT ext, status, state FROM agent_states WHERE ext = '1001' ORDER BY id").fetchall()
    assert states[-1] == ("1001", "available", "wrap_up")
    assert (await ann.call("end_wrap_up"))["ok"]
    assert (await ann.call("end_wrap_up"))["error"]["code"] == "conflict"


async def test_supervisor_actions(switch, db):
    core, clock, connect, _ = switch
    sue = await connect()
    await sue.call("login", ext="2001", pin="9999")
    assert (await sue.call("force_status", ext="1002", status="on_break", reason="coaching"))["ok"]
    assert core.acd.agents["1002"].status == "on_break"
    assert (await sue.call("set_skills", ext="1002", skills="repair:5,complaint:2"))["ok"]
    assert core.acd.agents["1002"].skills == {"repair": 5, "complaint": 2}
    assert db.execute("SELECT count(*) FROM agent_skills s JOIN agents a ON a.id = s.agent_id "
                      "WHERE a.ext = '1002'").fetchone()[0] == 2
    core.call_arrived("c9", "repair", "+85261234567")
    reply = await sue.call("set_priority", call_id="c9", priority="vip")
    assert reply["ok"] and core.acd.calls["c9"].priority == "vip"
    assert (await sue.call("set_priority", call_id="nope", priority="vip"))["error"]["code"] == "conflict"
    assert (await sue.call("set_skills", ext="1002", skills="plumbing:1"))["error"]["code"] == "bad_request"
    snapshot = (await sue.call("snapshot"))["snapshot"]
    assert [c["call_id"] for c in snapshot["queues"]["repair"]] == ["c9"]


async def test_garbage_and_oversize_lines_get_errors_and_the_connection_lives(switch):
    core, clock, connect, _ = switch
    client = await connect()
    await client.send_raw(b"this is not json\n")
    assert (await client.reply())["error"]["code"] == "bad_json"
    await client.send_raw(b"[1, 2, 3]\n")
    assert (await client.reply())["error"]["code"] == "bad_json"
    await client.send_raw(b'{"op": "ping"}\n')
    assert (await client.reply())["error"]["code"] == "bad_request"
    await client.send_raw(b'{"id": 1, "op": "explode"}\n')
    assert (await client.reply())["error"]["code"] == "unknown_op"
    await client.send_raw(b'{"id": 2, "op": "login", "ext": true}\n')
    assert (await client.reply())["error"]["code"] == "bad_request"
    await client.send_raw(b"\xff\xfe\n")
    assert (await client.reply())["error"]["code"] == "bad_json"
    await client.send_raw(b'{"id": 3, "op": "ping", "pad": "' + b"x" * (MAX_LINE * 3) + b'"}\n')
    assert (await client.reply())["error"]["code"] == "line_too_long"
    assert (await client.call("ping"))["ok"]


async def test_a_client_that_vanishes_mid_request_harms_nobody(switch):
    core, clock, connect, _ = switch
    quitter = await connect()
    await quitter.send_raw(b'{"id": 1, "op": "login", "ext": "10')
    quitter.writer.close()
    subscriber = await connect()
    await subscriber.call("login", ext="2001", pin="9999")
    await subscriber.call("subscribe")
    subscriber.writer.close()
    await asyncio.sleep(0.05)
    core.call_arrived("c1", "repair", "+85291234567")  # publishing to a closed client must not fail
    other = await connect()
    assert (await other.call("ping"))["ok"]


async def test_ring_timeout_runs_on_the_event_loop(db, tmp_path):
    add_agent(db, ext="1001", name="Ann", pin="1111", skills={"repair": 3})
    from telephony.acd import QueueConfig
    core = SwitchCore(db, [QueueConfig("repair", ring_timeout_s=0.05, max_no_answer=1)])
    core.set_status("1001", "available")
    seen = []
    core.subscribe(seen.append)
    core.call_arrived("c1", "repair", "+85291234567")
    for _ in range(100):  # wait for the loop's timer, up to 5 s
        if any(m["event"] == "RingNoAnswer" for m in seen):
            break
        await asyncio.sleep(0.05)
    names = [m["event"] for m in seen]
    assert names[:3] == ["CallQueued", "CallOffered", "RingNoAnswer"] and "AgentStatusChanged" in names
    assert core.acd.agents["1001"].status == "on_break"
    core.close()


def test_restart_closes_open_contacts_as_interrupted(db):
    core = SwitchCore(db, clock=lambda: 1000.0)
    core.call_arrived("c1", "repair", "+85291234567")
    core.close()
    assert db.execute("SELECT ended_at FROM interactions WHERE uid = 'c1'").fetchone() == (None,)
    again = SwitchCore(db, clock=lambda: 5000.0)
    assert again.recover() == 1
    assert db.execute("SELECT outcome, ended_at FROM interactions WHERE uid = 'c1'").fetchone() == ("interrupted", 1000.0)
    again.close()


async def test_an_unknown_caller_identified_at_the_seat_is_on_the_live_row_and_stays_there(switch, db):
    from records.directory import NewResident, add_resident

    core, clock, connect, path = switch
    rid = add_resident(db, NewResident(name="Wong Siu Ming", kind="tenant"))
    ann, bob = await connect(), await connect()
    await ann.call("login", ext="1001", pin="1111")
    await bob.call("login", ext="1002", pin="2222")
    await ann.call("status", status="available")
    core.call_arrived("c7", "repair", "+85290007777")         # nobody knows this number
    assert (await bob.call("identify", call_id="c7", resident_id=rid))["error"]["code"] == "forbidden"
    assert (await ann.call("identify", call_id="c7", resident_id=999999))["error"]["code"] == "not_found"
    assert (await ann.call("identify", call_id="c7", resident_id="x"))["error"]["code"] == "bad_request"
    assert (await ann.call("identify", call_id="c7", resident_id=rid))["ok"]     # while it rings at Ann
    core.call_answered("c7", "1001")
    clock.now += 30
    core.call_ended("c7", by="agent")       # the row's later writes keep the resident
    assert db.execute("SELECT resident_id, outcome FROM interactions WHERE uid = 'c7'").fetchone() == (rid, "answered")


async def test_the_agent_picks_a_break_reason_from_the_switchs_list(switch):
    core, clock, connect, path = switch
    seat = await connect()
    login = await seat.call("login", ext="1001", pin="1111")
    assert login["breaks"] == {"lunch": 60, "training": 120, "meeting": 60, "personal": 15}
    bad = await seat.call("status", status="on_break", reason="nap")
    assert bad["error"]["code"] == "bad_request" and "lunch" in bad["error"]["message"]
    assert (await seat.call("status", status="on_break", reason="training"))["ok"]
    assert core.view_of("1001")["reason"] == "training"


async def test_a_seat_that_vanishes_without_logging_out_is_logged_out(switch):
    core, clock, connect, path = switch
    seat = await connect()
    await seat.call("login", ext="1001", pin="1111")
    await seat.call("status", status="available")
    second = await connect()   # the same agent again (a seat reconnecting before the first is noticed gone)
    await second.call("login", ext="1001", pin="1111")
    seat.writer.close()
    await asyncio.sleep(0.1)
    assert core.view_of("1001")["status"] == "available"    # still reachable through the second
    second.writer.close()
    for _ in range(50):
        await asyncio.sleep(0.02)
        if core.view_of("1001")["status"] == "logged_out":
            break
    assert core.view_of("1001")["status"] == "logged_out"
    third = await connect()
    await third.call("login", ext="1001", pin="1111")
    await third.call("logout")
    third.writer.close()


async def test_a_seat_in_a_call_that_loses_its_connection_has_its_phone_checked_at_once(switch):
    core, clock, connect, _ = switch

    class Phones:   # what the SIP side was asked; its pacing is tests/test_qualify.py's
        def __init__(self):
            self.checked = []

        def check_seat(self, ext):
            self.checked.append(ext)
    seat, idle = await connect(), await connect()
    await seat.call("login", ext="1001", pin="1111")
    await seat.call("status", status="available")
    await idle.call("login", ext="1002", pin="2222")
    core.call_arrived("c1", "repair", "+85291234567")
    core.call_answered("c1", "1001")
    phones = Phones()
    core.legs = phones
    idle.writer.close()           # not in a call: nothing to check
    seat.writer.close()           # in a call: its phone is asked now, not at its next turn
    for _ in range(50):
        await asyncio.sleep(0.02)
        if phones.checked:
            break
    core.legs = None
    assert phones.checked == ["1001"]


async def test_a_hundred_wrong_pins_lock_the_extension_out_and_the_right_pin_works_after(switch, caplog):
    core, clock, connect, _ = switch
    client = await connect()
    codes = [(await client.call("login", ext="1001", pin="0000"))["error"]["code"] for _ in range(100)]
    assert codes[:5] == ["bad_credentials"] * 5 and set(codes[5:]) == {"locked_out"}   # 5 per extension
    locked = await client.call("login", ext="1001", pin="1111")     # the right PIN, while locked
    assert locked["error"]["code"] == "locked_out" and "extension 1001 may try again in 300 s" in \
        locked["error"]["message"]
    assert "extension 1001 locked out of logins for 300 s" in caplog.text
    # each wrong PIN is in the switch's log, counted toward the lockout
    assert "wrong extension or PIN for 1001 from this machine's control socket (1 of 5 before a lockout)" in caplog.text
    assert "(5 of 5 before a lockout)" in caplog.text and "(6 of 5" not in caplog.text
    supervisor = await connect()
    await supervisor.call("login", ext="2001", pin="9999")
    snapshot = (await supervisor.call("snapshot"))["snapshot"]
    assert {"kind": "extension", "key": "1001"} in [{k: e[k] for k in ("kind", "key")} for e in snapshot["locked_out"]]
    assert (await client.call("login", ext="1002", pin="2222"))["ok"]   # other people log in meanwhile
    clock.now += 301
    assert (await client.call("login", ext="1001", pin="1111"))["ok"]


def test_wrong_pins_from_one_address_over_many_extensions_lock_the_address(db):
    from telephony.switchcore import SwitchError

    for n in range(30):
        add_agent(db, ext=f"{3000 + n}", name=f"Agent {n}", pin="4444")
    core = SwitchCore(db, clock=Clock())
    for n in range(20):                      # one wrong guess each: no extension reaches its limit
        with pytest.raises(SwitchError, match="wrong extension or PIN"):
            core.authenticate(f"{3000 + n}", "0000", address="203.0.113.9")
    with pytest.raises(SwitchError, match="address 203.0.113.9 may try again"):
        core.authenticate("3025", "4444", address="203.0.113.9")
    assert core.authenticate("3025", "4444", address="198.51.100.7")["ext"] == "3025"   # elsewhere: fine
    assert core.authenticate("3025", "4444")["ext"] == "3025"                         # the local socket too


def test_a_crash_keeps_the_talk_up_to_the_switchs_last_sign_of_life(db):
    # found by a new user: a call cut by kill -9 three seconds after its answer kept talk_s 0.0,
    # because nothing was written between the answer and the crash
    add_agent(db, ext="1001", name="Ann", pin="1111", skills={"repair": 3})
    clock = Clock()
    core = SwitchCore(db, clock=clock)
    core.set_status("1001", "available")
    core.caller_arrived("c1", "+85291234567", "repair")
    clock.now += 2
    core.sip_answered("c1", "1001")
    answered = clock.now
    for _ in range(4):             # the switch's every-5-seconds sign of life, then a kill -9
        clock.now += 5
        core.still_alive()
    core.db.conn.commit()
    again = SwitchCore(db, clock=lambda: answered + 3600)
    assert again.recover() == 1
    row = db.execute("SELECT outcome, talk_s, ended_at FROM interactions WHERE uid = 'c1'").fetchone()
    assert row == ("interrupted", 20.0, answered + 20)
    again.close()


async def test_after_a_restart_a_login_is_told_the_status_it_had_when_the_switch_went(db, tmp_path):
    """From the demo's trial: a supervisor put bots on lunch, the switch was killed, and
    the bots came back available. The login reply now says what each agent was doing."""
    add_agent(db, ext="1001", name="Ann", pin="1111", skills={"repair": 3})
    add_agent(db, ext="1002", name="Bob", pin="2222", skills={"repair": 3})
    clock = Clock()
    crashed = SwitchCore(db, clock=clock, queue_log_path=tmp_path / "queue_log")
    crashed.set_status("1001", "on_break", "lunch")
    crashed.set_status("1002", "available")
    # killed: nothing closed; the next switch's start-up logs them out and remembers
    clock.now += 30
    restarted = SwitchCore(db, clock=clock, queue_log_path=tmp_path / "queue_log")
    restarted.recover()
    server = ControlServer(restarted)
    path = tmp_path / "again.sock"
    await server.start_unix(path)
    try:
        ann = Client(*await asyncio.open_unix_connection(str(path), limit=MAX_LINE * 2))
        reply = await ann.call("login", ext="1001", pin="1111")
        assert reply["status"] == "logged_out" and reply["before_restart"] == {"status": "on_break", "reason": "lunch"}
        assert "before_restart" not in await ann.call("login", ext="1001", pin="1111")   # told once
        bob = Client(*await asyncio.open_unix_connection(str(path), limit=MAX_LINE * 2))
        assert (await bob.call("login", ext="1002", pin="2222"))["before_restart"] == {"status": "available",
                                                                                    "reason": ""}
        for client in (ann, bob):
            client.writer.close()
    finally:
        await server.close()
    # a clean stop too: what they had before the switch stopped
    restarted.set_status("1002", "on_break", "training")
    restarted.close()
    third = SwitchCore(db, clock=clock, queue_log_path=tmp_path / "queue_log")
    third.recover()
    assert third.status_before_restart("1002") == {"status": "on_break", "reason": "training"}
    assert third.status_before_restart("1001") is None        # logged out before the stop: nothing to resume
    third.close()


def test_a_break_taken_up_again_after_a_restart_keeps_its_start_and_limit(db, tmp_path):
    """A demo trial: personal break (15 min) at 16:19, the switch killed at 16:22; the
    seat put the agent back on the break and its clock and limit started again: the
    overrun came 18 minutes into the break. Now both run from 16:19."""
    add_agent(db, ext="1001", name="Ann", pin="1111", skills={"repair": 3})
    clock = Clock()
    crashed = SwitchCore(db, clock=clock, queue_log_path=tmp_path / "queue_log")
    crashed.set_status("1001", "available")
    clock.now += 60
    began = clock.now
    crashed.set_status("1001", "on_break", "personal")
    clock.now += 180   # killed 3 minutes into the break
    crashed.still_alive()
    crashed.db.conn.commit()
    clock.now += 1
    restarted = SwitchCore(db, clock=clock, queue_log_path=tmp_path / "queue_log")
    restarted.recover()
    assert restarted.status_before_restart("1001") == {"status": "on_break", "reason": "personal"}
    restarted.set_status("1001", "on_break", "personal")   # what the seat does on its login
    view = restarted.view_of("1001")
    assert view["status"] == "on_break" and view["status_since"] == began
    limit = restarted.config.breaks["personal"] * 60
    assert restarted.acd.next_timer() == began + limit     # the overrun at 15 minutes into the break
    restarted.close()
    # a different break after the restart is a new one
    third = SwitchCore(db, clock=clock, queue_log_path=tmp_path / "queue_log")
    third.recover()
    third.set_status("1001", "on_break", "lunch")
    assert third.view_of("1001")["status_since"] == clock.now
    third.close()
