"""Calls through the real switch: SIPp residents -> hotline switch -> registered SIPp agents.

Each agent phone is a SIPp UAS that first registers from its own port (register.xml),
then answers, refuses or lets ring as its scenario says. The switch's records are then
read back: one interaction row per INVITE, and the queue_log in Asterisk's layout.
Needs `sipp` (Debian: sip-tester); see test_sip_register.py for the skip rule.
"""
import json
from pathlib import Path
import socket
import subprocess
import time

import pytest

from records.db import connect
from records.directory import NewResident, add_resident
from test_sip_register import SCENARIOS, SIPP, free_udp_port, switch, switch_without_media  # noqa: F401

CALLER = "+85291234567"


@pytest.fixture
def line(switch):  # noqa: F811
    """The switch, with a known VIP resident on CALLER, and a supervisor's control connection."""
    return _line(*switch)


@pytest.fixture
def line_without_media(switch_without_media):  # noqa: F811
    return _line(*switch_without_media)


def _line(port, process, control):
    db = connect(control.parent / "switch.db")
    resident_id = add_resident(db, NewResident(name="Chan Tai Man", kind="tenant", phones=(CALLER,), segment="vip"))
    db.close()
    return Line(port, process, control, resident_id)


class Line:
    def __init__(self, port, process, control, resident_id):
        self.port, self.process, self.control, self.resident_id = port, process, control, resident_id
        self.db_path = control.parent / "switch.db"
        self.seats = []   # control connections held open by logged-in agents

    def request(self, stream, **request):
        stream.write(json.dumps({"id": 1, **request}) + "\n")
        stream.flush()
        reply = json.loads(stream.readline())
        assert reply["ok"], reply
        return reply

    def agent_ready(self, ext, pin):
        """Log the agent in over the control API and make them available (as a seat would)."""
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(self.control))
        stream = sock.makefile("rw")
        self.request(stream, op="login", ext=ext, pin=pin)
        self.request(stream, op="status", status="available")
        self.seats.append((sock, stream))

    def snapshot(self):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.control))
            stream = sock.makefile("rw")
            self.request(stream, op="login", ext="2001", pin="9999")
            return self.request(stream, op="snapshot")["snapshot"]

    def phone(self, ext, pin, scenario, calls=1, pause_ms=1000, keys=()):
        """Register ext from a fresh port, then answer there with `scenario` (a running SIPp
        that also answers the switch's OPTIONS, as every phone does: -aa). Each phone has
        its own media port, so two agents' SDP differ as two real phones' would."""
        for attempt in range(3):
            agent_port = free_udp_port()
            registered = subprocess.run(
                [SIPP, f"127.0.0.1:{self.port}", "-sf", str(SCENARIOS / "register.xml"), "-s", ext, "-au", ext,
                 "-ap", pin, "-m", "1", "-i", "127.0.0.1", "-p", str(agent_port), "-timeout", "10s", "-nostdin"],
                capture_output=True, text=True, timeout=30)
            assert registered.returncode == 0, registered.stdout[-2000:]
            agent = subprocess.Popen(
                [SIPP, "-sf", str(SCENARIOS / scenario), "-m", str(calls), "-i", "127.0.0.1", "-p", str(agent_port),
                 "-d", str(pause_ms), "-aa", "-mp", str(free_udp_port()), "-timeout", "40s", "-nostdin", *keys,
                 "-trace_logs", "-log_file", str(self.control.parent / f"{ext}.log"),
                 "-trace_msg", "-message_file", str(self.control.parent / f"{ext}.msg")],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            # A port picked as free can be taken again before SIPp binds it (SIPp also binds
            # the media port + 2): a phone that dies at start-up is set up again, new ports.
            try:
                agent.wait(0.3)
            except subprocess.TimeoutExpired:
                return agent
            print(f"agent SIPp for {ext} exited at start ({agent.returncode}): {agent.stdout.read()[-500:]}")
        raise AssertionError(f"the agent SIPp for {ext} would not start")

    def call(self, scenario="caller.xml", dialled="general", caller=CALLER, pause_ms=1000, keys=()):
        command = [SIPP, f"127.0.0.1:{self.port}", "-sf", str(SCENARIOS / scenario), "-s", dialled,
                   "-key", "caller", caller, *keys, "-m", "1", "-i", "127.0.0.1", "-p", str(free_udp_port()),
                   "-d", str(pause_ms), "-aa", "-timeout", "40s", "-nostdin", "-trace_msg", "-message_file",
                   str(self.control.parent / f"caller-{time.monotonic_ns()}.log")]
        self.caller_messages = Path(command[-1])   # what the last caller's phone sent and received
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def caller_answered(self) -> bool:
        """The last caller's phone has its 200 OK (the agent's answer reached it)."""
        return self.caller_messages.exists() and "SIP/2.0 200 OK" in self.caller_messages.read_text()

    def interactions(self):
        db = connect(self.db_path, migrate=False)
        try:
            cursor = db.execute("SELECT * FROM interactions ORDER BY id")
            names = [c[0] for c in cursor.description]
            return [dict(zip(names, row)) for row in cursor]
        finally:
            db.close()

    def queue_log(self):
        db = connect(self.db_path, migrate=False)
        try:
            return [row[0] for row in db.execute("SELECT event FROM queue_log ORDER BY id")]
        finally:
            db.close()

    def wait_until(self, check, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError("the switch did not get there in time")


def finished(process, timeout=45):
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def test_a_caller_is_queued_offered_to_the_registered_agent_and_bridged(line):
    line.agent_ready("1001", "1111")
    agent = line.phone("1001", "1111", "agent_answer.xml")
    line.wait_until(lambda: {a["ext"]: a for a in line.snapshot()["agents"]}["1001"]["registered"])
    code, output = finished(line.call())
    assert code == 0, output[-3000:]
    code, output = finished(agent)
    assert code == 0, output[-3000:]   # the INVITE carried the X-Hotline headers (checked by SIPp)
    [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"] is not None])
    assert row["outcome"] == "answered" and row["agent_ext"] == "1001" and row["caller_number"] == CALLER
    assert row["resident_id"] == line.resident_id and row["dialled_number"] == "general"
    assert row["queue"] == "general" and 0.5 <= row["talk_s"] < 10 and row["wait_s"] < 5
    line.wait_until(lambda: line.queue_log()[-3:] == ["ENTERQUEUE", "CONNECT", "COMPLETECALLER"])
    agents = {a["ext"]: a for a in line.snapshot()["agents"]}
    assert agents["1001"]["state"] == "wrap_up"   # the queue's wrap-up timer runs after the call
    assert line.process.poll() is None


def test_the_agent_hangs_up(line):
    line.agent_ready("1001", "1111")
    agent = line.phone("1001", "1111", "agent_hangs_up.xml")
    caller = line.call("caller_until_agent_hangs_up.xml")
    assert finished(caller)[0] == 0 and finished(agent)[0] == 0
    [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"] is not None])
    assert row["outcome"] == "answered" and row["agent_ext"] == "1001"
    line.wait_until(lambda: line.queue_log()[-1:] == ["COMPLETEAGENT"])


def test_a_caller_who_gives_up_while_queued_is_abandoned_with_wait_and_position(line):
    # Nobody is available: the caller waits in the queue, then hangs up (CANCEL).
    code, output = finished(line.call("caller_cancel.xml", pause_ms=1200))
    assert code == 0, output[-3000:]
    [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"] is not None])
    assert row["outcome"] == "abandoned" and row["agent_ext"] == "" and 1.0 <= row["wait_s"] < 5
    line.wait_until(lambda: line.queue_log()[-2:] == ["ENTERQUEUE", "ABANDON"])


def test_an_available_agent_without_a_registration_is_not_offered(line):
    line.agent_ready("1001", "1111")            # logged in and available, but no phone registered
    caller = line.call("caller_cancel.xml", )
    waiting = line.wait_until(lambda: line.snapshot()["queues"]["general"])
    assert len(waiting) == 1 and waiting[0]["number"] == CALLER and waiting[0]["priority"] == "vip"
    assert finished(caller)[0] == 0
    [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"] is not None])
    assert row["outcome"] == "abandoned" and row["offered_at"] is None


def test_a_busy_agent_is_skipped_and_the_next_agent_answers(line):
    line.agent_ready("1001", "1111")
    busy = line.phone("1001", "1111", "agent_busy.xml")
    line.agent_ready("1002", "2222")
    answering = line.phone("1002", "2222", "agent_answer.xml")
    code, output = finished(line.call())
    assert code == 0, output[-3000:]
    assert finished(busy)[0] == 0 and finished(answering)[0] == 0
    [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"] is not None])
    assert row["outcome"] == "answered" and row["agent_ext"] == "1002"
    agents = {a["ext"]: a for a in line.snapshot()["agents"]}
    assert agents["1001"]["status"] == "available"   # busy is not a missed call


def test_ring_no_answer_moves_the_call_to_the_next_agent(line):
    line.agent_ready("1001", "1111")
    silent = line.phone("1001", "1111", "agent_no_answer.xml")
    caller = line.call()
    line.wait_until(lambda: "RINGNOANSWER" in line.queue_log(), timeout=25)   # the queue's 15 s ring timeout
    assert finished(silent)[0] == 0          # it was CANCELled
    line.agent_ready("1002", "2222")
    answering = line.phone("1002", "2222", "agent_answer.xml")
    assert finished(caller)[0] == 0 and finished(answering)[0] == 0
    [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"] is not None])
    assert row["outcome"] == "answered" and row["agent_ext"] == "1002"


def test_caller_and_agent_hanging_up_at_the_same_instant_end_one_record(line):
    # Both phones hang up 1.5 s into the call (their scenarios), so the BYEs usually cross.
    # A BYE that lands in the instant a phone's own timer fired and it is about to send its
    # BYE would be "unexpected" to SIPp, which then fails the call (CI saw it): the phones
    # ignore it instead and take the switch's retransmission, as a real phone would.
    crossing = ("-default_behaviors", "all,-abortunexp")
    line.agent_ready("1001", "1111")
    agent = line.phone("1001", "1111", "agent_hangs_up_at_once.xml", keys=crossing)
    caller = line.call("caller_hangs_up_at_once.xml", keys=crossing)
    code, output = finished(caller)
    assert code == 0, output[-1500:] + line.caller_messages.read_text()[-4000:]
    code, output = finished(agent)
    assert code == 0, output[-3000:]
    [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"] is not None])
    assert row["outcome"] == "answered" and row["agent_ext"] == "1001" and 1.0 <= row["talk_s"] < 5
    log = line.wait_until(lambda: line.queue_log()[-1:] in (["COMPLETECALLER"], ["COMPLETEAGENT"]) and line.queue_log())
    assert log.count("CONNECT") == 1 and sum(e.startswith("COMPLETE") for e in log) == 1
    assert {a["ext"]: a for a in line.snapshot()["agents"]}["1001"]["state"] == "wrap_up"
    assert line.process.poll() is None


@pytest.mark.parametrize("media", [True, False], ids=["media anchored", "SDP passed through"])
def test_a_seat_killed_mid_call_sends_its_caller_back_to_the_head_of_the_queue(media, request):
    # With media the caller hears queue music again from the switch and needs nothing new;
    # passed through, the next agent's media reaches the caller by re-INVITE.
    line = request.getfixturevalue("line" if media else "line_without_media")
    line.agent_ready("1001", "1111")
    doomed = line.phone("1001", "1111", "agent_answer.xml")
    caller = line.call("caller.xml" if media else "caller_requeued.xml", pause_ms=12000 if media else 1000)
    line.wait_until(lambda: {a["ext"]: a for a in line.snapshot()["agents"]}["1001"]["state"] == "in_call")
    time.sleep(2.5)          # the switch asks the seat OPTIONS during the call; it answers while alive
    assert "INFO" not in line.queue_log()
    doomed.kill()            # the seat dies: no BYE, no more answers
    doomed.communicate(timeout=5)
    line.agent_ready("1002", "2222")
    taker = line.phone("1002", "2222", "agent_answer.xml")
    code, output = finished(caller)      # talks to the second agent, then hangs up
    assert code == 0, output[-3000:]
    assert finished(taker)[0] == 0
    [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"] is not None])
    assert row["outcome"] == "answered" and row["agent_ext"] == "1002" and row["caller_number"] == CALLER
    calls = [event for event in line.queue_log() if not event.startswith("AGENT")]
    assert calls == ["ENTERQUEUE", "CONNECT", "INFO", "CONNECT", "COMPLETECALLER"]   # INFO|REQUEUE
    agents = {a["ext"]: a for a in line.snapshot()["agents"]}
    assert agents["1001"]["state"] == "idle" and agents["1001"]["reachable"] is False
    assert agents["1001"]["status"] == "available"      # the agent's own word stands; the phone is what went


def test_stopping_the_switch_mid_call_releases_both_phones_and_closes_the_record(line):
    import signal
    line.agent_ready("1001", "1111")
    agent = line.phone("1001", "1111", "agent_answer.xml")          # waits for a BYE
    caller = line.call("caller_until_agent_hangs_up.xml")           # likewise
    line.wait_until(lambda: {a["ext"]: a for a in line.snapshot()["agents"]}["1001"]["state"] == "in_call")
    line.wait_until(line.caller_answered)
    line.process.send_signal(signal.SIGTERM)
    assert line.process.wait(15) == 0
    assert finished(caller)[0] == 0 and finished(agent)[0] == 0    # both got their BYE
    [row] = line.interactions()
    assert row["outcome"] == "interrupted" and row["ended_at"] is not None and row["agent_ext"] == "1001"
    assert row["agent_id"] is not None and row["talk_s"] > 0 and row["wait_s"] is not None
    # the queue_log closes the call too (a tool reading it sees how it ended), and the agent logs off
    events = line.queue_log()
    assert events[events.index("CONNECT"):] == ["CONNECT", "COMPLETEAGENT", "INFO", "AGENTLOGOFF"]
    text = (line.control.parent / "switch.queue_log").read_text()
    assert "|INFO|INTERRUPTED|switch stopped" in text and "|AGENTLOGOFF|switch stopped" in text


def _tone_pcap(path, seconds=1.0, frequency=440):
    """RTP (PCMU, 20 ms packets) of a tone, as a pcap SIPp can play into a call."""
    from telephony.media import g711
    audioop = g711()
    import math
    import struct
    samples = int(8000 * seconds)
    pcm = struct.pack(f"<{samples}h", *(int(8000 * math.sin(2 * math.pi * frequency * i / 8000))
                                         for i in range(samples)))
    ulaw = audioop.lin2ulaw(pcm, 2)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for n in range(samples // 160):
        rtp = struct.pack("!BBHII", 0x80, 0, n, n * 160, 0x4242) + ulaw[n * 160:(n + 1) * 160]
        udp = struct.pack("!HHHH", 6000, 6002, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        t = n * 0.02
        out.append(struct.pack("<IIII", int(t), int((t % 1) * 1e6), len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))


def _speaking_caller(directory, seconds):
    """caller.xml, except that once connected the caller says a 440 Hz tone (a pcap SIPp plays)."""
    tone = directory / "tone.pcap"
    _tone_pcap(tone, seconds=seconds)
    scenario = directory / "caller_speaks.xml"
    scenario.write_text((SCENARIOS / "caller.xml").read_text().replace(
        "  <pause/>", f'  <nop><action><exec play_pcap_audio="{tone}"/></action></nop>\n  <pause/>'))
    return scenario


def _recorded_call(line, *, seconds: float, pause_ms: int) -> dict:
    """A caller who says a 440 Hz tone for `seconds`, answered by 1001: its row, once the
    recording is on it."""
    scenario = _speaking_caller(line.control.parent, seconds=seconds)
    line.agent_ready("1001", "1111")
    agent = line.phone("1001", "1111", "agent_answer.xml")
    caller = subprocess.Popen(
        [SIPP, f"127.0.0.1:{line.port}", "-sf", str(scenario), "-s", "general", "-key", "caller", CALLER,
         "-m", "1", "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mp", str(free_udp_port()), "-d", str(pause_ms),
         "-timeout", "40s", "-nostdin"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    code, output = finished(caller)
    assert code == 0, output[-3000:]
    assert finished(agent)[0] == 0
    [row] = line.wait_until(lambda: [r for r in line.interactions() if r["recording_path"]], timeout=10)
    return row


def test_an_answered_call_is_recorded_through_the_switch(line):
    import wave
    # The caller's phone plays a 440 Hz tone once connected; the switch anchors the audio
    # and records it; the interaction row points at a stereo WAV with the caller on the left.
    row = _recorded_call(line, seconds=1.0, pause_ms=1500)
    assert row["outcome"] == "answered" and row["recording_path"].endswith(f"{row['uid']}.wav")
    with wave.open(row["recording_path"]) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, 8000)
        assert 0.8 <= wav.getnframes() / 8000 <= 3.0
        frames = wav.readframes(wav.getnframes())
    import struct
    left = struct.unpack(f"<{len(frames) // 2}h", frames)[0::2]
    loud = [i for i, v in enumerate(left) if abs(v) > 1000]
    sound = left[loud[0]:loud[-1] + 1]
    crossings = sum(1 for a, b in zip(sound, sound[1:]) if (a < 0) != (b < 0)) / (len(sound) / 8000)
    assert 700 < crossings < 1100     # the caller's 440 Hz


DTMF_PCAP = Path("/usr/share/sip-tester/dtmf_2833_{}.pcap")   # shipped with Debian's sip-tester


def _menu_caller(line, key, pause_ms=1000):
    pcap = Path(str(DTMF_PCAP).format(key))
    assert pcap.exists(), f"{pcap} is missing (Debian's sip-tester ships it)"
    scenario = line.control.parent / f"caller_menu_{key}.xml"
    scenario.write_text((SCENARIOS / "caller_menu.xml").read_text().replace("[dtmf]", str(pcap)))
    return subprocess.Popen(
        [SIPP, f"127.0.0.1:{line.port}", "-sf", str(scenario), "-s", "2000", "-key", "caller", CALLER,
         "-m", "1", "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mp", str(free_udp_port()),
         "-d", str(pause_ms), "-timeout", "40s", "-nostdin"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)


def test_the_voice_menu_sends_the_caller_to_the_queue_of_the_key_they_press(line):
    # 2000 is the menu's number in the shipped config; key 1 is repair, which only 1001 takes.
    line.agent_ready("1002", "2222")            # general only: must not get a repair call
    other = line.phone("1002", "2222", "agent_answer.xml")
    line.agent_ready("1001", "1111")
    agent = line.phone("1001", "1111", "agent_answer.xml")
    code, output = finished(_menu_caller(line, 1))
    assert code == 0, output[-3000:]
    assert finished(agent)[0] == 0
    other.kill()
    [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"] is not None])
    assert row["queue"] == "repair" and row["dialled_number"] == "2000" and row["agent_ext"] == "1001"
    assert row["outcome"] == "answered" and row["resident_id"] == line.resident_id
    assert line.snapshot()["calls"] == {}


def test_a_caller_who_hangs_up_in_the_menu_is_counted_there(line):
    code, output = finished(line.call("caller_cancel.xml", dialled="2000", pause_ms=1500))
    assert code == 0, output[-3000:]
    [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"] is not None])
    assert row["queue"] == "menu" and row["outcome"] == "abandoned" and 1.0 <= row["wait_s"] < 5
    assert "ENTERQUEUE" not in line.queue_log()
    assert line.snapshot()["calls"] == {}   # nothing of the call is kept once it is over


def test_a_caller_nobody_answers_leaves_a_message_that_becomes_a_callback(tmp_path):
    from test_sip_register import start_switch
    config = tmp_path / "switch.yaml"
    config.write_text("queues:\n  general: {max_wait_s: 1, on_max_wait: voicemail}\n")
    port, process, control = start_switch(tmp_path, "--config", str(config))
    try:
        line = _line(port, process, control)
        scenario = _speaking_caller(tmp_path, seconds=1.5)
        caller = subprocess.Popen(
            [SIPP, f"127.0.0.1:{port}", "-sf", str(scenario), "-s", "general", "-key", "caller", CALLER,
             "-m", "1", "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mp", str(free_udp_port()), "-d", "2500",
             "-timeout", "40s", "-nostdin"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        code, output = finished(caller)    # nobody is logged in: after 1 s the switch answers for voicemail
        assert code == 0, output[-3000:]
        [row] = line.wait_until(lambda: [r for r in line.interactions() if r["recording_path"]], timeout=10)
        assert row["outcome"] == "timeout" and row["resident_id"] == line.resident_id   # waited max_wait_s
        assert line.queue_log()[-3:] == ["ENTERQUEUE", "EXITWITHTIMEOUT", "INFO"]   # INFO|VOICEMAIL
        db = connect(line.db_path, migrate=False)
        try:
            [callback] = db.execute("SELECT kind, status, resident_id, interaction_id, number, due_at - created_at "
                                    "FROM callbacks").fetchall()
        finally:
            db.close()
        assert callback == ("voicemail", "pending", line.resident_id, row["id"], CALLER, 86400.0)
        import wave
        with wave.open(row["recording_path"]) as wav:
            assert wav.getnframes() / 8000 >= 1.0     # the message itself is in the recording
    finally:
        process.kill()
        process.wait(5)


def test_a_blind_transfer_moves_the_caller_to_another_agent_with_the_same_interaction_and_form(line):
    # 1001 answers, transfers to 1002 with what they typed; the switch releases 1001's phone,
    # rings 1002 with the same X-Hotline-Interaction, and the form travels in the offer.
    line.agent_ready("1001", "1111")
    ann = line.seats[-1][1]
    first = line.phone("1001", "1111", "agent_answer.xml")
    caller = line.call(pause_ms=6000)
    line.wait_until(lambda: any(a["ext"] == "1001" and a["state"] == "in_call" for a in line.snapshot()["agents"]))
    line.agent_ready("1002", "2222")
    bob = line.seats[-1][1]
    line.request(bob, op="subscribe")
    second = line.phone("1002", "2222", "agent_answer.xml")
    [call_id] = [r["uid"] for r in line.interactions()]
    line.request(ann, op="transfer", call_id=call_id, ext="1002", form={"reason": "billing", "notes": "fee query"})
    assert finished(first)[0] == 0              # the switch hung up the first agent's phone
    offer = json.loads(bob.readline())
    while offer.get("event") != "CallOffered":
        offer = json.loads(bob.readline())
    assert offer["call_id"] == call_id and offer["form"] == {"reason": "billing", "notes": "fee query"}
    code, output = finished(caller)
    assert code == 0, output[-2000:]
    assert finished(second)[0] == 0
    [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"]])
    assert row["outcome"] == "answered" and row["agent_ext"] == "1002" and row["talk_s"] > 5
    assert f"offered  {call_id} queue general" in (line.control.parent / "1002.log").read_text()
    events = line.queue_log()
    assert events.index("BLINDTRANSFER") < len(events) - 1 and events.count("CONNECT") == 2


def _with_trunk(tmp_path):
    """The switch with a trunk: a SIPp gateway on its own port standing for the outside world."""
    from test_sip_register import start_switch

    trunk_port = free_udp_port()
    config = tmp_path / "switch.yaml"
    config.write_text(f"trunk: sip:127.0.0.1:{trunk_port}\n")
    line = _line(*start_switch(tmp_path, "--config", str(config)))
    return line, trunk_port


def _seat_dials(line, number, ext="1001", pin="1111", pause_ms=1500, dial_pin=None):
    """A seat's phone (SIPp) registers with `pin`, then dials `number` from the same address
    and port (as a phone does), answering the switch's challenge with `dial_pin` (default:
    the same PIN)."""
    seat_port = free_udp_port()
    registered = subprocess.run(
        [SIPP, f"127.0.0.1:{line.port}", "-sf", str(SCENARIOS / "register.xml"), "-s", ext, "-au", ext, "-ap", pin,
         "-m", "1", "-i", "127.0.0.1", "-p", str(seat_port), "-timeout", "10s", "-nostdin"],
        capture_output=True, text=True, timeout=30)
    assert registered.returncode == 0, registered.stdout[-2000:]
    return subprocess.Popen(
        [SIPP, f"127.0.0.1:{line.port}", "-sf", str(SCENARIOS / "seat_dials.xml"), "-s", number, "-key", "caller",
         ext, "-au", ext, "-ap", dial_pin or pin, "-m", "1", "-i", "127.0.0.1", "-p", str(seat_port),
         "-mp", str(free_udp_port()), "-d", str(pause_ms), "-timeout", "30s", "-nostdin"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_seat_dials_out_through_the_trunk_and_the_call_is_an_outbound_contact(tmp_path):
    line, trunk_port = _with_trunk(tmp_path)
    try:
        line.agent_ready("1001", "1111")
        trunk = subprocess.Popen(
            [SIPP, "-sf", str(SCENARIOS / "trunk_answers.xml"), "-m", "1", "-i", "127.0.0.1", "-p", str(trunk_port),
             "-mp", str(free_udp_port()), "-aa", "-timeout", "30s", "-nostdin", "-trace_logs", "-log_file",
             str(tmp_path / "trunk.log")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.3)
        seat = _seat_dials(line, CALLER, pause_ms=2000)
        line.wait_until(lambda: any(a["ext"] == "1001" and a["state"] == "in_call" for a in line.snapshot()["agents"]))
        assert line.snapshot()["calls"] == {"outbound": 1}
        code, output = finished(seat)
        assert code == 0, output[-3000:]
        assert finished(trunk)[0] == 0
        assert f"dialled {CALLER}" in (tmp_path / "trunk.log").read_text()
        [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"]])
        assert (row["direction"], row["outcome"], row["agent_ext"], row["caller_number"]) == \
            ("outbound", "answered", "1001", CALLER)
        assert row["resident_id"] == line.resident_id and 1.5 < row["talk_s"] < 5
        snapshot = line.snapshot()
        agents = {a["ext"]: a for a in snapshot["agents"]}
        assert agents["1001"]["state"] == "wrap_up"      # a talked callback: time to write it down
        assert snapshot["calls"] == {}
    finally:
        line.process.kill()
        line.process.wait(5)


def test_a_seat_must_prove_itself_and_nobody_answering_is_a_no_answer_contact(tmp_path):
    line, trunk_port = _with_trunk(tmp_path)
    try:
        line.agent_ready("1001", "1111")
        code, output = finished(_seat_dials(line, CALLER, dial_pin="0000"))
        assert code != 0 and "403" in output                 # a wrong PIN: nothing dialled
        trunk = subprocess.Popen(
            [SIPP, "-sf", str(SCENARIOS / "agent_busy.xml").replace("agent_busy", "trunk_busy"), "-m", "1",
             "-i", "127.0.0.1", "-p", str(trunk_port), "-timeout", "30s", "-nostdin"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.3)
        code, output = finished(_seat_dials(line, CALLER))
        assert code != 0 and "480" in output                 # the far end was busy: the seat hears it
        assert finished(trunk)[0] == 0
        rows = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"]][1:])
        rows = [r for r in line.interactions() if r["ended_at"]]
        # the refused attempt is a contact too: who, when, and why it went nowhere
        assert [(r["direction"], r["outcome"], r["sip_cause"], r["agent_ext"]) for r in rows] == [
            ("outbound", "failed", "403 Forbidden", "1001"), ("outbound", "no_answer", "", "1001")]
        assert rows[0]["agent_id"] is not None and rows[0]["entered_at"] == rows[0]["ended_at"]
        line.wait_until(lambda: {a["ext"]: a for a in line.snapshot()["agents"]}["1001"]["state"] == "idle")
        assert line.snapshot()["calls"] == {}
    finally:
        line.process.kill()
        line.process.wait(5)


def test_without_a_trunk_a_seat_dialling_out_hears_why(line):
    code, output = finished(_seat_dials(line, CALLER))
    assert code != 0 and "503" in output
    assert "no trunk is configured" in (line.control.parent / "switch.log").read_text()
    [row] = line.wait_until(lambda: line.interactions())
    assert (row["outcome"], row["sip_cause"], row["caller_number"]) == ("failed", "503 No Trunk Configured", CALLER)
    assert line.snapshot()["calls_refused"] == {"503 No Trunk Configured": 1}


def test_a_caller_whose_number_is_a_registered_extension_on_the_same_host_is_a_caller(line):
    """Only an INVITE from where the seat registered (address and port) is the seat dialling
    out; the same number from another port of the same host is an ordinary caller (in a
    loopback soak, 400 of 47,829 such callers were once challenged and vanished)."""
    line.agent_ready("1002", "2222")
    agent = line.phone("1002", "2222", "agent_answer.xml")
    registered = subprocess.run(
        [SIPP, f"127.0.0.1:{line.port}", "-sf", str(SCENARIOS / "register.xml"), "-s", "1001", "-au", "1001",
         "-ap", "1111", "-m", "1", "-i", "127.0.0.1", "-p", str(free_udp_port()), "-timeout", "10s", "-nostdin"],
        capture_output=True, text=True, timeout=30)
    assert registered.returncode == 0
    code, output = finished(line.call(caller="1001"))
    assert code == 0, output[-2000:]
    assert finished(agent)[0] == 0
    [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"]])
    assert (row["direction"], row["caller_number"], row["outcome"], row["agent_ext"]) == \
        ("inbound", "1001", "answered", "1002")


def test_a_transfer_to_an_outside_number_goes_out_the_trunk_and_back_to_the_queue_if_nobody_answers(tmp_path):
    line, trunk_port = _with_trunk(tmp_path)
    try:
        line.agent_ready("1001", "1111")
        ann = line.seats[-1][1]
        agent = line.phone("1001", "1111", "agent_answer.xml", calls=2)
        # first: the outside number is busy -> the caller is back in the queue and 1001 (after
        # its wrap-up) gets them again; second: the manager's mobile answers.
        busy = subprocess.Popen([SIPP, "-sf", str(SCENARIOS / "trunk_busy.xml"), "-m", "1", "-i", "127.0.0.1",
                                 "-p", str(trunk_port), "-timeout", "30s", "-nostdin"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        caller = line.call(pause_ms=9000)
        in_call = lambda: any(a["ext"] == "1001" and a["state"] == "in_call" for a in line.snapshot()["agents"])  # noqa: E731
        line.wait_until(in_call)
        [call_id] = [r["uid"] for r in line.interactions()]
        bad = json.dumps({"id": 2, "op": "transfer", "call_id": call_id, "number": "12"}) + "\n"
        ann.write(bad)
        ann.flush()
        assert json.loads(ann.readline())["error"]["code"] == "bad_request"
        line.request(ann, op="transfer", call_id=call_id, number="+852 9000 0001")
        assert finished(busy)[0] == 0
        line.request(ann, op="end_wrap_up")
        line.wait_until(in_call)                       # queued again, and answered by 1001
        assert line.snapshot()["calls"] == {"routed": 1}
        trunk = subprocess.Popen(
            [SIPP, "-sf", str(SCENARIOS / "trunk_answers.xml"), "-m", "1", "-i", "127.0.0.1", "-p", str(trunk_port),
             "-mp", str(free_udp_port()), "-aa", "-timeout", "30s", "-nostdin", "-trace_logs", "-log_file",
             str(tmp_path / "trunk.log")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.3)
        line.request(ann, op="transfer", call_id=call_id, number="+85290000002")
        line.wait_until(lambda: line.snapshot()["calls"] == {"outside": 1})
        code, output = finished(caller)
        assert code == 0, output[-2000:]
        assert finished(trunk)[0] == 0 and finished(agent)[0] == 0
        assert "dialled +85290000002" in (tmp_path / "trunk.log").read_text()
        [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"]])
        assert row["outcome"] == "answered" and row["agent_ext"] == "1001" and row["talk_s"] > 3
        assert line.queue_log().count("BLINDTRANSFER") == 2
        assert line.snapshot()["calls"] == {}
        db = connect(line.db_path, migrate=False)
        try:
            said = [json.loads(body) for (body,) in db.execute(
                "SELECT body FROM events WHERE call_id = ? AND event LIKE 'Outside%' ORDER BY seq", [call_id])]
        finally:
            db.close()
        # the outside leg's story is in the event log, as every other leg's
        assert [(e["event"], e["number"]) for e in said] == [("OutsideNotAnswered", "+85290000001"),
                                                             ("OutsideAnswered", "+85290000002"),
                                                             ("OutsideEnded", "+85290000002")]
        assert said[2]["outcome"] == "answered" and said[2]["talk_s"] > 3
        # and each try in the records: the busy one sent the caller back, the second talked
        db = connect(line.db_path, migrate=False)
        try:
            tries = db.execute("SELECT agent_ext, number, answered_at IS NOT NULL, outcome, talk_s, ended_at >= asked_at "
                               "FROM outside_transfers ORDER BY id").fetchall()
        finally:
            db.close()
        assert [t[:4] for t in tries] == [("1001", "+85290000001", 0, "not_answered"),
                                          ("1001", "+85290000002", 1, "answered")]
        assert tries[0][4] == 0 and tries[1][4] > 3 and all(t[5] for t in tries)
    finally:
        line.process.kill()
        line.process.wait(5)


class RtpListener:
    """A caller's ear: every RTP payload that reaches a UDP port, with its arrival time."""

    def __init__(self):
        import threading
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.packets = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            try:
                data, _ = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            if len(data) > 12 and data[0] >> 6 == 2 and data[1] & 0x7F == 0:   # PCMU
                self.packets.append((time.monotonic(), data[12:]))

    def stop(self):
        self._stop = True
        self._thread.join(2)
        self.sock.close()


def _heard(packets, sounds: dict) -> list[str]:
    """What the caller heard, in order, as runs of names: each payload is found in one of
    `sounds` (name -> the G.711 bytes it is cut from) or is 'other'."""
    runs = []
    for _, payload in packets:
        name = next((n for n, audio in sounds.items() if payload in audio), "other")
        if not runs or runs[-1] != name:
            runs.append(name)
    return runs


def test_the_agent_holds_the_caller_hears_hold_music_then_the_agent_again(line):
    """Hold through the switch: the agent's phone re-INVITEs with a=sendonly and gets
    a=recvonly back, the caller hears the switch's hold music instead of the agent, and
    the agent's voice again after a=sendrecv; the hold time is on the row, apart from talk."""
    from telephony.media import g711
    directory = line.control.parent
    tone = directory / "tone.pcap"
    _tone_pcap(tone, seconds=1.0, frequency=1000)
    ear = RtpListener()
    try:
        line.agent_ready("1001", "1111")
        agent = line.phone("1001", "1111", "agent_holds.xml", pause_ms=2500, keys=("-key", "tone", str(tone)))
        caller = line.call("caller_media_at.xml", keys=("-key", "rtp_port", str(ear.port)))
        code, output = finished(agent)
        assert code == 0, output[-3000:]
        assert finished(caller)[0] == 0
        [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"]])
    finally:
        ear.stop()
    assert row["outcome"] == "answered" and 2.0 <= row["hold_s"] <= 4.0
    assert 2.0 <= row["talk_s"] <= 5.0     # talk alone: 1.5 s before the hold and 1.5 s after
    import math
    import struct
    samples = 8000
    pcm = struct.pack(f"<{samples}h", *(int(8000 * math.sin(2 * math.pi * 1000 * i / 8000)) for i in range(samples)))
    sounds = {"agent": g711().lin2ulaw(pcm, 2), "hold music": (directory / "switch.media" / "sounds" / "hold-music.0").read_bytes()}
    # runs of what was heard, a packet that is neither sound left out (one that spans the
    # agent's tone looping again is 'other': a CI run heard agent, other, agent, ...)
    heard: list[str] = []
    for name in _heard(ear.packets, sounds):
        if name != "other" and (not heard or heard[-1] != name):
            heard.append(name)
    assert heard == ["agent", "hold music", "agent"], _heard(ear.packets, sounds)
    states = [r[0] for r in connect(line.db_path).execute(
        "SELECT state FROM agent_states WHERE ext = '1001' ORDER BY id")]
    assert "on_hold" in states and states[states.index("on_hold") + 1] == "in_call"


def test_without_media_a_hold_is_relayed_to_the_caller_and_its_answer_back(line_without_media):
    line = line_without_media
    tone = line.control.parent / "tone.pcap"
    _tone_pcap(tone, seconds=0.2)
    line.agent_ready("1001", "1111")
    agent = line.phone("1001", "1111", "agent_holds.xml", pause_ms=1500, keys=("-key", "tone", str(tone)))
    caller = line.call("caller_answers_reinvites.xml")
    code, output = finished(agent)
    assert code == 0, output[-3000:]
    code, output = finished(caller)
    assert code == 0, output[-3000:]
    [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"]])
    assert row["outcome"] == "answered" and 1.0 <= row["hold_s"] <= 3.0


def test_what_the_switch_writes_is_private_to_its_owner_and_group(line):
    """Residents' names and numbers, PIN digests, recordings, the queue_log and the logs:
    nothing the switch writes is readable by other users of the machine (the database the
    test made with an ordinary umask included: the switch tightens it at start)."""
    import stat
    row = _recorded_call(line, seconds=0.5, pause_ms=1000)
    written = [line.db_path, Path(f"{line.db_path}-wal"), line.control.parent / "switch.queue_log",
               Path(row["recording_path"]), *(line.control.parent / "switch.media").rglob("*")]
    for path in written:
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) & 0o007 == 0, f"{path} is readable by others"
    assert stat.S_IMODE(line.control.stat().st_mode) == 0o660   # the socket: owner and group


class DeskSeat:
    """An agent's control connection as a seat with a desk phone uses it: logged in,
    subscribed, its events kept apart from the replies."""

    def __init__(self, line, ext, pin):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(str(line.control))
        self.sock.settimeout(15)
        # a reader and a writer apart: writing to one text file made with "rw" drops the
        # lines it had read ahead (events that came with the last reply)
        self.reader, self.writer = self.sock.makefile("r"), self.sock.makefile("w")
        self.events = []
        self.ask(op="login", ext=ext, pin=pin)
        self.ask(op="subscribe")

    def ask(self, **request):
        self.writer.write(json.dumps({"id": 7, **request}) + "\n")
        self.writer.flush()
        while True:
            message = json.loads(self.reader.readline())
            if "event" in message:
                self.events.append(message)
            elif message.get("id") == 7:
                return message

    def named(self, name):
        self.ask(op="ping")   # whatever the switch sent before the pong has been read
        return [e for e in self.events if e["event"] == name]

    def close(self):
        self.sock.close()


def test_a_desk_phone_agent_holds_and_hangs_up_from_the_seat_through_the_switch(line):
    # The phone (SIPp) only answers; hold and hang-up come over the control API, as from
    # `hotline agent --phone external`: the caller hears the switch's hold music, the
    # hold time is on the row, and both phones are released with one record.
    seat = DeskSeat(line, "1001", "1111")
    try:
        agent = line.phone("1001", "1111", "agent_answer.xml")
        registered = line.wait_until(lambda: seat.named("PhoneRegistration"))
        assert registered[-1]["registered"] is True and registered[-1]["agent_id"] == "1001"
        assert seat.ask(op="status", status="available")["ok"]
        caller = line.call("caller_until_agent_hangs_up.xml")
        [offer] = line.wait_until(lambda: seat.named("CallOffered"))
        call_id = offer["call_id"]
        line.wait_until(lambda: seat.named("CallConnected"))
        refused = seat.ask(op="hold", call_id=call_id, held="yes")
        assert not refused["ok"] and refused["error"]["code"] == "bad_request"
        assert seat.ask(op="hold", call_id=call_id, held=True)["ok"]
        line.wait_until(lambda: [e for e in seat.named("AgentStateChanged") if e["state"] == "on_hold"])
        time.sleep(1.2)
        assert seat.ask(op="hold", call_id=call_id, held=False)["ok"]
        line.wait_until(lambda: [e for e in seat.named("AgentStateChanged") if e["state"] == "in_call"])
        assert seat.ask(op="hang_up", call_id=call_id)["ok"]
        code, output = finished(caller)
        assert code == 0, output[-3000:]   # the caller got the BYE
        code, output = finished(agent)
        assert code == 0, output[-3000:]   # and so did the desk phone
        [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"]])
        assert row["outcome"] == "answered" and row["agent_ext"] == "1001" and 1.0 <= row["hold_s"] <= 3.0
        assert line.wait_until(lambda: line.queue_log()[-1:] == ["COMPLETEAGENT"])
        again = seat.ask(op="hang_up", call_id=call_id)
        assert not again["ok"] and again["error"]["code"] == "conflict"   # over: nothing to hang up
    finally:
        seat.close()


def test_a_desk_phone_agent_declines_a_ringing_call_from_the_seat(line):
    seat = DeskSeat(line, "1001", "1111")
    try:
        silent = line.phone("1001", "1111", "agent_no_answer.xml")
        line.wait_until(lambda: seat.named("PhoneRegistration"))
        seat.ask(op="status", status="available")
        caller = line.call("caller_cancel.xml", pause_ms=6000)
        [offer] = line.wait_until(lambda: seat.named("CallOffered"))
        other = seat.ask(op="hang_up", call_id="no-such-call")
        assert not other["ok"] and other["error"]["code"] == "conflict"
        assert seat.ask(op="hang_up", call_id=offer["call_id"])["ok"]
        [rona] = line.wait_until(lambda: seat.named("RingNoAnswer"))
        assert rona["call_id"] == offer["call_id"] and rona["agent_id"] == "1001"
        assert line.wait_until(lambda: "RINGNOANSWER" in line.queue_log())
        # a decline is not a missed call: the agent stays available, not put on break
        assert {a["ext"]: a for a in line.snapshot()["agents"]}["1001"]["status"] == "available"
        assert finished(silent)[0] == 0   # its INVITE was CANCELled
        finished(caller)
    finally:
        seat.close()


def test_a_call_whose_offer_the_proxy_never_answers_still_rings_and_connects(tmp_path):
    # The media engine answers (the probe) but drops one call's reply: that call's rings
    # would wait for it for ever; after media_stall_s its phones talk directly instead.
    from test_sip_register import start_switch

    (tmp_path / "offer.yaml").write_text("sip:\n  media_stall_s: 2\n")
    prelude = ("import telephony.media as media\n"
               "real = media.MediaSession.caller_offer\n"
               "def lost_reply(self, body, done):\n"
               "    real(self, body, lambda rewritten: None)   # the proxy's answer never reaches the call\n"
               "media.MediaSession.caller_offer = lost_reply\n")
    port, process, control = start_switch(tmp_path, "--config", str(tmp_path / "offer.yaml"), prelude=prelude)
    try:
        line = _line(port, process, control)
        line.agent_ready("1001", "1111")
        agent = line.phone("1001", "1111", "agent_answer.xml")
        line.wait_until(lambda: {a["ext"]: a for a in line.snapshot()["agents"]}["1001"]["registered"])
        code, output = finished(line.call())
        assert code == 0, output[-3000:]
        code, output = finished(agent)
        assert code == 0, output[-3000:]
        [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"] is not None])
        assert row["outcome"] == "answered" and row["agent_ext"] == "1001" and row["wait_s"] < 5
        log = (tmp_path / "switch.log").read_text()
        assert "the proxy has not answered the offer of" in log and "Traceback" not in log
        assert process.poll() is None   # the probe is answered: the switch stays up
    finally:
        process.kill()
        process.wait(5)
