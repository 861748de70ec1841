"""`hotline demo`: a working contact centre on this machine, in one command.

Seeds a demo database (unless it exists), starts `hotline switch` as a process of its
own, registers bot agents with it (real SIP, digest, control API logins), sends a
steady trickle of simulated residents' calls, and shows what the switch does as it
happens, as a supervisor connected to the control API sees it. Ctrl-C (or SIGTERM)
stops everything: calls are hung up, bots log out, the switch shuts down cleanly.

Extension 1001 is left for a person: log in with its PIN from the `.pins` file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from console.logtime import CentreTimeFormatter
from records.db import connect
from records.directory import resident_by_phone
from scenarios.erlang import healthy_rate
from scenarios.schema import Dist, Scenario, load_scenario
from scenarios.live import Behaviour, BotAgent, LivePhones, free_udp_port, read_pins
from scenarios.live_run import stop_process
from telephony.acd import events as ev
from telephony.control_client import ControlClient, log_in_again
from telephony.wire import Delivered

HUMAN_EXT = "1001"
SL_THRESHOLD_S = 15.0   # the trade's standard: answered within three rings
BOT_SKILLS = "repair:3,complaint:3,billing:3,enquiry:3,emergency:3,general:3"
# Files a demo run leaves beside its database; --fresh starts without any of them.
RUN_FILES = (".pins", ".queue_log", ".switch.log", ".switch.yaml", ".switch.lock", ".sock", ".feed.log",
             ".bots.log", ".media", ".seat")


DEMO_SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "library" / "demo.yaml"


def demo_scenario(*, calls_per_hour: float, talk_s: float) -> Scenario:
    """The demo's callers (scenarios/library/demo.yaml) at the rate and mean talk asked
    for, until the demo stops."""
    scenario = load_scenario(DEMO_SCENARIO)
    talk = scenario.dist_for(scenario.handle_time, "general")
    return dataclasses.replace(scenario, calls=None, horizon_s=None, segments=((0.0, calls_per_hour / 3600.0),),
                               bursts=(), handle_time={"default": Dist(talk.kind, talk_s, talk_s / 2)})


def healthy_calls_per_hour(bots: int, scenario: Scenario) -> float:
    """The most calls an hour `bots` bot agents take at service level 80% within 15 s and
    under 5% abandoned (Erlang A on the scenario's mean handle time: ring, talk and
    wrap-up). The person at 1001, when available, is spare capacity on top."""
    handle_s = (scenario.ring_time_s + scenario.dist_for(scenario.handle_time, "general").mean_s
                + scenario.dist_for(scenario.wrap_up, "general").mean_s)
    return healthy_rate(bots, handle_s, scenario.patience.mean_s, SL_THRESHOLD_S) * 3600


def pins_path(db_path: str | Path) -> Path:
    return Path(db_path).with_suffix(".pins")


def seed_demo(db_path: str, *, residents: int, seed: int, pins_from_seed: bool = False) -> None:
    """A fresh demo database; its logins go to a 0600 file beside it (bots need them)."""
    from records.seed import seed_database
    from records.sla import load_policy

    import shutil

    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    for suffix in RUN_FILES:   # a fresh demo is fresh: no old queue_log, drafts, logs or recordings
        path = Path(db_path).with_suffix(suffix)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    db = connect(db_path, create=True)
    try:
        summary = seed_database(db, load_policy(None), residents=residents, seed=seed, pins_from_seed=pins_from_seed)
    finally:
        db.close()
    path = pins_path(db_path)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("# demo logins, EXT:PIN (the database keeps only salted hashes)\n")
        for ext, name, role, pin in summary.pins:
            out.write(f"{ext}:{pin}  # {role} {name}\n")


class Feed:
    """Routing events as one line each, with the names a supervisor would want."""

    def __init__(self, db_path: str, agents: dict[str, str], out=sys.stdout):
        from records.sla import load_policy

        self.db = connect(db_path, migrate=False)
        self.tz = load_policy().timezone   # the centre's clock, as on the seats' screens
        self.agents, self.out = agents, out
        self.callers: dict[str, str] = {}

    def who(self, number: str) -> str:
        resident = resident_by_phone(self.db, number) if number else None
        if resident is None:
            return f"{number} (unknown number)"
        vip = " VIP" if resident["segment"] == "vip" else ""
        return f"{number} {resident['name']}{vip}"

    def __call__(self, delivered: Delivered) -> None:
        event, call, agent = delivered.event, delivered.call_id, delivered.agent_id
        name = f"{agent} {self.agents.get(agent, '')}".strip()
        if isinstance(event, ev.CallQueued):
            self.callers[call] = self.who(event.number)
            text = f"{self.callers[call]} waits in {event.queue} (position {event.position})"
        elif isinstance(event, ev.CallOffered):
            text = f"{self.callers.get(call, call)} rings at {name}"
        elif isinstance(event, ev.CallConnected):
            text = f"{name} answered {self.callers.get(call, call)} after {event.wait_s:.0f} s"
        elif isinstance(event, ev.CallCompleted):
            if event.by == "switch":
                text = f"{name} was cut off from {self.callers.pop(call, call)} after {event.talk_s:.0f} s: the switch " \
                       "went down"
            else:
                who = "the caller" if event.by == "caller" else "the agent"
                text = f"{name} finished with {self.callers.pop(call, call)}: {event.talk_s:.0f} s, {who} hung up"
        elif isinstance(event, ev.CallAbandoned):
            text = f"{self.callers.pop(call, call)} gave up after {event.wait_s:.0f} s in {event.queue}"
        elif isinstance(event, ev.RingNoAnswer):
            if event.declined:
                text = f"{name} did not take {self.callers.get(call, call)} (declined, busy or unreachable)"
            else:
                text = f"{name} did not answer {self.callers.get(call, call)} in {event.ring_s:.0f} s"
            text += "; trying the next agent"
        elif isinstance(event, ev.CallRequeued):
            text = f"{name}'s phone went away; {self.callers.get(call, call)} is first in line again"
        elif isinstance(event, ev.CallTransferred):
            target = event.target.replace("agent:", "extension ").replace("number:", "")
            text = f"{name} transferred {self.callers.get(call, call)} to {target}"
        elif isinstance(event, ev.CallToVoicemail):
            text = f"{self.callers.pop(call, call)} sent to voicemail after {event.wait_s:.0f} s"
        elif isinstance(event, ev.AgentStatusChanged):
            reason = f" ({event.reason})" if event.reason else ""
            text = f"{name} is now {event.status.replace('_', ' ')}{reason}"
        else:
            return
        stamp = dt.datetime.fromtimestamp(event.t, self.tz).strftime("%H:%M:%S")
        print(f"{stamp}  {text}", file=self.out, flush=True)

    def say(self, text: str) -> None:
        """A line of the demo's own (the switch restarting), in the feed's format."""
        print(f"{dt.datetime.now(self.tz).strftime('%H:%M:%S')}  {text}", file=self.out, flush=True)

    def close(self) -> None:
        self.db.close()


class _Both:
    """Two text streams written as one."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


class FeedWatcher:
    """The feed's supervisor login: subscribed to the switch's events, and logged in
    again whenever the switch comes back after going away."""

    def __init__(self, control: str, ext: str, pin: str, feed: Feed):
        self.control, self.ext, self.pin, self.feed = control, ext, pin, feed
        self.client: ControlClient | None = None
        self.closing = False
        self._reconnecting: asyncio.Task | None = None

    async def start(self) -> None:
        client = await ControlClient.connect(self.control)
        try:
            await client.ask("login", ext=self.ext, pin=self.pin)
            client.on_event = self.feed
            # back after the switch went away: what it logged meanwhile comes first
            await client.subscribe(self.client.last_seq if self.client is not None else None)
        except BaseException:
            await client.close()
            raise
        client.on_close = self._lost
        self.client = client

    async def ask(self, op: str, **fields) -> dict:
        if self.client is None:
            raise ConnectionError("the feed is not logged in at the switch")
        return await self.client.ask(op, **fields)

    def _lost(self) -> None:
        if self.closing or (self._reconnecting is not None and not self._reconnecting.done()):
            return
        self.feed.say("lost the switch's control connection; the feed goes on when it is back")
        self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        await log_in_again(self.start, lambda: not self.closing)

    async def close(self) -> None:
        self.closing = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        if self.client is not None:
            self.client.on_close = None
            await self.client.close()


def _udp_port_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_switch(db_path: str, sip: tuple[str, int], control: Path, log_path: Path,
                 trunk: tuple[str, int] | None = None) -> subprocess.Popen:
    """The log goes on after the last run's or restart's (a fresh demo removed it)."""
    config = []
    if trunk is not None:   # the shipped config, with the simulated outside world as its trunk
        from telephony.switchconfig import DEFAULT_PATH

        path = Path(db_path).with_suffix(".switch.yaml")
        path.write_text(DEFAULT_PATH.read_text() + f"\n# hotline demo: callbacks reach simulated residents\n"
                        f"trunk: sip:{trunk[0]}:{trunk[1]}\n")
        config = ["--config", str(path)]
    start_of_log = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "a") as log:
        process = subprocess.Popen([sys.executable, "-m", "console", "--db", db_path, "switch", "--sip",
                                    f"{sip[0]}:{sip[1]}", "--control", str(control), *config],
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   # its own session: Ctrl-C reaches the demo, which stops the
                                   # callers and bots first and then the switch, in that order
                                   start_new_session=True)
    deadline = time.monotonic() + 20
    while "hotline switch: SIP on" not in (this_log := log_path.read_text()[start_of_log:]):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the switch did not start; its log:\n{this_log[-2000:]}")
        time.sleep(0.05)
    return process


class SupervisedSwitch:
    """The demo's switch process, started again whenever it exits without being asked
    to, as a service manager would: the seat and the bots log in again by themselves."""

    CHECK_S = 0.5
    RETRY_S = 5.0

    def __init__(self, start: Callable[[], subprocess.Popen], say: Callable[[str], None]):
        self._start, self.say = start, say
        self.process = start()
        self.restarts = 0
        self.stopping = False
        self._task: asyncio.Task | None = None

    def watch(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while not self.stopping:
            await asyncio.sleep(self.CHECK_S)
            code = self.process.poll()
            if code is None or self.stopping:
                continue
            self.say(f"the switch stopped (exit status {code}); starting it again")
            try:
                self.process = await asyncio.to_thread(self._start)
            except RuntimeError as exc:
                self.say(f"the switch did not start again: {str(exc).splitlines()[-1]}; "
                         f"trying again in {self.RETRY_S:g} s")
                await asyncio.sleep(self.RETRY_S)
                continue
            self.restarts += 1
            self.say("the switch is back: the seat and the bots log in again by themselves")

    def stop(self) -> None:
        self.stopping = True
        if self._task is not None:
            self._task.cancel()
        stop_switch(self.process)


def stop_switch(process: subprocess.Popen) -> None:
    stop_process(process, 10)


async def run_demo(db_path: str, *, bots: int, calls_per_hour: float | None, seconds: float | None,
                   talk_mean_s: float, seed: int, seat: bool = False, load: float = 1.0) -> dict:
    """`calls_per_hour` None: the healthy rate for the bots (healthy_calls_per_hour), times `load`."""
    pins = read_pins(pins_path(db_path))
    db = connect(db_path, migrate=False)
    try:
        names = {row[0]: row[1] for row in db.execute("SELECT ext, name FROM agents WHERE active = 1")}
        roles = {row[0]: row[1] for row in db.execute("SELECT ext, role FROM agents WHERE active = 1")}
        numbers = [row[0] for row in db.execute("SELECT number FROM resident_phones ORDER BY number")]
    finally:
        db.close()
    bot_exts = sorted(ext for ext, role in roles.items() if role == "agent" and ext != HUMAN_EXT and ext in pins)
    bot_exts = bot_exts[:bots]
    supervisor = next((ext for ext, role in sorted(roles.items()) if role == "supervisor" and ext in pins), None)
    if not bot_exts or supervisor is None:
        raise RuntimeError(f"{pins_path(db_path)} has no agent or supervisor logins: run `hotline demo --fresh`")
    # The demo's bots take every kind of call, so the callers' mix never waits for a skill
    # nobody has and the sizing below (one pool of agents) holds. Set up as an administrator
    # would (`hotline agents set`), before the switch starts: through a supervisor's login
    # the audit trail said that supervisor had changed them, at every start.
    from records.agents import parse_skills, update_agent

    db = connect(db_path, migrate=False)
    try:
        for ext in bot_exts:
            update_agent(db, ext, skills=parse_skills(BOT_SKILLS))
    finally:
        db.close()
    if calls_per_hour is None:
        calls_per_hour = healthy_calls_per_hour(len(bot_exts), demo_scenario(calls_per_hour=1, talk_s=talk_mean_s)) \
            * load
    behaviour = Behaviour(demo_scenario(calls_per_hour=calls_per_hour, talk_s=talk_mean_s), seed=seed)
    sip = ("127.0.0.1", 5060 if _udp_port_free(5060) else free_udp_port())   # 5060: `hotline agent`'s default
    control = Path(db_path).with_suffix(".sock")
    switch_log = Path(db_path).with_suffix(".switch.log")
    loop = asyncio.get_running_loop()
    phones = LivePhones(sip, loop=loop, seed=seed, behaviour=behaviour)
    # the simulated phones are also the switch's trunk: a callback rings a resident who answers
    # the feed always goes on in demo.feed.log (read after a run, or tail -f'd beside the
    # seat); without the seat it is printed too
    feed_file = open(Path(db_path).with_suffix(".feed.log"), "a", encoding="utf-8")
    feed = Feed(db_path, names, out=feed_file if seat else _Both(sys.stdout, feed_file))
    switch = SupervisedSwitch(lambda: start_switch(db_path, sip, control, switch_log,
                                                         trunk=(phones.host, phones.port)), feed.say)
    started = time.time()
    agents: list[BotAgent] = []
    watcher = FeedWatcher(str(control), supervisor, pins[supervisor], feed)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    try:
        phones.start()
        switch.watch()
        await watcher.start()
        for ext in bot_exts:
            bot = BotAgent(ext, pins[ext], phones)
            await bot.start(str(control))
            agents.append(bot)
        phones.start_calling(numbers)
        load_text = (f"about {calls_per_hour:.0f} calls an hour, which {len(agents)} bot agents answer at a service "
                     f"level of 80% within {SL_THRESHOLD_S:.0f} s (hotline demo --load 2 overloads it)")
        if seat:   # extension 1001's seat in this terminal; leaving it ends the demo
            from console.seat_run import run_seat

            # the bots and simulated phones share this process: their lines are not the seat's
            bots_log = logging.FileHandler(Path(db_path).with_suffix(".bots.log"))
            bots_log.setFormatter(CentreTimeFormatter())
            logging.getLogger("hotline.live").addHandler(bots_log)
            logging.getLogger("hotline.live").propagate = False

            # the demo's seat keeps its drafts and log beside the demo database (make clean)
            await run_seat(ext=HUMAN_EXT, pin=pins[HUMAN_EXT], registrar=f"sip:{sip[0]}:{sip[1]}",
                           control=str(control), stop=stop, seconds=seconds,
                           files=Path(db_path).with_suffix(".seat"),
                           quit_question="End the demo? The callers stop, the bots log out and the switch stops.",
                           hint=f"Demo: {len(agents)} bots take calls too ({calls_per_hour:.0f} an hour); press v to "
                                "be available, q to end the demo.")
        else:
            registrar = "" if sip[1] == 5060 else f" --registrar sip:{sip[0]}:{sip[1]}"
            print(f"hotline demo: switch on {sip[0]}:{sip[1]} (log {switch_log}), {len(agents)} bot agents, "
                  f"{load_text}. Extension {HUMAN_EXT} is yours: in another terminal, "
                  f"hotline --db {db_path} agent --ext {HUMAN_EXT}{registrar} --audio null (PIN in "
                  f"{pins_path(db_path)}; leave out --audio null to talk through this machine's sound card). "
                  f"The supervisors' console: hotline --db {db_path} supervisor --ext {supervisor}. "
                  f"Ctrl-C stops.", flush=True)
            try:
                await asyncio.wait_for(stop.wait(), seconds)
            except asyncio.TimeoutError:
                pass
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        # The stop, in the order a centre closes: no new callers; the bots log out; then
        # the switch releases every call still up and records it as interrupted; the
        # phones go last, so every call's end is the switch's word.
        phones.stop_calling()
        for bot in agents:
            await bot.stop()
        await watcher.close()
        switch.stop()
        phones.stop()
        feed.close()
        feed_file.close()
    tally = phones.tally
    recorded = _outcomes_since(db_path, started)
    summary = {"placed": tally.placed, "answered": tally.answered, "finished": tally.finished,
               "gave_up": tally.gave_up, "refused": tally.refused, "cut_off_talking": tally.cut_off_talking,
               "cut_off_waiting": tally.cut_off_waiting, "bot_calls": tally.bot_calls,
               "registered": len(tally.registered), "switch_exit": switch.process.returncode,
               "switch_restarts": switch.restarts, "recorded": recorded}
    print(f"hotline demo: stopped. {tally.placed} calls placed: {tally.finished} talked to an agent and hung up, "
          f"{tally.gave_up} gave up waiting, {tally.refused} refused, {tally.cut_off} still in progress at the stop "
          f"({tally.cut_off_talking} talking, {tally.cut_off_waiting} waiting), recorded as interrupted.", flush=True)
    if switch.restarts:
        print(f"hotline demo: the switch died and was started again {switch.restarts} time(s); the calls it held "
              "then are recorded as interrupted (the callers' phones may have counted them as talked).", flush=True)
    print("hotline demo: the records of this run: " + (", ".join(f"{n} {outcome}" for outcome, n in recorded.items())
                                                       or "no calls") + f"; in {db_path}", flush=True)
    return summary


def _outcomes_since(db_path: str, started: float) -> dict[str, int]:
    """Inbound contacts the switch recorded since `started`, by outcome."""
    db = connect(db_path, migrate=False)
    try:
        return dict(db.execute("SELECT outcome, count(*) FROM interactions WHERE node = 'switch' AND direction = "
                               "'inbound' AND entered_at >= ? GROUP BY outcome ORDER BY count(*) DESC",
                               [started - 1]).fetchall())
    finally:
        db.close()
