"""Opening the records database: refuse what is not ours, migrate what is.

One writer per process (the caller decides which thread); readers open their own
connections. Every problem a user can cause (a path to some other file, a corrupt or
truncated database, a database from a newer hotline) ends in DatabaseError with a
sentence that says what to do, and nothing is written.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from sqlite_utils import Database

from records.schema import MIGRATION_NAMES, MIGRATION_SET, SCHEMA_VERSION, migrations

# PRAGMA application_id: marks the file as a hotline database ("HTLN").
APPLICATION_ID = 0x48544C4E
DEFAULT_PATH = "hotline.db"


class DatabaseError(RuntimeError):
    """A database the user pointed us at that we cannot or must not use."""


def default_path() -> str:
    return os.environ.get("HOTLINE_DB", DEFAULT_PATH)


class RecordsDatabase(Database):
    """sqlite-utils' Database whose atomic() blocks take the write lock when they begin.

    Several processes write the records (the switch, a seat, the CLI). A deferred
    transaction that reads first (sqlite-utils looks at the table before an insert) and
    then writes fails at once with "database is locked" if another process committed in
    between: SQLite cannot wait that conflict out. BEGIN IMMEDIATE waits for the lock
    (busy_timeout) instead, so a write block never fails because another one ran."""

    @contextlib.contextmanager
    def atomic(self):
        if self.conn.in_transaction:
            with super().atomic():   # nested: a savepoint, as sqlite-utils does
                yield self
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.conn.rollback()
            raise
        self.conn.execute("COMMIT")


def connect(path: str | Path, *, create: bool = False, migrate: bool = True) -> Database:
    """A sqlite-utils Database for `path`, checked, migrated, foreign keys on.

    create=False refuses a missing file (so a typo does not silently make an empty
    database); migrate=False leaves an older schema as it is (read-only tools).
    """
    path = Path(path)
    if path.is_dir():
        raise DatabaseError(f"{path} is a directory, not a database file")
    exists = path.exists() and path.stat().st_size > 0
    if not exists and not create:
        raise DatabaseError(f"{path}: no such database (create one with: hotline --db {path} db init)")
    try:
        conn = sqlite3.connect(str(path), timeout=30)
    except sqlite3.Error as exc:
        raise DatabaseError(f"{path}: cannot open: {exc}") from None
    try:
        # The header is checked through SQLite, never by opening the file ourselves:
        # closing any descriptor of a database file drops every POSIX lock this
        # process holds on it, so another process would think our open connections
        # gone, checkpoint and delete the WAL under them, and later commits would
        # be written to a deleted file (seen: the switch's registrar opening its own
        # connection made the switch's records vanish).
        conn.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError:
        conn.close()
        raise DatabaseError(f"{path} is not a SQLite database (wrong file, or corrupt)") from None
    db = RecordsDatabase(conn)
    try:
        _check_identity(db, path)
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA busy_timeout = 30000")
        # WAL with NORMAL: a commit is safe from a crash of the program (it cannot corrupt
        # the file, nor lose what was committed before); only a power cut can lose the last
        # moments. FULL would fsync on every commit, which the switch does per routing change.
        db.execute("PRAGMA synchronous = NORMAL")
        if migrate:
            _migrate(db, path)
        else:
            _check_version(db, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise DatabaseError(f"{path} is damaged ({exc}); restore it from a backup") from None
    except BaseException:
        conn.close()
        raise
    return db


def _check_identity(db: Database, path: Path) -> None:
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    if app_id == APPLICATION_ID:
        return
    tables = db.table_names()
    if app_id != 0 or tables:
        raise DatabaseError(
            f"{path} is a SQLite database but not a hotline one "
            f"(it holds {', '.join(tables[:5]) or 'no tables'}); pass the right --db"
        )


def applied_version(db: Database) -> tuple[int, list[str]]:
    user_version = db.execute("PRAGMA user_version").fetchone()[0]
    applied = [m.name for m in migrations.applied(db)]
    return user_version, applied


def _check_version(db: Database, path: Path) -> None:
    user_version, applied = applied_version(db)
    unknown = [name for name in applied if name not in MIGRATION_NAMES]
    if user_version > SCHEMA_VERSION or unknown:
        raise DatabaseError(
            f"{path} has schema version {user_version}, written by a newer hotline "
            f"(this one knows up to {SCHEMA_VERSION}); upgrade hotline to use it"
        )


def _migrate(db: Database, path: Path) -> None:
    _check_version(db, path)
    if not migrations.pending(db):
        return
    if db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    migrations.apply(db)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def insert_row(db: Database, table: str, row: dict) -> int:
    """INSERT one row and return its id.

    sqlite-utils' table.insert() reads the table's schema on every call; the per-call
    paths (interactions, work-order events) write often enough for that to dominate.
    """
    columns = ", ".join(f"[{c}]" for c in row)
    marks = ", ".join("?" for _ in row)
    return row_id(db.execute(f"INSERT INTO [{table}] ({columns}) VALUES ({marks})", list(row.values())).lastrowid)


def row_id(value: object) -> int:
    """The id an INSERT gave its row (sqlite3 and sqlite-utils type it as optional)."""
    if not isinstance(value, int):
        raise DatabaseError(f"an INSERT gave no row id ({value!r})")
    return value


def update_row(db: Database, table: str, row_id: int, changes: dict) -> None:
    assignments = ", ".join(f"[{c}] = ?" for c in changes)
    db.execute(f"UPDATE [{table}] SET {assignments} WHERE id = ?", [*changes.values(), row_id])


def table_counts(db: Database) -> dict[str, int]:
    names = ("estates", "buildings", "units", "residents", "resident_phones", "agents",
             "interactions", "work_orders", "work_order_events", "callbacks", "surveys",
             "queue_log", "agent_states")
    return {name: db.execute(f"SELECT count(*) FROM [{name}]").fetchone()[0] for name in names}


__all__ = ["APPLICATION_ID", "Database", "DatabaseError", "MIGRATION_SET", "connect",
           "default_path", "table_counts"]
