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
import re
import sys
from pathlib import Path
from typing import Callable, Sequence

from records import agents as agent_records
from records.db import DatabaseError, connect, default_path, table_counts
from records.directory import DirectoryError
from records.schema import ROLES, SCHEMA_VERSION
from records.sla import load_policy
from records.workorders import LifecycleError
from siteconfig.yamlsource import ConfigError

EXIT_USAGE = 2
PRIVATE_UMASK = 0o027   # files readable by the owner and their group (the switch's), never by others
DEFAULT_SEED = 7   # the demo data's seed; PINs are random unless --seed is given


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


def check_writable(option: str, path: str) -> None:
    """An output file can be written where it is asked for, or the reason why not."""
    target = Path(path)
    if target.is_dir():
        raise UserError(f"{option} {path} is a directory; give a file name")
    parent = target.parent
    if not parent.is_dir():
        raise UserError(f"{option} {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise UserError(f"{option} {path}: no permission to write there")


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

    policy = load_policy()
    as_of = _parse_as_of(args.as_of, policy)
    with _open(args, create=True) as db:
        try:
            summary = seed_database(db, policy, residents=args.residents, seed=DEFAULT_SEED if args.seed is None
                                    else args.seed, as_of=as_of, history_days=args.history_days,
                                    pins_from_seed=args.seed is not None)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    when = dt.datetime.fromtimestamp(summary.as_of, policy.timezone)
    print(f"Seeded {args.db} with seed {DEFAULT_SEED if args.seed is None else args.seed}, history up to "
          f"{when:%Y-%m-%d %H:%M %Z}:")
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
        agent_records.add_agent(db, ext=args.ext, name=args.name, role=args.role, skills=skills,
                                pin=read_pin(confirm=True))
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
    if args.new_ext and args.new_ext != args.ext:
        print(f"set a new PIN (hotline agents set-pin --ext {args.new_ext}) so the seat can register "
              "with the new extension")
    return 0


def cmd_agents_set_pin(args) -> int:
    with _open(args) as db:
        # Check the agent exists before asking for a PIN nobody can use.
        if not db.execute("SELECT 1 FROM agents WHERE ext = ? AND active = 1", [args.ext]).fetchone():
            raise UserError(f"no agent with extension {args.ext}")
        agent_records.set_pin(db, args.ext, read_pin(confirm=True))
    print(f"PIN changed for extension {args.ext}")
    return 0


def cmd_agents_remove(args) -> int:
    with _open(args) as db:
        agent_records.remove_agent(db, args.ext)
    print(f"removed extension {args.ext} (their past contacts and work orders are kept)")
    return 0


# --- simulate --------------------------------------------------------------------

EXIT_EXPECTATION_FAILED = 1


class _Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, total: int | None, horizon: float | None):
        self.total, self.horizon = total, horizon
        self.started = __import__("time").perf_counter()

    def __call__(self, arrived: int, now: float) -> None:
        import time
        share = arrived / self.total if self.total else (now / self.horizon if self.horizon else 0.0)
        share = min(share, 1.0)
        bar = "#" * int(share * 30)
        rate = arrived / max(time.perf_counter() - self.started, 1e-9)
        sys.stderr.write(f"\r[{bar:<30}] {share:6.1%} {arrived:>10,} calls {rate:>9,.0f} calls/s")
        sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\r" + " " * 78 + "\r")
        sys.stderr.flush()


def cmd_simulate(args) -> int:
    import json

    from telephony.recorder import InteractionRecorder, QueueLogWriter
    from scenarios.runs import EventLogWriter, RunError, RunWriter, new_run_dir, simulated_agents
    from scenarios.schema import load_scenario
    from scenarios.simulator import Simulation

    scenario = load_scenario(args.file)
    if args.calls is not None and args.calls < 1:
        raise UserError("--calls must be at least 1")
    if args.live:
        return _simulate_live(args, scenario)
    if args.speed is not None:
        raise UserError("--speed is for --live runs (virtual time has no clock to compress)")
    for option, given in (("--kill-switch-at", args.kill_switch_at), ("--switch", args.switch),
                          ("--callers", args.callers), ("--pins", args.pins),
                          ("--audio-callers", args.audio_callers is not None)):
        if given:
            raise UserError(f"{option} is for --live runs")
    # Every output is checked before anything is written: a run that cannot save its
    # report must not have put its calls into a records database already.
    for option, path in (("--report", args.report), ("--queue-log", args.queue_log)):
        if path:
            check_writable(option, path)
    simulation = Simulation(scenario, seed=args.seed, calls=args.calls)
    sinks: list[Callable[[object], None]] = []
    closers: list[Callable[[], None]] = []
    db = None
    if args.db_given:
        db = _open(args, create=True)
        run = f"{scenario.name}-seed{simulation.seed}"
        if db.execute("SELECT 1 FROM interactions WHERE run = ? LIMIT 1", [run]).fetchone():
            db.close()
            raise UserError(f"{args.db} already holds run '{run}'; use another --seed or database")
        recorder = InteractionRecorder(db, offset=scenario.start, node="simulator", run=run)
        sinks.append(recorder)
        closers.append(lambda: recorder.close(simulation.now))
    if args.queue_log or db is not None:
        writer = QueueLogWriter(args.queue_log, db, offset=scenario.start)
        sinks.append(writer)
        closers.append(writer.close)
    try:
        run_dir = RunWriter(args.run or new_run_dir(scenario.name, simulation.seed), args.file)
    except RunError as exc:
        if db is not None:
            db.close()
        raise UserError(str(exc)) from None
    events = EventLogWriter(run_dir.file("events.jsonl"), node="simulator", offset=scenario.start)
    run_queue_log = QueueLogWriter(run_dir.file("queue_log"), offset=scenario.start)
    sinks += [events, run_queue_log]
    closers += [events.close, run_queue_log.close]
    simulation.sinks = tuple(sinks)
    progress = _Progress(simulation.max_calls, scenario.horizon_s) if sys.stderr.isatty() else None
    try:
        report = simulation.run(progress)
    finally:
        if progress:
            progress.done()
        for close in closers:
            close()
        if db is not None:
            db.close()
    run_dir.finish(kind="virtual", scenario=scenario, seed=simulation.seed, report=report,
                   agents=simulated_agents(scenario),
                   clocks={"wall_s": report["wall_s"], "simulated_s": report["simulated_s"]},
                   extra={"calls": simulation.arrived, "scenario_file": str(args.file)})
    if args.report:   # whole or not at all: a reader never sees half a report
        partial = Path(args.report).with_name(Path(args.report).name + ".partial")
        partial.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        os.replace(partial, args.report)
    _print_report(report, scenario)
    print(f"  run saved in {run_dir.path}  (hotline replay {run_dir.path})")
    failed = [e for e in report["expectations"] if not e["passed"]]
    for item in report["expectations"]:
        mark = "ok  " if item["passed"] else "FAIL"
        print(f"  {mark} {item['expect']}  (got {item['actual']:.4g})")
    if failed:
        print(f"hotline: {len(failed)} expectation(s) failed: " + "; ".join(e["expect"] for e in failed),
              file=sys.stderr)
        return EXIT_EXPECTATION_FAILED
    return 0


def _simulate_live(args, scenario) -> int:
    import asyncio
    import json

    from scenarios.live_run import LiveRunError, print_comparison, run_live
    from scenarios.runs import RunError, RunWriter, new_run_dir

    speed = 1.0 if args.speed is None else args.speed
    if speed <= 0:
        raise UserError("--speed must be above 0")
    existing = None
    if args.switch:
        existing = _running_switch(args, scenario)
    elif args.db_given or args.queue_log or args.pins:
        raise UserError("a live run keeps its records in its run directory (switch/records.db, queue_log): "
                        "--db, --pins and --queue-log are for --switch (a switch already running) or virtual runs")
    seed = scenario.seed if args.seed is None else args.seed
    from scenarios.sipp_load import SIPP
    callers = args.callers or ("sipp" if SIPP else "phones")
    if callers == "sipp" and SIPP is None:
        raise UserError("--callers sipp: sipp is not installed (Debian: apt-get install sip-tester)")
    from scenarios.live_run import AUDIO_CALLERS
    audio_callers = AUDIO_CALLERS if args.audio_callers is None else args.audio_callers
    if audio_callers < 0:
        raise UserError("--audio-callers: a number of callers, 0 or more")
    if args.audio_callers and (args.switch or callers != "sipp"):
        raise UserError("--audio-callers needs SIPp callers into the run's own switch (its sounds and recordings "
                        "are read to check what was heard)")
    kill_at = None
    if args.kill_switch_at:
        import datetime as dt

        from console.replay import parse_moment
        try:
            kill_at = parse_moment("+" + args.kill_switch_at.strip().lstrip("+"), 0.0, dt.timezone.utc)
        except ValueError:
            raise UserError(f"--kill-switch-at: expected a time from the start such as +10m, got "
                            f"{args.kill_switch_at!r}") from None
    try:
        run_dir = RunWriter(args.run or new_run_dir(scenario.name, seed, live=True), args.file)
        import signal

        def stop(*_):   # SIGTERM as Ctrl-C: the run stops its bots, SIPp and switch, then exits
            raise KeyboardInterrupt
        signal.signal(signal.SIGTERM, stop)
        report = asyncio.run(run_live(scenario, str(args.file), run_dir, seed=seed, calls=args.calls, speed=speed,
                                      residents=args.residents, kill_switch_at_s=kill_at, existing=existing,
                                      callers=callers, audio_callers=audio_callers,
                                      token=os.environ.get("HOTLINE_CONTROL_TOKEN") or None))
    except (RunError, LiveRunError) as exc:
        raise UserError(str(exc)) from None
    except KeyboardInterrupt:
        raise UserError(f"stopped: the live run was interrupted; its switch and callers are stopped, and "
                        f"{run_dir.path} holds no finished run") from None
    except RuntimeError as exc:   # its switch did not start, a bot's login was refused, no sipp ports
        raise UserError(f"the live run could not go on: {exc}") from None
    if args.report:
        partial = Path(args.report).with_name(Path(args.report).name + ".partial")
        partial.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        os.replace(partial, args.report)
    count = report["accounting"]
    clocks = f"{report['simulated_s'] / 3600:.2f} scenario hours in {report['wall_s'] / 60:.1f} min of wall time " \
             f"(x{speed:g})"
    print(f"{scenario.name} (seed {seed}, live): {clocks}")
    generator = count["generator"]
    print(f"  the callers: {generator['generator']}: placed {generator['placed']}, answered and hung up "
          f"{generator['answered']}, gave up {generator['gave_up']}"
          + (f", gave up as answered {generator['gave_up_as_answered']}" if generator.get("gave_up_as_answered") else "")
          # (SIPp's failed calls are among those: ones whose dialog ended in an error, as a crash does)
          + (f" ({generator['failed']} of these calls ended in an error at the caller's phone)"
             if generator.get("failed") else ""))
    print(f"  calls placed {count['placed']}, interactions rows {count['rows']}, lost {count['lost']}, "
          f"unexpected rows {count['unexpected_rows']}; outcomes: "
          + ", ".join(f"{n} {outcome}" for outcome, n in sorted(count["outcomes"].items())))
    if count["switch_crashes"]:
        interrupted = count["outcomes"].get("interrupted", 0)
        for crash in count["switch_crashes"]:
            print(f"  the switch went down mid-run ({crash.get('why', 'killed')}) and was back after "
                  f"{crash['back_after_s']:.1f} s")
        print(f"  {interrupted} call(s) it held closed as interrupted, the run carried on")
    if count["switch_crashes"] and generator.get("gave_up", 0) > count["outcomes"].get("abandoned", 0):
        print(f"  (the {generator['gave_up']} callers who gave up include "
              f"{generator['gave_up'] - count['outcomes'].get('abandoned', 0)} whose wait the crash had already "
              f"closed as interrupted: they hung up later, on the switch that came back)")
    if count.get("gave_up_as_answered"):
        crossed = count["gave_up_as_answered"]
        print(f"  {len(crossed)} caller(s) gave up in the instant an agent answered ({', '.join(crossed[:5])}): "
              f"the answer crossed their CANCEL, so they hung up at once: answered on the switch's rows")
    if count["failed_by_cause"]:
        print("  failed by SIP cause: " + ", ".join(f"{n} {cause}" for cause, n in count["failed_by_cause"].items()))
    menu = count.get("menu") or {}
    if menu:
        print(f"  the voice menu: {menu['callers']} callers pressed their queue's key; {menu['reached_their_queue']} "
              f"reached it, {menu['hung_up_in_menu']} hung up in the menu, {menu['other_queue']} reached another queue")
    audio = report.get("audio") or []
    for item in audio:
        mark = "ok  " if item.get("ok") else "FAIL"
        how = f"key {item['key']}" if item["key"] is not None else "dialled"
        print(f"  {mark} audio caller {item['number']} ({how}, {item['queue']}, {item.get('outcome', 'no row')}): "
              f"heard {', '.join(item['heard']) or 'nothing'}"
              + ("; the agent heard the caller" if item["agent_heard_caller"] else "")
              + (f"; recording {item['recording_hz'][0]} Hz / {item['recording_hz'][1]} Hz"
                 if "recording_hz" in item else "")
              + ("; talked under 0.3 s: voices not checked" if item.get("too_short") else "")
              + "".join(f"\n         {problem}" for problem in item["problems"]))
    print("  live against the virtual-time run of the same seed:")
    print_comparison(report["comparison"])
    print(f"  run saved in {run_dir.path}  (hotline replay {run_dir.path})")
    failed = []
    for label, results in (("live", report["expectations"]), ("virtual", report["virtual_expectations"])):
        for item in results:
            mark = "ok  " if item["passed"] else "FAIL"
            print(f"  {mark} {label:7} {item['expect']}  (got {item['actual']:.4g})")
            if not item["passed"]:
                failed.append(f"{item['expect']} ({label})")
    outside = [f"{r['scope']} {r['metric']}" for r in report["comparison"] if not r["inside"]]
    if outside:
        print("hotline: live and virtual differ beyond the tolerance on: " + ", ".join(outside), file=sys.stderr)
    if count["lost"] or count["unexpected_rows"]:
        print(f"hotline: {count['lost']} call(s) placed left no interactions row", file=sys.stderr)
        return EXIT_EXPECTATION_FAILED
    if menu.get("other_queue"):
        print(f"hotline: {menu['other_queue']} caller(s) reached another queue than their menu key's", file=sys.stderr)
        return EXIT_EXPECTATION_FAILED
    unheard = [item["number"] for item in audio if not item.get("ok")]
    if unheard:
        print(f"hotline: the audio of {len(unheard)} caller(s) was not right: {', '.join(unheard)}", file=sys.stderr)
        return EXIT_EXPECTATION_FAILED
    if failed:
        print(f"hotline: {len(failed)} expectation(s) failed: " + "; ".join(failed), file=sys.stderr)
        return EXIT_EXPECTATION_FAILED
    return 0


def _running_switch(args, scenario):
    """--switch sip:HOST:PORT: the running switch's records (--db), its agents' logins (--pins)."""
    from console.demo import pins_path
    from scenarios.live import read_pins
    from scenarios.live_run import LiveRunError, existing_switch
    from telephony.switch import default_queue_log_path

    match = re.fullmatch(r"(?:sips?:)?([\w.-]+)(?::(\d{1,5}))?", args.switch.strip())
    if not match:
        raise UserError(f"--switch: expected sip:HOST:PORT, got {args.switch!r}")
    if args.kill_switch_at:
        raise UserError("--kill-switch-at kills the run's own switch: not one given with --switch")
    if not Path(args.db).exists():
        raise UserError(f"--switch needs the switch's records (--db): {args.db} does not exist")
    pins_file = Path(args.pins) if args.pins else pins_path(args.db)
    try:
        pins = read_pins(pins_file)
    except FileNotFoundError:
        raise UserError(f"the bots need logins: {pins_file} does not exist (--pins FILE, EXT:PIN lines)") from None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    address, _ = _control_args(args)
    try:
        return existing_switch(scenario, sip=(match.group(1), int(match.group(2) or 5060)), control=address,
                               db_path=Path(args.db), pins=pins,
                               queue_log=Path(args.queue_log) if args.queue_log else default_queue_log_path(args.db))
    except LiveRunError as exc:
        raise UserError(str(exc)) from None


def _print_report(report: dict, scenario) -> None:
    sl = report["service_level"]
    print(f"{scenario.name} (seed {report['seed']}): {report['offered']:,} calls in "
          f"{report['simulated_s'] / 3600:.1f} simulated hours, {report['calls_per_second']:,.0f} calls/s "
          f"({report['engine'].split()[0].rstrip(':')})")
    # voicemail is not an outcome of its own: a caller timed out (or turned away, full) to the mailbox
    print(f"  answered {report['answered']:,}  abandoned {report['abandoned']:,}  timed out {report['timed_out']:,}"
          + (f"  (to voicemail, timed out or queue full: {report['voicemail']:,})" if report["voicemail"] else ""))
    print(f"  service level {sl['answered_within_over_offered']:.2%} within {sl['threshold_s']:g} s "
          f"(of answered {sl['answered_within_over_answered']:.2%})   ASA {report['asa_s']:.1f} s   "
          f"P(wait) {report['p_wait']:.2%}")
    print(f"  abandon rate {report['abandon_rate']:.2%}   AHT {report['aht_s']:.0f} s   occupancy "
          f"{report['occupancy']:.1%}   max queue {report['max_queue']}   longest wait {report['longest_wait_s']:.0f} s")
    if len(report["queues"]) > 1:
        for name, q in report["queues"].items():
            print(f"    {name:<10} offered {q['offered']:>8,}  SL {q['service_level']['answered_within_over_offered']:6.1%}"
                  f"  ASA {q['asa_s']:6.1f} s  abandoned {q['abandon_rate']:6.2%}")


# --- switch ----------------------------------------------------------------------

def cmd_report(args) -> int:
    import csv
    import json
    import time

    from telephony.report import INTERVALS_S, interval_report, table_lines
    from telephony.switchconfig import load_switch_config

    policy = load_policy()
    if args.day:
        try:
            day = dt.date.fromisoformat(args.day)
        except ValueError:
            raise UserError(f"--day: expected a date such as 2026-12-01, got '{args.day}'") from None
    else:
        day = dt.datetime.now(policy.timezone).date()
    config = load_switch_config(args.config or os.environ.get("HOTLINE_SWITCH_CONFIG"))
    thresholds = {q.name: q.sl_threshold_s for q in config.queues}
    with _open(args) as db:
        rows = interval_report(db, day=day, tz=policy.timezone, interval_s=INTERVALS_S[args.interval], by=args.by,
                               thresholds=thresholds, default_threshold_s=15.0, now=time.time())
    if args.format == "json":
        print(json.dumps([row.as_json(args.by) for row in rows], indent=1, ensure_ascii=False))
    elif args.format == "csv":
        fields = [field if field != "key" else args.by for field in rows[0].as_json(args.by)] if rows else []
        writer = csv.DictWriter(sys.stdout, fieldnames=fields or ["interval_start", args.by], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(row.as_json(args.by))
    else:
        print(f"{day:%a %d %b %Y}, {args.interval} intervals by {args.by} ({policy.timezone}); SL: answered within "
              "the queue's threshold / offered; AHT: talk + hold + wrap-up per answered call")
        if not rows:
            print("no contacts, agents or work orders that day")
        for line in table_lines(rows, args.by, policy.timezone):
            print(line)
    return 0


def cmd_media_node(args) -> int:
    import re

    from telephony.media_node import MediaNodeError, run_media_node
    from telephony.switchconfig import parse_port_range

    for flag, value, scheme in (("--control", args.control, "udp"), ("--notify", args.notify, "tcp")):
        if not re.fullmatch(rf"{scheme}:[^:\s]+:\d{{1,5}}", value):
            raise UserError(f"{flag}: expected {scheme}:HOST:PORT, got {value!r}")
    try:
        ports = parse_port_range(args.rtp_ports) if args.rtp_ports else None
    except ValueError as exc:
        raise UserError(f"--rtp-ports: {exc}") from None
    try:
        run_media_node(args.control, args.notify, Path(args.dir), ports)
    except MediaNodeError as exc:
        raise UserError(str(exc)) from None
    return 0


def cmd_switch(args) -> int:
    import asyncio
    import logging

    from dataclasses import replace

    from telephony.switch import StartError, SwitchFailed, default_control_path, serve
    from telephony.switchconfig import load_switch_config, parse_port_range

    from console.logtime import CentreTimeFormatter

    logging.basicConfig(level=logging.INFO)
    logging.getLogger().handlers[0].setFormatter(CentreTimeFormatter())
    control = args.control or os.environ.get("HOTLINE_CONTROL") or str(default_control_path(args.db))
    config = load_switch_config(args.config or os.environ.get("HOTLINE_SWITCH_CONFIG"))
    if args.rtp_ports:
        try:
            config = replace(config, sip=replace(config.sip, rtp_ports=parse_port_range(args.rtp_ports)))
        except ValueError as exc:
            raise UserError(f"--rtp-ports: {exc}") from None
    connect(args.db).close()  # a missing or foreign database is refused before anything listens
    try:
        asyncio.run(serve(args.db, args.sip, control, config=config, queue_log=args.queue_log,
                          token=os.environ.get("HOTLINE_CONTROL_TOKEN") or None,
                          tls_cert=args.tls_cert or os.environ.get("HOTLINE_TLS_CERT") or None,
                          tls_key=args.tls_key or os.environ.get("HOTLINE_TLS_KEY") or None,
                          media=False if args.no_media else (args.media or True),
                          record_calls=not args.no_recording))
    except (StartError, SwitchFailed) as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot listen: {exc.strerror or exc}") from None
    return 0


def cmd_agent(args) -> int:
    import asyncio

    from console.seat_run import run_seat

    if args.audio == "list":
        from telephony.headset import AudioError, list_devices

        try:
            print(list_devices())
        except AudioError as exc:
            raise UserError(str(exc)) from None
        return 0
    from telephony.switchconfig import parse_port_range

    # The seat opens no database: it may run on any machine that reaches the switch.
    try:
        rtp_ports = parse_port_range(args.rtp_ports) if args.rtp_ports else None
    except ValueError as exc:
        raise UserError(f"--rtp-ports: {exc}") from None
    address, tls_ca = _control_args(args)
    pin = read_pin(confirm=False)
    ask_again = None if "HOTLINE_PIN" in os.environ else (lambda: read_pin(confirm=False))
    try:
        return asyncio.run(run_seat(ext=args.ext, pin=pin, registrar=args.registrar,
                                    sip_user=args.sip_user, sip_password=os.environ.get("HOTLINE_SIP_PASSWORD"),
                                    control=address, audio=args.audio, ask_pin=ask_again,
                                    token=os.environ.get("HOTLINE_CONTROL_TOKEN") or None, rtp_ports=rtp_ports,
                                    tls_ca=tls_ca, phone_kind=args.phone))
    except PermissionError as exc:
        raise UserError(str(exc)) from None
    except (RuntimeError, ValueError) as exc:
        raise UserError(str(exc)) from None


def _control_args(args):
    """--control and --tls-ca as a client of the switch gives them (seat, supervisor)."""
    from telephony.control import control_address
    from telephony.switch import default_control_path

    tls_ca = args.tls_ca or os.environ.get("HOTLINE_CONTROL_CA") or None
    if tls_ca:
        from telephony.tls import TlsError, client_context

        try:
            client_context(tls_ca)   # a wrong file is said now, not as a seat or console that cannot connect
        except TlsError as exc:
            raise UserError(f"--tls-ca: {exc}") from None
    control = args.control or os.environ.get("HOTLINE_CONTROL") or str(default_control_path(args.db))
    try:
        return control_address(control), tls_ca
    except ValueError as exc:
        raise UserError(f"--control: {exc}") from None


def cmd_supervisor(args) -> int:
    import asyncio

    from console.supervisor import run_supervisor
    from telephony.control_client import ControlError

    from console.seat_run import PIN_TRIES

    address, tls_ca = _control_args(args)
    pin = read_pin(confirm=False)
    try:
        for attempt in range(PIN_TRIES):   # a typo at the terminal is asked again, as the seat does
            try:
                return asyncio.run(run_supervisor(ext=args.ext, pin=pin, control=address, tls_ca=tls_ca,
                                                  token=os.environ.get("HOTLINE_CONTROL_TOKEN") or None))
            except ControlError as exc:
                if exc.code != "bad_credentials" or "HOTLINE_PIN" in os.environ or attempt == PIN_TRIES - 1:
                    raise
                print("hotline: wrong extension or PIN; try again", file=sys.stderr, flush=True)
                pin = read_pin(confirm=False)
        raise AssertionError("unreachable")
    except ControlError as exc:
        raise UserError(f"the switch refused: {exc.message}") from None
    except PermissionError as exc:
        raise UserError(str(exc)) from None
    except (FileNotFoundError, ConnectionRefusedError):
        where = address if isinstance(address, str) else f"{address[0]}:{address[1]}"
        raise UserError(f"no switch is running at {where} (start it with `hotline switch`, or give --control)") \
            from None
    except (OSError, asyncio.TimeoutError) as exc:
        raise UserError(f"the switch at {args.control or 'the control socket'} did not answer: "
                        f"{exc or 'no reply within 5 s'}") from None


def cmd_replay(args) -> int:
    from console.replay import print_diff, run_replay
    from scenarios.runs import RunError, open_run

    try:
        if args.diff:
            if args.run:
                raise UserError("give either RUN or --diff RUN_A RUN_B")
            same = print_diff(open_run(args.diff[0]), open_run(args.diff[1]), sys.stdout)
            return 0 if same else 1
        if not args.run:
            from scenarios.runs import recent_runs
            found = recent_runs()
            listing = "".join(f"\n  {path}  ({meta.get('kind')}, seed {meta.get('seed')}, {meta.get('calls', '?')} calls)"
                              for path, meta in found[:10])
            raise UserError("which run? give RUN or --diff RUN_A RUN_B" +
                            (f"; the latest:{listing}" if found else " (no runs under runs/ yet: hotline simulate "
                                                                    "makes one)"))
        if args.speed <= 0:
            raise UserError("--speed must be above 0")
        run = open_run(args.run)
        try:
            return run_replay(run, speed=args.speed, at=args.at, paused=args.paused, screen=sys.stdout.isatty())
        except ValueError as exc:
            raise UserError(f"--at {exc}") from None
    except RunError as exc:
        raise UserError(str(exc)) from None


def cmd_bots(args) -> int:
    import asyncio
    import dataclasses

    from console.demo import DEMO_SCENARIO, pins_path
    from records.db import connect
    from scenarios.live import read_pins, run_bots
    from scenarios.schema import AgentGroup, load_scenario
    from telephony.control_client import ControlError

    scenario = load_scenario(args.scenario or DEMO_SCENARIO)
    if args.speed <= 0:
        raise UserError("--speed must be above 0")
    pins_file = Path(args.pins) if args.pins else pins_path(args.db)
    try:
        pins = read_pins(pins_file)
    except FileNotFoundError:
        raise UserError(f"no logins for the bots: {pins_file} does not exist (give --pins FILE with EXT:PIN lines; "
                        f"hotline demo writes one beside its database)") from None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if Path(args.db).exists():   # agents only: a supervisor's login would take calls as a bot otherwise
        db = connect(args.db, migrate=False)
        try:
            roles = dict(db.execute("SELECT ext, role FROM agents WHERE active = 1").fetchall())
        finally:
            db.close()
        pins = {ext: pin for ext, pin in pins.items() if roles.get(ext) == "agent"}
    exts = sorted(e for e in pins if e not in set(args.skip or ()))
    if args.agents is not None:
        if args.agents < 1:
            raise UserError("--agents must be at least 1")
        if args.agents > len(exts):
            raise UserError(f"--agents {args.agents}: only {len(exts)} agent extensions in {pins_file}")
        exts = exts[:args.agents]
        # N identical agents of the scenario's first group, on its shift
        first = scenario.groups[0]
        scenario = dataclasses.replace(scenario, groups=(AgentGroup(first.name, args.agents, first.skills, first.shift,
                                                                     first.breaks),))
    wanted = sum(g.count for g in scenario.groups)
    if wanted > len(exts):
        raise UserError(f"the scenario has {wanted} agents; only {len(exts)} agent extensions in {pins_file} "
                        "(give --agents N for fewer)")
    silent = frozenset(args.no_answer or ())
    unknown = sorted(silent - set(exts[:wanted]))
    if unknown:
        raise UserError(f"--no-answer {', '.join(unknown)}: not one of the bots ({', '.join(exts[:wanted])})")
    match = re.fullmatch(r"(?:sips?:)?([\w.-]+)(?::(\d{1,5}))?", args.registrar.strip())
    if not match:
        raise UserError(f"--registrar: expected sip:HOST:PORT, got {args.registrar!r}")
    host, port = match.group(1), int(match.group(2) or 5060)
    address, _ = _control_args(args)
    try:
        asyncio.run(run_bots(scenario, {e: pins[e] for e in exts[:wanted]}, registrar=(host, port), control=address,
                             token=os.environ.get("HOTLINE_CONTROL_TOKEN") or None, speed=args.speed,
                             seconds=args.seconds, silent=silent))
    except ControlError as exc:
        raise UserError(f"the switch refused a bot: {exc.message}") from None
    except (FileNotFoundError, ConnectionRefusedError):
        raise UserError(f"no switch is running at {args.control or 'the control socket'} (start it with "
                        "`hotline switch`, or give --control)") from None
    return 0


def cmd_wallboard(args) -> int:
    import asyncio

    from console.wallboard import WallboardApp
    from telephony.control_client import ControlClient

    address, tls_ca = _control_args(args)
    token = os.environ.get("HOTLINE_CONTROL_TOKEN") or None

    async def connect():
        return await asyncio.wait_for(ControlClient.connect(address, token, tls_ca), 5)

    app = WallboardApp(connect, load_policy().timezone)
    app.run()
    return 0


def cmd_certs(args) -> int:
    from telephony.tls import TlsError, make_self_signed

    if args.days < 1:
        raise UserError("--days must be at least 1")
    try:
        cert, key = make_self_signed(args.out, args.name, days=args.days)
    except (TlsError, OSError) as exc:
        raise UserError(str(exc)) from None
    print(f"hotline certs: {cert} (copy it to every seat: --tls-ca) and {key} (mode 0600: it stays on the "
          f"switch: --tls-cert {cert} --tls-key {key}); valid {args.days} days")
    return 0


def cmd_demo(args) -> int:
    import asyncio

    from console.demo import pins_path, run_demo, seed_demo

    seed = DEFAULT_SEED if args.seed is None else args.seed
    if args.fresh or not Path(args.db).exists() or not pins_path(args.db).exists():
        print(f"hotline demo: seeding {args.db} ({args.residents} residents, seed {seed}) ...", flush=True)
        seed_demo(args.db, residents=args.residents, seed=seed, pins_from_seed=args.seed is not None)
    else:   # a restart of the demo goes on with its records; starting over is asked for
        print(f"hotline demo: going on with {args.db} and its records (make demo FRESH=1, or hotline demo --fresh, "
              "starts over with a new database)", flush=True)
    if args.load <= 0:
        raise UserError("--load must be above 0 (1 is a healthy centre, 2 twice that)")
    try:
        # The seat of extension 1001 takes the terminal when there is one; otherwise (or
        # with --feed) the routing events are printed instead.
        seat = sys.stdout.isatty() and sys.stdin.isatty() and not args.feed
        if not seat and not args.feed:   # found using the demo: `make demo | tee` quietly had no seat
            print("hotline demo: not a terminal (output to a pipe or a file, or no keyboard), so the routing "
                  "feed is shown instead of extension 1001's seat; run it in a terminal for the seat", flush=True)
        bots = args.bots if args.bots is not None else (4 if seat else 8)
        asyncio.run(run_demo(args.db, bots=bots, calls_per_hour=args.calls_per_hour, seconds=args.seconds,
                             talk_mean_s=args.talk_s, seed=seed, seat=seat, load=args.load))
    except (RuntimeError, OSError) as exc:
        raise UserError(str(exc)) from None
    return 0


# --- parser ----------------------------------------------------------------------

class Parser(argparse.ArgumentParser):
    """argparse, with a mistake said the way every other one is: one `hotline:` line and
    exit status 2 (argparse prints the whole usage first)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"hotline: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    # SUPPRESS: accepted before or after the subcommand without one overwriting the other.
    common.add_argument("--db", default=argparse.SUPPRESS, metavar="PATH",
                        help="records database (env HOTLINE_DB, default ./hotline.db)")
    common.add_argument("--sla", default=argparse.SUPPRESS, metavar="FILE",
                        help="SLA policy YAML for work-order deadlines (env HOTLINE_SLA, default: the bundled one)")

    parser = Parser(
        prog="hotline", parents=[common],
        description="A terminal contact centre for property-management customer service.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    db = commands.add_parser("db", help="create, seed and inspect the records database")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    sub = db_commands.add_parser("init", parents=[common], help="create or upgrade the database")
    sub.set_defaults(handler=cmd_db_init)
    sub = db_commands.add_parser("seed", parents=[common], help="fill a new database with demo data")
    sub.add_argument("--residents", type=int, default=5000, help="how many residents (default 5000)")
    sub.add_argument("--seed", type=int, help=f"random seed: same seed, same data, PINs included (default "
                                              f"{DEFAULT_SEED}, with PINs drawn at random)")
    sub.add_argument("--as-of", metavar="WHEN",
                     help="end of the generated history, e.g. 2026-11-22T09:00 (default: midnight today)")
    sub.add_argument("--history-days", type=int, default=90, help="days of past contacts (default 90)")
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

    sub = commands.add_parser("simulate", parents=[common],
                              help="run a call scenario in virtual time with the real routing core")
    sub.add_argument("file", metavar="FILE", help="scenario YAML (see scenarios/library/)")
    sub.add_argument("--seed", type=int, help="override the scenario's seed")
    sub.add_argument("--calls", type=int, help="override how many callers arrive")
    sub.add_argument("--report", metavar="FILE", help="write the report as JSON")
    sub.add_argument("--queue-log", metavar="FILE", help="append Asterisk queue_log lines to FILE")
    sub.add_argument("--live", action="store_true",
                     help="place the scenario's callers as real SIP calls into a switch this starts (bot agents "
                          "answer), and compare with the virtual-time run of the same seed")
    sub.add_argument("--speed", type=float, metavar="K", help="--live: every duration divided by K (10: an hour in 6 min)")
    sub.add_argument("--residents", type=int, default=2000, help="--live: residents in the run's records (2000)")
    sub.add_argument("--callers", choices=("sipp", "phones"),
                     help="--live: who places the calls: SIPp processes, one per patience within 10%% (the default "
                          "when sipp is installed), or sippy phones in this process")
    sub.add_argument("--audio-callers", type=int, metavar="N",
                     help="--live with SIPp into its own switch: N callers (default 3) say and hear real audio; each "
                          "must hear the menu and its agent, its agent must hear it, its recording hold both")
    sub.add_argument("--switch", metavar="sip:HOST:PORT", help="--live into a switch already running (with --db its "
                                                                "records, --pins its agents' logins, --control)")
    sub.add_argument("--pins", metavar="FILE", help="--switch: the bots' logins, EXT:PIN per line")
    sub.add_argument("--control", metavar="PATH|HOST:PORT", help="--switch: its control API (default: the socket "
                                                                 "beside --db)")
    sub.add_argument("--tls-ca", metavar="FILE", help="--switch: its certificate, for TCP over TLS")
    sub.add_argument("--kill-switch-at", metavar="+TIME", help="--live drill: SIGKILL the switch this far into the "
                                                               "scenario (+10m) and start it again at once")
    sub.add_argument("--run", metavar="DIR", help="the run directory (default: a new folder under runs/): the "
                                                  "scenario, seed, versions, report, queue_log and event log")
    sub.epilog = "--db PATH writes the interactions and queue_log into that records database."
    sub.set_defaults(handler=cmd_simulate)

    sub = commands.add_parser("report", parents=[common], help="a day's interval report from the records")
    sub.add_argument("--day", metavar="YYYY-MM-DD", help="the day, in the centre's time zone (default today)")
    sub.add_argument("--interval", choices=("15m", "30m", "60m"), default="30m", help="interval length (30m)")
    sub.add_argument("--by", choices=("queue", "agent", "type"), default="queue", help="one row per ... (queue)")
    sub.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output (table)")
    sub.add_argument("--config", metavar="FILE", help="the switch's config, for each queue's service-level "
                                                       "threshold (env HOTLINE_SWITCH_CONFIG, default the bundled one)")
    sub.set_defaults(handler=cmd_report)

    sub = commands.add_parser("switch", parents=[common], help="run the switch: SIP registrar and control API")
    sub.add_argument("--sip", default="127.0.0.1:5060", metavar="HOST:PORT", help="SIP listen address")
    sub.add_argument("--control", metavar="PATH|HOST:PORT",
                     help="control API: a Unix socket (mode 0660) or TCP, which needs HOTLINE_CONTROL_TOKEN "
                          "(env HOTLINE_CONTROL, default: a socket beside the database)")
    sub.add_argument("--config", metavar="FILE",
                     help="numbers, voice menu and queue settings (env HOTLINE_SWITCH_CONFIG, "
                          "default: telephony/switch_default.yaml)")
    sub.add_argument("--queue-log", metavar="FILE",
                     help="Asterisk queue_log text file (default: beside the database, .queue_log)")
    sub.add_argument("--media", metavar="DIR",
                     help="recordings and sounds (default: beside the database, .media/)")
    sub.add_argument("--no-media", action="store_true",
                     help="do not anchor audio in the switch: SDP passed between phones, no music or recording")
    sub.add_argument("--no-recording", action="store_true", help="anchor audio but record nothing")
    sub.add_argument("--tls-cert", metavar="FILE",
                     help="TLS certificate for a TCP control API (env HOTLINE_TLS_CERT; needed unless it listens "
                          "on loopback; hotline certs makes one)")
    sub.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (env HOTLINE_TLS_KEY)")
    sub.add_argument("--rtp-ports", metavar="LOW-HIGH",
                     help="UDP ports the media engine may use, e.g. 10000-20000 for a firewall "
                          "(default: the config's sip.rtp_ports, else any)")
    sub.set_defaults(handler=cmd_switch)

    sub = commands.add_parser("media-node", help="RTPproxy in a process of its own, for a switch whose config "
                                                 "lists it under media.nodes (docs/scale.md)")
    sub.add_argument("--control", default="udp:127.0.0.1:7722", metavar="udp:HOST:PORT",
                     help="where the switch drives it (default udp:127.0.0.1:7722)")
    sub.add_argument("--notify", default="tcp:127.0.0.1:7724", metavar="tcp:HOST:PORT",
                     help="the switch's socket for the keys callers press (its config's media.notify; "
                          "default tcp:127.0.0.1:7724)")
    sub.add_argument("--dir", default="media-node", metavar="DIR",
                     help="recordings (DIR/raw) and sounds (DIR/sounds); default ./media-node")
    sub.add_argument("--rtp-ports", metavar="LOW-HIGH", help="UDP ports for calls' audio (default: any)")
    sub.set_defaults(handler=cmd_media_node)

    sub = commands.add_parser("agent", parents=[common], help="the agent seat: softphone and caller screen-pop")
    sub.add_argument("--ext", required=True, help="your extension; the PIN is read from the terminal or HOTLINE_PIN")
    sub.add_argument("--registrar", default="sip:127.0.0.1:5060",
                     help="where the softphone registers: the switch (default) or any SIP registrar/PBX")
    sub.add_argument("--sip-user", metavar="NAME",
                     help="the SIP account at another PBX (default: the extension); its password is read from "
                          "HOTLINE_SIP_PASSWORD (default: the PIN)")
    sub.add_argument("--control", metavar="PATH|HOST:PORT",
                     help="the switch's control API (env HOTLINE_CONTROL, default: the socket beside the database)")
    sub.add_argument("--audio", default="default", metavar="DEVICE",
                     help="the headset: a sound device's name or number (PortAudio), 'default', 'list' to "
                          "see them, or 'null' for a silent seat (tests, demos, no sound card)")
    sub.add_argument("--phone", choices=("own", "external"), default="own",
                     help="own: the seat's built-in softphone (default); external: your extension is a desk "
                          "phone or another softphone: calls ring and are answered there, the seat pops them "
                          "and hangs up, declines and holds through the switch")
    sub.add_argument("--rtp-ports", metavar="LOW-HIGH",
                     help="UDP ports the seat's audio may use, e.g. 16000-16100 for a firewall (default: any)")
    sub.add_argument("--tls-ca", metavar="FILE",
                     help="the switch's certificate (switch.crt from hotline certs): the TCP control API over "
                          "TLS, to that switch only (env HOTLINE_CONTROL_CA)")
    sub.set_defaults(handler=cmd_agent)

    sub = commands.add_parser("supervisor", parents=[common],
                              help="the supervisors' live console")
    sub.add_argument("--ext", required=True, help="your extension (a supervisor or admin); the PIN is read from "
                                                  "the terminal or HOTLINE_PIN")
    sub.add_argument("--control", metavar="PATH|HOST:PORT",
                     help="the switch's control API (env HOTLINE_CONTROL, default: the socket beside the database)")
    sub.add_argument("--tls-ca", metavar="FILE", help="the switch's certificate, for TCP over TLS (env HOTLINE_CONTROL_CA)")
    sub.set_defaults(handler=cmd_supervisor)

    sub = commands.add_parser("wallboard", parents=[common], help="the read-only big screen (no PIN, no names)")
    sub.add_argument("--control", metavar="PATH|HOST:PORT",
                     help="the switch's control API (env HOTLINE_CONTROL, default: the socket beside the database; "
                          "TCP needs HOTLINE_CONTROL_TOKEN)")
    sub.add_argument("--tls-ca", metavar="FILE", help="the switch's certificate, for TCP over TLS (env HOTLINE_CONTROL_CA)")
    sub.set_defaults(handler=cmd_wallboard)

    sub = commands.add_parser("bots", parents=[common], help="bot agents answering a running switch (tests, drills)")
    sub.add_argument("--agents", type=int, metavar="N", help="this many agents (default: the scenario's)")
    sub.add_argument("--scenario", metavar="FILE", help="their shifts, breaks, ring time, no-answer share and "
                                                        "wrap-up (default: the demo's, scenarios/library/demo.yaml)")
    sub.add_argument("--pins", metavar="FILE", help="their logins, EXT:PIN per line (default: the demo's, beside --db)")
    sub.add_argument("--registrar", default="sip:127.0.0.1:5060", help="the switch's SIP address (sip:127.0.0.1:5060)")
    sub.add_argument("--control", metavar="PATH|HOST:PORT", help="the switch's control API (env HOTLINE_CONTROL, "
                                                                 "default: the socket beside the database)")
    sub.add_argument("--tls-ca", metavar="FILE", help="the switch's certificate, for TCP over TLS")
    sub.add_argument("--speed", type=float, default=1.0, help="the scenario's durations divided by this (1)")
    sub.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    sub.add_argument("--no-answer", action="append", metavar="EXT",
                     help="this bot lets every call ring out (repeatable): the switch's max_no_answer puts it on break")
    sub.add_argument("--skip", action="append", metavar="EXT", help="leave this extension for a person (repeatable)")
    sub.set_defaults(handler=cmd_bots)

    sub = commands.add_parser("replay", help="watch a run as the supervisor console showed it, or compare two")
    sub.add_argument("run", metavar="RUN", nargs="?", help="a run directory (hotline simulate prints where it went)")
    sub.add_argument("--speed", type=float, default=60.0, help="simulated seconds per second watched (default 60)")
    sub.add_argument("--at", metavar="TIME", help="start at a time of day (09:40) or from the start (+1h30m)")
    sub.add_argument("--paused", action="store_true", help="start paused (space plays)")
    sub.add_argument("--diff", nargs=2, metavar=("RUN_A", "RUN_B"),
                     help="print where two runs part (the first differing event) and their metrics side by side; "
                          "exit 1 if they differ")
    sub.set_defaults(handler=cmd_replay)

    sub = commands.add_parser("certs", help="make a self-signed certificate for the TLS control API")
    sub.add_argument("--out", required=True, metavar="DIR", help="where switch.crt and switch.key go")
    sub.add_argument("--name", action="append", default=[], metavar="HOST",
                     help="a name or address seats reach the switch by (repeatable; this host's name, "
                          "localhost and 127.0.0.1 are always in)")
    sub.add_argument("--days", type=int, default=825, help="valid for this many days (default 825)")
    sub.set_defaults(handler=cmd_certs)

    sub = commands.add_parser("demo", parents=[common],
                              help="a live demo: switch, bot agents, callers")
    sub.add_argument("--fresh", action="store_true", help="seed the database again even if it exists")
    sub.add_argument("--residents", type=int, default=5000, help="residents when seeding (default 5000)")
    sub.add_argument("--seed", type=int, help=f"random seed for the data and the callers (default {DEFAULT_SEED}; "
                                              "given, the PINs follow it too)")
    sub.add_argument("--bots", type=int, help="bot agents answering calls (default 4 beside the seat, 8 with --feed)")
    sub.add_argument("--load", type=float, default=1.0,
                     help="how busy: 1 (default) is as many calls as the bots answer at 80%% within 15 s with "
                          "under 5%% abandoned (Erlang A); 2 is twice that, an overloaded centre")
    sub.add_argument("--calls-per-hour", type=float, help="simulated callers an hour, instead of --load")
    sub.add_argument("--talk-s", type=float, default=40.0, help="callers' mean talk time in seconds (default 40)")
    sub.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C, or q in the seat)")
    sub.add_argument("--feed", action="store_true",
                     help="print the routing events instead of opening extension 1001's seat in this terminal")
    sub.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.db_given = hasattr(args, "db")
    if not hasattr(args, "db"):
        args.db = default_path()
    # Nothing this program writes (records with residents' numbers and PIN digests,
    # recordings, queue_log, logs, drafts) is for other users of the machine.
    os.umask(os.umask(0) | PRIVATE_UMASK)
    handler: Callable = args.handler
    sla_before = os.environ.get("HOTLINE_SLA")
    try:
        if hasattr(args, "sla"):   # one way in for every command and everything they start
            os.environ["HOTLINE_SLA"] = args.sla
        if os.environ.get("HOTLINE_SLA"):
            load_policy()   # a bad policy file is said at once, in one line
        return handler(args)
    except (UserError, DatabaseError, ConfigError, agent_records.AgentError, DirectoryError,
            LifecycleError) as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("hotline: interrupted; nothing was changed", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `hotline report | head`: the reader has what it wanted (found in a trial: a traceback)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:   # main() may be called again in this process (tests): leave the environment as it was
        if sla_before is None:
            os.environ.pop("HOTLINE_SLA", None)
        else:
            os.environ["HOTLINE_SLA"] = sla_before


if __name__ == "__main__":
    sys.exit(main())
