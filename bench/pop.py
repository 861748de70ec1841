"""The screen pop as the agent sees it: a resident's INVITE leaving their phone -> their
name drawn on the agent's terminal.

`hotline switch` (media anchored) and `hotline agent --audio null` run as they do at a
desk, the seat in a pseudo-terminal this benchmark reads. For each call a small SIP
caller here sends an INVITE from a different resident's number, the time is taken, and
the pty's output is watched until that resident's name appears; then the caller
CANCELs and the seat returns to idle. The peer, in the same run: the same calls to a
bare SIP phone (a UDP socket here, registered like a seat), INVITE sent -> INVITE
received: the switch's part alone, so the difference is what the seat adds (pjsua2,
records, Textual, the terminal).

    python bench/pop.py [--calls 200]
"""

from __future__ import annotations

import argparse
import os
import pty
import re
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from records.agents import add_agent  # noqa: E402
from records.db import connect  # noqa: E402
from records.directory import NewResident, add_resident  # noqa: E402
from scenarios.live import free_udp_port  # noqa: E402
from sipclient import SipClient, authorization  # noqa: E402
from switch import control, percentile  # noqa: E402  (bench/switch.py)

PIN = "4242"


class Terminal:
    """A pty whose output is kept with arrival times."""

    def __init__(self, command: list[str], env: dict, size=(30, 100)):
        import fcntl
        import struct
        import termios

        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
        self.process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env,
                                        start_new_session=True, cwd=ROOT)
        os.close(slave)
        self.chunks: list[tuple[float, bytes]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            try:
                ready, _, _ = select.select([self.master], [], [], 0.5)
                if ready:
                    data = os.read(self.master, 65536)
                    if not data:
                        return
                    with self.lock:
                        self.chunks.append((time.monotonic(), data))
            except OSError:
                return

    def send(self, keys: str):
        os.write(self.master, keys.encode())

    def wait_for(self, text: str, since: float, timeout: float = 10.0) -> float | None:
        """When `text` first appeared in the output after `since` (the name of a resident
        is drawn in one piece: a run of cells in one style)."""
        needle = text.encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                recent = [(t, d) for t, d in self.chunks if t >= since]
            joined, stamps = b"", []
            for t, data in recent:
                stamps.append((len(joined), t))
                joined += data
            plain = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", joined)
            if needle in plain:
                # the arrival time of the chunk where the text ends
                end = joined.find(needle) + len(needle) - 1 if needle in joined else len(joined)
                return next((t for offset, t in reversed(stamps) if offset <= end), recent[-1][0])
            time.sleep(0.002)
        return None


class Caller:
    """A resident's phone: INVITE, then CANCEL once the benchmark has seen what it wants."""

    def __init__(self, port: int):
        self.client = SipClient(port)

    def invite(self, number: str, dialled: str = "general") -> str:
        self.branch, self.call_id, self.tag = f"z9hG4bK{uuid.uuid4().hex[:10]}", uuid.uuid4().hex, uuid.uuid4().hex[:8]
        self.number, self.dialled = number, dialled
        body = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n")
        self.client.send(self._request("INVITE", body))
        return self.call_id

    def _request(self, method: str, body: str = "") -> str:
        port = self.client.switch[1]
        content = "Content-Type: application/sdp\r\n" if body else ""
        return (f"{method} sip:{self.dialled}@127.0.0.1:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{self.client.port};branch={self.branch}\r\n"
                f"From: <sip:{self.number}@127.0.0.1>;tag={self.tag}\r\nTo: <sip:{self.dialled}@127.0.0.1>\r\n"
                f"Call-ID: {self.call_id}\r\nCSeq: 1 {method}\r\nContact: <sip:{self.number}@127.0.0.1:{self.client.port}>\r\n"
                f"Max-Forwards: 70\r\n{content}Content-Length: {len(body)}\r\n\r\n{body}")

    def cancel(self):
        self.client.send(self._request("CANCEL"))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                data = self.client.sock.recv(65535).decode()
            except socket.timeout:
                continue
            if data.startswith("SIP/2.0 487"):
                to = re.search(r"^To: (.*)$", data, re.M | re.I).group(1).strip()
                ack = self._request("ACK").replace(f"To: <sip:{self.dialled}@127.0.0.1>", f"To: {to}")
                self.client.send(ack)
                return


class BarePhone:
    """A seat that is only a socket: registers, and notes when each INVITE arrives (then 486)."""

    def __init__(self, switch_port: int, ext: str):
        self.client = SipClient(switch_port)
        challenge = self.client.register(ext).challenge()
        ok = self.client.register(ext, authorization=authorization(challenge, ext, PIN,
                                                                   uri=f"sip:127.0.0.1:{switch_port}"))
        assert ok is not None and ok.status == 200, ok
        self.arrived: dict[str, float] = {}
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self):
        self.client.sock.settimeout(0.5)
        while True:
            try:
                data = self.client.sock.recv(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            now = time.monotonic()
            text = data.decode(errors="replace")
            if text.startswith("INVITE "):
                number = re.search(r"^From: [^<]*<sip:([^@>]+)@", text, re.M | re.I).group(1)
                self.arrived.setdefault(number, now)
                via = "\r\n".join(line for line in text.split("\r\n") if line.lower().startswith("via:"))
                head = {name: re.search(rf"^{name}: .*$", text, re.M | re.I).group(0)
                        for name in ("From", "To", "Call-ID", "CSeq")}
                self.client.send(f"SIP/2.0 486 Busy Here\r\n{via}\r\n{head['From']}\r\n{head['To']};tag=bare\r\n"
                                 f"{head['Call-ID']}\r\n{head['CSeq']}\r\nContent-Length: 0\r\n\r\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="hotline-pop-"))
    db_path = workdir / "pop.db"
    db = connect(db_path, create=True)
    add_agent(db, ext="1001", name="Pop Seat", pin=PIN, skills={"general": 3})
    add_agent(db, ext="1002", name="Bare Phone", pin=PIN, skills={"general": 3})
    numbers = [f"+8529{i:07d}" for i in range(args.calls)]
    names = [f"Resident Number{i:04d}" for i in range(args.calls)]
    for number, name in zip(numbers, names):
        add_resident(db, NewResident(name=name, kind="tenant", phones=(number,)))
    db.close()
    port = free_udp_port()
    sock_path = workdir / "control.sock"
    switch = subprocess.Popen([sys.executable, "-m", "console", "--db", str(db_path), "switch", "--sip",
                               f"127.0.0.1:{port}", "--control", str(sock_path)], cwd=ROOT,
                              stdout=open(workdir / "switch.log", "w"), stderr=subprocess.STDOUT)
    seat = None
    try:
        deadline = time.monotonic() + 20
        while "hotline switch: SIP on" not in (workdir / "switch.log").read_text():
            assert switch.poll() is None and time.monotonic() < deadline, (workdir / "switch.log").read_text()
            time.sleep(0.05)
        env = {**os.environ, "HOTLINE_PIN": PIN, "TERM": "xterm-256color", "COLORTERM": "truecolor"}
        seat = Terminal([sys.executable, "-m", "console", "--db", str(db_path), "agent", "--ext", "1001",
                         "--registrar", f"sip:127.0.0.1:{port}", "--control", str(sock_path), "--audio", "null"], env)
        assert seat.wait_for("SIP registered", 0, timeout=20), "the seat did not register"
        seat.send("v")
        assert seat.wait_for("available", 0, timeout=10)
        caller = Caller(port)
        pops = []
        for number, name in zip(numbers, names):
            sent = time.monotonic()
            caller.invite(number)
            drawn = seat.wait_for(name, sent)
            caller.cancel()
            if drawn is not None:
                pops.append((drawn - sent) * 1000)
            seat.wait_for("Waiting for calls", time.monotonic(), timeout=5)
            time.sleep(0.05)
        # the peer: the switch's part alone, to a phone that is only a socket
        ask, sock = control(sock_path)
        ask("login", ext="1001", pin=PIN)
        ask("status", status="on_break", reason="training")
        bare = BarePhone(port, "1002")
        ask("login", ext="1002", pin=PIN)
        ask("status", status="available")
        peer = []
        for number in numbers:
            sent = time.monotonic()
            caller.invite(number)
            deadline = time.monotonic() + 5
            while number not in bare.arrived and time.monotonic() < deadline:
                time.sleep(0.0005)
            if number in bare.arrived:
                peer.append((bare.arrived[number] - sent) * 1000)
            caller.cancel()
            time.sleep(0.05)
        sock.close()
    finally:
        if seat is not None:
            seat.send("q")
            try:
                seat.process.wait(10)
            except subprocess.TimeoutExpired:
                seat.process.kill()
        switch.terminate()
        switch.wait(15)
    print(f"screen pop, INVITE sent -> resident's name on the seat's terminal, {len(pops)} of {args.calls} calls: "
          f"p50 {percentile(pops, .5):.1f} ms, p95 {percentile(pops, .95):.1f} ms, max {max(pops):.1f} ms "
          f"(target p95 < 100 ms)")
    print(f"peer, INVITE sent -> INVITE at a bare phone (the switch alone), {len(peer)} calls: "
          f"p50 {percentile(peer, .5):.1f} ms, p95 {percentile(peer, .95):.1f} ms")
    print(f"the seat adds {percentile(pops, .5) - percentile(peer, .5):.1f} ms at p50, "
          f"{percentile(pops, .95) - percentile(peer, .95):.1f} ms at p95 "
          f"(ratio {percentile(pops, .5) / max(percentile(peer, .5), 0.01):.1f}x at p50)")
    return 0 if pops and percentile(pops, .95) < 100 and len(pops) == args.calls else 1


if __name__ == "__main__":
    sys.exit(main())
