import sqlite3

import pytest

from records.db import APPLICATION_ID, DatabaseError, connect
from records.schema import SCHEMA_VERSION


def test_new_database_is_wal_with_foreign_keys(tmp_path):
    path = tmp_path / "h.db"
    with connect(path, create=True) as db:
        assert db.journal_mode == "wal"
        assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        with pytest.raises(sqlite3.IntegrityError):
            db.execute("INSERT INTO resident_phones (resident_id, number) VALUES (99, '+85291234567')")
    with connect(path) as db:  # reopening migrates nothing and keeps working
        assert len(db.execute("SELECT * FROM _sqlite_migrations").fetchall()) == SCHEMA_VERSION


def test_missing_file_is_not_created_by_accident(tmp_path):
    with pytest.raises(DatabaseError, match="no such database .*hotline --db .* db init"):
        connect(tmp_path / "typo.db")
    assert not (tmp_path / "typo.db").exists()


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"shopping list: milk, eggs\n" * 100)
    with pytest.raises(DatabaseError, match="is not a SQLite database"):
        connect(path, create=True)
    assert path.read_bytes() == b"shopping list: milk, eggs\n" * 100
    with pytest.raises(DatabaseError, match="is a directory"):
        connect(tmp_path, create=True)


def test_another_applications_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseError, match="not a hotline one .*invoices"):
        connect(path, create=True)


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "h.db"
    connect(path, create=True).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseError, match=f"schema version {SCHEMA_VERSION + 1}, written by a newer hotline"):
        connect(path)
    # The same when only the migrations table knows of a newer step.
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('hotline', 'm999_future', 'x')")
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseError, match="newer hotline"):
        connect(path)


def test_a_damaged_database_gets_a_clear_message(tmp_path):
    path = tmp_path / "h.db"
    with connect(path, create=True) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = bytearray(path.read_bytes())
    raw[100:4096] = b"\xff" * (4096 - 100)  # overwrite the schema page after the header
    path.write_bytes(bytes(raw))
    with pytest.raises(DatabaseError, match="damaged"):
        connect(path)


def test_an_older_schema_is_migrated(tmp_path):
    from records.schema import migrations
    from sqlite_utils import Database

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    old = Database(conn)
    migrations.apply(old, stop_before="m005_work_orders")
    assert "work_orders" not in old.table_names()
    conn.close()
    with connect(path) as db:
        assert "work_orders" in db.table_names()


def test_a_second_connection_in_the_process_does_not_cost_the_first_its_locks(tmp_path):
    """The switch opens more connections (its registrar's) beside its writer; another
    process reading and closing must still see the writer's later commits."""
    import subprocess
    import sys

    path = tmp_path / "h.db"
    writer = connect(path, create=True)
    connect(path, migrate=False).close()      # e.g. the registrar's lookup connection
    read = [sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "print(c.execute('select count(*) from queue_log').fetchone()[0]); c.close()", str(path)]
    assert subprocess.run(read, capture_output=True, text=True).stdout.strip() == "0"
    with writer.atomic():
        writer.execute("INSERT INTO queue_log (time, callid, queuename, agent, event) VALUES (1, 'c', 'q', 'a', 'E')")
    assert subprocess.run(read, capture_output=True, text=True).stdout.strip() == "1"
    writer.close()


def test_m008_widens_the_outcome_check_and_keeps_rows_indexes_and_references(tmp_path):
    from records.schema import migrations
    from sqlite_utils import Database

    path = tmp_path / "m007.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    old = Database(conn)
    migrations.apply(old, stop_before="m008_outbound_no_answer")
    old["interactions"].insert({"uid": "c1", "direction": "inbound", "entered_at": 1.0, "outcome": "answered"})
    old["work_orders"].insert({"type": "repair", "status": "open", "department": "engineering", "description": "x",
                               "opened_at": 1.0, "dispatch_due": 2.0, "interaction_id": 1}, alter=False)
    conn.commit()
    with pytest.raises(sqlite3.IntegrityError):
        old["interactions"].insert({"uid": "c2", "direction": "outbound", "entered_at": 2.0, "outcome": "no_answer"})
    indexes = sorted(i.name for i in old["interactions"].indexes)
    conn.close()
    with connect(path) as db:
        db["interactions"].insert({"uid": "c2", "direction": "outbound", "entered_at": 2.0, "outcome": "no_answer"})
        assert [r["uid"] for r in db["interactions"].rows] == ["c1", "c2"]
        assert sorted(i.name for i in db["interactions"].indexes) == indexes
        assert db.execute("SELECT interaction_id FROM work_orders").fetchone() == (1,)
        assert db.execute("PRAGMA foreign_keys").fetchone() == (1,)
        with pytest.raises(sqlite3.IntegrityError):
            db["interactions"].insert({"uid": "c3", "direction": "inbound", "entered_at": 3.0, "outcome": "lost"})


def test_m009_adds_failed_with_its_sip_cause_to_a_database_m008_rebuilt(tmp_path):
    from records.schema import migrations
    from sqlite_utils import Database

    path = tmp_path / "m008.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    old = Database(conn)
    migrations.apply(old, stop_before="m009_failed_calls")
    old["interactions"].insert({"uid": "c1", "direction": "outbound", "entered_at": 1.0, "outcome": "no_answer"})
    conn.commit()
    conn.close()
    with connect(path) as db:
        db["interactions"].insert({"uid": "c2", "direction": "inbound", "entered_at": 2.0, "outcome": "failed",
                                   "sip_cause": "503 Service Unavailable"})
        assert [(r["uid"], r["outcome"], r["sip_cause"]) for r in db["interactions"].rows] == [
            ("c1", "no_answer", ""), ("c2", "failed", "503 Service Unavailable")]
        assert db.execute("PRAGMA foreign_keys").fetchone() == (1,)


def test_a_write_block_waits_for_another_writer_instead_of_failing(tmp_path):
    # found in CI once the switch wrote every 5 s: a deferred transaction that had read, then
    # wrote after another process committed, failed at once with "database is locked"
    import threading

    from records.db import connect
    from records.directory import NewResident, add_resident

    path = tmp_path / "r.db"
    connect(path, create=True).close()
    done, errors = threading.Event(), []

    def other_writer():   # the switch's sign of life, much faster
        db = connect(path)
        n = 0
        while not done.is_set():
            with db.atomic():
                db.execute("INSERT INTO estates (name) VALUES (?)", [f"Estate {n}"])
            n += 1
        db.close()
    thread = threading.Thread(target=other_writer)
    thread.start()
    db = connect(path)
    try:
        for n in range(200):
            try:
                add_resident(db, NewResident(name=f"Resident {n}", kind="tenant"))
            except Exception as exc:   # noqa: BLE001
                errors.append(exc)
    finally:
        done.set()
        thread.join()
    assert errors == [] and db.execute("SELECT count(*) FROM residents").fetchone()[0] == 200
    db.close()


def test_m013_gives_every_answered_contact_so_far_its_agents_leg_and_drops_transferred_from(tmp_path):
    from records.schema import migrations
    from sqlite_utils import Database

    path = tmp_path / "m012.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    old = Database(conn)
    migrations.apply(old, stop_before="m013_interaction_legs")
    agent = old["agents"].insert({"ext": "1001", "name": "Ann", "role": "agent", "created_at": 0.0,
                                  "pin_hash": "x"}, alter=False).last_pk
    for uid, answered, ended, outcome in (("c1", 5.0, 65.0, "answered"), ("c2", None, 9.0, "abandoned"),
                                          ("c3", 7.0, 20.0, "interrupted"), ("c4", 8.0, None, None)):
        old["interactions"].insert({"uid": uid, "direction": "inbound", "entered_at": 1.0, "answered_at": answered,
                                    "ended_at": ended, "talk_s": 60.0 if answered else None, "agent_id": agent,
                                    "agent_ext": "1001" if answered else "", "outcome": outcome})
    conn.commit()
    conn.close()
    with connect(path) as db:
        legs = db.execute("SELECT i.uid, l.agent_ext, l.talk_s, l.ended FROM interaction_legs l "
                          "JOIN interactions i ON i.id = l.interaction_id ORDER BY i.uid").fetchall()
        assert legs == [("c1", "1001", 60.0, "completed"), ("c3", "1001", 60.0, "interrupted"),
                        ("c4", "1001", 60.0, "")]   # c4 was left open by a crash: the next start closes it
        assert "transferred_from" not in db["interactions"].columns_dict
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
