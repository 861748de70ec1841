"""Media on nodes of their own: two `hotline media-node` processes (RTPproxy) on loopback,
a switch whose config lists both, SIPp callers and agent phones. One node is killed
mid-call: its calls end for both phones and are recorded as interrupted, with the cause;
the other node's call goes on; new calls go to the node that answers; the killed node,
started again, takes calls again.
"""
import json
import signal
import subprocess
import sys
import time

import pytest

from records.agents import add_agent
from records.db import connect
from scenarios.live import free_tcp_port
from test_sip_calls import Line, finished
from test_sip_register import SIPP, free_udp_port, start_switch

pytestmark = pytest.mark.skipif(SIPP is None, reason="needs sipp (Debian: sip-tester)")


def media_node(tmp_path, control, notify, name):
    log = open(tmp_path / f"{name}.log", "a")
    process = subprocess.Popen([sys.executable, "-m", "console", "media-node", "--control", control,
                                "--notify", notify, "--dir", str(tmp_path / "switch.media")],
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while "hotline media-node: RTPproxy on" not in (tmp_path / f"{name}.log").read_text():
        assert process.poll() is None and time.monotonic() < deadline, (tmp_path / f"{name}.log").read_text()
        time.sleep(0.05)
    return process


@pytest.fixture
def nodes(tmp_path):
    notify = f"tcp:127.0.0.1:{free_tcp_port()}"
    controls = [f"udp:127.0.0.1:{free_udp_port()}" for _ in range(2)]
    processes = {control: media_node(tmp_path, control, notify, f"node{n}") for n, control in enumerate(controls)}
    db = connect(tmp_path / "switch.db", create=True)
    for ext, pin in (("1003", "3333"), ("1004", "4444")):
        add_agent(db, ext=ext, name=f"Agent {ext}", pin=pin, skills={"general": 3})
    db.close()
    config = tmp_path / "switch.yaml"
    config.write_text("queues:\n  general: {wrap_up_s: 0}\nsip: {media_stall_s: 2}\n"
                      f"media:\n  notify: {notify}\n  nodes:\n"
                      + "".join(f"    - {{control: '{control}', weight: 1}}\n" for control in controls))
    port, process, control_path = start_switch(tmp_path, "--config", str(config))
    yield Line(port, process, control_path, None), processes, notify
    process.terminate()
    process.wait(15)
    for node in processes.values():
        if node.poll() is None:
            node.terminate()
            node.wait(10)


def media_of(line):
    return line.snapshot()["media"]


def test_a_killed_media_node_ends_its_calls_as_interrupted_and_the_other_carries_on(nodes, tmp_path):
    line, processes, notify = nodes
    log = (tmp_path / "switch.log").read_text()
    assert "media: anchored in udp:" in log and "weight 1" in log
    agents = {}
    for ext, pin in (("1001", "1111"), ("1002", "2222"), ("1003", "3333"), ("1004", "4444")):
        line.agent_ready(ext, pin)
        agents[ext] = line.phone(ext, pin, "agent_answer.xml")
    callers = [line.call("caller_until_agent_hangs_up.xml", caller=f"+8529123450{n}") for n in range(4)]
    line.wait_until(lambda: sum(a["state"] == "in_call" for a in line.snapshot()["agents"]) == 4, timeout=20)
    line.wait_until(lambda: sum((n["active_sessions"] or 0) for n in media_of(line)["nodes"]) >= 4, timeout=5)
    sessions = {n["node"]: n["active_sessions"] or 0 for n in media_of(line)["nodes"]}
    doomed = max(sessions, key=sessions.get)            # the node with the most calls (at least one)
    survivor = next(control for control in processes if control != doomed)
    processes[doomed].send_signal(signal.SIGKILL)
    processes[doomed].wait(5)

    # its calls end for both phones within the stall limit (2 s) and a few seconds more
    interrupted = line.wait_until(lambda: [r for r in line.interactions() if r["outcome"] == "interrupted"],
                                  timeout=20)
    time.sleep(1.0)
    interrupted = [r for r in line.interactions() if r["outcome"] == "interrupted"]
    assert len(interrupted) == sessions[doomed]         # one media session per call
    for row in interrupted:
        assert row["sip_cause"] == f"interrupted: media node {doomed} stopped answering"
        assert row["answered_at"] is not None and row["ended_at"] is not None and row["talk_s"] > 0
        assert row["agent_ext"] and row["agent_id"] is not None and row["wait_s"] is not None
    log = (tmp_path / "switch.log").read_text()
    assert f"media: node {doomed} has not answered" in log and f"new calls go to {survivor}" in log
    assert line.process.poll() is None                 # the switch carries on
    still = [a["ext"] for a in line.snapshot()["agents"] if a["state"] == "in_call"]
    assert len(still) == 4 - len(interrupted)

    # the survivor's calls go on; their agents end them from their seats
    seats = dict(zip(("1001", "1002", "1003", "1004"), (stream for _, stream in line.seats)))
    for agent in line.snapshot()["agents"]:
        if agent["state"] == "in_call":
            line.request(seats[agent["ext"]], op="hang_up", call_id=agent["call"])
    for caller in callers:
        assert finished(caller)[0] == 0       # every caller got its BYE: none left in silence
    for phone in agents.values():
        assert finished(phone)[0] == 0
    rows = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"] is not None]
                           if all(r["ended_at"] is not None for r in line.interactions()) else None)
    assert sorted(r["outcome"] for r in rows) == sorted(["interrupted"] * len(interrupted)
                                                        + ["answered"] * (4 - len(interrupted)))
    assert "INTERRUPTED" not in line.queue_log()   # (the stop's word; here routing saw the call end)

    # a new call goes to the node that answers, and is relayed and recorded there (the
    # others log out: their phones have ended)
    for sock, stream in line.seats:
        line.request(stream, op="logout")
        stream.close()
        sock.close()
    line.seats.clear()
    line.wait_until(lambda: all(a["status"] == "logged_out" for a in line.snapshot()["agents"] if a["ext"] != "2001"))
    line.agent_ready("1001", "1111")
    phone = line.phone("1001", "1111", "agent_answer.xml")
    caller = line.call("caller.xml", caller="+85291234599", pause_ms=1500)
    assert finished(caller)[0] == 0 and finished(phone)[0] == 0
    last = line.wait_until(lambda: [r for r in line.interactions() if r["caller_number"] == "+85291234599"
                                    and r["ended_at"] is not None])
    assert last[0]["outcome"] == "answered"

    # the killed node started again is taken back
    processes[doomed] = media_node(tmp_path, doomed, notify, "node-again")
    line.wait_until(lambda: "answers again; it takes new calls" in (tmp_path / "switch.log").read_text(), timeout=15)
    assert all(n["answering"] for n in media_of(line)["nodes"])


def test_a_switch_started_before_its_node_connects_calls_and_anchors_them_once_the_node_answers(tmp_path):
    notify = f"tcp:127.0.0.1:{free_tcp_port()}"
    control = f"udp:127.0.0.1:{free_udp_port()}"
    config = tmp_path / "switch.yaml"
    config.write_text("queues:\n  general: {wrap_up_s: 0}\nsip: {media_stall_s: 2}\n"
                      f"media:\n  notify: {notify}\n  nodes:\n    - {{control: '{control}'}}\n")
    port, process, control_path = start_switch(tmp_path, "--config", str(config))
    node = None
    try:
        line = Line(port, process, control_path, None)
        assert "no media node answers yet" in (tmp_path / "switch.log").read_text()
        line.agent_ready("1001", "1111")
        phone = line.phone("1001", "1111", "agent_answer.xml")
        caller = line.call("caller.xml", caller="+85291234571", pause_ms=500)   # audio between the phones
        assert finished(caller)[0] == 0 and finished(phone)[0] == 0
        node = media_node(tmp_path, control, notify, "late-node")
        line.wait_until(lambda: "answers again; it takes new calls" in (tmp_path / "switch.log").read_text(),
                        timeout=15)
        phone = line.phone("1001", "1111", "agent_answer.xml")
        caller = line.call("caller.xml", caller="+85291234572", pause_ms=3000)
        line.wait_until(lambda: (line.snapshot()["media"]["nodes"][0]["active_sessions"] or 0) >= 1, timeout=10)
        assert finished(caller)[0] == 0 and finished(phone)[0] == 0
        rows = line.wait_until(lambda: [r for r in line.interactions() if r["ended_at"] is not None][1:])
        assert [r["outcome"] for r in line.interactions()] == ["answered", "answered"]
        assert rows
    finally:
        process.terminate()
        process.wait(15)
        if node is not None:
            node.terminate()
            node.wait(10)


def test_a_media_node_that_cannot_start_says_why(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "console", "media-node", "--dir", str(tmp_path), *a],
                                    capture_output=True, text=True, timeout=30)
    wrong = run("--control", "127.0.0.1:7722")
    assert wrong.returncode == 2 and "--control: expected udp:HOST:PORT, got '127.0.0.1:7722'" in wrong.stderr
    assert "--notify: expected tcp:HOST:PORT" in run("--notify", "udp:127.0.0.1:1").stderr
    control = f"udp:127.0.0.1:{free_udp_port()}"
    first = media_node(tmp_path, control, f"tcp:127.0.0.1:{free_tcp_port()}", "first")
    try:
        taken = run("--control", control)
        assert taken.returncode == 2 and f"RTPproxy would not start on {control}" in taken.stderr
        assert "Address already in use" in taken.stderr
    finally:
        first.terminate()
        first.wait(10)
