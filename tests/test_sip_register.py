"""The switch process with real SIP: SIPp registers seats with digest authentication.

Needs `sipp` (Debian: sip-tester). Skipped without it, except where
HOTLINE_REQUIRE_SIPP=1 (CI), where a missing sipp fails.
"""
import os
import re
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


def start_switch(tmp_path, *extra, prelude: str = ""):
    """`prelude`: Python run in the switch's process first (a fault to inject)."""
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
        program = ["-c", prelude + "\nimport sys\nfrom console.cli import main\nsys.exit(main(sys.argv[1:]))"] \
            if prelude else ["-m", "console"]
        process = subprocess.Popen([sys.executable, *program, "--db", str(db_path), "switch",
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
    return {a["ext"]: a["registered"] for a in _snapshot(switch[2])["agents"]}["1001"]


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


def _snapshot(control) -> dict:
    import json
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(control))
        stream = s.makefile("rw")
        for request in ({"id": 1, "op": "login", "ext": "2001", "pin": "9999"}, {"id": 2, "op": "snapshot"}):
            stream.write(json.dumps(request) + "\n")
            stream.flush()
            reply = json.loads(stream.readline())
            assert reply["ok"], reply
    return reply["snapshot"]


def test_a_refresh_with_an_old_or_replayed_nonce_is_challenged_again_with_stale_true(tmp_path):
    """RFC 7616: the right credentials with a nonce that is no longer valid get a new 401
    with stale=true (never 403), so a phone that refreshes with the last nonce it was
    given stays registered; a REGISTER replayed byte for byte gets nothing but a challenge."""
    from sipclient import SipClient, authorization
    (tmp_path / "switch.yaml").write_text("sip: {nonce_s: 2, registration_max_s: 60}\n")
    port, process, control = start_switch(tmp_path, "--no-media", "--config", str(tmp_path / "switch.yaml"))
    phone = SipClient(port)
    try:
        first = phone.register("1001")
        assert first.status == 401
        challenge = first.challenge()
        assert challenge["qop"] == "auth" and "stale" not in challenge
        uri = f"sip:127.0.0.1:{port}"
        signed = phone.register_text("1001", authorization=authorization(challenge, "1001", "1111", uri=uri))
        phone.send(signed)
        assert phone.receive().status == 200
        phone.send(signed.replace("CSeq: 2", "CSeq: 3").replace("branch=z9hG4bK", "branch=z9hG4bKr"))
        replayed = phone.receive()
        assert replayed.status == 401 and replayed.challenge().get("stale") == "true"
        # the next count of the same nonce is fine while it lives
        ok = phone.register("1001", authorization=authorization(challenge, "1001", "1111", uri=uri, nc=2))
        assert ok.status == 200 and ok.header("expires") == "60"   # 300 asked, 60 granted
        time.sleep(2.5)                                            # past nonce_s
        stale = phone.register("1001", authorization=authorization(challenge, "1001", "1111", uri=uri, nc=3))
        assert stale.status == 401 and stale.challenge()["stale"] == "true"
        fresh = stale.challenge()
        assert phone.register("1001", authorization=authorization(fresh, "1001", "1111", uri=uri)).status == 200
        assert registered((port, process, control))
        # the right answer to an old nonce is stale; a wrong PIN is still 403
        wrong = phone.register("1001", authorization=authorization(fresh, "1001", "1234", uri=uri, nc=2))
        assert wrong.status == 403
    finally:
        phone.close()
        process.kill()
        process.wait(5)


def test_wrong_pins_lock_the_extension_out_and_the_lockout_is_logged_and_shown(tmp_path):
    from sipclient import SipClient, authorization
    (tmp_path / "switch.yaml").write_text("sip: {auth_failures_per_ext: 3, auth_lock_s: 2}\n")
    port, process, control = start_switch(tmp_path, "--no-media", "--config", str(tmp_path / "switch.yaml"))
    phone = SipClient(port)
    uri = f"sip:127.0.0.1:{port}"
    try:
        for guess in ("0000", "1234", "4321"):
            challenge = phone.register("1001").challenge()
            assert phone.register("1001", authorization=authorization(challenge, "1001", guess, uri=uri)).status == 403
        challenge = phone.register("1001").challenge()
        locked = phone.register("1001", authorization=authorization(challenge, "1001", "1111", uri=uri))
        assert locked.status == 403 and "too many" in locked.reason
        log = (tmp_path / "switch.log").read_text()
        assert "extension 1001 locked out for 2 s" in log
        snapshot = _snapshot(control)
        assert [entry["key"] for entry in snapshot["locked_out"]] == ["1001"]
        assert snapshot["sip_refused"]["403 Forbidden"] == 3
        time.sleep(2.2)
        challenge = phone.register("1001").challenge()
        assert phone.register("1001", authorization=authorization(challenge, "1001", "1111", uri=uri)).status == 200
    finally:
        phone.close()
        process.kill()
        process.wait(5)


MALFORMED = [
    # (what, datagram, answered with 400)
    ("not UTF-8", b"\x00\xff not sip at all\r\n" * 3, False),
    ("no To header", b"REGISTER sip:x SIP/2.0\r\nVia: broken\r\n\r\n" + b" " * 20, False),
    ("a header without a colon", b"INVITE sip:1@127.0.0.1 SIP/2.0\r\n" + b"X" * 4000, False),
    ("a CSeq that is not a number", "OPTIONS sip:1@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};"
     "branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:1@127.0.0.1>\r\nCall-ID: abc\r\nCSeq: notanumber "
     "OPTIONS\r\nContent-Length: 0\r\n\r\n", True),
    ("a body shorter than its Content-Length", "INVITE sip:1@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP "
     "127.0.0.1:{port};branch=z9hG4bK2\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:1@127.0.0.1>\r\nCall-ID: abcd\r\n"
     "CSeq: 1 INVITE\r\nContent-Length: 50\r\n\r\nv=0\r\n", True),
    ("a From that sippy cannot read", "INVITE sip:1@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};"
     "branch=z9hG4bK3\r\nFrom: ;;;\r\nTo: <sip:1@127.0.0.1>\r\nCall-ID: abcde\r\nCSeq: 1 INVITE\r\n"
     "Content-Length: 0\r\n\r\n", True),
]


def test_malformed_requests_get_a_400_where_they_can_one_log_line_and_no_traceback(switch):
    from sipclient import SipClient
    port, process, control = switch
    client = SipClient(port)
    try:
        for what, datagram, answered in MALFORMED:
            data = datagram if isinstance(datagram, bytes) else datagram.format(port=client.port).encode()
            client.sock.sendto(data, ("127.0.0.1", port))
            response = client.receive(1.0)
            if answered:
                assert response is not None and response.status == 400, what
                assert response.header("call-id") in ("abc", "abcd", "abcde"), what
            else:
                assert response is None, what
        assert sipp(port, "register.xml", "1001", "1111") == 0   # still serving
    finally:
        client.close()
    log = (control.parent / "switch.log").read_text()
    assert "Traceback" not in log and "----------" not in log
    assert log.count("SIP: cannot parse a message from 127.0.0.1") == len(MALFORMED)


@pytest.mark.parametrize("sip, words", [
    ("127.0.0.1:99999", "port 99999 is out of range"),
    ("nohost", "'nohost' is not a known host name"),
    ("192.0.2.1:5070", "192.0.2.1 is not an address of this machine"),
])
def test_a_sip_address_the_switch_cannot_use_is_one_line_and_nothing_is_left_behind(tmp_path, sip, words):
    db_path = tmp_path / "switch.db"
    connect(db_path, create=True).close()
    result = subprocess.run([sys.executable, "-m", "console", "--db", str(db_path), "switch", "--sip", sip],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("hotline: ") and words in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["switch.db"]


def test_one_switch_per_sip_port_and_per_database(switch, tmp_path):
    port, process, control = switch
    other = tmp_path / "other"
    other.mkdir()
    connect(other / "other.db", create=True).close()
    runs = {
        "same port": ["--db", str(other / "other.db"), "switch", "--sip", f"127.0.0.1:{port}"],
        "same database": ["--db", str(tmp_path / "switch.db"), "switch", "--sip", f"127.0.0.1:{free_udp_port()}",
                          "--control", str(other / "c.sock")],
        "same control socket": ["--db", str(other / "other.db"), "switch", "--sip", f"127.0.0.1:{free_udp_port()}",
                                "--control", str(control)],
    }
    for what, args in runs.items():
        result = subprocess.run([sys.executable, "-m", "console", *args], capture_output=True, text=True, timeout=30)
        assert result.returncode == 2, (what, result.stdout, result.stderr)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("hotline: "), what
    assert "already in use" in subprocess.run([sys.executable, "-m", "console", *runs["same port"]],
                                              capture_output=True, text=True).stderr
    # the first switch is untouched: its socket is there and it still registers seats
    assert control.exists() and process.poll() is None
    assert sipp(port, "register.xml", "1001", "1111") == 0
    assert not (other / "other.queue_log").exists() and not (other / "c.sock").exists()


def test_a_fatal_error_on_the_sip_thread_stops_the_switch_at_once_with_one_line(tmp_path):
    """Whatever kills sippy's loop (here: the network going away under it) stops the
    whole switch cleanly: status 2, one hotline: line, no control socket left."""
    db_path = tmp_path / "switch.db"
    connect(db_path, create=True).close()
    script = (
        "import errno, sys, time\n"
        "import telephony.sip as sip\n"
        "real = sip.SipSide._serve\n"
        "def serve_then_fail(self):\n"
        "    from sippy.Core.EventDispatcher import ED2\n"
        "    def loop():\n"
        "        self._started.set()\n"
        "        time.sleep(1.0)\n"
        "        raise OSError(errno.ENETDOWN, 'Network is down')\n"
        "    ED2.loop = loop\n"
        "    real(self)\n"
        "sip.SipSide._serve = serve_then_fail\n"
        "from console.cli import main\n"
        f"sys.exit(main(['--db', {str(db_path)!r}, 'switch', '--no-media', '--sip', '127.0.0.1:{free_udp_port()}']))\n")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert time.monotonic() - started < 10
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("hotline: SIP stopped:") and "Network is down" in last
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "switch.sock").exists()


def test_the_media_engine_keeps_to_the_rtp_port_range_a_firewall_opens(tmp_path):
    import re
    from sipclient import SipClient
    port, process, control = start_switch(tmp_path, "--rtp-ports", "31000-31019")
    caller = SipClient(port)
    try:
        for n in range(3):
            caller.send(f"INVITE sip:general@127.0.0.1:{port} SIP/2.0\r\n"
                        f"Via: SIP/2.0/UDP 127.0.0.1:{caller.port};branch=z9hG4bKrtp{n}\r\n"
                        f"From: <sip:+85291110000@127.0.0.1>;tag=a{n}\r\nTo: <sip:general@127.0.0.1>\r\n"
                        f"Call-ID: rtp-range-{n}\r\nCSeq: 1 INVITE\r\nContact: <sip:+85291110000@127.0.0.1:{caller.port}>\r\n"
                        "Content-Type: application/sdp\r\nContent-Length: 95\r\n\r\n"
                        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                        "m=audio 40000 RTP/AVP 0\r\n\r\n")
            deadline = time.monotonic() + 5
            media_port = None
            while media_port is None and time.monotonic() < deadline:
                data, _ = caller.sock.recvfrom(65535)
                found = re.search(r"m=audio (\d+)", data.decode())
                media_port = int(found.group(1)) if found else None
            assert media_port is not None and 31000 <= media_port <= 31019
    finally:
        caller.close()
        process.kill()
        process.wait(5)
    assert "rtp_ports" not in (tmp_path / "switch.log").read_text()


def test_bad_rtp_port_ranges_are_one_line(tmp_path):
    db_path = tmp_path / "switch.db"
    connect(db_path, create=True).close()
    for text in ("2000", "20000-10000", "80-90", "10000-10001"):
        result = subprocess.run([sys.executable, "-m", "console", "--db", str(db_path), "switch", "--rtp-ports", text],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 2 and result.stderr.startswith("hotline: --rtp-ports:"), (text, result.stderr)


def test_a_media_engine_that_stops_answering_stops_the_switch_to_be_started_again(tmp_path):
    """Found using the demo: with RTPproxy hung, the switch kept answering REGISTERs while
    no call could ring an agent, for as long as nobody looked. Now it stops, status 2,
    with one line saying why, and a service manager (the demo's too) starts it again."""
    db_path = tmp_path / "switch.db"
    connect(db_path, create=True).close()
    (tmp_path / "stall.yaml").write_text("sip:\n  media_stall_s: 2\n")
    script = (
        "import sys, threading, time\n"
        "import telephony.media as media\n"
        "real = media.MediaEngine.watch\n"
        "def watch_then_hang(self, *args, **kwargs):\n"
        "    real(self, *args, **kwargs)\n"
        "    def hang():\n"
        "        time.sleep(1.0)\n"
        "        self.client.send_command = lambda *a, **k: None   # the proxy takes commands, answers none\n"
        "    threading.Thread(target=hang, daemon=True).start()\n"
        "media.MediaEngine.watch = watch_then_hang\n"
        "from console.cli import main\n"
        f"sys.exit(main(['--db', {str(db_path)!r}, 'switch', '--config', {str(tmp_path / 'stall.yaml')!r}, "
        f"'--media', {str(tmp_path / 'media')!r}, '--sip', '127.0.0.1:{free_udp_port()}']))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert re.match(r"hotline: the media engine \(RTPproxy\) has not answered for [234] s \(0 calls up", last), last
    assert "Traceback" not in result.stderr


def test_a_supervisor_cannot_make_an_agent_who_is_not_at_a_seat_available(switch):
    # found in a demo trial: three agents gone home were made "available" from the console,
    # counted free on the wallboard with no phone to ring
    import json
    port, _, control = switch
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(control))
        stream = s.makefile("rw")

        def ask(**request) -> dict:
            stream.write(json.dumps({"id": 1, **request}) + "\n")
            stream.flush()
            return json.loads(stream.readline())
        assert ask(op="login", ext="2001", pin="9999")["ok"]
        for status in ("available", "on_break"):
            refused = ask(op="force_status", ext="1001", status=status, reason="lunch")
            assert refused["error"]["code"] == "conflict" and "not at a seat" in refused["error"]["message"]
        assert sipp(port, "register.xml", "1001", "1111") == 0     # the seat opens: not ready yet
        assert ask(op="force_status", ext="1001", status="available")["ok"]
    agents = {a["ext"]: a for a in _snapshot(control)["agents"]}
    assert agents["1001"]["status"] == "available" and agents["1002"]["status"] == "logged_out"
