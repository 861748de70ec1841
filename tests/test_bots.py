"""`hotline bots`: bot agents in processes of their own, answering the real switch.

A bot killed mid-call (SIGKILL: no BYE, no logout) leaves its caller at the head of the
queue, answered by the next bot; a bot that stops answering is put on a break by the
switch after max_no_answer ring-outs. Callers are SIPp."""
import os
import signal
import sqlite3
import subprocess
import sys
import time

from test_sip_calls import CALLER, finished, line  # noqa: F401
from test_sip_register import start_switch, switch  # noqa: F401

SCENARIO = """
name: bots under test
calls: 1
arrivals: {rate_per_hour: 60}
handle_time: {dist: fixed, mean_s: 600}
patience: {dist: exponential, mean_s: 60}
agents: {count: 1}
routing: {ring_time_s: 0.5}
"""


def bots(tmp_path, port, control, db_path, ext, pin, *extra):
    pins = tmp_path / f"pins-{ext}"
    pins.write_text(f"{ext}:{pin}\n")
    scenario = tmp_path / "bots.yaml"
    scenario.write_text(SCENARIO)
    log = open(tmp_path / f"bots-{ext}.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "console", "--db", str(db_path), "bots", "--pins", str(pins),
                                "--scenario", str(scenario), "--registrar", f"sip:127.0.0.1:{port}", "--control",
                                str(control), *extra], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while "agents logged in" not in (tmp_path / f"bots-{ext}.log").read_text():
        assert process.poll() is None and time.monotonic() < deadline, (tmp_path / f"bots-{ext}.log").read_text()
        time.sleep(0.1)
    return process


def events(db_path, call_id=None):
    db = sqlite3.connect(db_path)
    try:
        rows = db.execute("SELECT event, call_id, agent_ext, body FROM events ORDER BY seq").fetchall()
    finally:
        db.close()
    return [r for r in rows if call_id is None or r[1] == call_id]


def wait_for(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_a_bot_killed_mid_call_leaves_its_caller_to_the_next(line, tmp_path):  # noqa: F811
    first = bots(tmp_path, line.port, line.control, line.db_path, "1001", "1111")
    line.wait_until(lambda: {a["ext"]: a for a in line.snapshot()["agents"]}["1001"]["registered"])
    caller = line.call("caller.xml", pause_ms=8000)
    connected = wait_for(lambda: [e for e in events(line.db_path) if e[0] == "CallConnected"])
    call_id = connected[0][1]
    assert connected[0][2] == "1001"
    os.kill(first.pid, signal.SIGKILL)
    first.wait(5)
    second = bots(tmp_path, line.port, line.control, line.db_path, "1002", "2222")
    try:
        wait_for(lambda: [e for e in events(line.db_path, call_id) if e[0] == "CallConnected" and e[2] == "1002"])
        code, output = finished(caller)
        assert code == 0, output[-3000:]
        # the caller's phone is done when the switch answers its BYE; the event row follows
        wait_for(lambda: [e for e in events(line.db_path, call_id) if e[0] == "CallCompleted"])
        kinds = [(e[0], e[2]) for e in events(line.db_path, call_id)
                 if e[0] in ("CallQueued", "CallConnected", "CallRequeued", "CallCompleted")]
        assert kinds[:4] == [("CallQueued", ""), ("CallConnected", "1001"), ("CallRequeued", "1001"),
                             ("CallQueued", "")] or kinds[:3] == [("CallQueued", ""), ("CallConnected", "1001"),
                                                                  ("CallRequeued", "1001")]
        assert ("CallConnected", "1002") in kinds and kinds[-1] == ("CallCompleted", "1002")
        [row] = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"] is not None])
        assert row["outcome"] == "answered" and row["agent_ext"] == "1002" and row["caller_number"] == CALLER
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(15) == 0
    assert "stopped after 1 calls answered" in (tmp_path / "bots-1002.log").read_text()


def test_a_bot_that_stops_answering_is_put_on_a_break(tmp_path):
    config = tmp_path / "switch.yaml"
    config.write_text("queues:\n  general: {ring_timeout_s: 1, max_no_answer: 2}\n")
    port, process, control = start_switch(tmp_path, "--config", str(config))
    db_path = tmp_path / "switch.db"
    silent = bots(tmp_path, port, control, db_path, "1002", "2222", "--no-answer", "1002")
    try:
        from test_sip_calls import Line
        line = Line(port, process, control, None)
        line.wait_until(lambda: {a["ext"]: a for a in line.snapshot()["agents"]}["1002"]["registered"])
        # (a caller is not offered again to the agent who let it ring out: two callers)
        callers = [line.call("caller_cancel.xml", pause_ms=6000, caller=f"+8529123400{n}") for n in (1, 2)]
        try:
            wait_for(lambda: [e for e in events(db_path) if e[0] == "AgentStatusChanged" and e[2] == "1002"
                              and '"on_break"' in e[3]])
        except AssertionError:
            # (a CI run once saw two ring-outs and no break: the ring-outs' bodies say whether
            # each counted, and the status changes what reset the count)
            raise AssertionError([e[:3] if e[0] not in ("RingNoAnswer", "AgentStatusChanged") else e
                                  for e in events(db_path)])
        rang_out = [e for e in events(db_path) if e[0] == "RingNoAnswer" and e[2] == "1002"]
        assert len(rang_out) == 2
        assert {a["ext"]: a for a in line.snapshot()["agents"]}["1002"]["status"] == "on_break"
        for caller in callers:
            finished(caller)
    finally:
        silent.send_signal(signal.SIGTERM)
        silent.wait(15)
        process.kill()
        process.wait(5)


def test_bots_that_cannot_start_say_why(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "console", "--db", str(tmp_path / "none.db"), "bots",
                                     *a], capture_output=True, text=True, timeout=30)
    result = run("--pins", str(tmp_path / "missing"))
    assert result.returncode == 2 and "does not exist" in result.stderr
    (tmp_path / "pins").write_text("7001:1234\n")
    result = run("--pins", str(tmp_path / "pins"), "--agents", "3")
    assert result.returncode == 2 and "only 1 agent extensions" in result.stderr
    result = run("--pins", str(tmp_path / "pins"), "--agents", "1", "--no-answer", "7777")
    assert result.returncode == 2 and "not one of the bots" in result.stderr
    result = run("--pins", str(tmp_path / "pins"), "--agents", "1", "--control", str(tmp_path / "nobody.sock"))
    assert result.returncode == 2 and "no switch is running" in result.stderr
