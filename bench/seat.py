"""Seat benchmark: screen-pop latency over real SIP, and the idle cost of a logged-in seat.

A SIPp resident calls the real `hotline switch` 200 times (one at a time); the seat
(the Textual app headless under run_test, with its real pjsua2 phone, and no database:
its records come from the switch over the TCP control API with TLS, as on an agent's
own machine) pops, answers and hangs up each call. Pop latency is from the moment the
phone's pump thread got the INVITE to the first screen refresh after the caller's
profile was laid out. The peer, measured in the same run, is the records work alone
(`screen_pop` for the same caller on the switch's database), so the ratio says what the
network, TLS and the UI add. Then the seat idles, registered and logged in, for
--idle-s seconds and its CPU (this process: the pump thread and Textual) is measured.

    python bench/seat.py [--calls 200] [--idle-s 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from console.seat import PhoneEvent, SeatApp  # noqa: E402
from console.seatlogic import SeatState  # noqa: E402
from records.desk import screen_pop  # noqa: E402
from records.agents import add_agent  # noqa: E402
from records.db import connect  # noqa: E402
from scenarios.live import free_udp_port  # noqa: E402
from records.seed import seed_database  # noqa: E402
from records.sla import load_policy  # noqa: E402
from telephony.control_client import ControlClient  # noqa: E402
from telephony.softphone import Softphone  # noqa: E402
from telephony.tls import make_self_signed  # noqa: E402
from switch import percentile  # noqa: E402  (bench/switch.py)

SIPP = shutil.which("sipp")
CALLER_XML = ROOT / "tests" / "sipp" / "caller_until_agent_hangs_up.xml"
TOKEN = "bench-seat-token"


async def until(pilot, check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the seat did not get there")
        await pilot.pause(0.005)


async def run(args, workdir: Path) -> dict:
    db_path = workdir / "seat.db"
    db = connect(db_path, create=True)
    seed_database(db, load_policy(), residents=args.residents, seed=3)
    add_agent(db, ext="1999", name="Bench Seat", pin="4242", skills={"general": 3})
    number, = db.execute("SELECT p.number FROM resident_phones p JOIN interactions i ON i.resident_id = "
                         "p.resident_id GROUP BY p.number ORDER BY count(*) DESC LIMIT 1").fetchone()
    db.close()
    (workdir / "switch.yaml").write_text("queues:\n  general: {wrap_up_s: 0}\n")
    sip = free_udp_port()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        control_port = probe.getsockname()[1]
    cert, key = make_self_signed(workdir / "certs", ["127.0.0.1"])
    log = open(workdir / "switch.log", "w")
    switch = subprocess.Popen([sys.executable, "-m", "console", "--db", str(db_path), "switch", "--sip",
                               f"127.0.0.1:{sip}", "--control", f"127.0.0.1:{control_port}", "--tls-cert", str(cert),
                               "--tls-key", str(key), "--config", str(workdir / "switch.yaml")], cwd=ROOT, stdout=log,
                              stderr=subprocess.STDOUT, env={**os.environ, "HOTLINE_CONTROL_TOKEN": TOKEN})
    try:
        while "hotline switch: SIP on" not in (workdir / "switch.log").read_text():
            if switch.poll() is not None:
                raise RuntimeError((workdir / "switch.log").read_text())
            time.sleep(0.05)
        client = await ControlClient.connect(("127.0.0.1", control_port), TOKEN, str(cert))
        await client.ask("login", ext="1999", pin="4242")
        await client.ask("subscribe")
        seat = SeatState("1999", "Bench Seat")
        app = SeatApp(seat=seat, phone=None, control=client)   # no database: the switch answers
        phone = Softphone("1999", "4242", f"127.0.0.1:{sip}", lambda event: app.post_message(PhoneEvent(event)))
        app.phone = phone
        try:
            async with app.run_test(size=(120, 40)) as pilot:
                phone.start()
                await pilot.press("v")
                await until(pilot, lambda: seat.registered and seat.status == "available")
                caller = subprocess.Popen(
                    [SIPP, f"127.0.0.1:{sip}", "-sf", str(CALLER_XML), "-s", "general", "-key", "caller", number,
                     "-m", str(args.calls), "-l", "1", "-r", "50", "-i", "127.0.0.1", "-p", str(free_udp_port()),
                     "-timeout", str(args.calls * 5) + "s", "-nostdin"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                answered = 0
                while True:   # until SIPp has placed them all (it may lose one: its exit status says)
                    try:
                        await until(pilot, lambda: seat.state == "ringing" or caller.poll() is not None)
                    except TimeoutError:
                        raise TimeoutError(f"call {answered + 1} never rang (state {seat.state}, "
                                           f"{seat.registration_text}, {seat.status})") from None
                    if seat.state != "ringing":
                        break
                    current = seat.call
                    await pilot.press("a")
                    await until(pilot, lambda: seat.state == "in_call")
                    await until(pilot, lambda: len(app.pop_latencies) > answered)   # the profile is drawn
                    await pilot.press("h")
                    # over: the seat is idle, or already ringing with the next caller
                    await until(pilot, lambda: seat.call != current)
                    answered += 1
                code = await asyncio.get_running_loop().run_in_executor(None, caller.wait, 60)
                await pilot.pause(1.0)
                idle_start, idle_wall = time.process_time(), time.monotonic()
                await asyncio.sleep(args.idle_s)
                idle_cpu = (time.process_time() - idle_start) / (time.monotonic() - idle_wall)
                latencies = list(app.pop_latencies)
                calls_taken = seat.calls_today
        finally:
            phone.stop()
            await client.close()
        # the peer: the records work of the same pop, without the network or the UI
        db = connect(db_path, migrate=False)
        peer = []
        for _ in range(args.calls):
            start = time.perf_counter()
            screen_pop(db, 1, number, {"X-Hotline-Queue": "general"}, time.time())
            peer.append(time.perf_counter() - start)
        db.close()
        return {"latencies": latencies, "peer": peer, "idle_cpu": idle_cpu, "sipp": code, "calls": calls_taken}
    finally:
        switch.terminate()
        switch.wait(10)
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--idle-s", type=float, default=10.0)
    parser.add_argument("--residents", type=int, default=2000)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, database)")
    args = parser.parse_args()
    if SIPP is None:
        print("bench/seat.py needs sipp (Debian: apt-get install sip-tester)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-seat-"))
    try:
        result = asyncio.run(run(args, workdir))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work directory kept: {workdir}")
    ms = [1000 * x for x in result["latencies"]]
    peer = [1000 * x for x in result["peer"]]
    print(f"seat benchmark: {len(ms)} pops of {args.calls} calls (SIPp exit {result['sipp']}, "
          f"{result['calls']} answered by the seat)")
    print(f"  pop latency (INVITE at the phone -> pop on screen): p50 {percentile(ms, .5):.1f} ms, "
          f"p95 {percentile(ms, .95):.1f} ms, max {max(ms):.1f} ms   (target p95 < 100 ms)")
    print(f"  peer, records work alone (screen_pop): p50 {percentile(peer, .5):.2f} ms, "
          f"p95 {percentile(peer, .95):.2f} ms; the seat's pop is {statistics.median(ms) / statistics.median(peer):.0f}x "
          f"that at p50")
    print(f"  idle seat, logged in and registered: {100 * result['idle_cpu']:.1f}% of one core over "
          f"{args.idle_s:g} s   (target < 3%)")
    return 0 if ms and percentile(ms, .95) < 100 and result["idle_cpu"] < 0.03 else 1


if __name__ == "__main__":
    sys.exit(main())
