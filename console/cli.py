"""The `hotline` command (also `python -m console`).

Options that mean the same everywhere: --db PATH (env HOTLINE_DB, default ./hotline.db)
and --sla FILE (env HOTLINE_SLA, default: the bundled policy). A user's mistake ends in
one line on stderr starting with "hotline: " and exit status 2; nothing half-written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import os
import sys
from typing import Callable, Sequence

from records import agents as agent_records
from records.db import DatabaseError, connect, default_path, table_counts
from records.directory import DirectoryError
from records.schema import ROLES, SCHEMA_VERSION
from records.sla import load_policy
from records.workorders import LifecycleError
from records.yamlsource import ConfigError

EXIT_USAGE = 2


class UserError(Exception):
    """Something the user asked for that cannot be done; the message says why."""


# --- helpers ---------------------------------------------------------------------

def _open(args, *, create: bool = False):
    return connect(args.db, create=create)


def read_pin(*, confirm: bool) -> str:
    """The PIN from HOTLINE_PIN (unattended) or the terminal, never echoed."""
    pin = os.environ.get("HOTLINE_PIN")
    if pin is not None:
        agent_records.check_pin_format(pin)
        return pin
    if not sys.stdin.isatty():
        raise UserError("no terminal to read the PIN from; set HOTLINE_PIN for unattended use")
    pin = getpass.getpass("PIN (4-8 digits): ")
    agent_records.check_pin_format(pin)
    if confirm and getpass.getpass("PIN again: ") != pin:
        raise UserError("the two PINs differ; nothing was changed")
    return pin


def _parse_as_of(text: str | None, policy) -> float | None:
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"--as-of: expected a date or time such as 2026-11-22 or 2026-11-22T09:00, got '{text}'") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=policy.timezone)
    return moment.timestamp()


def _money(cents: int) -> str:
    return f"{cents / 100:,.2f}"


# --- db --------------------------------------------------------------------------

def cmd_db_init(args) -> int:
    existed = os.path.exists(args.db) and os.path.getsize(args.db) > 0
    with _open(args, create=True):
        pass
    print(f"{args.db}: {'up to date' if existed else 'created'} (schema version {SCHEMA_VERSION})")
    return 0


def cmd_db_seed(args) -> int:
    from records.seed import seed_database

    policy = load_policy(args.sla)
    as_of = _parse_as_of(args.as_of, policy)
    with _open(args, create=True) as db:
        try:
            summary = seed_database(db, policy, residents=args.residents, seed=args.seed, as_of=as_of,
                                    history_days=args.history_days)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    when = dt.datetime.fromtimestamp(summary.as_of, policy.timezone)
    print(f"Seeded {args.db} with seed {args.seed}, history up to {when:%Y-%m-%d %H:%M %Z}:")
    for name, count in summary.counts.items():
        if count:
            print(f"  {name:<18} {count:>8,}")
    print("\nLogins (PINs are shown this once and stored only as salted hashes):")
    print(f"  {'ext':<6} {'role':<11} {'PIN':<8} name")
    for ext, name, role, pin in summary.pins:
        print(f"  {ext:<6} {role:<11} {pin:<8} {name}")
    return 0


def cmd_db_info(args) -> int:
    import time

    from records.workorders import pending_deadlines

    with _open(args) as db:
        counts = table_counts(db)
        now = time.time()
        cursor = db.execute("SELECT * FROM work_orders WHERE status NOT IN ('closed', 'cancelled')")
        columns = [c[0] for c in cursor.description]
        open_orders = [dict(zip(columns, row)) for row in cursor]
        overdue = sum(1 for o in open_orders if any(d.overdue for d in pending_deadlines(o, now)))
        vip = db.execute("SELECT count(*) FROM residents WHERE segment = 'vip'").fetchone()[0]
        arrears = db.execute("SELECT count(*), coalesce(sum(arrears_cents), 0) FROM residents "
                             "WHERE arrears_cents > 0").fetchone()
        due_callbacks = db.execute("SELECT count(*) FROM callbacks WHERE status = 'pending'").fetchone()[0]
    print(f"{args.db} (schema version {SCHEMA_VERSION})")
    for name, count in counts.items():
        print(f"  {name:<18} {count:>8,}")
    print(f"  VIP residents      {vip:>8,}")
    print(f"  in arrears         {arrears[0]:>8,}  (total {_money(arrears[1])})")
    print(f"  open work orders   {len(open_orders):>8,}  ({overdue:,} overdue now)")
    print(f"  pending callbacks  {due_callbacks:>8,}")
    return 0


# --- agents ----------------------------------------------------------------------

def cmd_agents_add(args) -> int:
    skills = agent_records.parse_skills(args.skills)
    with _open(args) as db:
        if db.execute("SELECT 1 FROM agents WHERE ext = ?", [args.ext]).fetchone():
            raise UserError(f"extension {args.ext} is already taken")
        pin_hash = agent_records.hash_pin(read_pin(confirm=True))
        agent_records.add_agent(db, ext=args.ext, name=args.name, role=args.role, skills=skills,
                                pin_hash=pin_hash)
    print(f"added {args.role} {args.name} at extension {args.ext}")
    return 0


def cmd_agents_list(args) -> int:
    with _open(args) as db:
        rows = agent_records.list_agents(db)
    if not rows:
        print("no agents yet (add one with: hotline agents add --ext 1001 --name NAME)")
        return 0
    width = max(len(r["name"]) for r in rows)
    print(f"{'ext':<6} {'role':<11} {'name':<{width}}  skills")
    for row in rows:
        print(f"{row['ext']:<6} {row['role']:<11} {row['name']:<{width}}  "
              f"{agent_records.format_skills(row['skills'])}")
    return 0


def cmd_agents_set(args) -> int:
    skills = agent_records.parse_skills(args.skills) if args.skills is not None else None
    if args.name is None and args.role is None and skills is None and args.new_ext is None:
        raise UserError("nothing to change: give --name, --role, --skills or --new-ext")
    with _open(args) as db:
        agent_records.update_agent(db, args.ext, name=args.name, role=args.role, skills=skills,
                                   new_ext=args.new_ext)
    print(f"updated extension {args.new_ext or args.ext}")
    return 0


def cmd_agents_set_pin(args) -> int:
    with _open(args) as db:
        # Check the agent exists before asking for a PIN nobody can use.
        if not db.execute("SELECT 1 FROM agents WHERE ext = ? AND active = 1", [args.ext]).fetchone():
            raise UserError(f"no agent with extension {args.ext}")
        agent_records.set_pin(db, args.ext, agent_records.hash_pin(read_pin(confirm=True)))
    print(f"PIN changed for extension {args.ext}")
    return 0


def cmd_agents_remove(args) -> int:
    with _open(args) as db:
        agent_records.remove_agent(db, args.ext)
    print(f"removed extension {args.ext} (their past contacts and work orders are kept)")
    return 0


# --- parser ----------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: accepted before or after the subcommand without one overwriting the other.
    common.add_argument("--db", default=argparse.SUPPRESS, metavar="PATH",
                        help="records database (env HOTLINE_DB, default ./hotline.db)")

    parser = argparse.ArgumentParser(
        prog="hotline", parents=[common],
        description="A terminal contact centre for property-management customer service.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    db = commands.add_parser("db", help="create, seed and inspect the records database")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    sub = db_commands.add_parser("init", parents=[common], help="create or upgrade the database")
    sub.set_defaults(handler=cmd_db_init)
    sub = db_commands.add_parser("seed", parents=[common], help="fill a new database with demo data")
    sub.add_argument("--residents", type=int, default=5000, help="how many residents (default 5000)")
    sub.add_argument("--seed", type=int, default=7, help="random seed: same seed, same data (default 7)")
    sub.add_argument("--as-of", metavar="WHEN",
                     help="end of the generated history, e.g. 2026-11-22T09:00 (default: midnight today)")
    sub.add_argument("--history-days", type=int, default=90, help="days of past contacts (default 90)")
    sub.add_argument("--sla", metavar="FILE", help="SLA policy YAML (env HOTLINE_SLA)")
    sub.set_defaults(handler=cmd_db_seed)
    sub = db_commands.add_parser("info", parents=[common], help="what the database holds")
    sub.set_defaults(handler=cmd_db_info)

    ag = commands.add_parser("agents", help="manage agents, supervisors and admins")
    ag_commands = ag.add_subparsers(dest="agents_command", metavar="ACTION", required=True)
    sub = ag_commands.add_parser("add", parents=[common],
                                 help="add an agent (PIN from the terminal or HOTLINE_PIN)")
    sub.add_argument("--ext", required=True, help="extension, 2-8 digits")
    sub.add_argument("--name", required=True)
    sub.add_argument("--skills", default="general:3", help="e.g. repair:3,complaint:2 (proficiency 1-5)")
    sub.add_argument("--role", default="agent", choices=ROLES)
    sub.set_defaults(handler=cmd_agents_add)
    sub = ag_commands.add_parser("list", parents=[common], help="list agents and their skills")
    sub.set_defaults(handler=cmd_agents_list)
    sub = ag_commands.add_parser("set", parents=[common], help="change an agent's name, role, skills or extension")
    sub.add_argument("--ext", required=True)
    sub.add_argument("--name")
    sub.add_argument("--role", choices=ROLES)
    sub.add_argument("--skills", help="replaces all skills, e.g. repair:4,billing:2")
    sub.add_argument("--new-ext", metavar="EXT")
    sub.set_defaults(handler=cmd_agents_set)
    sub = ag_commands.add_parser("set-pin", parents=[common], help="change an agent's PIN")
    sub.add_argument("--ext", required=True)
    sub.set_defaults(handler=cmd_agents_set_pin)
    sub = ag_commands.add_parser("remove", parents=[common], help="remove an agent (history is kept)")
    sub.add_argument("--ext", required=True)
    sub.set_defaults(handler=cmd_agents_remove)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "db"):
        args.db = default_path()
    handler: Callable = args.handler
    try:
        return handler(args)
    except (UserError, DatabaseError, ConfigError, agent_records.AgentError, DirectoryError,
            LifecycleError) as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("hotline: interrupted; nothing was changed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
