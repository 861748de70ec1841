"""Supervisor console benchmark: `hotline supervisor` in a real terminal (a pty, 160x48)
watching a busy centre through the real control API, against a peer measured in the same
run: a bare client doing the same work without a screen (subscribed to every event since
midnight, asking the snapshot every second and the records every 10 s).

The centre is a switch core of 200 agents in every queue there is (the six call types:
queues are the trade's call types, so the 20 queues of the issue cannot be had) on real records, its control API
on a Unix socket, driven at about 50 events/s (callers arriving at random, answered after
a ring, hung up after a sampled handle time); no SIP (bench/switch.py measures that).
Sampled every 10 s: CPU of the console and of the peer (share of one core, from /proc),
and their memory (RSS). Targets: the console under 20% of one core, memory flat.

    python bench/supervisor.py [--seconds 600] [--events 50] [--agents 200] [--queues 6]
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import pty
import random
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from telephony.acd.config import CALL_TYPES  # noqa: E402

PIN = "9999"
EVENTS_PER_CALL = 5   # queued, offered, connected, completed, idle after wrap-up


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- the centre ---------------------------------------------------------------------------------
def build(db_path: Path, agents: int, queues: int) -> None:
    from records.agents import add_agent
    from records.db import connect

    db = connect(db_path, create=True)
    names = list(CALL_TYPES[:queues])
    for n in range(agents):
        skills = {names[(n + k) % queues]: 3 for k in range(3)}   # each agent serves 3 queues
        add_agent(db, ext=str(1001 + n), name=f"Agent {n}", pin="1111", skills=skills)
    add_agent(db, ext="9001", name="Sue Ho", pin=PIN, role="supervisor", skills={names[0]: 1})
    db.close()


async def drive(db_path: Path, control: Path, agents: int, queues: int, events_per_s: float, seconds: float) -> None:
    from records.db import connect
    from telephony.acd import QueueConfig
    from telephony.control import ControlServer
    from telephony.switchcore import SwitchCore

    db = connect(db_path)
    names = list(CALL_TYPES[:queues])
    core = SwitchCore(db, [QueueConfig(name, wrap_up_s=5, ring_timeout_s=30) for name in names])
    server = ControlServer(core)
    await server.start_unix(control)
    loop = asyncio.get_running_loop()
    rng = random.Random(1)
    delivered = [0]

    def heard(message: dict) -> None:
        delivered[0] += 1
        event = message.get("event")
        call, agent = message.get("call_id"), message.get("agent_id")
        if event == "CallOffered":
            loop.call_later(rng.uniform(0.5, 2.0), lambda: _quietly(core.sip_answered, call, agent))
        elif event == "CallConnected":
            loop.call_later(rng.expovariate(1 / 12.0), lambda: _quietly(core.sip_hung_up, call, by="caller"))
    core.subscribe(heard)
    for n in range(agents):
        core.set_status(str(1001 + n), "available")
    calls_per_s = events_per_s / EVENTS_PER_CALL
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        await asyncio.sleep(rng.expovariate(calls_per_s))
        n += 1
        _quietly(core.caller_arrived, f"b{n}", f"+8529{rng.randrange(10**7):07d}", rng.choice(names))
    await server.close()
    core.close()
    db.close()


def _quietly(action, *args, **kwargs) -> None:
    try:
        action(*args, **kwargs)
    except Exception:
        pass   # the caller left or the agent moved on meanwhile: the load goes on


# --- the peer: the same data work, no screen ------------------------------------------------------
async def peer(control: Path, seconds: float) -> None:
    import datetime as dt

    from console.centre import Centre, QueueSettings
    from telephony import wire
    from telephony.control_client import ControlClient

    client = await ControlClient.connect(str(control))
    me = await client.ask("login", ext="9001", pin=PIN)
    midnight = dt.datetime.now().replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    centre = Centre({name: QueueSettings(**{"threshold_s": q["threshold_s"], "target": q["target"]})
                     for name, q in me["queue_settings"].items()}, midnight)
    client.on_event = lambda delivered: centre.apply(delivered.event, delivered.seq or 0)
    await client.ask("subscribe", since=midnight, v=wire.EVENT_VERSION)
    end = time.monotonic() + seconds
    records = 0.0
    while time.monotonic() < end:
        centre.take_snapshot(wire.decode_snapshot((await client.ask("snapshot"))["snapshot"]))
        if time.monotonic() - records >= 10:
            records = time.monotonic()
            centre.take_records((await client.ask("supervise", since=midnight))["supervision"])
        now = time.time()
        centre.queue_lines(now), centre.agent_lines(now), centre.waiting_lines(now), centre.alerts(now)
        await asyncio.sleep(1.0)
    await client.close()


def console_in_pty(db_path: Path, control: Path) -> tuple[subprocess.Popen, threading.Thread]:
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 48, 160, 0, 0))
    env = {**os.environ, "HOTLINE_PIN": PIN, "TERM": "xterm-256color", "COLORTERM": "truecolor"}
    process = subprocess.Popen([sys.executable, "-m", "console", "--db", str(db_path), "supervisor", "--ext", "9001",
                                "--control", str(control)], stdin=follower, stdout=follower, stderr=follower,
                               env=env, cwd=ROOT, start_new_session=True)
    os.close(follower)

    def drain() -> None:   # a terminal that reads everything, as a real one does
        while True:
            try:
                if not os.read(leader, 65536):
                    return
            except OSError:
                return
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    return process, reader


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="how long to watch (10 minutes)")
    parser.add_argument("--events", type=float, default=50.0, help="events per second the centre makes")
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--queues", type=int, default=len(CALL_TYPES),
                        help="at most the six the trade's call types give (queues are call types)")
    parser.add_argument("--role", choices=("driver", "peer"), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "driver":
        work = Path(args.work)
        asyncio.run(drive(work / "centre.db", work / "control.sock", args.agents, args.queues, args.events,
                          args.seconds + 30))
        return 0
    if args.role == "peer":
        asyncio.run(peer(Path(args.work) / "control.sock", args.seconds))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        build(work / "centre.db", args.agents, args.queues)
        me = [sys.executable, __file__, "--work", str(work), "--seconds", str(args.seconds), "--events",
              str(args.events), "--agents", str(args.agents), "--queues", str(args.queues)]
        driver = subprocess.Popen([*me, "--role", "driver"])
        while not (work / "control.sock").exists():
            time.sleep(0.1)
        time.sleep(5)   # the centre fills up
        console, _ = console_in_pty(work / "centre.db", work / "control.sock")
        bare = subprocess.Popen([*me, "--role", "peer"])
        print(f"supervisor benchmark: {args.agents} agents, {args.queues} queues, about {args.events:.0f} events/s, "
              f"{args.seconds:.0f} s; console in a 160x48 pty against a bare client doing the same data work")
        started = time.monotonic()
        last = {p.pid: cpu_seconds(p.pid) for p in (console, bare)}
        first_rss = None
        shares: dict[int, list[float]] = {console.pid: [], bare.pid: []}
        while time.monotonic() - started < args.seconds and console.poll() is None and bare.poll() is None:
            time.sleep(10)
            for p in (console, bare):
                used = cpu_seconds(p.pid)
                shares[p.pid].append((used - last[p.pid]) / 10)
                last[p.pid] = used
            rss = (rss_mb(console.pid), rss_mb(bare.pid))
            first_rss = first_rss or rss
            print(f"  {time.monotonic() - started:5.0f} s  console {shares[console.pid][-1]:5.1%} of a core, "
                  f"{rss[0]:6.1f} MB   peer {shares[bare.pid][-1]:5.1%}, {rss[1]:6.1f} MB", flush=True)
        ok = console.poll() is None
        end_rss = (rss_mb(console.pid), rss_mb(bare.pid)) if ok else (0.0, 0.0)
        for p in (console, bare, driver):
            if p.poll() is None:
                p.terminate()
        for p in (console, bare, driver):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        if not ok or not shares[console.pid]:
            print("the console ended before the run did")
            return 1
        mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
        console_mean, peer_mean = mean(shares[console.pid]), mean(shares[bare.pid])
        print(f"console: mean {console_mean:.1%} of one core, max {max(shares[console.pid]):.1%} (target < 20%); "
              f"memory {first_rss[0]:.1f} -> {end_rss[0]:.1f} MB")
        print(f"peer (no screen): mean {peer_mean:.1%}; memory {first_rss[1]:.1f} -> {end_rss[1]:.1f} MB; "
              f"the console costs {console_mean / peer_mean if peer_mean else float('inf'):.1f}x the peer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
