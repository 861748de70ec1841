"""The switch process with real SIP: SIPp registers seats with digest authentication.

Needs `sipp` (Debian: sip-tester). Skipped without it, except where
HOTLINE_REQUIRE_SIPP=1 (CI), where a missing sipp fails.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from records.agents import add_agent
from records.db import connect

SIPP = shutil.which("sipp")
SCENARIOS = Path(__file__).parent / "sipp"
if SIPP is None:
    if os.environ.get("HOTLINE_REQUIRE_SIPP") == "1":
        raise RuntimeError("HOTLINE_REQUIRE_SIPP=1 but sipp is not installed (apt-get install sip-tester)")
    pytest.skip("sipp is not installed (apt-get install sip-tester)", allow_module_level=True)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_switch(tmp_path, *extra):
    db_path = tmp_path / "switch.db"
    db = connect(db_path, create=True)
    add_agent(db, ext="1001", name="Ann", pin="1111", skills={"repair": 3, "general": 3})
    add_agent(db, ext="1002", name="Bob", pin="2222", skills={"general": 3})
    add_agent(db, ext="2001", name="Sue", pin="9999", role="supervisor")
    db.close()
    port = free_udp_port()
    # The switch's output goes to a file: a pipe nobody reads would block it once full.
    log_path = tmp_path / "switch.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "console", "--db", str(db_path), "switch",
                                    "--sip", f"127.0.0.1:{port}", "--control", str(tmp_path / "control.sock"),
                                    *extra], stdout=log, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 15
    while "hotline switch: SIP on" not in log_path.read_text():
        assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)
    return port, process, tmp_path / "control.sock"


@pytest.fixture
def switch(tmp_path):
    """The switch as it runs by default: media anchored in its RTPproxy, calls recorded."""
    port, process, control = start_switch(tmp_path)
    assert "media anchored" in (tmp_path / "switch.log").read_text()
    yield port, process, control
    if process.poll() is None:
        process.kill()
        process.wait(5)


@pytest.fixture
def switch_without_media(tmp_path):
    """--no-media: SDP passed between the phones."""
    port, process, control = start_switch(tmp_path, "--no-media")
    yield port, process, control
    if process.poll() is None:
        process.kill()
        process.wait(5)


def registered(switch) -> bool:
    """Ask the running switch, over its control socket, whether seat 1001 is registered."""
    import json
    port, process, control = switch
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(control))
        stream = s.makefile("rw")
        for request in ({"id": 1, "op": "login", "ext": "2001", "pin": "9999"}, {"id": 2, "op": "snapshot"}):
            stream.write(json.dumps(request) + "\n")
            stream.flush()
            reply = json.loads(stream.readline())
            assert reply["ok"], reply
    return {a["ext"]: a["registered"] for a in reply["snapshot"]["agents"]}["1001"]


def sipp(port, scenario, ext, pin, *, calls=1, rate=10):
    result = subprocess.run(
        [SIPP, f"127.0.0.1:{port}", "-sf", str(SCENARIOS / scenario), "-s", ext, "-au", ext, "-ap", pin,
         "-m", str(calls), "-r", str(rate), "-i", "127.0.0.1", "-p", str(free_udp_port()), "-timeout", "20s",
         "-nostdin"], capture_output=True, text=True, timeout=60)
    return result.returncode


def test_register_with_digest_auth_and_refusals(switch):
    port, process, _ = switch
    assert registered(switch) is False
    assert sipp(port, "register.xml", "1001", "1111") == 0
    assert registered(switch) is True    # the supervisor's snapshot shows the seat as reachable
    assert sipp(port, "register_refused.xml", "1001", "9999") == 0      # wrong PIN: 403
    assert sipp(port, "register_refused.xml", "1777", "1111") == 0      # unknown extension: 403


def test_garbage_and_a_register_storm_do_not_hurt_the_switch(switch):
    port, process, _ = switch
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for garbage in (b"\x00\xff not sip at all\r\n", b"REGISTER sip:x SIP/2.0\r\nVia: broken\r\n\r\n",
                        b"INVITE sip:1@127.0.0.1 SIP/2.0\r\n" + b"X" * 4000, b""):
            s.sendto(garbage, ("127.0.0.1", port))
    assert sipp(port, "register.xml", "1001", "1111", calls=300, rate=300) == 0
    assert process.poll() is None


def test_the_switch_stops_cleanly_on_sigterm(switch):
    port, process, control = switch
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)
    assert process.returncode == 0 and "hotline switch: stopped" in (control.parent / "switch.log").read_text()
