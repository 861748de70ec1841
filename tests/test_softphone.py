"""The seat's pjsua2 softphone against the real switch: it registers with digest, a SIPp
resident's call pops with the X-Hotline headers, the seat answers, the call is recorded
as answered by it. The softphone runs in this process with its own pump thread, as in
the seat; events come out of on_event exactly as the seat will receive them."""
import queue
import time

import pytest


from test_sip_calls import CALLER, _line, finished  # noqa: F401
from test_sip_register import SCENARIOS, SIPP, free_udp_port, start_switch  # noqa: F401

from telephony.softphone import (CallState, IncomingCall, PhoneError, Registration, Softphone, caller_of,
                                 parse_headers)


def test_headers_and_caller_are_read_from_the_invite():
    message = ("INVITE sip:1001@127.0.0.1:5072 SIP/2.0\r\nFrom: <sip:+85291234567@127.0.0.1>;tag=1\r\n"
               "x-hotline-queue: repair\r\nX-Hotline-Interaction: 17.3\r\nX-Hotline-Wait: 12\r\n\r\nv=0\r\n")
    assert parse_headers(message) == {"X-Hotline-Queue": "repair", "X-Hotline-Interaction": "17.3",
                                      "X-Hotline-Wait": "12"}
    assert caller_of('"Chan Tai Man" <sip:+85291234567@10.0.0.1:5060>') == ("+85291234567", "Chan Tai Man")
    assert caller_of("<sip:2001@pbx.example>") == ("2001", "")


def next_event(events, kind, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            event = events.get(timeout=0.2)
        except queue.Empty:
            continue
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__} within {timeout} s")


def test_the_seat_phone_registers_rings_with_caller_data_answers_and_hangs_up(tmp_path):
    port, process, control = start_switch(tmp_path)
    line = _line(port, process, control)
    events: queue.Queue = queue.Queue()
    phone = Softphone("1001", "1111", f"127.0.0.1:{port}", events.put)
    try:
        phone.start()
        registration = next_event(events, Registration)
        assert registration.ok and registration.code == 200
        line.agent_ready("1001", "1111")
        caller = line.call("caller_until_agent_hangs_up.xml")
        incoming = next_event(events, IncomingCall)
        assert incoming.number == CALLER
        assert incoming.display == "Chan Tai Man"   # the switch's caller ID name, from records
        assert incoming.headers["X-Hotline-Queue"] == "general"
        assert incoming.headers["X-Hotline-Resident"] == str(line.resident_id)
        assert int(incoming.headers["X-Hotline-Wait"]) >= 0 and incoming.headers["X-Hotline-Interaction"]
        phone.answer(incoming.call)
        while next_event(events, CallState).state != "connected":
            pass
        time.sleep(1.0)
        phone.hang_up(incoming.call)
        while next_event(events, CallState).state != "ended":
            pass
        code, output = finished(caller)
        assert code == 0, output[-3000:]
        [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"] is not None])
        assert row["outcome"] == "answered" and row["agent_ext"] == "1001"
        assert row["uid"] == incoming.headers["X-Hotline-Interaction"] and 0.5 <= row["talk_s"] < 5
        assert line.queue_log()[-1] == "COMPLETEAGENT"
    finally:
        phone.stop()
        process.kill()
        process.wait(5)
    assert not phone._calls and phone._ep is None    # every pjsua2 object released, library destroyed


def test_pjsip_prints_nothing_on_the_terminal_and_logs_to_ours():
    # The seat draws on this terminal: pjlib's start-up banner (printed before libInit can
    # lower the level) and pjsip's warnings must not land on it; they go to our log.
    import subprocess
    import sys

    script = ("import logging, sys, time\n"
              "logging.basicConfig(stream=sys.stderr, level=logging.INFO)\n"
              "from telephony.softphone import Softphone\n"
              "phone = Softphone('1001', '1111', 'sip:127.0.0.1:9', lambda event: None)\n"
              "phone.start(); time.sleep(0.5); phone.stop()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "hotline.pjsip" in done.stderr and "pjsua version" in done.stderr


def test_the_seat_phone_dials_out_authenticates_and_mutes_through_the_switch_and_its_trunk(tmp_path):
    # pjsua2 answers the switch's 407 with the seat's PIN by itself; the trunk (SIPp) gets
    # the number; mute on a live call is accepted; the contact is an outbound row.
    import subprocess

    from test_sip_calls import _with_trunk
    from test_sip_register import SCENARIOS, SIPP

    line, trunk_port = _with_trunk(tmp_path)
    trunk = subprocess.Popen(
        [SIPP, "-sf", str(SCENARIOS / "trunk_answers.xml"), "-m", "1", "-i", "127.0.0.1", "-p", str(trunk_port),
         "-mp", str(free_udp_port()), "-aa", "-timeout", "30s", "-nostdin", "-trace_logs", "-log_file",
         str(tmp_path / "trunk.log")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    events: queue.Queue = queue.Queue()
    phone = Softphone("1001", "1111", f"127.0.0.1:{line.port}", events.put)
    try:
        phone.start()
        assert next_event(events, Registration).ok
        line.agent_ready("1001", "1111")
        key = phone.dial(CALLER)
        state = next_event(events, CallState)
        while state.state != "connected":
            assert state.state != "ended", state
            state = next_event(events, CallState)
        assert state.call == key
        phone.mute(key, True)
        time.sleep(0.5)
        phone.mute(key, False)
        phone.hang_up(key)
        while next_event(events, CallState).state != "ended":
            pass
        assert finished(trunk)[0] == 0
        assert f"dialled {CALLER}" in (tmp_path / "trunk.log").read_text()
        [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"] is not None])
        assert (row["direction"], row["outcome"], row["agent_ext"]) == ("outbound", "answered", "1001")
        errors = []
        while not events.empty():
            event = events.get()
            if isinstance(event, PhoneError):
                errors.append(event)
        assert errors == []
    finally:
        phone.stop()
        line.process.kill()
        line.process.wait(5)
        if trunk.poll() is None:
            trunk.kill()


@pytest.mark.parametrize("user, password, ok", [("alice", "s3cret", True), ("alice", "wrong", False)])
def test_the_seat_phone_registers_with_an_ordinary_pbx_under_its_own_account(tmp_path, user, password, ok):
    # Behind another PBX the SIP account is not the extension and PIN: the PBX's registrar
    # (SIPp) checks the digest of "alice" in realm "pbx" itself.
    import subprocess

    from test_sip_register import SCENARIOS, SIPP

    port = free_udp_port()
    registrar = subprocess.Popen(
        [SIPP, "-sf", str(SCENARIOS / "pbx_registrar.xml"), "-m", "1", "-i", "127.0.0.1", "-p", str(port),
         "-timeout", "20s", "-nostdin", "-trace_logs", "-log_file", str(tmp_path / "pbx.log")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.3)
    events: queue.Queue = queue.Queue()
    phone = Softphone("1001", password, f"sip:127.0.0.1:{port}", events.put, sip_user=user)
    try:
        phone.start()
        registration = next_event(events, Registration)
        assert (registration.ok, registration.code) == ((True, 200) if ok else (False, 403))
    finally:
        phone.stop()
        registrar.kill()
        registrar.wait(5)
    assert "REGISTER from alice" in (tmp_path / "pbx.log").read_text()


def _hold_and_unhold(phone, events, call, seconds=1.5):
    from telephony.softphone import CallHeld
    phone.hold(call, True)
    assert next_event(events, CallHeld) == CallHeld(call, True)     # the switch answered the re-INVITE
    time.sleep(seconds)
    phone.hold(call, False)
    assert next_event(events, CallHeld) == CallHeld(call, False)


def test_the_seat_phone_holds_and_unholds_an_inbound_call_through_the_switch(tmp_path):
    port, process, control = start_switch(tmp_path)
    line = _line(port, process, control)
    events: queue.Queue = queue.Queue()
    phone = Softphone("1001", "1111", f"127.0.0.1:{port}", events.put)
    try:
        phone.start()
        assert next_event(events, Registration).ok
        line.agent_ready("1001", "1111")
        caller = line.call("caller_until_agent_hangs_up.xml")
        incoming = next_event(events, IncomingCall)
        phone.answer(incoming.call)
        while next_event(events, CallState).state != "connected":
            pass
        _hold_and_unhold(phone, events, incoming.call)
        _hold_and_unhold(phone, events, incoming.call, seconds=0.5)    # and a second time
        time.sleep(0.5)
        phone.hang_up(incoming.call)
        while next_event(events, CallState).state != "ended":
            pass
        assert finished(caller)[0] == 0
        [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"] is not None])
        assert row["outcome"] == "answered" and 1.8 <= row["hold_s"] <= 4 and row["talk_s"] < 2
    finally:
        phone.stop()
        process.kill()
        process.wait(5)


def test_the_seat_phone_holds_an_outbound_call_too(tmp_path):
    import subprocess

    from test_sip_calls import _with_trunk

    line, trunk_port = _with_trunk(tmp_path)
    trunk = subprocess.Popen(
        [SIPP, "-sf", str(SCENARIOS / "trunk_answers.xml"), "-m", "1", "-i", "127.0.0.1", "-p", str(trunk_port),
         "-mp", str(free_udp_port()), "-aa", "-d", "6000", "-timeout", "30s", "-nostdin"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    events: queue.Queue = queue.Queue()
    phone = Softphone("1001", "1111", f"127.0.0.1:{line.port}", events.put)
    try:
        phone.start()
        assert next_event(events, Registration).ok
        line.agent_ready("1001", "1111")
        key = phone.dial(CALLER)
        while next_event(events, CallState).state != "connected":
            pass
        _hold_and_unhold(phone, events, key)
        agents = {a["ext"]: a for a in line.snapshot()["agents"]}
        assert agents["1001"]["state"] == "in_call"
        phone.hang_up(key)
        while next_event(events, CallState).state != "ended":
            pass
        [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"] is not None])
        assert (row["direction"], row["outcome"]) == ("outbound", "answered") and 1.3 <= row["hold_s"] <= 3
    finally:
        phone.stop()
        line.process.kill()
        line.process.wait(5)
        if trunk.poll() is None:
            trunk.kill()


def test_the_seat_phone_registers_again_at_once_with_a_restarted_switch(tmp_path):
    """A restarted switch has no bindings: the seat asks its phone to REGISTER now (found
    by a new user: the seat rang nothing for 2.5 min after a switch restart, until its
    refresh), and the new switch has the phone registered within seconds."""
    import subprocess
    import sys

    port, process, control = start_switch(tmp_path)
    events: queue.Queue = queue.Queue()
    phone = Softphone("1001", "1111", f"127.0.0.1:{port}", events.put)
    try:
        phone.start()
        assert next_event(events, Registration).ok
        process.kill()                                     # kill -9: the bindings die with it
        process.wait(5)
        log_path = tmp_path / "restarted.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen([sys.executable, "-m", "console", "--db", str(tmp_path / "switch.db"),
                                        "switch", "--sip", f"127.0.0.1:{port}", "--control", str(control)],
                                       stdout=log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 15
        while "hotline switch: SIP on" not in log_path.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        assert "SIP: 1001 registered" not in log_path.read_text()
        phone.register_again()
        deadline = time.monotonic() + 5
        while "SIP: 1001 registered" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()[-2000:]
            time.sleep(0.1)
    finally:
        phone.stop()
        process.kill()
        process.wait(5)
