"""A seat on another machine: the real `hotline agent` in tmux, run from a directory with
no database in it (and none named), talking TLS to the switch's TCP control API and
registering over SIP. A SIPp resident calls: the seat pops them, the agent answers, types
the form, opens a work order and saves; the switch, the one writer, has the rows."""
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from records.agents import add_agent
from records.db import connect
from records.directory import NewResident, add_resident
from telephony.tls import make_self_signed
from test_sip_calls import CALLER, SCENARIOS, SIPP
from scenarios.live import free_udp_port

TOKEN = "remote-seat-token"


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("HOTLINE_REQUIRE_SIPP") == "1":
            raise AssertionError(f"{tool} is needed for this test")
        pytest.skip(f"{tool} is not installed")
    return path


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Screen:
    """The seat's terminal, read the way the agent reads it."""

    def __init__(self, tmux: str, name: str):
        self.tmux, self.name = tmux, name

    def keys(self, *keys: str) -> None:
        subprocess.run([self.tmux, "-L", self.name, "send-keys", *keys], check=True)

    def text(self) -> str:
        return subprocess.run([self.tmux, "-L", self.name, "capture-pane", "-p"], capture_output=True,
                              text=True).stdout

    def wait_for(self, *words: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.text()
            if all(word in shown for word in words):
                return shown
            time.sleep(0.1)
        raise AssertionError(f"the seat never showed {words}; it shows:\n{self.text()}")


@pytest.fixture
def remote_switch(tmp_path):
    """The switch with its control API on TCP and TLS (a certificate from hotline certs)."""
    switch_dir = tmp_path / "switch"
    switch_dir.mkdir()
    db_path = switch_dir / "switch.db"
    db = connect(db_path, create=True)
    add_agent(db, ext="1001", name="Ann Lee", pin="1111", skills={"repair": 3, "general": 3})
    resident_id = add_resident(db, NewResident(name="Chan Tai Man", kind="tenant", phones=(CALLER,), segment="vip"))
    db.close()
    cert, key = make_self_signed(tmp_path / "certs", ["127.0.0.1"])
    sip_port, control_port = free_udp_port(), _free_tcp_port()
    log_path = switch_dir / "switch.log"
    env = {**os.environ, "HOTLINE_CONTROL_TOKEN": TOKEN}
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "console", "--db", str(db_path), "switch",
                                    "--sip", f"127.0.0.1:{sip_port}", "--control", f"127.0.0.1:{control_port}",
                                    "--tls-cert", str(cert), "--tls-key", str(key), "--no-media"],
                                   stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 15
    while "hotline switch: SIP on" not in log_path.read_text():
        assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)
    yield dict(db_path=db_path, sip_port=sip_port, control_port=control_port, cert=cert, resident_id=resident_id,
               log=log_path)
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def _rows(db_path: Path, sql: str, params=()) -> list[dict]:
    db = connect(db_path, migrate=False)
    try:
        cursor = db.execute(sql, list(params))
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row)) for row in cursor]
    finally:
        db.close()


def test_a_seat_with_no_database_pops_saves_and_opens_a_work_order_over_tls(tmp_path, remote_switch):
    tmux, sipp = _need("tmux"), _need(SIPP)
    sw = remote_switch
    seat_home = tmp_path / "agent-pc"   # the agent's machine: their home, nothing of the switch's
    seat_home.mkdir()
    shutil.copy(sw["cert"], seat_home / "switch.crt")
    name = f"hotline-remote-{os.getpid()}"
    env = {"HOME": str(seat_home), "XDG_STATE_HOME": str(seat_home / ".state"), "HOTLINE_PIN": "1111",
           "HOTLINE_CONTROL_TOKEN": TOKEN, "PATH": os.environ["PATH"], "TERM": "xterm-256color", "LANG": "C.UTF-8"}
    command = (f"{sys.executable} -m console agent --ext 1001 --control 127.0.0.1:{sw['control_port']} "
               f"--tls-ca switch.crt --registrar sip:127.0.0.1:{sw['sip_port']} --audio null")
    subprocess.run([tmux, "-L", name, "new-session", "-d", "-x", "120", "-y", "40", "-c", str(seat_home),
                    *[arg for key, value in env.items() for arg in ("-e", f"{key}={value}")], command], check=True)
    screen = Screen(tmux, name)
    caller = None
    try:
        screen.wait_for("Ann Lee", "registered")
        screen.keys("v")
        screen.wait_for("available")
        caller = subprocess.Popen([sipp, f"127.0.0.1:{sw['sip_port']}", "-sf", str(SCENARIOS / "caller.xml"),
                                   "-s", "repair", "-key", "caller", CALLER, "-m", "1", "-i", "127.0.0.1",
                                   "-p", str(free_udp_port()), "-d", "30000", "-timeout", "60s", "-nostdin"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        shown = screen.wait_for("Ringing: Chan Tai Man", "VIP", CALLER)   # the profile, before hello
        screen.keys("a")
        screen.wait_for("in call")
        # the form, by keyboard, at a person's pace: n is the notes; before them are the
        # contact reason (already the queue's), the outcome and the work-order type
        for keys in (["n"], ["-l", "Leaking pipe under the kitchen sink"], ["BTab"], ["BTab"], ["Enter"],
                     ["Down", "Down", "Enter"],                  # outcome: work order opened
                     ["Tab"], ["Enter"], ["Down", "Enter"],      # the first work-order type
                     ["Tab"], ["Tab"], ["-l", "Water under the sink in 12A"]):
            screen.keys(*keys)
            time.sleep(0.4)
        screen.wait_for("work order opened", "Water under the sink in 12A")
        screen.keys("C-s")
        shown = screen.wait_for("Saved:", "work order #")
    finally:
        if caller is not None and caller.poll() is None:
            caller.kill()
            caller.communicate()
        subprocess.run([tmux, "-L", name, "kill-server"], capture_output=True)

    # the switch wrote it all; the agent's machine has no database, only its own files, 0600
    assert not list(seat_home.rglob("*.db")), list(seat_home.rglob("*"))
    [folder] = (seat_home / ".state" / "hotline").iterdir()   # this switch's (one folder per switch)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    seat_files = list(folder.iterdir())
    assert {p.name for p in seat_files} >= {"seat-1001.log"}, seat_files
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in seat_files), \
        {p.name: oct(p.stat().st_mode) for p in seat_files}
    contact = _rows(sw["db_path"], "SELECT * FROM interactions WHERE caller_number = ?", [CALLER])
    assert len(contact) == 1, contact
    contact = contact[0]
    assert contact["resident_id"] == sw["resident_id"] and contact["agent_ext"] == "1001"
    assert contact["notes"] == "Leaking pipe under the kitchen sink"
    assert contact["disposition"].startswith("repair"), contact["disposition"]
    orders = _rows(sw["db_path"], "SELECT * FROM work_orders")
    assert len(orders) == 1, orders
    order = orders[0]
    assert (order["resident_id"], order["interaction_id"]) == (sw["resident_id"], contact["id"])
    assert order["description"] == "Water under the sink in 12A" and order["owner_agent_id"] is not None
    assert f"work order #{order['id']}" in shown
    logged = [json.loads(row["body"]) for row in _rows(sw["db_path"], "SELECT body FROM events WHERE event = ?",
                                                       ["WorkOrderOpened"])]
    assert [(e["order_id"], e["agent_id"], e["call_id"]) for e in logged] == [(order["id"], "1001", contact["uid"])]
