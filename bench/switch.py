"""Switch benchmark: SIPp callers -> hotline switch -> registered SIPp agents, against
SIPp callers -> SIPp agents directly, in the same run.

The switch runs as `hotline switch` (its own process, as in production) with a config
whose queue has no wrap-up, so an agent is free again as soon as its call ends. One
SIPp plays every agent phone: each of the seats registers (digest) with that SIPp's
address as its Contact, and logs in as available over the control socket. Reported:

- calls per second offered and how many failed (SIPp's own count: any unexpected
  message, timeout or error is a failure);
- the most calls bridged at once (agents in a call, from the switch's snapshot);
- CPU the switch used (user + system, from /proc) per call and as a share of a core;
- routing delay: INVITE leaving the caller -> INVITE reaching a free agent, matched by
  caller number in both SIPp message traces (p50/p95/max);
- call set-up (INVITE -> 200 at the caller), against the direct SIPp -> SIPp peer.

The SIPp phones send no RTP: this measures signalling and the media set-up per call
(RTPproxy sessions, queue music, recording), not relaying audio.

    python bench/switch.py [--rate 50] [--seconds 30] [--hold-ms 5000] [--agents 300]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from records.agents import add_agent  # noqa: E402
from records.db import connect  # noqa: E402
from scenarios.live import free_udp_port  # noqa: E402

SCENARIOS = Path(__file__).resolve().parent / "sipp"
SIPP = shutil.which("sipp")
PIN = "4321"
CONFIG = "numbers: {'2000': general}\nqueues:\n  general: {wrap_up_s: 0, ring_timeout_s: 15}\n"
_STAMP = re.compile(r"^-+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def messages(trace: Path) -> list[tuple[float, str, str, str, str, str]]:
    """(time, "sent"/"received", first line, Call-ID, CSeq method, From user) per message
    in a SIPp message trace (-trace_msg)."""
    out = []
    stamp = 0.0
    message: list[str] | None = None
    direction = ""

    def flush():
        if message:
            headers = {}
            for line in message[1:]:
                name, _, value = line.partition(":")
                headers.setdefault(name.strip().lower(), value.strip())
            user = re.search(r"sip:([^@>;]+)@", headers.get("from", ""))
            out.append((stamp, direction, message[0], headers.get("call-id", ""),
                        headers.get("cseq", " ").split()[-1], user.group(1) if user else ""))

    for line in trace.read_text(errors="replace").splitlines():
        match = _STAMP.match(line)
        if match:
            flush()
            stamp, message = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp(), None
        elif line.startswith("UDP message"):
            direction, message = ("sent" if "sent" in line else "received"), []
        elif message is not None and (line.strip() or message):
            if not line.strip():
                flush()
                message = None
            else:
                message.append(line)
    flush()
    return out


def routing_delays_ms(callers: Path, agents: Path) -> list[float]:
    """INVITE sent by the caller -> the agent's INVITE for it received, matched by caller number."""
    sent = {}
    for stamp, direction, first, _cid, _m, user in messages(callers):
        if direction == "sent" and first.startswith("INVITE "):
            sent.setdefault(user, stamp)
    arrived = {}
    for stamp, direction, first, _cid, _m, user in messages(agents):
        if direction == "received" and first.startswith("INVITE "):
            arrived.setdefault(user, stamp)
    return [(arrived[user] - sent[user]) * 1000 for user in sent if user in arrived]


def setup_times_ms(callers: Path) -> list[float]:
    """INVITE sent -> 200 OK to it received, per call, at the caller."""
    sent, answered = {}, {}
    for stamp, direction, first, cid, method, _user in messages(callers):
        if direction == "sent" and first.startswith("INVITE "):
            sent.setdefault(cid, stamp)
        elif direction == "received" and first.startswith("SIP/2.0 200") and method == "INVITE":
            answered.setdefault(cid, stamp)
    return [(answered[cid] - sent[cid]) * 1000 for cid in sent if cid in answered]


class Sipp:
    def __init__(self, name: str, workdir: Path, args: list[str], trace: bool = True):
        self.name, self.workdir = name, workdir
        self.stats = workdir / f"{name}.csv"
        self.trace = workdir / f"{name}.msg"
        messages = ["-trace_msg", "-message_file", str(self.trace)] if trace else []
        self.command = [SIPP, *args, "-i", "127.0.0.1", "-nostdin", "-trace_stat", "-stf", str(self.stats),
                        "-fd", "1", *messages, "-trace_err", "-error_file", str(workdir / f"{name}.err")]
        self.process: subprocess.Popen | None = None

    def start(self) -> "Sipp":
        self.process = subprocess.Popen(self.command, cwd=self.workdir, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        return self

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def counts(self) -> tuple[int, int]:
        """(successful, failed) calls from SIPp's last statistics line."""
        rows = [line.split(";") for line in self.stats.read_text().splitlines() if line.strip()]
        header, last = rows[0], rows[-1]
        return int(last[header.index("SuccessfulCall(C)")]), int(last[header.index("FailedCall(C)")])


def control(path: Path):
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(path))
    stream = sock.makefile("rw")
    counter = iter(range(1, 1 << 30))

    def ask(op: str, **fields) -> dict:
        request_id = next(counter)
        stream.write(json.dumps({"id": request_id, "op": op, **fields}) + "\n")
        stream.flush()
        while True:
            reply = json.loads(stream.readline())
            if reply.get("id") == request_id:
                if not reply.get("ok"):
                    raise RuntimeError(f"{op}: {reply}")
                return reply
    return ask, sock


class BenchSwitch:
    """`hotline switch` in `workdir` with `agents` seats (3000...) and a supervisor (2999)
    in its records, no wrap-up, started and ready; `bring_up_seats` registers them all at
    one SIPp agent and logs them in as available."""

    def __init__(self, workdir: Path, agents: int, *, name: str = "bench", no_media: bool = False):
        self.workdir, self.db_path = workdir, workdir / f"{name}.db"
        db = connect(self.db_path, create=True)
        salt = b"bench-salt-16byt"
        self.exts = [str(3000 + i) for i in range(agents)]
        for ext in self.exts:
            add_agent(db, ext=ext, name=f"Bot {ext}", pin=PIN, skills={"general": 3}, salt=salt)
        add_agent(db, ext="2999", name="Bench supervisor", pin=PIN, role="supervisor", salt=salt)
        db.close()
        (workdir / "switch.yaml").write_text(CONFIG)
        self.sip_port, self.agent_port = free_udp_port(), free_udp_port()
        self.control = workdir / "control.sock"
        self.log = open(workdir / "switch.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "console", "--db", str(self.db_path), "switch", "--sip", f"127.0.0.1:{self.sip_port}",
             "--control", str(self.control), "--config", str(workdir / "switch.yaml"),
             *(["--no-media"] if no_media else [])], cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while "hotline switch: SIP on" not in (workdir / "switch.log").read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the switch did not start: " + (workdir / "switch.log").read_text()[-2000:])
            time.sleep(0.05)

    def bring_up_seats(self, trace: bool = True) -> Sipp:
        # -aa: answer the switch's in-call OPTIONS (it asks every seat in a call), as phones do.
        agents = Sipp("agents", self.workdir, ["-sf", str(SCENARIOS / "agent.xml"), "-p", str(self.agent_port), "-aa"],
                      trace=trace).start()
        register_seats(self.exts, self.sip_port, self.agent_port)
        ask, sock = control(self.control)
        for ext in self.exts:
            ask("login", ext=ext, pin=PIN)
            ask("status", status="available")
        sock.close()
        return agents

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def run_switch(args, workdir: Path) -> dict:
    bench = BenchSwitch(workdir, args.agents, no_media=args.no_media)
    agents = None
    try:
        agents = bench.bring_up_seats()
        ask, sock = control(bench.control)
        ask("login", ext="2999", pin=PIN)
        calls = int(args.rate * args.seconds)
        callers = Sipp("callers", workdir, [f"127.0.0.1:{bench.sip_port}", "-sf", str(SCENARIOS / "caller.xml"),
                                            "-s", "2000", "-d", str(args.hold_ms), "-r", str(args.rate),
                                            "-m", str(calls), "-l", str(args.agents), "-p", str(free_udp_port()),
                                            "-timeout", str(args.seconds + args.hold_ms / 1000 + 60) + "s"])
        cpu_before, wall_before = cpu_seconds(bench.process.pid), time.monotonic()
        profiler = start_profile(bench.process.pid, args.profile) if args.profile else None
        callers.start()
        most = 0
        while callers.process.poll() is None:
            snapshot = ask("snapshot")["snapshot"]
            most = max(most, sum(1 for a in snapshot["agents"] if a["state"] == "in_call"))
            time.sleep(0.25)
        wall = time.monotonic() - wall_before
        cpu = cpu_seconds(bench.process.pid) - cpu_before
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)   # py-spy writes its file on SIGINT
            profiler.wait(60)
        sock.close()
        ok, failed = callers.counts()
        agents.stop()
        delays = routing_delays_ms(callers.trace, agents.trace)
        row = workdir_interactions(bench.db_path)
        return {"calls": calls, "ok": ok, "failed": failed, "most_bridged": most, "cpu_s": cpu, "wall_s": wall,
                "routing_ms": delays, "setup_ms": setup_times_ms(callers.trace), "records": row}
    finally:
        if agents is not None:
            agents.stop()
        bench.stop()


def start_profile(pid: int, out: Path) -> subprocess.Popen:
    """py-spy sampling the switch (every thread, native frames off) into collapsed stacks."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--threads",
                             "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def profile_summary(collapsed: Path, top: int = 15) -> list[str]:
    """The functions the switch spent its samples in: own time (leaf) and inclusive,
    per thread, from py-spy's collapsed stacks ("thread;frame;frame... count")."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    threads: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        threads[frames[0]] = threads.get(frames[0], 0) + n
        leaf = frames[-1]
        own[leaf] = own.get(leaf, 0) + n
        for frame in set(frames[1:]):
            inclusive[frame] = inclusive.get(frame, 0) + n
    lines = [f"{total} samples; by thread: " + ", ".join(f"{name} {100 * n / total:.0f}%" for name, n in
                                                         sorted(threads.items(), key=lambda kv: -kv[1]))]
    lines += ["own time:"] + [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in
                              sorted(own.items(), key=lambda kv: -kv[1])[:top]]
    lines += ["inclusive:"] + [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in
                               sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]]
    return lines


def register_seats(exts: list[str], sip_port: int, agent_port: int, batch: int = 25) -> None:
    """One short SIPp per seat (SIPp 3.6 cannot take digest users from an injection file).
    A seat that fails (a port taken between choosing and binding it) tries again."""
    pending = list(exts)
    for attempt in range(3):
        failed = []
        for start in range(0, len(pending), batch):
            running = [(ext, subprocess.Popen(
                [SIPP, f"127.0.0.1:{sip_port}", "-sf", str(SCENARIOS / "register.xml"), "-s", ext, "-au", ext,
                 "-ap", PIN, "-key", "port", str(agent_port), "-m", "1", "-i", "127.0.0.1", "-p", str(free_udp_port()),
                 "-nostdin", "-timeout", "15s"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                for ext in pending[start:start + batch]]
            failed += [ext for ext, process in running if process.wait(30) != 0]
        if not failed:
            return
        pending = failed
    raise RuntimeError(f"seats could not register: {', '.join(pending)}")


def workdir_interactions(db_path: Path) -> dict:
    db = connect(db_path, migrate=False)
    try:
        return dict(db.execute("SELECT outcome, count(*) FROM interactions GROUP BY outcome").fetchall())
    finally:
        db.close()


def run_direct(args, workdir: Path) -> dict:
    agent_port = free_udp_port()
    agents = Sipp("direct_agents", workdir, ["-sf", str(SCENARIOS / "agent.xml"), "-p", str(agent_port)]).start()
    time.sleep(0.5)
    calls = int(args.rate * args.seconds)
    callers = Sipp("direct_callers", workdir, [f"127.0.0.1:{agent_port}", "-sf", str(SCENARIOS / "caller.xml"),
                                               "-s", "2000", "-d", str(args.hold_ms), "-r", str(args.rate),
                                               "-m", str(calls), "-l", str(args.agents), "-p", str(free_udp_port()),
                                               "-timeout", str(args.seconds + args.hold_ms / 1000 + 60) + "s"]).start()
    try:
        callers.wait(args.seconds + args.hold_ms / 1000 + 90)
    finally:
        agents.stop()
    ok, failed = callers.counts()
    return {"calls": calls, "ok": ok, "failed": failed, "setup_ms": setup_times_ms(callers.trace)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=50.0, help="new calls per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long calls keep arriving")
    parser.add_argument("--hold-ms", type=int, default=5000, help="how long each call stays bridged")
    parser.add_argument("--agents", type=int, default=300, help="registered seats (also SIPp's call limit)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (traces, logs)")
    parser.add_argument("--no-media", action="store_true",
                        help="run the switch with --no-media (SDP passed through; default: anchored and recorded)")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="sample the switch with py-spy while calls run: collapsed stacks into FILE, "
                             "and a summary of where the time went")
    args = parser.parse_args()
    if SIPP is None:
        print("bench/switch.py needs sipp (Debian: apt-get install sip-tester)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-switch-"))
    try:
        print(f"switch benchmark: {args.rate:g} calls/s for {args.seconds:g} s, each held {args.hold_ms} ms, "
              f"{args.agents} registered SIPp seats (no wrap-up), media "
              f"{'passed through' if args.no_media else 'anchored and recorded'}", flush=True)
        switch = run_switch(args, workdir)
        direct = run_direct(args, workdir)
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    offered_rate = switch["calls"] / args.seconds
    routing, setup, peer = switch["routing_ms"], switch["setup_ms"], direct["setup_ms"]
    print(f"through the switch: {switch['ok']}/{switch['calls']} calls completed, {switch['failed']} failed, "
          f"offered at {offered_rate:.1f} calls/s; at most {switch['most_bridged']} calls bridged at once")
    print(f"  records: {switch['records']}")
    print(f"  switch CPU: {switch['cpu_s']:.2f} s for {switch['calls']} calls = "
          f"{1000 * switch['cpu_s'] / max(1, switch['calls']):.2f} ms per call, "
          f"{100 * switch['cpu_s'] / switch['wall_s']:.0f}% of one core over {switch['wall_s']:.1f} s")
    print(f"  routing delay (INVITE in -> INVITE to a free agent), {len(routing)} calls: "
          f"p50 {percentile(routing, .5):.2f} ms, p95 {percentile(routing, .95):.2f} ms, "
          f"max {max(routing, default=float('nan')):.2f} ms")
    print(f"  call set-up (INVITE -> 200 at the caller): p50 {percentile(setup, .5):.1f} ms, "
          f"p95 {percentile(setup, .95):.1f} ms")
    print(f"SIPp -> SIPp direct (peer): {direct['ok']}/{direct['calls']} completed, {direct['failed']} failed; "
          f"set-up p50 {percentile(peer, .5):.1f} ms, p95 {percentile(peer, .95):.1f} ms")
    if peer and setup:
        # SIPp answers its own calls in microseconds, so a ratio says little: the
        # difference is what a caller waits for the switch.
        print(f"the switch adds {percentile(setup, .5) - percentile(peer, .5):.1f} ms to call set-up at p50, "
              f"{percentile(setup, .95) - percentile(peer, .95):.1f} ms at p95 "
              f"(ratio {percentile(setup, .5) / max(percentile(peer, .5), 0.001):.0f}x)")
    if args.profile and args.profile.exists():
        print("profile of the switch (py-spy):")
        print("\n".join("  " + line for line in profile_summary(args.profile)))
    good = switch["failed"] == 0 and switch["ok"] == switch["calls"]
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
