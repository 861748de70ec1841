"""Records benchmark: seeding, bulk interaction inserts, and the screen-pop lookups.

Seeds 50k residents, inserts 1M interactions in batches, then times the lookups an
agent seat makes on every call (resident by caller ID, last 10 contacts). Each is
measured against a peer in the same run: plain sqlite3 doing the same work on an
identical database, so the ratio shows what our layer (normalisation, sqlite-utils,
joins) costs. Target: lookup p95 under 2 ms on the 1M-interaction database.

    python bench/records.py [--residents 50000] [--interactions 1000000] [--lookups 20000]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from records.db import connect  # noqa: E402
from records.directory import last_contacts, resident_by_phone  # noqa: E402
from records.seed import seed_database  # noqa: E402
from records.sla import load_policy  # noqa: E402

AS_OF = 1_795_000_000.0
COLUMNS = ("uid", "direction", "caller_number", "resident_id", "queue", "call_type", "entered_at",
           "answered_at", "ended_at", "wait_s", "talk_s", "agent_id", "outcome", "disposition")


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=1000)[int(q * 1000) - 1]


def interactions(rng: random.Random, count: int, residents: list[tuple[int, str]], agents: list[int]):
    for n in range(count):
        resident_id, number = rng.choice(residents)
        entered = AS_OF - rng.uniform(0, 365 * 86400)
        wait, talk = rng.expovariate(1 / 20), rng.expovariate(1 / 180)
        yield (f"b{n}", "inbound", number, resident_id, "repair", "repair", entered, entered + wait,
               entered + wait + talk, wait, talk, rng.choice(agents), "answered", "work order opened")


def timed_lookups(fn, keys) -> list[float]:
    out = []
    for key in keys:
        start = time.perf_counter()
        fn(key)
        out.append((time.perf_counter() - start) * 1000)
    return out


def report(name: str, ours: list[float], peer: list[float]) -> None:
    p50, p95, p99 = (percentile(ours, q) for q in (0.5, 0.95, 0.99))
    q50, q95 = percentile(peer, 0.5), percentile(peer, 0.95)
    print(f"{name:<26} p50 {p50:6.3f} ms  p95 {p95:6.3f} ms  p99 {p99:6.3f} ms   "
          f"sqlite3 p50 {q50:6.3f} p95 {q95:6.3f}   ratio p95 {p95 / q95:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=50_000)
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--lookups", type=int, default=20_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    try:
        run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(args, workdir: Path) -> None:
    policy = load_policy(None)
    path = workdir / "bench.db"
    db = connect(path, create=True)
    start = time.perf_counter()
    seed_database(db, policy, residents=args.residents, seed=1, as_of=AS_OF, contacts_per_resident=0)
    seeded = time.perf_counter() - start
    phones = db.execute("SELECT count(*) FROM resident_phones").fetchone()[0]
    print(f"seed {args.residents:,} residents + {phones:,} phones + property + agents: {seeded:.2f} s "
          f"({(args.residents + phones) / seeded:,.0f} rows/s, scrypt PIN hashing included)")

    # The peer: an identical copy, written with plain sqlite3 executemany.
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    peer_path = workdir / "peer.db"
    shutil.copy(path, peer_path)
    peer = sqlite3.connect(peer_path)
    peer.execute("PRAGMA journal_mode=wal")

    residents = db.execute("SELECT resident_id, number FROM resident_phones").fetchall()
    agents = [row[0] for row in db.execute("SELECT id FROM agents")]
    rows = list(interactions(random.Random(5), args.interactions, residents, agents))

    start = time.perf_counter()
    for i in range(0, len(rows), args.batch):
        with db.atomic():
            db["interactions"].insert_all((dict(zip(COLUMNS, row)) for row in rows[i:i + args.batch]),
                                          batch_size=args.batch)
    ours = time.perf_counter() - start
    sql = f"INSERT INTO interactions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    start = time.perf_counter()
    for i in range(0, len(rows), args.batch):
        with peer:
            peer.executemany(sql, rows[i:i + args.batch])
    theirs = time.perf_counter() - start
    print(f"insert {len(rows):,} interactions, batches of {args.batch:,}: {len(rows) / ours:,.0f} rows/s "
          f"(sqlite3 executemany {len(rows) / theirs:,.0f} rows/s, ratio {ours / theirs:.2f}x time)")

    rng = random.Random(9)
    sample = [rng.choice(residents) for _ in range(args.lookups)]
    # Caller ID arrives in every format; ours normalises, the peer is handed E.164.
    formats = [lambda n: n, lambda n: n[4:8] + " " + n[8:], lambda n: "00" + n[1:], lambda n: f"sip:{n}@pbx"]
    raw = [formats[i % 4](number) for i, (_, number) in enumerate(sample)]
    found = sum(resident_by_phone(db, r) is not None for r in raw[:1000])
    assert found == 1000, f"only {found}/1000 caller IDs found"
    peer_phone = ("SELECT r.*, u.label FROM residents r JOIN resident_phones p ON p.resident_id = r.id "
                  "LEFT JOIN units u ON u.id = r.unit_id WHERE p.number = ?")
    report("lookup by caller ID", timed_lookups(lambda n: resident_by_phone(db, n), raw),
           timed_lookups(lambda n: peer.execute(peer_phone, [n]).fetchone(), [n for _, n in sample]))
    peer_last = ("SELECT i.*, a.name FROM interactions i LEFT JOIN agents a ON a.id = i.agent_id "
                 "WHERE i.resident_id = ? ORDER BY i.entered_at DESC LIMIT 10")
    ids = [rid for rid, _ in sample]
    report("last 10 contacts", timed_lookups(lambda r: last_contacts(db, r, 10), ids),
           timed_lookups(lambda r: peer.execute(peer_last, [r]).fetchall(), ids))
    total = db.execute("SELECT count(*) FROM interactions").fetchone()[0]
    size = sum(p.stat().st_size for p in workdir.glob("bench.db*")) / 2**20
    print(f"database: {total:,} interactions, {size:,.0f} MiB; python {sys.version.split()[0]}, "
          f"sqlite {sqlite3.sqlite_version}")


if __name__ == "__main__":
    main()
