"""Interval report benchmark: `hotline report` for one day of N contacts (default 50,000;
target under 1 s), by queue, agent and type, against a peer measured in the same run: one
SQL GROUP BY over the same rows counting offered/answered/abandoned per interval and queue
(what the report does beyond that is the per-agent walk of agent_states, legs, orders).

    python bench/report.py [--contacts 50000] [--agents 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from records.db import connect  # noqa: E402
from telephony.report import interval_report  # noqa: E402

HK = dt.timezone(dt.timedelta(hours=8))
DAY = dt.date(2027, 1, 15)
QUEUES = ("repair", "complaint", "billing", "enquiry", "emergency", "general")


def build(path: Path, contacts: int, agents: int, rng: random.Random) -> None:
    db = connect(path, create=True)
    start = dt.datetime.combine(DAY, dt.time(), HK).timestamp()
    with db.atomic():
        db.conn.executemany("INSERT INTO agents (id, ext, name, role, pin_hash, created_at) VALUES (?, ?, ?, 'agent', "
                            "'x', 0)", [(n + 1, str(1001 + n), f"agent {n}") for n in range(agents)])
        rows, legs, states = [], [], []
        for n in range(contacts):
            entered = start + rng.uniform(0, 86400)
            queue = rng.choice(QUEUES)
            wait = rng.expovariate(1 / 20)
            agent = rng.randrange(agents) + 1
            if rng.random() < 0.9:
                talk = rng.lognormvariate(5, 0.5)
                rows.append((n + 1, f"c{n}", "inbound", queue, queue, entered, entered + wait, entered + wait + talk,
                             wait, talk, 0.0, 20.0, str(1000 + agent), agent, "answered"))
                legs.append((n + 1, agent, str(1000 + agent), queue, entered + wait, entered + wait + talk, talk, 0.0,
                             20.0, "completed"))
            else:
                rows.append((n + 1, f"c{n}", "inbound", queue, queue, entered, None, entered + wait, wait, None, None,
                             None, "", None, "abandoned"))
        for agent in range(1, agents + 1):
            t = start + rng.uniform(0, 3600)
            while t < start + 86400:
                states.append((t, agent, str(1000 + agent), "available", rng.choice(("idle", "in_call", "wrap_up"))))
                t += rng.expovariate(1 / 120)
        db.conn.executemany("INSERT INTO interactions (id, uid, direction, queue, call_type, entered_at, answered_at, "
                            "ended_at, wait_s, talk_s, hold_s, wrapup_s, agent_ext, agent_id, outcome) VALUES "
                            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        db.conn.executemany("INSERT INTO interaction_legs (interaction_id, agent_id, agent_ext, queue, answered_at, "
                            "ended_at, talk_s, hold_s, wrapup_s, ended) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", legs)
        db.conn.executemany("INSERT INTO agent_states (at, agent_id, ext, status, state) VALUES (?, ?, ?, ?, ?)", states)
    db.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--agents", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "report.db"
        build(path, args.contacts, args.agents, random.Random(1))
        db = connect(path)
        start = dt.datetime.combine(DAY, dt.time(), HK).timestamp()
        began = time.perf_counter()
        peer = db.execute("SELECT CAST((entered_at - ?) / 1800 AS INTEGER), queue, count(*), "
                          "sum(outcome = 'answered'), sum(outcome = 'abandoned'), avg(wait_s) FROM interactions "
                          "WHERE entered_at >= ? AND entered_at < ? GROUP BY 1, 2", [start, start, start + 86400]).fetchall()
        peer_s = time.perf_counter() - began
        print(f"report benchmark: one day of {args.contacts:,} contacts, {args.agents} agents, 30-minute intervals")
        print(f"  peer (one SQL GROUP BY of the same rows): {peer_s * 1000:.0f} ms, {len(peer)} rows")
        for by in ("queue", "agent", "type"):
            began = time.perf_counter()
            rows = interval_report(db, day=DAY, tz=HK, interval_s=1800, by=by, thresholds={}, default_threshold_s=15.0,
                                   now=start + 86400)
            took = time.perf_counter() - began
            print(f"  hotline report --by {by}: {took * 1000:.0f} ms, {len(rows)} rows "
                  f"({took / peer_s:.1f}x the peer; target under 1 s)")
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
