import datetime as dt
import hashlib

import pytest

from records.db import connect
from records.directory import resident_by_phone
from records.seed import seed_database
from records.workorders import pending_deadlines

AS_OF = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()
DOMAIN_TABLES = ("estates", "buildings", "units", "residents", "resident_phones", "agents", "agent_skills",
                 "interactions", "work_orders", "work_order_events", "callbacks", "surveys")


def content_digest(db):
    digest = hashlib.sha256()
    for table in DOMAIN_TABLES:
        for row in db.execute(f"SELECT * FROM [{table}] ORDER BY rowid"):
            digest.update(repr((table, row)).encode())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, policy):
    db = connect(tmp_path_factory.mktemp("seed") / "demo.db", create=True)
    summary = seed_database(db, policy, residents=5000, seed=7, as_of=AS_OF)
    return db, summary


def test_same_seed_same_content(tmp_path, policy, seeded):
    dbs = []
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        db = connect(tmp_path / f"{name}.db", create=True)
        seed_database(db, policy, residents=400, seed=seed, as_of=AS_OF, pins_from_seed=True)
        dbs.append(content_digest(db))
    assert dbs[0] == dbs[1] and dbs[0] != dbs[2]


def test_pins_are_secret_unless_asked_to_follow_the_seed(tmp_path, policy):
    pins = []
    for name in ("a", "b"):
        db = connect(tmp_path / f"{name}.db", create=True)
        pins.append([pin for *_, pin in seed_database(db, policy, residents=50, seed=7, as_of=AS_OF).pins])
    assert pins[0] != pins[1]   # same data, different logins


def test_a_realistic_property(seeded):
    db, summary = seeded
    q = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
    assert q("SELECT count(*) FROM residents") == 5000
    assert q("SELECT count(*) FROM estates") >= 5 and q("SELECT count(*) FROM buildings") >= 15
    assert 0.02 <= q("SELECT avg(segment = 'vip') FROM residents") <= 0.04
    assert 0.08 <= q("SELECT avg(arrears_cents > 0) FROM residents") <= 0.12
    per_resident = [row[0] for row in db.execute("SELECT count(*) FROM resident_phones GROUP BY resident_id")]
    assert len(per_resident) == 5000 and min(per_resident) == 1 and max(per_resident) == 3
    assert q("SELECT count(*) FROM residents WHERE name GLOB '*[陳李張黃何林梁劉吳鄭楊郭馬羅周謝曾麥蔡鄧]*'") > 2500
    assert q("SELECT count(*) FROM residents WHERE name_alt = ''") > 1000  # Latin names
    assert {r[0] for r in db.execute("SELECT DISTINCT kind FROM residents")} == {"owner", "tenant", "shop_tenant"}
    roles = [r[0] for r in db.execute("SELECT role FROM agents ORDER BY ext")]
    assert roles.count("agent") == 20 and roles.count("supervisor") == 1 and roles.count("admin") == 1
    assert len(summary.pins) == 22 and all(len(pin) == 6 for *_, pin in summary.pins)
    number = db.execute("SELECT number FROM resident_phones LIMIT 1").fetchone()[0]
    assert resident_by_phone(db, number) is not None


def test_history_follows_the_lifecycle_and_some_orders_are_overdue(seeded):
    db, _ = seeded
    cursor = db.execute("SELECT * FROM work_orders")
    columns = [c[0] for c in cursor.description]
    orders = [dict(zip(columns, row)) for row in cursor]
    assert len(orders) > 2000
    for order in orders:
        if order["status"] == "closed" and order["type"] in ("repair", "urgent_repair"):
            assert order["called_back_at"] is not None and order["resolved_at"] is not None
        assert order["opened_at"] < AS_OF
    overdue = [o for o in orders if any(d.overdue for d in pending_deadlines(o, AS_OF))]
    assert 10 <= len(overdue) < len(orders) * 0.2
    # Every resolved repair has its callback task, done or pending.
    missing = db.execute("""SELECT count(*) FROM work_orders w WHERE w.type IN ('repair', 'urgent_repair')
        AND w.resolved_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM callbacks c
        WHERE c.work_order_id = w.id AND c.kind = 'repair_callback')""").fetchone()[0]
    assert missing == 0
    events = db.execute("SELECT count(*) FROM work_order_events").fetchone()[0]
    assert events >= 4 * len(orders)
    outcomes = dict(db.execute("SELECT outcome, count(*) FROM interactions GROUP BY outcome").fetchall())
    assert outcomes["answered"] > 0.85 * sum(outcomes.values()) and outcomes["abandoned"] > 0


def test_seeded_contacts_are_as_complete_as_the_switchs(seeded):
    """Found using the demo: seeded rows had no extension or node, some were offered
    before they entered, and their dispositions were not in the seat's words."""
    from console.seatlogic import CALL_OUTCOMES, CONTACT_REASONS
    db, _ = seeded
    q = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
    assert q("SELECT count(*) FROM interactions WHERE answered_at IS NOT NULL AND agent_ext = ''") == 0
    assert q("SELECT count(*) FROM interactions WHERE node != 'seed'") == 0
    assert q("SELECT count(*) FROM interactions WHERE offered_at < entered_at") == 0
    for (disposition,) in db.execute("SELECT DISTINCT disposition FROM interactions WHERE outcome = 'answered'"):
        reason, _, outcome = disposition.partition(": ")
        assert reason in CONTACT_REASONS and outcome in CALL_OUTCOMES, disposition
    assert q("SELECT count(*) FROM interactions i WHERE outcome = 'answered' AND disposition LIKE '%work order opened' "
             "AND NOT EXISTS (SELECT 1 FROM work_orders w WHERE w.interaction_id = i.id)") == 0
    # every answered contact has its agent's leg (the seat's today totals read them)
    assert q("SELECT count(*) FROM interactions WHERE answered_at IS NOT NULL") == \
        q("SELECT count(*) FROM interaction_legs WHERE ended = 'completed'")
