"""The records schema, as sqlite-utils migrations (applied in order, each once).

Times are epoch seconds (REAL, UTC) everywhere, as in Asterisk's queue_log, so the
switch, the simulator and the reports compare them without parsing. Money is integer
cents. Never edit a migration that has shipped: add a new one.
"""

from __future__ import annotations

import re

from sqlite_utils import Database, Migrations

MIGRATION_SET = "hotline"
migrations = Migrations(MIGRATION_SET)

RESIDENT_KINDS = ("owner", "tenant", "shop_tenant")
SEGMENTS = ("standard", "vip")
ROLES = ("agent", "supervisor", "admin")
DIRECTIONS = ("inbound", "outbound")
# m003 created interactions with the first five; m008 added no_answer (an outbound call
# nobody picked up); m009 added failed (a call the switch turned away, with its SIP
# cause). Shipped migrations keep using what they used.
_OUTCOMES_M003 = ("answered", "abandoned", "timeout", "voicemail", "interrupted")
_OUTCOMES_M008 = (*_OUTCOMES_M003, "no_answer")
OUTCOMES = (*_OUTCOMES_M008, "failed")
# a transfer to an outside number: talked there, never answered (the caller back in the
# queue), the caller hung up while it rang, or the switch stopped
OUTSIDE_OUTCOMES = ("answered", "not_answered", "caller_hung_up", "interrupted")
WORK_ORDER_STATUSES = ("open", "dispatched", "on_site", "resolved", "called_back", "closed", "cancelled")
CALLBACK_KINDS = ("repair_callback", "complaint_feedback", "voicemail", "survey_care", "other")
CALLBACK_STATUSES = ("pending", "done", "failed", "cancelled")


def _check(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"CHECK ({column} IN ({quoted}))"


@migrations(transactional=False)
def m001_wal(db: Database) -> None:
    # journal_mode cannot change inside a transaction; WAL lets readers (seats,
    # wallboards) read while the switch writes.
    db.enable_wal()


@migrations()
def m002_property(db: Database) -> None:
    db.execute("""
        CREATE TABLE estates (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            address TEXT NOT NULL DEFAULT ''
        )""")
    db.execute("""
        CREATE TABLE buildings (
            id INTEGER PRIMARY KEY,
            estate_id INTEGER NOT NULL REFERENCES estates(id),
            name TEXT NOT NULL,
            UNIQUE (estate_id, name)
        )""")
    db.execute("""
        CREATE TABLE units (
            id INTEGER PRIMARY KEY,
            building_id INTEGER NOT NULL REFERENCES buildings(id),
            number TEXT NOT NULL,
            floor INTEGER,
            kind TEXT NOT NULL DEFAULT 'flat' CHECK (kind IN ('flat', 'shop', 'office', 'carpark')),
            label TEXT NOT NULL,
            UNIQUE (building_id, number)
        )""")
    db.execute(f"""
        CREATE TABLE residents (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            name_alt TEXT NOT NULL DEFAULT '',
            kind TEXT NOT NULL {_check('kind', RESIDENT_KINDS)},
            unit_id INTEGER REFERENCES units(id),
            language TEXT NOT NULL DEFAULT 'en',
            segment TEXT NOT NULL DEFAULT 'standard' {_check('segment', SEGMENTS)},
            arrears_cents INTEGER NOT NULL DEFAULT 0,
            notes TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            -- denormalised for the search index: phones and unit label of this resident
            search_phones TEXT NOT NULL DEFAULT '',
            search_unit TEXT NOT NULL DEFAULT ''
        )""")
    db.execute("CREATE INDEX residents_unit ON residents(unit_id)")
    db.execute("""
        CREATE TABLE resident_phones (
            id INTEGER PRIMARY KEY,
            resident_id INTEGER NOT NULL REFERENCES residents(id) ON DELETE CASCADE,
            number TEXT NOT NULL UNIQUE,   -- E.164; one number belongs to one resident
            label TEXT NOT NULL DEFAULT 'mobile'
        )""")
    db.execute("CREATE INDEX resident_phones_resident ON resident_phones(resident_id)")
    # Trigram: substring search on names in any script, on phone digits and unit labels.
    db.table("residents").enable_fts(["name", "name_alt", "search_phones", "search_unit"],
                               tokenize="trigram", create_triggers=True)


@migrations()
def m003_agents(db: Database) -> None:
    db.execute(f"""
        CREATE TABLE agents (
            id INTEGER PRIMARY KEY,
            ext TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            role TEXT NOT NULL DEFAULT 'agent' {_check('role', ROLES)},
            pin_hash TEXT NOT NULL,
            active INTEGER NOT NULL DEFAULT 1,
            created_at REAL NOT NULL
        )""")
    db.execute("""
        CREATE TABLE agent_skills (
            agent_id INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
            skill TEXT NOT NULL,
            proficiency INTEGER NOT NULL CHECK (proficiency BETWEEN 1 AND 5),
            PRIMARY KEY (agent_id, skill)
        )""")
    db.execute("""
        CREATE TABLE agent_states (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            agent_id INTEGER REFERENCES agents(id),
            ext TEXT NOT NULL,
            status TEXT NOT NULL,        -- set by people: logged_out, available, on_break
            state TEXT NOT NULL,         -- set by the system: idle, ringing, in_call, on_hold, wrap_up
            reason TEXT NOT NULL DEFAULT '',
            node TEXT NOT NULL DEFAULT ''
        )""")
    db.execute("CREATE INDEX agent_states_agent_at ON agent_states(agent_id, at)")


@migrations()
def m004_contacts(db: Database) -> None:
    db.execute(f"""
        CREATE TABLE interactions (
            id INTEGER PRIMARY KEY,
            uid TEXT NOT NULL UNIQUE,          -- the queue_log callid
            node TEXT NOT NULL DEFAULT '',     -- which switch took it
            direction TEXT NOT NULL {_check('direction', DIRECTIONS)},
            caller_number TEXT NOT NULL DEFAULT '',
            dialled_number TEXT NOT NULL DEFAULT '',
            resident_id INTEGER REFERENCES residents(id),
            queue TEXT NOT NULL DEFAULT '',
            call_type TEXT NOT NULL DEFAULT '',
            entered_at REAL NOT NULL,
            offered_at REAL,
            answered_at REAL,
            ended_at REAL,
            wait_s REAL,
            talk_s REAL,
            hold_s REAL,
            wrapup_s REAL,
            agent_id INTEGER REFERENCES agents(id),
            outcome TEXT {_check('outcome', _OUTCOMES_M003)},
            disposition TEXT NOT NULL DEFAULT '',
            notes TEXT NOT NULL DEFAULT '',
            recording_path TEXT,
            survey_score INTEGER CHECK (survey_score BETWEEN 1 AND 5),
            transferred_from INTEGER REFERENCES interactions(id)
        )""")
    db.execute("CREATE INDEX interactions_resident_entered ON interactions(resident_id, entered_at)")
    db.execute("CREATE INDEX interactions_caller ON interactions(caller_number)")
    db.execute("CREATE INDEX interactions_entered ON interactions(entered_at)")
    db.execute("CREATE INDEX interactions_open ON interactions(ended_at) WHERE ended_at IS NULL")
    # Asterisk's realtime queue_log layout: time, callid, queuename, agent, event, data1..5.
    db.execute("""
        CREATE TABLE queue_log (
            id INTEGER PRIMARY KEY,
            time REAL NOT NULL,
            callid TEXT NOT NULL DEFAULT 'NONE',
            queuename TEXT NOT NULL DEFAULT 'NONE',
            agent TEXT NOT NULL DEFAULT 'NONE',
            event TEXT NOT NULL,
            data1 TEXT NOT NULL DEFAULT '',
            data2 TEXT NOT NULL DEFAULT '',
            data3 TEXT NOT NULL DEFAULT '',
            data4 TEXT NOT NULL DEFAULT '',
            data5 TEXT NOT NULL DEFAULT ''
        )""")
    db.execute("CREATE INDEX queue_log_time ON queue_log(time)")
    db.execute("CREATE INDEX queue_log_callid ON queue_log(callid)")
    db.execute("""
        CREATE TABLE surveys (
            id INTEGER PRIMARY KEY,
            interaction_id INTEGER NOT NULL REFERENCES interactions(id),
            at REAL NOT NULL,
            score INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
            comment TEXT NOT NULL DEFAULT ''
        )""")
    db.execute("CREATE INDEX surveys_interaction ON surveys(interaction_id)")


@migrations()
def m005_work_orders(db: Database) -> None:
    db.execute(f"""
        CREATE TABLE work_orders (
            id INTEGER PRIMARY KEY,
            type TEXT NOT NULL,
            department TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'open' {_check('status', WORK_ORDER_STATUSES)},
            resident_id INTEGER REFERENCES residents(id),
            unit_id INTEGER REFERENCES units(id),
            interaction_id INTEGER REFERENCES interactions(id),
            owner_agent_id INTEGER REFERENCES agents(id),   -- first-contact responsibility
            description TEXT NOT NULL,
            opened_at REAL NOT NULL,
            dispatch_due REAL NOT NULL,
            on_site_due REAL,
            resolve_due REAL,
            feedback_due REAL,
            reply_due REAL,
            callback_due REAL,
            dispatched_at REAL,
            on_site_at REAL,
            resolved_at REAL,
            feedback_at REAL,
            called_back_at REAL,
            closed_at REAL,
            cancelled_at REAL,
            postponements INTEGER NOT NULL DEFAULT 0
        )""")
    db.execute("CREATE INDEX work_orders_resident_status ON work_orders(resident_id, status)")
    db.execute("CREATE INDEX work_orders_owner_status ON work_orders(owner_agent_id, status)")
    db.execute("CREATE INDEX work_orders_status ON work_orders(status)")
    db.execute("""
        CREATE TABLE work_order_events (
            id INTEGER PRIMARY KEY,
            work_order_id INTEGER NOT NULL REFERENCES work_orders(id),
            at REAL NOT NULL,
            agent_id INTEGER REFERENCES agents(id),
            field TEXT NOT NULL,
            from_value TEXT,
            to_value TEXT,
            reason TEXT NOT NULL DEFAULT ''
        )""")
    db.execute("CREATE INDEX work_order_events_order ON work_order_events(work_order_id, at)")
    db.execute(f"""
        CREATE TABLE callbacks (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL {_check('kind', CALLBACK_KINDS)},
            status TEXT NOT NULL DEFAULT 'pending' {_check('status', CALLBACK_STATUSES)},
            work_order_id INTEGER REFERENCES work_orders(id),
            resident_id INTEGER REFERENCES residents(id),
            interaction_id INTEGER REFERENCES interactions(id),
            number TEXT NOT NULL DEFAULT '',
            owner_agent_id INTEGER REFERENCES agents(id),
            created_at REAL NOT NULL,
            due_at REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            done_at REAL,
            outcome TEXT NOT NULL DEFAULT '',
            notes TEXT NOT NULL DEFAULT ''
        )""")
    db.execute("CREATE INDEX callbacks_owner_status_due ON callbacks(owner_agent_id, status, due_at)")
    db.execute("CREATE INDEX callbacks_order ON callbacks(work_order_id)")


@migrations()
def m006_interaction_agent_ext(db: Database) -> None:
    # The extension that took the call, as the switch and queue_log know it; agent_id
    # stays the link to agents for people who exist in this database.
    db.execute("ALTER TABLE interactions ADD COLUMN agent_ext TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE interactions ADD COLUMN run TEXT NOT NULL DEFAULT ''")  # simulation run id


@migrations()
def m007_agent_sip_ha1(db: Database) -> None:
    # SIP digest authentication (RFC 2617) needs MD5(ext:realm:password); the password is
    # the agent's PIN, so seats and stock softphones register with extension and PIN.
    db.execute("ALTER TABLE agents ADD COLUMN sip_ha1 TEXT NOT NULL DEFAULT ''")


def _rebuild_with_check(db: Database, table: str, old_check: str, new_check: str) -> None:
    """SQLite cannot change a CHECK in place: the table is rebuilt with the same SQL but the
    new check (https://sqlite.org/lang_altertable.html, "other kinds of changes"), with
    foreign keys off so the rows that point at it are left as they are."""
    table_sql = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [table]).fetchone()[0]
    if old_check not in table_sql:
        raise RuntimeError(f"{table} has an unexpected CHECK; refusing to rebuild the table")
    index_sqls = [row[0] for row in db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", [table])]
    db.execute("PRAGMA foreign_keys = OFF")
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            # after one rebuild SQLite keeps the renamed table's SQL as CREATE TABLE "name"
            db.execute(re.sub(rf'^CREATE TABLE ["`\[]?{table}["`\]]?', f"CREATE TABLE {table}_rebuilt",
                              table_sql.replace(old_check, new_check), count=1))
            db.execute(f"INSERT INTO {table}_rebuilt SELECT * FROM {table}")
            db.execute(f"DROP TABLE {table}")
            db.execute(f"ALTER TABLE {table}_rebuilt RENAME TO {table}")
            for sql in index_sqls:
                db.execute(sql)
            problems = db.execute("PRAGMA foreign_key_check").fetchall()
            if problems:
                raise RuntimeError(f"rebuilding {table} broke {len(problems)} references")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    finally:
        db.execute("PRAGMA foreign_keys = ON")


@migrations(transactional=False)
def m008_outbound_no_answer(db: Database) -> None:
    _rebuild_with_check(db, "interactions", _check("outcome", _OUTCOMES_M003), _check("outcome", _OUTCOMES_M008))


@migrations(transactional=False)
def m009_failed_calls(db: Database) -> None:
    # A call the switch refused (wrong credentials, no trunk, stopping) is a contact too:
    # outcome 'failed' with the SIP cause, so no caller vanishes unseen.
    if "sip_cause" not in db["interactions"].columns_dict:   # a run stopped half-way is finished
        db.execute("ALTER TABLE interactions ADD COLUMN sip_cause TEXT NOT NULL DEFAULT ''")
    _rebuild_with_check(db, "interactions", _check("outcome", _OUTCOMES_M008), _check("outcome", OUTCOMES))


@migrations()
def m010_contact_notes(db: Database) -> None:
    # Every agent who handled a contact keeps their own disposition and notes (a transfer
    # has two or more); interactions.disposition and .notes hold the latest and the union.
    db.execute("""
        CREATE TABLE contact_notes (
            id INTEGER PRIMARY KEY,
            interaction_id INTEGER NOT NULL REFERENCES interactions(id),
            agent_id INTEGER REFERENCES agents(id),
            agent_ext TEXT NOT NULL DEFAULT '',
            at REAL NOT NULL,
            disposition TEXT NOT NULL DEFAULT '',
            notes TEXT NOT NULL DEFAULT '',
            UNIQUE (interaction_id, agent_ext)
        )""")


@migrations()
def m011_events(db: Database) -> None:
    # The switch's event log: every routing event as the control API sends it, numbered
    # in order (AUTOINCREMENT: a number is never reused, even after pruning), written in
    # the transaction of the rows it caused. A client that reconnects catches up from it;
    # a console started mid-day rebuilds the day from it.
    db.execute("""
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            node TEXT NOT NULL DEFAULT '',
            event TEXT NOT NULL,
            call_id TEXT NOT NULL DEFAULT '',
            agent_ext TEXT NOT NULL DEFAULT '',
            body TEXT NOT NULL
        )""")
    db.execute("CREATE INDEX events_at ON events(at)")


@migrations()
def m012_switch_alive(db: Database) -> None:
    # When each switch last said it was alive (every few seconds): after a crash, start-up
    # recovery knows within seconds when the calls it held were cut, so their talk is kept.
    db.execute("CREATE TABLE switch_alive (node TEXT PRIMARY KEY, at REAL NOT NULL)")


@migrations()
def m013_interaction_legs(db: Database) -> None:
    # A contact is one interactions row (the caller's view: one wait, one outcome); each
    # agent who talked on it has a leg (their talk, hold and wrap-up), so a transfer or a
    # lost phone credits every agent with their own part. transferred_from, never written
    # (a transfer does not start a new row), goes.
    db.execute("""
        CREATE TABLE interaction_legs (
            id INTEGER PRIMARY KEY,
            interaction_id INTEGER NOT NULL REFERENCES interactions(id),
            agent_id INTEGER REFERENCES agents(id),
            agent_ext TEXT NOT NULL DEFAULT '',
            queue TEXT NOT NULL DEFAULT '',
            answered_at REAL NOT NULL,
            ended_at REAL,
            talk_s REAL,
            hold_s REAL,
            wrapup_s REAL,
            ended TEXT NOT NULL DEFAULT '' CHECK (ended IN ('', 'completed', 'transferred', 'requeued', 'interrupted'))
        )""")
    db.execute("CREATE INDEX interaction_legs_agent ON interaction_legs(agent_id, answered_at)")
    db.execute("CREATE INDEX interaction_legs_contact ON interaction_legs(interaction_id)")
    # the contacts so far: one leg each, their last agent's (an open one is closed by the
    # switch's start-up recovery)
    db.execute("""
        INSERT INTO interaction_legs (interaction_id, agent_id, agent_ext, queue, answered_at, ended_at, talk_s,
                                      hold_s, wrapup_s, ended)
        SELECT id, agent_id, agent_ext, queue, answered_at, ended_at, talk_s, hold_s, wrapup_s,
               CASE WHEN ended_at IS NULL THEN '' WHEN outcome = 'interrupted' THEN 'interrupted' ELSE 'completed' END
        FROM interactions WHERE answered_at IS NOT NULL""")
    db.execute("ALTER TABLE interactions DROP COLUMN transferred_from")


@migrations()
def m014_audit(db: Database) -> None:
    # Every supervisor's action (a forced break or logout, skills changed, a caller's
    # priority or queue changed, an alert acknowledged): who, when, what, on whom.
    db.execute("""
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            by_ext TEXT NOT NULL,
            action TEXT NOT NULL,
            subject TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT ''
        )""")
    db.execute("CREATE INDEX audit_at ON audit(at)")


@migrations()
def m015_outside_transfers(db: Database) -> None:
    # A caller an agent sent to an outside number: each try, whether it answered and how
    # long they talked there (the contact's row alone could not say; found in a demo trial).
    db.execute(f"""
        CREATE TABLE outside_transfers (
            id INTEGER PRIMARY KEY,
            interaction_id INTEGER NOT NULL REFERENCES interactions(id),
            agent_id INTEGER REFERENCES agents(id),
            agent_ext TEXT NOT NULL DEFAULT '',
            number TEXT NOT NULL,
            asked_at REAL NOT NULL,
            answered_at REAL,
            ended_at REAL,
            talk_s REAL,
            outcome TEXT NOT NULL DEFAULT '' {_check('outcome', ('',) + OUTSIDE_OUTCOMES)}
        )""")
    db.execute("CREATE INDEX outside_transfers_contact ON outside_transfers(interaction_id)")


# Everything pending on an empty database is every migration this version knows.
MIGRATION_NAMES = tuple(m.name for m in migrations.pending(Database(memory=True)))
SCHEMA_VERSION = len(MIGRATION_NAMES)
