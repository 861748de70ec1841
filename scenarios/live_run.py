"""`hotline simulate FILE --live`: a scenario's callers and agents as real SIP calls.

The callers are the virtual-time run's own (scenarios/plan.py: same seed, same callers,
same patience and talk), placed by the simulated phones (scenarios/live.py, sippy) into
a real `hotline switch`; the agents are bots that log in over the control API, register
over SIP, keep the scenario's shifts and breaks, answer after its ring time and wrap up
for its wrap-up time. `--speed K` divides every duration by K, the switch's own timers
included (its config is written from the scenario's queues), so an hour runs in 60/K
minutes.

What the run leaves is a run directory like a virtual run's: the switch's event log
mapped back onto the scenario's clock (time 0 at the scenario's start, durations times
K), the report computed from those events by the simulator's own statistics, the
switch's queue_log, and beside them what only a live run has: the load generator's
tally against the switch's rows (every call placed is exactly one interactions row),
and the table comparing each metric with the virtual-time run of the same seed.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from records.db import connect
from scenarios.live import Behaviour, LivePhones, Roster, free_udp_port
from scenarios.runs import EventLogWriter, RunWriter
from scenarios.schema import Scenario
from telephony import wire
from telephony.acd import events as ev
from telephony.acd.stats import Statistics

FIRST_EXT = 7001
MENU_NUMBER = "2000"   # a run's own switch: the voice menu's number
MENU_KEYS = {"repair": "1", "complaint": "2", "billing": "3", "enquiry": "4", "emergency": "9", "general": "0"}
AUDIO_CALLERS = 3      # callers whose audio a SIPp run checks, by default
# fields of an event that are durations (scaled by the speed) or moments (mapped onto the scenario's clock)
_DURATIONS = ("wait_s", "talk_s", "hold_s", "ring_s", "wrap_up_s", "limit_s")
_MOMENTS = ("t", "until")
# events after which a caller no longer waits in a queue (max_queue from the event log)
_LEAVES_QUEUE = (ev.CallConnected, ev.CallAbandoned, ev.CallTimedOut, ev.CallToVoicemail, ev.CallCompleted,
                 ev.CallTransferred, ev.CallRejectedFull)
SETTLE_S = 20.0   # after the last caller is placed, how long calls in progress may take to end (wall)


class LiveRunError(ValueError):
    """A scenario the live driver cannot place, said before any call is made."""


def check_placeable(scenario: Scenario, *, switch_queues: set[str], extensions: int) -> None:
    wanted = set(scenario.mix) | {t for b in scenario.bursts for t in (b.mix or {})}
    unknown = sorted(wanted - switch_queues)
    if unknown:
        raise LiveRunError(f"{scenario.source}: the switch has no queue for {', '.join(unknown)}: a caller could not "
                           f"dial it (its queues: {', '.join(sorted(switch_queues))})")
    agents = sum(g.count for g in scenario.groups)
    if agents > extensions:
        raise LiveRunError(f"{scenario.source}: {agents} agents, but only {extensions} agent extensions to log them "
                           f"in with")


def switch_config_for(scenario: Scenario, speed: float) -> dict:
    """The switch's config for a scenario: its queues with every timer divided by the
    speed, a break reason for each of its breaks, and callers routed by queue name."""
    queues = {}
    for q in scenario.queues:
        spec: dict = {"strategy": q.strategy, "ring_timeout_s": q.ring_timeout_s / speed,
                      "max_no_answer": q.max_no_answer, "owner_wait_s": q.owner_wait_s / speed,
                      # the bots end their wrap-up after the scenario's time; this is only the bound
                      "wrap_up_s": 3600.0 / speed,
                      "sl_threshold_s": (q.sl_threshold_s if q.sl_threshold_s is not None else scenario.threshold_s)
                      / speed,
                      "on_full": q.on_full, "on_max_wait": q.on_max_wait,
                      "tiers": [{"after_s": t.after_s / speed, "skills": sorted(t.skills),
                                 "min_proficiency": t.min_proficiency} for t in q.tiers],
                      "priority_credit_s": {k: v / speed for k, v in q.priority_credit_s.items()}}
        if q.max_length is not None:
            spec["max_length"] = q.max_length
        if q.max_wait_s is not None:
            spec["max_wait_s"] = q.max_wait_s / speed
        queues[q.name] = spec
    breaks = {"lunch": 60.0, "training": 120.0}
    for group in scenario.groups:
        for start, end, reason in group.breaks:
            breaks[reason] = max(breaks.get(reason, 0.1), max(0.1, 2 * (end - start) / speed / 60))
    keys = menu_keys(scenario)
    return {"numbers": {MENU_NUMBER: "menu"}, "unlisted": "general", "queues": queues, "breaks": breaks,
            "menu": {"options": {key: queue for queue, key in keys.items()}, "timeout_s": max(1.0, 8 / speed),
                     "default": "general" if "general" in keys else next(iter(keys))}}


def menu_keys(scenario: Scenario) -> dict[str, str]:
    """The menu key of each of the scenario's queues: the shipped menu's where it has one
    (1 repair, 2 complaint, 3 billing, 4 enquiry, 9 emergency, 0 general), else the next
    free digit; queues past ten are dialled by name."""
    free = [d for d in "5678" + "0123456789" if d not in MENU_KEYS.values()]
    keys = {}
    for q in scenario.queues:
        if q.name in MENU_KEYS:
            keys[q.name] = MENU_KEYS[q.name]
        elif free:
            keys[q.name] = free.pop(0)
    return keys


@dataclass
class Workplace:
    """A switch of the run's own, in the run directory's switch/ folder."""
    folder: Path
    db_path: Path
    sip: tuple[str, int]
    control: Path
    queue_log: Path
    pins: dict[str, str]
    agents: dict[str, dict]             # ext -> {name, skills, group}
    process: subprocess.Popen | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.folder / "switch.log"


def prepare_switch(folder: Path, scenario: Scenario, *, seed: int, speed: float, residents: int) -> Workplace:
    from records.agents import add_agent
    from records.seed import seed_database
    from records.sla import load_policy

    folder.mkdir(parents=True, exist_ok=True)
    db_path = folder / "records.db"
    pins, agents = {}, {}
    db = connect(db_path, create=True)
    try:
        # the residents who call (and their history); the seed's own logins are not used
        seed_database(db, load_policy(None), residents=residents, seed=seed)
        ext = FIRST_EXT
        for group in scenario.groups:
            for n in range(group.count):
                pin = f"{secrets.randbelow(10**6):06d}"
                name = f"{group.name} {n + 1}"
                add_agent(db, ext=str(ext), name=name, pin=pin, skills=dict(group.skills))
                pins[str(ext)], agents[str(ext)] = pin, {"name": name, "skills": dict(group.skills), "group": group.name}
                ext += 1
    finally:
        db.close()
    (folder / "switch.yaml").write_text("# written by hotline simulate --live from the scenario, timers / speed\n"
                                        + yaml.safe_dump(switch_config_for(scenario, speed), sort_keys=False))
    return Workplace(folder, db_path, ("127.0.0.1", free_udp_port()), folder / "switch.sock", folder / "queue_log",
                     pins, agents)


def existing_switch(scenario: Scenario, *, sip: tuple[str, int], control, db_path: Path, pins: dict[str, str],
                    queue_log: Path) -> Workplace:
    """A switch already running (yours): its agents' logins from `pins`, their names and
    skills (the switch's own, not the scenario's) and the callers' numbers from its records."""
    from telephony.acd.config import CALL_TYPES

    db = connect(db_path, migrate=False)
    try:
        rows = db.execute("SELECT ext, name, role, id FROM agents WHERE active = 1 ORDER BY ext").fetchall()
        agents = {}
        for ext, name, role, agent_id in rows:
            if role == "agent" and ext in pins:
                skills = dict(db.execute("SELECT skill, proficiency FROM agent_skills WHERE agent_id = ?",
                                         [agent_id]).fetchall())
                agents[ext] = {"name": name, "skills": skills, "group": ""}
    finally:
        db.close()
    check_placeable(scenario, switch_queues=set(CALL_TYPES), extensions=len(agents))
    wanted = sum(g.count for g in scenario.groups)
    chosen = dict(list(agents.items())[:wanted])
    return Workplace(db_path.parent, db_path, sip, control, queue_log, {e: pins[e] for e in chosen}, chosen)


def start_switch(place: Workplace, *, no_media: bool = False) -> None:
    start_of_log = place.log_path.stat().st_size if place.log_path.exists() else 0
    with open(place.log_path, "a") as log:
        place.process = subprocess.Popen(
            [sys.executable, "-m", "console", "--db", str(place.db_path), "switch", "--sip",
             f"{place.sip[0]}:{place.sip[1]}", "--control", str(place.control), "--config",
             str(place.folder / "switch.yaml"), "--queue-log", str(place.queue_log), "--media",
             str(place.folder / "media"), *(["--no-media"] if no_media else [])],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while "hotline switch: SIP on" not in (text := place.log_path.read_text()[start_of_log:]):
        if place.process.poll() is not None or time.monotonic() > deadline:
            place.process.kill()
            raise RuntimeError(f"the switch did not start; its log:\n{text[-2000:]}")
        time.sleep(0.05)


def stop_process(process: subprocess.Popen, wait_s: float) -> None:
    """SIGTERM (a switch releases every call still up and records it as interrupted),
    then SIGKILL if it has not gone within `wait_s`."""
    import signal

    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def stop_switch(place: Workplace) -> None:
    if place.process is not None:
        stop_process(place.process, 15)


@dataclass
class Drive:
    t0: float                    # time.time() at the scenario's time 0
    ended: float
    tally: dict
    dialled: collections.Counter
    crashes: list[dict] = field(default_factory=list)   # the switch killed mid-run: when, back after
    placed: list = field(default_factory=list)           # SIPp's calls (sipp_load.PlacedCall): number, queue, menu
    crossed: list = field(default_factory=list)   # numbers of callers who gave up as an agent answered
    audio: list = field(default_factory=list)            # audio_check.AudioCaller: callers whose audio is checked


async def crash_switch(place: Workplace, at_s: float, speed: float, crashes: list, no_media: bool, say,
                       restarting: asyncio.Event) -> None:
    """The drill of a switch that dies: SIGKILL at `at_s` (scenario seconds), started
    again at once; its start-up closes the calls it held as interrupted, the bots log in
    again by themselves and the callers' retransmitted INVITEs reach the new switch."""
    import signal

    await asyncio.sleep(at_s / speed)
    if place.process is None or place.process.poll() is not None:
        return
    restarting.set()   # (the watcher leaves this one to the drill)
    try:
        place.process.send_signal(signal.SIGKILL)
        place.process.wait(10)
        killed = time.time()
        await asyncio.get_running_loop().run_in_executor(None, lambda: start_switch(place, no_media=no_media))
    finally:
        restarting.clear()
    crashes.append({"killed_at": killed, "back_after_s": time.time() - killed, "why": "killed by the drill"})
    say(f"  the switch was killed (SIGKILL) and is back after {time.time() - killed:.1f} s")


async def watch_switch(place: Workplace, crashes: list, no_media: bool, say, restarting: asyncio.Event) -> None:
    """As a service manager would: a switch of the run's own that dies (its media engine
    stuck, a crash) is started again at once, and the run says so and carries on."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(0.5)
        process = place.process
        if process is None or process.poll() is None or restarting.is_set():
            continue
        died = time.time()
        lines = place.log_path.read_text(errors="replace").strip().splitlines() if place.log_path.exists() else []
        why = next((line for line in reversed(lines) if line.startswith("hotline:")), f"exit status {process.returncode}")
        restarting.set()
        try:
            await loop.run_in_executor(None, lambda: start_switch(place, no_media=no_media))
        finally:
            restarting.clear()
        crashes.append({"killed_at": died, "back_after_s": time.time() - died, "why": why})
        say(f"  the switch died ({why}); started again, back after {time.time() - died:.1f} s")


async def drive(scenario: Scenario, place: Workplace, *, seed: int, calls: int | None, speed: float,
                say=print, kill_switch_at_s: float | None = None, no_media: bool = False,
                token: str | None = None, callers: str = "phones", folder: Path | None = None,
                audio_callers: int = AUDIO_CALLERS) -> Drive:
    """The scenario's day, live: bots on shift, callers placed on the scenario's clock
    (`callers`: "phones", sippy phones in this process, or "sipp", SIPp processes whose
    scenario files go in `folder`). With SIPp, a run's own switch with its media engine is
    called through its voice menu (each caller presses its queue's key), and
    `audio_callers` of the callers say and hear real audio (scenarios/audio_check.py)."""
    loop = asyncio.get_running_loop()
    behaviour = Behaviour(scenario, speed=speed, seed=seed, calls=calls)
    phones = LivePhones(place.sip, loop=loop, behaviour=behaviour, seed=seed)
    db = connect(place.db_path, migrate=False)
    try:
        numbers = [r[0] for r in db.execute("SELECT p.number FROM resident_phones p JOIN residents r ON "
                                            "r.id = p.resident_id WHERE r.segment = 'standard' ORDER BY p.number")]
        vips = [r[0] for r in db.execute("SELECT p.number FROM resident_phones p JOIN residents r ON "
                                         "r.id = p.resident_id WHERE r.segment = 'vip' ORDER BY p.number")]
        # a burst (a water cut) is one estate's residents: the switch's mass-complaint alert sees it
        estate = [r[0] for r in db.execute(
            "SELECT p.number FROM resident_phones p JOIN residents r ON r.id = p.resident_id JOIN units u ON "
            "u.id = r.unit_id JOIN buildings b ON b.id = u.building_id WHERE b.estate_id = (SELECT b2.estate_id "
            "FROM residents r2 JOIN units u2 ON u2.id = r2.unit_id JOIN buildings b2 ON b2.id = u2.building_id "
            "GROUP BY b2.estate_id ORDER BY count(*) DESC LIMIT 1) ORDER BY p.number")]
    finally:
        db.close()
    roster = Roster(scenario, list(place.agents), place.pins, phones,
                    place.control if isinstance(place.control, tuple) else str(place.control), speed=speed, say=say,
                    token=token)
    load = None
    audio: list = []
    if callers == "sipp":
        import random as _random

        from scenarios.live import NumberPicker
        from scenarios.sipp_load import SippLoad, can_press_keys

        picker = NumberPicker(numbers, vips, estate, scenario.known_share, _random.Random(f"hotline-live:{seed}:numbers"))
        plan = [(planned, picker.pick(planned)) for planned in behaviour.callers()]
        with_media = place.process is not None and not no_media   # (a running switch's menu is its own)
        menu = (MENU_NUMBER, menu_keys(scenario)) if with_media and can_press_keys() else None
        if with_media:
            audio = choose_audio_callers(plan, audio_callers, menu[1] if menu else {}, seed)
            phones.audio_callers = {a.number: a for a in audio}
        load = SippLoad.write(folder or place.folder / "sipp", place.sip, plan, speed, menu=menu,
                              audio_ports={a.index: a.voice.port for a in audio})
        say(f"  SIPp: {len(plan)} callers in {len(load.buckets)} processes (one per patience within 10%)"
            + (f", through the voice menu ({MENU_NUMBER}, a key per queue)" if menu else
               ", dialling the queues by name" + ("" if with_media else " (the menu needs the switch's media)"))
            + (f"; {len(audio)} saying and hearing audio" if audio else "")
            + (f" (of {audio_callers} asked: only callers with a number of their own)"
               if with_media and len(audio) < audio_callers else ""))
    else:
        say("  the callers: sippy phones in this process, dialling the queues by name (no menu keys, no audio)")
    phones.start()
    try:
        await roster.log_in_first_shift()
        t0, clock0 = time.time() + (1.0 if load is not None else 0.0), time.monotonic()
        if load is not None:   # SIPp starts calling a second from now: its calls wait for their moment from t0
            load.start(t0)
            clock0 += 1.0
        else:
            phones.start_calling(numbers, vips, estate)
        roster.keep_the_clock()
        crashes: list[dict] = []
        restarting = asyncio.Event()
        watcher = None
        if place.process is not None:   # a switch of the run's own (not one given with --switch)
            watcher = asyncio.get_running_loop().create_task(watch_switch(place, crashes, no_media, say, restarting))
        if kill_switch_at_s is not None:
            crash = asyncio.get_running_loop().create_task(
                crash_switch(place, kill_switch_at_s, speed, crashes, no_media, say, restarting))
        horizon = scenario.horizon_s if scenario.horizon_s is not None else math.inf
        last_report = 0.0
        while True:
            await asyncio.sleep(0.2)
            elapsed = time.monotonic() - clock0
            if load is not None:
                if load.running() == 0:
                    break
                if elapsed - last_report >= 10:
                    last_report = elapsed
                    running = load.running()
                    say(f"  {elapsed * speed / 60:6.1f} scenario min: {running} SIPp process{'es' if running != 1 else ''} "
                        f"calling")
                continue
            if phones.plan_done and phones.tally.in_progress == 0:
                break
            if elapsed * speed > horizon and phones.tally.in_progress == 0:
                break
            if phones.plan_done and elapsed > (horizon if horizon != math.inf else 0) / speed + SETTLE_S \
                    and not phones.callers:
                break
            if elapsed - last_report >= 10:
                last_report = elapsed
                t = phones.tally
                # each call in one place: ended after talking, gave up, turned away, or still up
                say(f"  {elapsed * speed / 60:6.1f} scenario min: {t.placed} placed: {t.finished} talked and hung up, "
                    f"{t.gave_up} gave up, {t.refused} turned away, {t.in_progress} still up")
    finally:
        if kill_switch_at_s is not None and not crash.done():
            crash.cancel()
        if watcher is not None:
            watcher.cancel()
        if load is not None:
            load.stop()
        phones.stop_calling()
        await roster.stop()
        phones.stop()
    t = phones.tally
    if load is not None:
        counts = load.counts()
        problems = load.problems()
        if problems:
            say(f"  SIPp: {len(problems)} of {len(load.buckets)} processes placed fewer calls than planned "
                f"({counts.get('placed', 0)} of {load.planned()} placed in all):")
            for problem in problems[:5]:
                say(f"    {problem}")
        tally = {"generator": "SIPp", "planned": load.planned(), "placed": counts.get("placed", 0), "successful": counts.get("successful", 0),
                 "failed": counts.get("failed", 0), "gave_up": counts.get("gave_up", 0),
                 "gave_up_as_answered": counts.get("gave_up_as_answered", 0),
                 "answered": counts.get("hung_up_after_talking", 0), "bot_calls": t.bot_calls,
                 "registered": len(t.registered)}
        return Drive(t0, time.time(), tally, load.dialled, crashes=crashes, placed=load.placed_calls, audio=audio,
                     crossed=load.crossed_numbers())
    tally = {"generator": "sippy phones", "placed": t.placed, "answered": t.answered, "finished": t.finished,
             "gave_up": t.gave_up, "refused": t.refused, "cut_off_talking": t.cut_off_talking,
             "cut_off_waiting": t.cut_off_waiting, "bot_calls": t.bot_calls, "registered": len(t.registered)}
    return Drive(t0, time.time(), tally, collections.Counter(t.dialled), crashes=crashes)


def choose_audio_callers(plan: list, count: int, keys: dict[str, str], seed: int) -> list:
    """`count` callers spread over the run, each calling from a number nobody else in the
    plan uses (so its one row is found by number), with an RTP endpoint of its own."""
    import random as _random

    from scenarios.audio_check import CALLER_HZ, AudioCaller, RtpVoice

    uses = collections.Counter(number for _, number in plan)
    single = [n for n, (_, number) in enumerate(plan) if uses[number] == 1]
    if count <= 0 or not single:
        return []
    rng = _random.Random(f"hotline-live:{seed}:audio")
    step = len(single) / min(count, len(single))
    chosen = [single[min(len(single) - 1, int(i * step + rng.random() * step))] for i in range(min(count, len(single)))]
    out = []
    for index in sorted(set(chosen)):
        planned, number = plan[index]
        key = keys.get(planned.queue)
        out.append(AudioCaller(index, number, planned.queue, key, RtpVoice(CALLER_HZ, key=key)))
    return out


async def check_audio(place: Workplace, audio: list, *, since: float, recording: bool, wait_s: float = 15.0) -> list[dict]:
    """Each audio caller's verdict (audio_check.verdict), once its row is closed and, if
    answered, its recording is on it (a recording is converted after the call ends)."""
    from scenarios.audio_check import sounds_heard, verdict

    sounds = sounds_heard(place.folder / "media" / "sounds")
    deadline = time.monotonic() + wait_s
    while True:
        rows = _rows_by_number(place, [a.number for a in audio], since)
        waiting = [a for a in audio if (row := rows.get(a.number)) is None or row["ended_at"] is None
                   or (recording and row["outcome"] == "answered" and not row["recording_path"])]
        if not waiting or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    return [verdict(a, rows.get(a.number), sounds, recording=recording) for a in audio]


def _rows_by_number(place: Workplace, numbers: list[str], since: float) -> dict[str, dict]:
    if not numbers:
        return {}
    db = connect(place.db_path, migrate=False)
    try:
        cursor = db.execute(f"SELECT * FROM interactions WHERE direction = 'inbound' AND entered_at >= ? AND "
                            f"caller_number IN ({','.join('?' * len(numbers))}) ORDER BY id", [since, *numbers])
        names = [c[0] for c in cursor.description]
        return {row["caller_number"]: row for row in (dict(zip(names, r)) for r in cursor)}
    finally:
        db.close()


def map_event(message: dict, *, t0: float, start: float, speed: float) -> dict:
    """A switch event moved onto the scenario's clock."""
    out = dict(message)
    for key in _MOMENTS:
        if isinstance(out.get(key), (int, float)):
            out[key] = start + (out[key] - t0) * speed
    for key in _DURATIONS:
        if isinstance(out.get(key), (int, float)):
            out[key] = out[key] * speed
    return out


def export_events(place: Workplace, writer: EventLogWriter, *, since: float, t0: float, start: float,
                  speed: float) -> list:
    """The switch's event log since `since` into the run, mapped; the routing events
    (relative to the scenario's start) for the statistics."""
    routing = []
    db = connect(place.db_path, migrate=False)
    try:
        for at, node, body in db.execute("SELECT at, node, body FROM events WHERE at >= ? ORDER BY seq", [since]):
            message = map_event(json.loads(body), t0=t0, start=start, speed=speed)
            message.pop("seq", None)
            writer.write_row(message, at=start + (at - t0) * speed, node=node)
            try:
                event = wire.decode(message).event
            except wire.WireError:
                continue
            if isinstance(event, ev.Event):
                routing.append((message, event))
    finally:
        db.close()
    return routing


def live_report(scenario: Scenario, routing: list, *, seed: int, simulated_s: float) -> dict:
    stats = Statistics({q.name: q.sl_threshold_s for q in scenario.queues}, start=0.0, interval_s=scenario.interval_s,
                       default_threshold_s=scenario.threshold_s)
    waiting: dict[str, str] = {}   # call -> the queue it waits in (events carry no queue lengths)
    for message, _ in routing:
        relative = dict(message)
        for key in _MOMENTS:
            if isinstance(relative.get(key), (int, float)):
                relative[key] = relative[key] - scenario.start
        event = wire.decode(relative).event
        if isinstance(event, ev.Event):
            stats.add(event)
            if isinstance(event, ev.CallQueued):
                waiting[event.call_id] = event.queue
                stats.queue_length(event.queue, sum(1 for q in waiting.values() if q == event.queue), len(waiting))
            elif isinstance(event, _LEAVES_QUEUE):
                waiting.pop(event.call_id, None)
        elif hasattr(event, "call_id"):   # a call the switch's crash cut (CallFailed)
            waiting.pop(getattr(event, "call_id"), None)
    stats.close(simulated_s)
    report = stats.report()
    report.update(name=scenario.name, seed=seed, simulated_s=simulated_s, engine="live: hotline switch over SIP")
    report["expectations"] = [{"expect": e.text, "passed": ok, "actual": actual}
                              for e in scenario.expect for ok, actual in [e.check(report)]]
    return report


def accounting(place: Workplace, drive_result: Drive, since: float) -> dict:
    """Every call the load generator placed is exactly one interactions row: by number."""
    db = connect(place.db_path, migrate=False)
    try:
        rows = db.execute("SELECT caller_number, outcome, sip_cause FROM interactions WHERE direction = 'inbound' "
                          "AND entered_at >= ?", [since]).fetchall()
    finally:
        db.close()
    # A caller whose patience ran out in the instant an agent answered: the switch's 200
    # crossed their CANCEL, so the call was up and they hung up at once; the row says
    # answered (with next to no talk), the phone that it gave up. Named, not hidden.
    crossed = drive_result.crossed
    recorded = collections.Counter(number for number, _, _ in rows)
    placed = drive_result.dialled
    missing = placed - recorded
    extra = recorded - placed
    outcomes = collections.Counter(outcome or "open" for _, outcome, _ in rows)
    causes = collections.Counter(cause for _, outcome, cause in rows if outcome == "failed")
    return {"placed": sum(placed.values()), "rows": len(rows), "lost": sum(missing.values()),
            "unexpected_rows": sum(extra.values()), "outcomes": dict(outcomes), "failed_by_cause": dict(causes),
            "generator": drive_result.tally, "switch_crashes": drive_result.crashes,
            "gave_up_as_answered": crossed,
            "menu": _menu_accounting(place, drive_result, since)}


def _menu_accounting(place: Workplace, drive_result: Drive, since: float) -> dict:
    """Callers who went through the voice menu: how many reached the queue of the key they
    pressed, hung up in the menu, or reached another queue (a fault)."""
    through = [c for c in drive_result.placed if c.dialled == MENU_NUMBER]
    if not through:
        return {}
    db = connect(place.db_path, migrate=False)
    try:
        rows = db.execute("SELECT caller_number, queue FROM interactions WHERE direction = 'inbound' AND "
                          "entered_at >= ? AND dialled_number = ?", [since, MENU_NUMBER]).fetchall()
    finally:
        db.close()
    meant = collections.Counter((c.number, c.queue) for c in through)
    reached = collections.Counter((number, queue) for number, queue in rows if queue != "menu")
    right = sum((meant & reached).values())
    in_menu = sum(1 for _, queue in rows if queue == "menu")
    return {"callers": len(through), "reached_their_queue": right, "hung_up_in_menu": in_menu,
            "other_queue": sum((reached - meant).values())}


# --- live against virtual -------------------------------------------------------------------
COMPARED = ("offered", "answered", "abandoned", "service_level", "abandon_rate", "asa_s", "aht_s", "occupancy")


def tolerance(name: str, virtual: float, offered: int, answered: int, speed: float) -> float:
    """How far the live value may honestly lie from the virtual one.

    Both runs have the same callers, so counts differ only where timing decides (a caller
    who gives up a moment before an agent is free): 3 standard errors of a share, on the
    offered calls, plus what the network's delay (taken as 0.3 s per call, times the
    speed, on the scenario's clock) can move. Deliberately generous: a difference
    outside it is a fault to look for, not noise.
    """
    latency_s = 0.3 * speed
    n = max(1, offered)
    if name == "offered":
        return 0.0
    if name in ("answered", "abandoned"):
        share = min(max(virtual / n, 0.05), 0.95)
        return 3 * math.sqrt(share * (1 - share) * n) + 2
    if name in ("service_level", "abandon_rate", "occupancy"):
        share = min(max(virtual, 0.05), 0.95)
        return 3 * math.sqrt(share * (1 - share) / n) + 0.02 + (0.02 * speed / 10 if name == "service_level" else 0)
    if name in ("asa_s", "aht_s"):
        return 3 * max(virtual, 1.0) / math.sqrt(max(1, answered)) + latency_s
    return math.inf


def compare(virtual: dict, live: dict, speed: float) -> list[dict]:
    from scenarios.runs import metric

    rows = []
    scopes = [None] + sorted(set(virtual.get("queues", {})) | set(live.get("queues", {})))
    for queue in scopes:
        source = virtual.get("queues", {}).get(queue, {}) if queue else virtual
        offered, answered = int(source.get("offered", 0)), int(source.get("answered", 0))
        for name in COMPARED if queue is None else COMPARED[:-1]:
            a, b = metric(virtual, name, queue), metric(live, name, queue)
            if a is None or b is None:
                continue
            allowed = tolerance(name, a, offered, answered, speed)
            rows.append({"scope": queue or "all", "metric": name, "virtual": a, "live": b, "difference": b - a,
                         "tolerance": allowed, "inside": abs(b - a) <= allowed + 1e-9})
    return rows


def print_comparison(rows: list[dict], out=sys.stdout) -> None:
    def cell(name: str, value: float) -> str:
        if name in ("service_level", "abandon_rate", "occupancy"):
            return f"{value:.1%}"
        if name.endswith("_s"):
            return f"{value:.1f} s"
        return f"{value:.0f}" if value == int(value) else f"{value:.1f}"

    print(f"  {'metric':<26} {'virtual':>9} {'live':>9} {'diff':>9} {'allowed':>9}", file=out)
    for row in rows:
        name = row["metric"]
        print(f"  {row['scope'] + ' ' + name:<26} {cell(name, row['virtual']):>9} {cell(name, row['live']):>9} "
              f"{cell(name, row['difference']):>9} {cell(name, row['tolerance']):>9} "
              f"{'ok' if row['inside'] else 'OUTSIDE'}", file=out)


async def run_live(scenario: Scenario, scenario_file: str, run_dir: RunWriter, *, seed: int, calls: int | None,
                   speed: float, residents: int = 2000, no_media: bool = False, say=print,
                   kill_switch_at_s: float | None = None, on_switch=None, existing: Workplace | None = None,
                   token: str | None = None, callers: str = "phones", audio_callers: int = AUDIO_CALLERS) -> dict:
    """The whole live run into `run_dir`; returns its report (with the tally and the
    comparison). `existing`: a switch already running (existing_switch), used as it is."""
    from scenarios.simulator import Simulation
    from telephony.acd.config import CALL_TYPES

    started_wall = time.monotonic()
    if existing is None:
        check_placeable(scenario, switch_queues=set(CALL_TYPES), extensions=2999)
        place = prepare_switch(run_dir.path / "switch", scenario, seed=seed, speed=speed, residents=residents)
        start_switch(place, no_media=no_media)
        if on_switch is not None:   # (bench/soak.py samples its memory and CPU)
            on_switch(place)
        where = f"switch on {place.sip[0]}:{place.sip[1]} (log {place.log_path})"
    else:
        place = existing
        where = f"the running switch at {place.sip[0]}:{place.sip[1]} (its timers are its own, not divided by the speed)"
    since = time.time() - 1
    queue_log_start = place.queue_log.stat().st_size if place.queue_log.exists() else 0
    result: Drive | None = None
    try:
        say(f"hotline simulate --live: {where}, {len(place.agents)} bot agents, speed x{speed:g}")
        result = await drive(scenario, place, seed=seed, calls=calls, speed=speed, say=say,
                             kill_switch_at_s=kill_switch_at_s if existing is None else None, no_media=no_media,
                             token=token, callers=callers, folder=run_dir.path / "sipp", audio_callers=audio_callers)
        audio_verdicts = await check_audio(place, result.audio, since=since, recording=not no_media)
    finally:
        for caller in result.audio if result is not None else []:
            for voice in [caller.voice, *caller.agent_voices]:
                voice.stop()
        if existing is None:
            stop_switch(place)
    writer = EventLogWriter(run_dir.file("events.jsonl"), node="switch")
    try:
        routing = export_events(place, writer, since=since, t0=result.t0, start=scenario.start, speed=speed)
    finally:
        writer.close()
    if place.queue_log.exists():   # this run's lines only (a running switch's file holds its whole history)
        with open(place.queue_log, "rb") as source, open(run_dir.file("queue_log"), "wb") as out:
            source.seek(queue_log_start)
            shutil.copyfileobj(source, out)
    simulated_s = (result.ended - result.t0) * speed
    report = live_report(scenario, routing, seed=seed, simulated_s=simulated_s)
    report["accounting"] = accounting(place, result, since)
    report["audio"] = audio_verdicts
    virtual = Simulation(scenario, seed=seed, calls=calls).run()
    report["virtual"] = {k: v for k, v in virtual.items() if k != "intervals"}
    report["comparison"] = compare(virtual, report, speed)
    report["virtual_expectations"] = virtual["expectations"]
    wall_s = time.monotonic() - started_wall
    report["wall_s"] = wall_s
    report["speed"] = speed
    run_dir.finish(kind="live", scenario=scenario, seed=seed, report=report,
                   agents={ext: {"name": a["name"], "skills": a["skills"]} for ext, a in place.agents.items()},
                   clocks={"wall_s": wall_s, "simulated_s": simulated_s, "speed": speed,
                           "t0_epoch": result.t0},
                   extra={"calls": report["accounting"]["placed"], "scenario_file": scenario_file,
                          "queue_log_clock": "wall (the switch's own lines, unmapped)",
                          "switch": "its own" if existing is None else f"sip:{place.sip[0]}:{place.sip[1]}"})
    return report
