"""The rows the live switch writes are as complete as seeded ones: who (the agent's id, so
history follows the person), when, how long (wait, talk, hold, wrap-up) and how it ended,
whatever happened to the call. The switch core on real records, driven the way its SIP
side reports, with a clock the test moves (no SIP here: tests/test_sip_calls.py has that)."""
import pytest

from records.agents import add_agent, remove_agent
from records.directory import NewResident, add_resident, last_contacts
from telephony.acd import QueueConfig
from telephony.switchcore import SwitchCore

CALLER = "+85291234567"


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def core(db, tmp_path):
    add_agent(db, ext="1001", name="Ann", pin="1111", skills={"repair": 3})
    add_agent(db, ext="1002", name="Bob", pin="2222", skills={"repair": 3})
    clock = Clock()
    switch = SwitchCore(db, [QueueConfig("repair", wrap_up_s=30)], clock=clock, queue_log_path=tmp_path / "q.log")
    switch.clock_ = clock
    yield switch
    switch.close()


def row_of(db, uid):
    cursor = db.execute("SELECT * FROM interactions WHERE uid = ?", [uid])
    return dict(zip([c[0] for c in cursor.description], cursor.fetchone()))


def switch_that_will_crash(db, tmp_path, queue=None, exts=("1001",)):
    """A switch on the test's clock (as `crashed.clock_`); it 'dies' by closing its
    queue_log without shut_down, and `restart_after_crash` starts the next one."""
    for ext, name, pin in (("1001", "Ann", "1111"), ("1002", "Bob", "2222")):
        if ext in exts:
            add_agent(db, ext=ext, name=name, pin=pin, skills={"repair": 3})
    clock = Clock()
    crashed = SwitchCore(db, [queue or QueueConfig("repair")], clock=clock, queue_log_path=tmp_path / "q.log")
    crashed.clock_ = clock
    return crashed


def restart_after_crash(crashed, db, tmp_path, down_s, queue=None):
    crashed.queue_log.close()                        # ... and then it died (no shut_down)
    crashed.clock_.now += down_s
    return SwitchCore(db, [queue or QueueConfig("repair")], clock=crashed.clock_, queue_log_path=tmp_path / "q.log")


def answered(core, call_id="c1", ext="1001", wait=5.0):
    clock = core.clock_
    core.set_status(ext, "available")
    core.caller_arrived(call_id, CALLER, "repair")
    clock.now += wait
    core.sip_answered(call_id, ext)


def test_an_answered_call_has_its_agent_talk_hold_and_wrap_up(core, db):
    clock = core.clock_
    answered(core)
    clock.now += 20
    core.sip_hold("c1", "1001", True)
    core.sip_hold("c1", "1001", True)        # a repeated re-INVITE changes nothing
    clock.now += 10
    core.sip_hold("c1", "1001", False)
    clock.now += 15
    core.sip_hung_up("c1", by="caller")
    row = row_of(db, "c1")
    ann = db.execute("SELECT id FROM agents WHERE ext = '1001'").fetchone()[0]
    assert (row["agent_ext"], row["agent_id"], row["outcome"]) == ("1001", ann, "answered")
    assert (row["wait_s"], row["talk_s"], row["hold_s"]) == (5.0, 35.0, 10.0)
    assert row["wrapup_s"] == 0.0                        # still writing it up
    clock.now += 12
    core.end_wrap_up("1001")
    assert row_of(db, "c1")["wrapup_s"] == 12.0
    states = [r[0] for r in db.execute("SELECT state FROM agent_states WHERE ext = '1001' ORDER BY id")]
    assert states == ["idle", "ringing", "in_call", "on_hold", "in_call", "wrap_up", "idle"]


def test_a_held_call_keeps_its_caller_queue_and_clock_on_the_supervisors_screen(core, db):
    clock = core.clock_
    answered(core)
    answered_at = clock.now
    clock.now += 20
    core.sip_hold("c1", "1001", True)
    [ann] = [a for a in core.snapshot()["agents"] if a["ext"] == "1001"]
    assert (ann["state"], ann["caller"], ann["queue"], ann["since"]) == ("on_hold", CALLER, "repair", answered_at)
    clock.now += 10
    core.sip_hold("c1", "1001", False)
    [ann] = [a for a in core.snapshot()["agents"] if a["ext"] == "1001"]
    assert (ann["state"], ann["caller"], ann["queue"], ann["since"]) == ("in_call", CALLER, "repair", answered_at)


def test_a_wrap_up_that_runs_out_is_recorded_too(core, db):
    clock = core.clock_
    answered(core)
    clock.now += 10
    core.sip_hung_up("c1", by="agent")
    clock.now += 30
    core._on_timer()                                      # the wrap-up timer fires
    assert row_of(db, "c1")["wrapup_s"] == 30.0


def test_a_caller_whose_agent_vanished_and_who_then_hangs_up_stays_answered(core, db):
    clock = core.clock_
    answered(core)
    clock.now += 40
    core.seat_lost("1001")                                # the agent's phone died mid-call
    clock.now += 8
    core.sip_hung_up("c1", by="caller")                   # they gave up waiting again
    row = row_of(db, "c1")
    assert row["outcome"] == "answered" and row["talk_s"] == 40.0 and row["wait_s"] == 5.0
    assert row["agent_ext"] == "1001" and row["agent_id"] is not None


def test_a_requeued_caller_answered_again_adds_both_agents_talk(core, db):
    clock = core.clock_
    answered(core)
    clock.now += 40
    core.seat_lost("1001")
    core.set_status("1002", "available")
    clock.now += 3
    core.sip_answered("c1", "1002")
    clock.now += 20
    core.sip_hung_up("c1", by="caller")
    row = row_of(db, "c1")
    assert row["outcome"] == "answered" and row["talk_s"] == 60.0 and row["agent_ext"] == "1002"


def test_history_follows_the_person_when_an_extension_is_given_to_someone_new(core, db):
    clock = core.clock_
    resident = add_resident(db, NewResident(name="Chan Tai Man", kind="tenant", phones=(CALLER,)))
    answered(core)
    clock.now += 30
    core.sip_hung_up("c1", by="caller")
    remove_agent(db, "1001")
    add_agent(db, ext="1001", name="Carol", pin="3333", skills={"repair": 3})
    [contact] = last_contacts(db, resident)
    assert contact["agent"] == "Ann"


def test_stopping_the_switch_closes_calls_as_interrupted_with_their_talk_and_queue_log(core, db, tmp_path):
    clock = core.clock_
    answered(core)
    core.caller_arrived("c2", "+85290000001", "repair")   # waiting: nobody else is free
    clock.now += 25
    assert core.shut_down() == 2
    core.close()
    talking, waiting = row_of(db, "c1"), row_of(db, "c2")
    assert (talking["outcome"], talking["talk_s"], talking["wait_s"]) == ("interrupted", 25.0, 5.0)
    assert (waiting["outcome"], waiting["talk_s"], waiting["wait_s"]) == ("interrupted", None, 25.0)
    # as complete as a finished row (found by a new user: hold and wrap-up were NULL on
    # every interrupted answered row); one never answered has neither, as an abandoned row
    assert (talking["hold_s"], talking["wrapup_s"]) == (0.0, 0.0)
    assert (waiting["hold_s"], waiting["wrapup_s"]) == (None, None)
    lines = (tmp_path / "q.log").read_text().splitlines()
    assert any("|c1|repair|Agent/1001|COMPLETEAGENT|5|25|1" in line for line in lines)
    assert any("|c2|repair|NONE|EXITEMPTY|1|1|25" in line for line in lines)
    assert sum("|INFO|INTERRUPTED|switch stopped" in line for line in lines) == 2
    assert any("|Agent/1001|AGENTLOGOFF|switch stopped" in line for line in lines)
    last = db.execute("SELECT status, reason FROM agent_states WHERE ext = '1001' ORDER BY id DESC LIMIT 1").fetchone()
    assert last == ("logged_out", "switch stopped")
    assert_the_event_log_ends(db, "switch stopped")


def assert_the_event_log_ends(db, why):
    """Found using the demo: the calls a stop or a crash cut stayed up for ever in the
    event log (a client catching up saw them connected), and their agents logged in."""
    import json

    last = {call: json.loads(body) for call, body in db.execute(
        "SELECT call_id, body FROM events WHERE call_id IN ('c1', 'c2') ORDER BY seq").fetchall()}
    assert (last["c1"]["event"], last["c1"]["by"], last["c1"]["agent_id"]) == ("CallCompleted", "switch", "1001")
    assert (last["c2"]["event"], last["c2"]["cause"]) == ("CallFailed", f"interrupted: {why}")
    [logout] = [json.loads(b) for (b,) in db.execute("SELECT body FROM events WHERE event = 'AgentStatusChanged' "
                                                     "AND agent_ext = '1001' ORDER BY seq DESC LIMIT 1")]
    assert (logout["status"], logout["reason"]) == ("logged_out", why)


def test_after_a_crash_the_next_start_closes_what_was_left_open(db, tmp_path):
    crashed = switch_that_will_crash(db, tmp_path)
    answered(crashed)
    crashed.clock_.now += 50
    crashed.caller_arrived("c2", "+85290000001", "repair")   # the last thing it wrote, at +55
    restarted = restart_after_crash(crashed, db, tmp_path, 3600)
    assert restarted.recover() == 2
    talking, waiting = row_of(db, "c1"), row_of(db, "c2")
    assert (talking["outcome"], talking["talk_s"], talking["ended_at"]) == ("interrupted", 50.0, 1_800_000_055.0)
    assert (talking["hold_s"], talking["wrapup_s"]) == (0.0, 0.0)
    assert (waiting["outcome"], waiting["wait_s"]) == ("interrupted", 0.0)
    restarted.close()
    text = (tmp_path / "q.log").read_text()
    assert "|c1|repair|Agent/1001|COMPLETEAGENT|5|50|1" in text and "|c2|repair|NONE|EXITEMPTY|" in text
    assert text.count("|INFO|INTERRUPTED|switch went down") == 2
    assert "|Agent/1001|AGENTLOGOFF|switch went down" in text
    assert_the_event_log_ends(db, "switch went down")


def test_a_wrap_up_the_crash_cut_counts_until_the_switch_went_down(db, tmp_path):
    # from the demo trial: a contact whose agent was in wrap-up when the switch was killed
    # kept wrapup_s 0.0 for good
    queue = QueueConfig("repair", wrap_up_s=60)
    crashed = switch_that_will_crash(db, tmp_path, queue)
    clock = crashed.clock_
    answered(crashed)
    clock.now += 20
    crashed.sip_hung_up("c1", by="caller")           # wrap-up from here
    clock.now += 25
    crashed.still_alive()                            # its last sign of life, 25 s into the wrap-up
    restarted = restart_after_crash(crashed, db, tmp_path, 600, queue)
    restarted.recover()
    assert row_of(db, "c1")["wrapup_s"] == 25.0
    assert db.execute("SELECT wrapup_s FROM interaction_legs").fetchall() == [(25.0,)]
    restarted.close()


def test_a_transferring_agents_notes_stay_on_the_contact_beside_the_next_agents(core, db):
    clock = core.clock_
    answered(core)
    core.set_status("1002", "available")
    clock.now += 30
    core.transfer("c1", by_ext="1001", role="agent", to_ext="1002",
                  form={"reason": "repair", "notes": "Leak under the sink since Monday", "outcome": ""})
    clock.now += 4
    core.sip_answered("c1", "1002")
    clock.now += 20
    core.sip_hung_up("c1", by="caller")
    # the receiving seat's form came prefilled with Ann's notes; Bob adds to them
    core.disposition("c1", by_ext="1002", role="agent", disposition="repair: work order opened",
                     notes="Leak under the sink since Monday; plumber booked for Tuesday")
    row = row_of(db, "c1")
    assert row["disposition"] == "repair: work order opened"
    assert row["notes"] == "Leak under the sink since Monday; plumber booked for Tuesday"
    parts = db.execute("SELECT agent_ext, disposition, notes FROM contact_notes ORDER BY id").fetchall()
    assert parts == [("1001", "repair: transferred", "Leak under the sink since Monday"),
                     ("1002", "repair: work order opened", "Leak under the sink since Monday; plumber booked for Tuesday")]
    # Bob writes something of his own instead: both agents' words are on the row
    core.disposition("c1", by_ext="1002", role="agent", disposition="repair: work order opened",
                     notes="Plumber booked for Tuesday")
    assert row_of(db, "c1")["notes"] == "Ann: Leak under the sink since Monday | Bob: Plumber booked for Tuesday"


def legs_of(db, uid):
    return db.execute("SELECT l.agent_ext, l.talk_s, l.hold_s, l.wrapup_s, l.ended FROM interaction_legs l "
                      "JOIN interactions i ON i.id = l.interaction_id WHERE i.uid = ? ORDER BY l.id", [uid]).fetchall()


def test_a_transferred_contact_credits_each_agent_with_their_own_talk_hold_and_wrap_up(core, db, tmp_path):
    """Found using the demo: after a transfer the row credited the whole contact to the
    last agent, the first agent's today totals lost the call, and the second answer's
    queue_log wait counted the first agent's talk."""
    from records.desk import today_totals
    clock = core.clock_
    answered(core)                                   # waited 5 s; Ann answers
    clock.now += 20
    core.sip_hold("c1", "1001", True)
    clock.now += 10
    core.sip_hold("c1", "1001", False)
    clock.now += 10                                  # Ann: 30 s talk, 10 s hold
    core.set_status("1002", "available")
    core.transfer("c1", by_ext="1001", role="agent", to_ext="1002", form={})
    clock.now += 4
    core.sip_answered("c1", "1002")                  # waited 4 s since the transfer
    clock.now += 20
    core.sip_hung_up("c1", by="caller")
    clock.now += 30                                  # both wrap-ups have run out
    core._on_timer()
    row = row_of(db, "c1")
    assert (row["agent_ext"], row["wait_s"], row["talk_s"], row["hold_s"]) == ("1002", 5.0, 50.0, 10.0)
    assert legs_of(db, "c1") == [("1001", 30.0, 10.0, 30.0, "transferred"), ("1002", 20.0, 0.0, 30.0, "completed")]
    ann, bob = (db.execute("SELECT id FROM agents WHERE ext = ?", [e]).fetchone()[0] for e in ("1001", "1002"))
    assert today_totals(db, ann, clock.now, None) == (1, 30.0)
    assert today_totals(db, bob, clock.now, None) == (1, 20.0)
    lines = (tmp_path / "q.log").read_text().splitlines()
    assert "1800000049|c1|repair|Agent/1002|CONNECT|4|c1|4" in lines
    assert "1800000069|c1|repair|Agent/1002|COMPLETECALLER|5|20|1" in lines


def test_a_crash_after_a_transfer_keeps_each_agents_talk(db, tmp_path):
    crashed = switch_that_will_crash(db, tmp_path, exts=("1001", "1002"))
    clock = crashed.clock_
    answered(crashed)
    clock.now += 40
    crashed.set_status("1002", "available")
    crashed.transfer("c1", by_ext="1001", role="agent", to_ext="1002", form={})
    clock.now += 5
    crashed.sip_answered("c1", "1002")
    clock.now += 15
    crashed.still_alive()                            # its last sign of life: Bob 15 s in
    restarted = restart_after_crash(crashed, db, tmp_path, 3600)
    assert restarted.recover() == 1
    restarted.close()
    row = row_of(db, "c1")
    assert (row["outcome"], row["talk_s"]) == ("interrupted", 55.0)   # 40 + 15, not 60 from the first answer
    assert legs_of(db, "c1") == [("1001", 40.0, 0.0, 0.0, "transferred"), ("1002", 15.0, 0.0, 0.0, "interrupted")]


def outside_tries(db, uid):
    return db.execute("SELECT o.agent_ext, o.number, o.answered_at, o.ended_at, o.talk_s, o.outcome FROM "
                      "outside_transfers o JOIN interactions i ON i.id = o.interaction_id WHERE i.uid = ? "
                      "ORDER BY o.id", [uid]).fetchall()


def transferred_out(core, number="+85290000002"):
    # the ACD's side of a transfer out (the trunk's legs are tests/test_sip_calls.py's)
    core._apply(lambda now: core.acd.transfer("c1", now, outside=number))


def test_a_caller_who_hangs_up_while_the_outside_number_rings_is_recorded_so(core, db):
    from telephony.call_events import OutsideEnded
    answered(core)
    clock = core.clock_
    clock.now += 40
    transferred_out(core)
    asked = clock.now
    clock.now += 12
    core._happened(OutsideEnded(clock.now, "c1", "+85290000002", "answered", 0.0))   # the caller hung up
    assert outside_tries(db, "c1") == [("1001", "+85290000002", None, asked + 12, 0.0, "caller_hung_up")]
    row = row_of(db, "c1")
    assert (row["outcome"], row["talk_s"], row["ended_at"]) == ("answered", 40.0, asked + 12)


def test_a_crash_while_the_caller_talks_outside_closes_that_try_with_its_talk(db, tmp_path):
    from telephony.call_events import OutsideAnswered
    crashed = switch_that_will_crash(db, tmp_path)
    clock = crashed.clock_
    answered(crashed)
    clock.now += 40
    transferred_out(crashed)
    clock.now += 8
    crashed._happened(OutsideAnswered(clock.now, "c1", "+85290000002", 8.0))
    answered_there = clock.now
    clock.now += 20
    crashed.still_alive()                            # its last sign of life: 20 s talked outside
    restarted = restart_after_crash(crashed, db, tmp_path, 3600)
    assert restarted.recover() == 1
    restarted.close()
    assert outside_tries(db, "c1") == [("1001", "+85290000002", answered_there, answered_there + 20, 20.0,
                                        "interrupted")]
    row = row_of(db, "c1")
    assert (row["outcome"], row["talk_s"]) == ("interrupted", 60.0)   # 40 with Ann + 20 outside


def test_a_timer_that_fires_as_the_switch_stops_does_nothing(core):
    # the demo's switch log ended with SwitchError "the switch is stopping" from a queue timer
    # that was already due when shut_down ran
    core.caller_arrived("c2", "+85290000001", "repair")
    core.shut_down()
    core._on_timer()


def test_recordings_a_stopped_switch_left_as_pcap_are_sorted_out_at_the_next_start(db, tmp_path):
    """Found using the demo: the calls a stop cut left header-only pcaps in raw/ for ever."""
    add_agent(db, ext="1001", name="Ann", pin="1111", skills={"repair": 3})
    add_agent(db, ext="1002", name="Bob", pin="2222", skills={"repair": 3})
    clock = Clock()
    crashed = SwitchCore(db, [QueueConfig("repair")], clock=clock, recordings=tmp_path / "media")
    crashed.clock_ = clock
    answered(crashed, call_id="1800000000.7")
    crashed.queue_log.close()
    raw = tmp_path / "media" / "raw"
    raw.mkdir(parents=True)
    header = bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")   # a pcap with no packet
    (raw / "1800000000-7-0=aaa.pcap").write_bytes(header)
    (raw / "1800000000-7-0=bbb.pcap").write_bytes(header)
    (raw / "1799999999-3-0=ccc.pcap").write_bytes(header)    # no contact of this database
    answered(crashed, call_id="1800000000.8", ext="1002")       # Bob's call
    (raw / "1800000000-8-0=ddd.pcap").write_bytes(rtp_pcap(seconds=0.5))   # half a second was said
    clock.now += 60
    restarted = SwitchCore(db, [QueueConfig("repair")], clock=clock, recordings=tmp_path / "media")
    restarted.recover()
    restarted.close()
    assert sorted(p.name for p in raw.iterdir()) == ["1799999999-3-0=ccc.pcap"]
    assert row_of(db, "1800000000.7")["recording_path"] is None   # nothing was said: nothing kept
    kept = row_of(db, "1800000000.8")["recording_path"]
    assert kept.endswith("1800000000.8.wav") and (tmp_path / "media" / "1800000000.8.wav").stat().st_size > 8000


def rtp_pcap(seconds: float) -> bytes:
    """A pcap (raw IP) of one PCMU stream: 20 ms packets of silence."""
    import struct
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
    for n in range(int(seconds / 0.02)):
        rtp = struct.pack("!BBHII", 0x80, 0, n, n * 160, 1234) + bytes([0xFF]) * 160
        udp = struct.pack("!HHHH", 40000, 5060, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes([127, 0, 0, 1]),
                         bytes([127, 0, 0, 1])) + udp
        out += struct.pack("<IIII", 1_800_000_000, n * 20_000, len(ip), len(ip)) + ip
    return bytes(out)
