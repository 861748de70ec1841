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
from scenarios.live import free_tcp_port, free_udp_port  # noqa: E402
from scenarios.live_run import stop_process  # noqa: E402

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
        if self.process is not None:
            stop_process(self.process, 5)

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


class MediaNode:
    """`hotline media-node` on loopback, for a switch that anchors its calls there
    (`--media-node`, bench/audio.py); its own statistics through its control socket."""

    def __init__(self, workdir: Path):
        self.control = f"udp:127.0.0.1:{free_udp_port()}"
        self.notify = f"tcp:127.0.0.1:{free_tcp_port()}"
        self.log = open(workdir / "node.log", "w")
        self.process = subprocess.Popen([sys.executable, "-m", "console", "media-node", "--control", self.control,
                                         "--notify", self.notify, "--dir", str(workdir / "bench.media")],
                                        cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while "RTPproxy on" not in (workdir / "node.log").read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the media node did not start: " + (workdir / "node.log").read_text()[-1000:])
            time.sleep(0.05)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.settimeout(2)
        self._cookie = 0

    def counters(self) -> dict[str, float]:
        """RTPproxy's own statistics (its G command)."""
        names = ("npkts_rcvd", "npkts_relayed", "npkts_discard", "npkts_played", "rtpa_nrcvd", "rtpa_nlost",
                 "rtpa_perrs", "rtpa_ndups", "nsess_created")
        self._cookie += 1
        host, port = self.control[4:].rsplit(":", 1)
        self._sock.sendto(f"b{self._cookie} Gv {' '.join(names)}".encode(), (host, int(port)))
        reply = self._sock.recv(65536).decode().split(None, 1)[1]
        return {name: float(value) for name, _, value in (item.partition("=") for item in reply.split())}

    def stop(self) -> None:
        stop_process(self.process, 10)
        self.log.close()


class BenchSwitch:
    """`hotline switch` in `workdir` with `agents` seats (3000...) and a supervisor (2999)
    in its records, no wrap-up, started and ready; `bring_up_seats` registers them all at
    one SIPp agent and logs them in as available."""

    def __init__(self, workdir: Path, agents: int, *, name: str = "bench", no_media: bool = False, node_config=None,
                 memray: Path | None = None, extra_config: str = ""):
        self.workdir, self.db_path = workdir, workdir / f"{name}.db"
        db = connect(self.db_path, create=True)
        salt = b"bench-salt-16byt"
        self.exts = [str(3000 + i) for i in range(agents)]
        for ext in self.exts:
            add_agent(db, ext=ext, name=f"Bot {ext}", pin=PIN, skills={"general": 3}, salt=salt)
        add_agent(db, ext="2999", name="Bench supervisor", pin=PIN, role="supervisor", salt=salt)
        db.close()
        # node_config: a media node (bench/audio.py) the switch anchors calls on
        (workdir / "switch.yaml").write_text(CONFIG + (f"media:\n  notify: {node_config.notify}\n  nodes:\n"
                                                       f"    - {{control: '{node_config.control}'}}\n"
                                                       if node_config is not None else "") + extra_config)
        self.sip_port, self.agent_port = free_udp_port(), free_udp_port()
        self.control = workdir / "control.sock"
        self.log = open(workdir / "switch.log", "w")
        # memray: the switch runs under memray's tracker, its allocations written to that file
        tracker = [sys.executable, "-m", "memray", "run", "--force", "-o", str(memray)] if memray else [sys.executable]
        self.process = subprocess.Popen(
            [*tracker, "-m", "console", "--db", str(self.db_path), "switch", "--sip", f"127.0.0.1:{self.sip_port}",
             "--control", str(self.control), "--config", str(workdir / "switch.yaml"),
             *(["--no-media"] if no_media else [])], cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while "hotline switch: SIP on" not in (workdir / "switch.log").read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the switch did not start: " + (workdir / "switch.log").read_text()[-2000:])
            time.sleep(0.05)

    def seat_phones(self, trace: bool = True, name: str = "agents", scenario_file: Path | None = None,
                    media_port: int | None = None) -> Sipp:
        """One SIPp answering as every seat's phone, on the port they registered.
        -aa: it answers the switch's in-call OPTIONS, as phones do."""
        return Sipp(name, self.workdir, ["-sf", str(scenario_file or SCENARIOS / "agent.xml"), "-p",
                                         str(self.agent_port), "-aa",
                                         *(["-mp", str(media_port)] if media_port else [])], trace=trace).start()

    def bring_up_seats(self, trace: bool = True, name: str = "agents", scenario_file: Path | None = None,
                       media_port: int | None = None) -> Sipp:
        agents = self.seat_phones(trace, name, scenario_file, media_port)
        register_seats(self.exts, self.sip_port, self.agent_port)
        ask, sock = control(self.control)
        for ext in self.exts:
            ask("login", ext=ext, pin=PIN)
            ask("status", status="available")
        # kept open: a connection that closes logs out the agent it last logged in, as a
        # seat that vanished (the last seat was logged out, and its calls queued)
        self._seat_control = sock
        return agents

    def stop(self) -> None:
        if getattr(self, "_seat_control", None) is not None:
            self._seat_control.close()
        stop_process(self.process, 30)
        self.log.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_switch(args, workdir: Path) -> list[dict]:
    """One switch and its seats; the callers at each rate in turn (each with a fresh
    SIPp for the seats, on the port they registered, so the traces match per rate)."""
    node = MediaNode(workdir) if args.media_node else None
    bench = BenchSwitch(workdir, args.agents, no_media=args.no_media, memray=args.memray, node_config=node)
    agents = None
    results = []
    try:
        agents = bench.bring_up_seats(name=f"agents-{args.rates[0]:g}")
        ask, sock = control(bench.control)
        ask("login", ext="2999", pin=PIN)
        for index, rate in enumerate(args.rates):
            if index:
                time.sleep(2)   # the last rate's BYEs and wrap-ups settle
                agents = bench.seat_phones(name=f"agents-{rate:g}")
            calls = int(rate * args.seconds)
            callers = Sipp(f"callers-{rate:g}", workdir, [
                f"127.0.0.1:{bench.sip_port}", "-sf", str(SCENARIOS / "caller.xml"), "-s", "2000",
                "-d", str(args.hold_ms), "-r", str(rate), "-m", str(calls), "-l", str(max(args.agents, calls)),
                "-p", str(free_udp_port()), "-timeout", str(args.seconds + args.hold_ms / 1000 + 90) + "s"])
            cpu_before, wall_before = cpu_seconds(bench.process.pid), time.monotonic()
            node_before = cpu_seconds(node.process.pid) if node else 0.0
            rss_before = rss_mb(bench.process.pid)
            profiler = start_profile(bench.process.pid, args.profile) if args.profile and not index else None
            callers.start()
            most = queued = 0
            while callers.process.poll() is None:
                # once a second: the snapshot of 2,000 agents is itself work for the switch
                snapshot = ask("snapshot")["snapshot"]
                most = max(most, sum(1 for a in snapshot["agents"] if a["state"] == "in_call"))
                queued = max(queued, sum(len(waiting) for waiting in snapshot["queues"].values()))
                time.sleep(1.0)
            wall = time.monotonic() - wall_before
            cpu = cpu_seconds(bench.process.pid) - cpu_before
            node_cpu = cpu_seconds(node.process.pid) - node_before if node else None
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)   # py-spy writes its file on SIGINT
                profiler.wait(60)
            ok, failed = callers.counts()
            agents.stop()
            results.append({"rate": rate, "calls": calls, "ok": ok, "failed": failed, "most_bridged": most,
                            "most_queued": queued, "cpu_s": cpu, "wall_s": wall, "node_cpu_s": node_cpu,
                            "rss_mb": (rss_before, rss_mb(bench.process.pid)),
                            "routing_ms": routing_delays_ms(callers.trace, agents.trace),
                            "setup_ms": setup_times_ms(callers.trace)})
        sock.close()
        records = workdir_interactions(bench.db_path)
        for result in results:
            result["records"] = records
        return results
    finally:
        if agents is not None:
            agents.stop()
        bench.stop()
        if node is not None:
            node.stop()


def start_profile(pid: int, out: Path) -> subprocess.Popen:
    """py-spy sampling the switch into collapsed stacks: only the thread holding the
    interpreter lock at each sample (`--gil`), so the samples are where the one core
    the switch's Python threads share goes, not threads waiting on a socket or a queue."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--threads", "--gil",
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
    rate = args.rates[0]
    calls = int(rate * args.seconds)
    callers = Sipp("direct_callers", workdir, [f"127.0.0.1:{agent_port}", "-sf", str(SCENARIOS / "caller.xml"),
                                               "-s", "2000", "-d", str(args.hold_ms), "-r", str(rate),
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
    parser.add_argument("--rates", metavar="R,R,...",
                        help="several rates in turn on one switch and its seats (e.g. 50,100,150): "
                             "prints the highest with no failure and routing p95 under 100 ms")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long calls keep arriving")
    parser.add_argument("--hold-ms", type=int, default=5000, help="how long each call stays bridged")
    parser.add_argument("--agents", type=int, default=300, help="registered seats (also SIPp's call limit)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (traces, logs)")
    parser.add_argument("--no-media", action="store_true",
                        help="run the switch with --no-media (SDP passed through; default: anchored and recorded)")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="sample the switch with py-spy while calls run: collapsed stacks into FILE, "
                             "and a summary of where the time went")
    parser.add_argument("--media-node", action="store_true",
                        help="anchor the calls on a `hotline media-node` process instead of the switch's own engine")
    parser.add_argument("--memray", type=Path, metavar="FILE",
                        help="run the switch under memray (its allocations into FILE; memray stats FILE reads them)")
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rates.split(",")] if args.rates else [args.rate]
    if SIPP is None:
        print("bench/switch.py needs sipp (Debian: apt-get install sip-tester)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-switch-"))
    try:
        print(f"switch benchmark: {', '.join(f'{r:g}' for r in args.rates)} calls/s for {args.seconds:g} s, "
              f"each held {args.hold_ms} ms, "
              f"{args.agents} registered SIPp seats (no wrap-up), media "
              f"{'passed through' if args.no_media else 'anchored and recorded'}"
              f"{' on a media node' if args.media_node else ''}", flush=True)
        results = run_switch(args, workdir)
        direct = run_direct(args, workdir)
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    peer = direct["setup_ms"]
    print(f"SIPp -> SIPp direct (peer), {args.rates[0]:g} calls/s: {direct['ok']}/{direct['calls']} completed, "
          f"{direct['failed']} failed; set-up p50 {percentile(peer, .5):.1f} ms, p95 {percentile(peer, .95):.1f} ms")
    for switch in results:
        routing, setup = switch["routing_ms"], switch["setup_ms"]
        print(f"through the switch at {switch['rate']:g} calls/s: {switch['ok']}/{switch['calls']} calls completed, "
              f"{switch['failed']} failed; at most {switch['most_bridged']} calls bridged and "
              f"{switch['most_queued']} queued at once")
        print(f"  switch CPU: {switch['cpu_s']:.2f} s for {switch['calls']} calls = "
              f"{1000 * switch['cpu_s'] / max(1, switch['calls']):.2f} ms per call, "
              f"{100 * switch['cpu_s'] / switch['wall_s']:.0f}% of one core over {switch['wall_s']:.1f} s; "
              f"memory {switch['rss_mb'][0]:.1f} -> {switch['rss_mb'][1]:.1f} MB"
              + (f"; the media node {1000 * switch['node_cpu_s'] / max(1, switch['calls']):.2f} ms per call, "
                 f"{100 * switch['node_cpu_s'] / switch['wall_s']:.0f}% of a core"
                 if switch["node_cpu_s"] is not None else ""))
        print(f"  routing delay (INVITE in -> INVITE to a free agent), {len(routing)} calls: "
              f"p50 {percentile(routing, .5):.2f} ms, p95 {percentile(routing, .95):.2f} ms, "
              f"max {max(routing, default=float('nan')):.2f} ms")
        print(f"  call set-up (INVITE -> 200 at the caller): p50 {percentile(setup, .5):.1f} ms, "
              f"p95 {percentile(setup, .95):.1f} ms; the switch adds "
              f"{percentile(setup, .5) - percentile(peer, .5):.1f} ms at p50 to the direct peer's")
    print(f"  records: {results[-1]['records']}")
    within = [r["rate"] for r in results if r["failed"] == 0 and r["ok"] == r["calls"]
              and percentile(r["routing_ms"], .95) < 100]
    print(f"highest rate with no failure and routing p95 under 100 ms: "
          f"{max(within):g} calls/s" if within else "no rate tried kept routing p95 under 100 ms with no failure")
    good = all(r["failed"] == 0 and r["ok"] == r["calls"] for r in results)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
