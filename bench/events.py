"""The event log's cost: the switch core's write path with and without it, in the same run.

Each call goes through the real SwitchCore on a records database on disk (as the live
switch does): arrives, is offered to an agent, answered, hung up, wrap-up ends. Run A logs
every event to the `events` table (the switch as shipped); run B is the same core with
the event log's INSERT left out (the peer). Printed: events and calls per second for
each, the ratio, and the database's growth per 10,000 calls with and without the log.

    python bench/events.py [--calls 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from records.agents import add_agent  # noqa: E402
from records.db import connect  # noqa: E402
from telephony.acd import QueueConfig  # noqa: E402
from telephony.switchconfig import SwitchConfig  # noqa: E402
from telephony.switchcore import SwitchCore  # noqa: E402
from telephony.wire import encode  # noqa: E402

AGENTS = 50


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self):
        return self.now


class WithoutLog(SwitchCore):
    """The peer: everything the switch writes, but not the event log."""

    def _logged(self, event) -> dict:
        return encode(event)


def _size(db) -> int:
    """The database's logical size in bytes (its pages, wherever they are: file or WAL)."""
    return db.execute("PRAGMA page_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]


def run(core_class, path: Path, calls: int) -> tuple[float, int, int]:
    db = connect(path, create=True)
    for n in range(AGENTS):
        add_agent(db, ext=str(2000 + n), name=f"Agent {n}", pin="1234", skills={"repair": 3})
    clock = Clock()
    core = core_class(db, config=SwitchConfig((QueueConfig("repair", wrap_up_s=0),)), clock=clock,
                      queue_log_path=path.with_suffix(".queue_log"))
    for n in range(AGENTS):
        core.set_status(str(2000 + n), "available")
    size_before = _size(db)
    events_before = db.execute("SELECT count(*) FROM events").fetchone()[0]
    started = time.perf_counter()
    for n in range(calls):
        call_id, ext = f"c{n}", str(2000 + n % AGENTS)
        core.caller_arrived(call_id, f"+8529{n:07d}", "repair")
        clock.now += 1
        offered_to = next(iter(core.acd.calls[call_id].ringing), ext)
        core.sip_answered(call_id, offered_to)
        clock.now += 30
        core.sip_hung_up(call_id, by="caller")
    elapsed = time.perf_counter() - started
    events = db.execute("SELECT count(*) FROM events").fetchone()[0] - events_before
    size = _size(db) - size_before
    core.close()
    db.close()
    return elapsed, events, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, alternated; the best counts")
    args = parser.parse_args()
    logged_times, plain_times = [], []
    with tempfile.TemporaryDirectory(prefix="hotline-events-") as tmp:
        # alternated, best of each: a busy machine slows whichever ran at the wrong moment
        for attempt in range(args.repeat):
            seconds, events, logged_bytes = run(SwitchCore, Path(tmp) / f"logged{attempt}.db", args.calls)
            logged_times.append(seconds)
            seconds, _, plain_bytes = run(WithoutLog, Path(tmp) / f"plain{attempt}.db", args.calls)
            plain_times.append(seconds)
    logged_s, plain_s = min(logged_times), min(plain_times)
    per_10k = 10_000 / args.calls
    print(f"{args.calls} calls through the switch core, {events} events logged ({events / args.calls:.1f} per call)")
    print(f"with the event log:    {args.calls / logged_s:8.0f} calls/s, {events / logged_s:8.0f} events/s logged, "
          f"database +{logged_bytes * per_10k / 1e6:.1f} MB per 10,000 calls")
    print(f"without it (the peer): {args.calls / plain_s:8.0f} calls/s, "
          f"database +{plain_bytes * per_10k / 1e6:.1f} MB per 10,000 calls")
    print(f"ratio: {logged_s / plain_s:.2f}x the time; the event log adds "
          f"{(logged_bytes - plain_bytes) * per_10k / 1e6:.1f} MB per 10,000 calls "
          f"({(logged_bytes - plain_bytes) / max(events, 1):.0f} bytes per event)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
