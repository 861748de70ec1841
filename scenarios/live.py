"""Simulated people on real SIP: bot agents' phones and callers, against a running switch.

One process, one UDP port, sippy on its own thread (like the switch; sippy's event
loop is a process-wide singleton, so this never runs inside the switch's process).

- A bot agent registers its extension with digest authentication, logs in over the
  control API and goes available; when the switch rings it, it answers after a short
  ring and talks until the caller hangs up (the trade's rule: the agent never hangs up
  first), then sends a disposition and ends its wrap-up after a sampled pause, as a
  person at a seat would.
- Callers arrive at random (Poisson) with the numbers of real residents (some unknown
  numbers too), dial a queue, wait up to their patience, then give up; once answered
  they talk for a sampled time and hang up.

No audio: the phones offer SDP and send no RTP, so the switch anchors and records their
calls' media but the recordings hold nothing. Used by `hotline demo` and the working-day
test; a bot logs in again by itself when the switch comes back after going away.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from scenarios.plan import PlannedCaller, caller_plan
from scenarios.schema import Scenario
from scenarios.simulator import Sampler
from telephony.acd.config import CALL_TYPES
from telephony.control_client import ControlClient, ControlError, log_in_again

log = logging.getLogger("hotline.live")

# What a bot writes after a call: the seat's own outcomes (console/seatlogic.py), never one
# that claims a work order, since a bot opens none, and a note saying who wrote it.
BOT_OUTCOMES = ("resolved on the call", "information given", "callback promised")
BOT_NOTES = {"repair": "Advised on the fault; resident will call back if it recurs.",
             "complaint": "Listened to the complaint and apologised; passed to the estate office.",
             "billing": "Explained the latest charges and how to pay.",
             "enquiry": "Answered the enquiry.", "emergency": "Checked the resident is safe; duty team informed.",
             "general": "Answered the resident's question."}
BOT_NOTE_PREFIX = "(demo bot) "
BOT_LONGEST_CALL_S = 1800.0   # a bot lets go of a caller who never hangs up after this
_SDP = ("v=0\r\no=hotline-{who} {session} 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n")


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_tcp_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Behaviour:
    """How the simulated people act: a scenario's callers (scenarios/plan.py: the
    simulator's own draws) and its agents' ring delay, no-answer share and wrap-up, with
    every duration divided by `speed` (10: an hour of the scenario in six minutes)."""

    def __init__(self, scenario: Scenario, *, speed: float = 1.0, seed: int | None = None,
                 calls: int | None = None):
        if speed <= 0:
            raise ValueError("speed must be above 0")
        self.scenario, self.speed = scenario, speed
        self.seed = scenario.seed if seed is None else seed
        self.calls = calls
        self.rng = random.Random(f"hotline-live:{self.seed}:agents")
        types = sorted(set(CALL_TYPES) | set(scenario.mix))
        self._wrap = {t: Sampler(scenario.dist_for(scenario.wrap_up, t), self.rng) for t in types}
        self._talk = Sampler(scenario.dist_for(scenario.handle_time, "general"), self.rng)

    def callers(self) -> Iterator[PlannedCaller]:
        return caller_plan(self.scenario, seed=self.seed, calls=self.calls)

    def ring_delay(self) -> float:
        """From the ring to the answer (the scenario's ring_time_s; the network's own delay on top)."""
        return max(0.05, self.scenario.ring_time_s / self.speed)

    def answers(self) -> bool:
        return not (self.scenario.no_answer_share > 0 and self.rng.random() < self.scenario.no_answer_share)

    def wrap_delay(self, queue: str) -> float:
        sampler = self._wrap.get(queue) or self._wrap["general"]
        return min(sampler.draw(), 3600.0) / self.speed

    def sample_talk(self) -> float:
        """A resident called back talks as long as a caller of the scenario."""
        return max(1.0, min(self._talk.draw(), BOT_LONGEST_CALL_S)) / self.speed


@dataclass
class Tally:
    """How the simulated callers' calls went; each placed call ends in exactly one of
    finished, gave_up, refused, cut_off_talking, cut_off_waiting."""
    placed: int = 0
    answered: int = 0           # reached an agent (finished + cut_off_talking)
    finished: int = 0           # talked and hung up
    gave_up: int = 0            # hung up waiting (patience ran out)
    refused: int = 0            # the switch turned the call away
    cut_off_talking: int = 0    # still talking when the run stopped
    cut_off_waiting: int = 0    # still waiting when the run stopped
    bot_calls: int = 0
    dialled: list[str] = field(default_factory=list)   # the caller number of every call placed
    called_back: int = 0  # callbacks answered by a simulated resident (through the switch's trunk)
    registered: set = field(default_factory=set)

    @property
    def cut_off(self) -> int:
        return self.cut_off_talking + self.cut_off_waiting

    @property
    def in_progress(self) -> int:
        return self.placed - self.finished - self.gave_up - self.refused - self.cut_off


class NumberPicker:
    """Which number a planned caller calls from: a burst's callers (a water cut) are one
    estate's residents, a repeat caller one who called before, a VIP a VIP, a known
    caller (the scenario's known share) a resident, the rest numbers nobody knows."""

    def __init__(self, numbers, vips, burst, known_share: float, rng: random.Random):
        self.numbers, self.vips, self.burst = list(numbers), list(vips), list(burst)
        self.known_share, self.rng = known_share, rng
        self.called: list[str] = []

    def pick(self, planned: PlannedCaller) -> str:
        rng = self.rng
        if planned.burst and self.burst:
            number = rng.choice(self.burst)
        elif planned.repeat and self.called:
            number = rng.choice(self.called)
        elif planned.vip and self.vips:
            number = rng.choice(self.vips)
        elif self.numbers and rng.random() < self.known_share:
            number = rng.choice(self.numbers)
        else:
            number = f"+8529{rng.randrange(10**7):07d}"
        self.called.append(number)
        return number


class LivePhones:
    """sippy on a thread of its own: the bots' phones and the callers, one UDP port."""

    def __init__(self, switch: tuple[str, int], *, host: str = "127.0.0.1", port: int | None = None,
                 loop: asyncio.AbstractEventLoop, behaviour: Behaviour, seed: int | None = None):
        os.environ.setdefault("SIPLOG_LVL", "ERR")
        os.environ.setdefault("SIPLOG_BEND", "stderr")
        self.switch, self.host, self.port = switch, host, port or free_udp_port(host)
        self.loop = loop
        self.behaviour = behaviour
        self.rng = random.Random(seed)
        self.plan_done = False      # every planned caller has dialled
        self.clock0 = 0.0           # time.monotonic() at the scenario's time 0
        self.picker = NumberPicker([], [], [], 0.0, self.rng)
        self._plan: Iterator[PlannedCaller] = iter(())
        self.tally = Tally()
        self.bots: dict[str, "BotAgent"] = {}
        self.callers: set["SimulatedCaller"] = set()   # waiting or talking (sippy thread)
        # callers whose audio is checked (scenarios/audio_check.py), by number: the bot that
        # answers one says the agent's voice and hears theirs
        self.audio_callers: dict[str, Any] = {}
        self.config: dict = {}
        self.numbers: list[str] = []
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._calling = False
        self.stopping = False

    # --- lifecycle (any thread) ------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sippy-live", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the simulated phones' SIP did not start")

    def _run(self) -> None:
        from sippy.Core.EventDispatcher import ED2
        from sippy.SipConf import SipConf
        from sippy.SipLogger import SipLogger
        from sippy.SipTransactionManager import SipTransactionManager

        SipConf.my_uaname = "hotline-bots"
        SipConf.my_address, SipConf.my_port = self.host, self.port
        self.config = {"_sip_address": self.host, "_sip_port": self.port, "_sip_logger": SipLogger("hotline-bots")}
        self.config["_sip_tm"] = SipTransactionManager(self.config, self._request)
        ED2.callFromThread(self._started.set)
        ED2.loop()

    def stop(self) -> None:
        from sippy.Core.EventDispatcher import ED2

        if self._thread is None:
            return
        ED2.callFromThread(self._hang_up_everything)
        time.sleep(0.3)   # let the BYEs and CANCELs go out
        ED2.callFromThread(ED2.breakLoop)
        self._thread.join(5)
        self._thread = None

    def stop_calling(self) -> None:
        """No new callers; a call ending from now on counts as cut off by the stop."""
        self._calling = False
        self.stopping = True

    def call_soon(self, fn, *args) -> None:
        from sippy.Core.EventDispatcher import ED2

        ED2.callFromThread(fn, *args)

    # --- agents (sippy thread) --------------------------------------------------------------
    def add_bot(self, bot: "BotAgent") -> None:
        self.bots[bot.ext] = bot
        self.call_soon(self._register, bot)

    def reregister(self, bot: "BotAgent") -> None:
        """Register again now (a restarted switch knows no phone until it does); the old
        refresh chain stops, and a call the dead switch left up is dropped: nobody is on
        it, and a bot that thought itself busy would refuse every new call."""
        def again() -> None:
            stale, bot.call = bot.call, None
            if stale is not None:
                stale.connected = False   # no disposition for a call the restart cut off
                stale.hang_up()
            if bot.registration is not None:
                bot.registration.stopregister()
            self._register(bot)
        self.call_soon(again)

    def _register(self, bot: "BotAgent") -> None:
        from sippy.SipRegistrationAgent import SipRegistrationAgent
        from sippy.SipURL import SipURL

        def ok(*_):
            self.tally.registered.add(bot.ext)

        def failed(status, *_):
            log.warning("bot %s could not register: %s", bot.ext, status)

        aor = SipURL(username=bot.ext, host=self.switch[0], port=self.switch[1])
        contact = SipURL(username=bot.ext, host=self.host, port=self.port)
        bot.registration = SipRegistrationAgent(self.config, aor, contact, user=bot.ext, passw=bot.pin,
                                                exp=300, rok_cb=ok, rfail_cb=failed)
        bot.registration.doregister()

    def _request(self, req, sip_t):
        from sippy.UA import UA

        method = req.getMethod()
        if method == "OPTIONS":
            return (req.genResponse(200, "OK"), None, None)
        if method != "INVITE" or req.getHFBody("to").getTag() is not None:
            return (req.genResponse(481, "Call Leg/Transaction Does Not Exist"), None, None)
        called = req.getRURI().username or ""
        bot = self.bots.get(called)
        if bot is None and len(called.lstrip("+")) > 8 and called.lstrip("+").isdigit():
            # the switch's trunk: an agent calling a resident back, who picks up and talks
            outside = OutsideCall(self, called)
            outside.ua = UA(self.config, event_cb=outside.event)
            return outside.ua.recvRequest(req, sip_t)
        if bot is None:
            return (req.genResponse(404, "Not Found"), None, None)
        ring = BotCall(self, bot, _header(req, "x-hotline-interaction"), _header(req, "x-hotline-queue"))
        ring.ua = UA(self.config, event_cb=ring.event)
        return ring.ua.recvRequest(req, sip_t)

    # --- callers (sippy thread) -------------------------------------------------------------
    def start_calling(self, numbers: list[str], vip_numbers: tuple[str, ...] | list[str] = (),
                      burst_numbers: tuple[str, ...] | list[str] = ()) -> None:
        """The scenario's callers from now (its time 0): residents' numbers for the known
        share, VIPs' for the VIP share, a number that called before for the repeat share,
        and for a burst's callers (a water cut, a lift fault) residents of one estate."""
        self.picker = NumberPicker(numbers, vip_numbers, burst_numbers, self.behaviour.scenario.known_share, self.rng)
        self._plan = self.behaviour.callers()
        self._calling = True
        self.clock0 = time.monotonic()
        self.call_soon(self._next_caller)

    def _next_caller(self) -> None:
        from sippy.Time.Timeout import Timeout

        if not self._calling:
            return
        planned = next(self._plan, None)
        if planned is None:
            self.plan_done = True
            return
        delay = self.clock0 + planned.at_s / self.behaviour.speed - time.monotonic()
        Timeout(self._arrive, max(0.001, delay), 1, planned)

    def _arrive(self, planned: PlannedCaller) -> None:
        if not self._calling:
            return
        speed = self.behaviour.speed
        number = self.picker.pick(planned)
        patience = planned.patience_s / speed if planned.patience_s != float("inf") else 10 * BOT_LONGEST_CALL_S
        SimulatedCaller(self, number, planned.queue, patience, talk_s=planned.handle_s / speed).dial()
        self._next_caller()

    def _hang_up_everything(self) -> None:
        self._calling = False
        self.stopping = True
        for bot in self.bots.values():
            if bot.call is not None:
                bot.call.hang_up()
            if getattr(bot, "registration", None) is not None:
                bot.registration.stopregister()
        for caller in list(self.callers):
            caller.give_up()

    def sdp(self, who: str, port: int = 9):
        from sippy.MsgBody import MsgBody

        # Port 9 (discard): the bots send no audio and expect none, but to an audio caller.
        return MsgBody(_SDP.format(who=who, session=self.rng.randrange(10**9), host=self.host, port=port))

    def sample_talk(self) -> float:
        return self.behaviour.sample_talk()


class BotCall:
    """One call ringing or talking at a bot's phone (sippy thread)."""

    def __init__(self, phones: LivePhones, bot: "BotAgent", interaction: str, queue: str):
        self.phones, self.bot, self.interaction, self.queue = phones, bot, interaction, queue
        self.ua: Any = None      # a sippy UA (sippy publishes no types)
        self.timer: Any = None
        self.connected = False
        self.voice: Any = None   # audio_check.RtpVoice: the agent's voice, for an audio caller

    def event(self, event, ua) -> None:
        from sippy.CCEvents import CCEventDisconnect, CCEventFail, CCEventTry
        from sippy.Time.Timeout import Timeout

        if isinstance(event, CCEventTry):
            if self.bot.call is not None or not self.bot.ready:
                ua.recvEvent(CCEventFail((486, "Busy Here")))
                return
            self.bot.call = self
            _, cli, _, body, *_ = event.getData()   # call id, caller, called, SDP offer, ...
            audio_caller = self.phones.audio_callers.get(cli or "")
            if audio_caller is not None and body is not None:
                from scenarios.audio_check import AGENT_HZ, RtpVoice, sdp_audio_address

                target = sdp_audio_address(str(body))
                if target is not None:
                    self.voice = RtpVoice(AGENT_HZ, target=target, host=self.phones.host)
                    audio_caller.agent_voices.append(self.voice)
            if self.bot.answering and self.phones.behaviour.answers():
                self.timer = Timeout(self._answer, self.phones.behaviour.ring_delay())
            # else: it rings out (the switch's ring timeout; max_no_answer puts the bot on a break)
        elif isinstance(event, (CCEventDisconnect, CCEventFail)):
            self._over()

    def _answer(self) -> None:
        from sippy.CCEvents import CCEventConnect
        from sippy.Time.Timeout import Timeout

        if self.bot.call is not self:
            return
        self.connected = True
        self.ua.recvEvent(CCEventConnect((200, "OK", self.phones.sdp(self.bot.ext, self.voice.port if self.voice else 9))))
        if self.voice is not None:
            self.voice.speak()
        # the caller ends the call; only one who never does is let go, long after
        self.timer = Timeout(self.hang_up, BOT_LONGEST_CALL_S)

    def hang_up(self) -> None:
        from sippy.CCEvents import CCEventDisconnect

        if self.ua is not None and not self.ua.isDead():
            self.ua.recvEvent(CCEventDisconnect())
        self._over()

    def _over(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.voice is not None:
            self.voice.stop()
            self.voice = None
        if self.bot.call is self:
            self.bot.call = None
            if self.connected:
                self.phones.tally.bot_calls += 1
                self.phones.loop.call_soon_threadsafe(self.bot.after_call, self.interaction, self.queue)


class OutsideCall:
    """A resident's own phone, called through the switch's trunk (a callback): it rings a
    few seconds, is answered, and the resident hangs up after a talk (sippy thread)."""

    def __init__(self, phones: LivePhones, number: str):
        self.phones, self.number = phones, number
        self.ua: Any = None      # a sippy UA (sippy publishes no types)
        self.timer: Any = None

    def event(self, event, ua) -> None:
        from sippy.CCEvents import CCEventDisconnect, CCEventFail, CCEventTry
        from sippy.Time.Timeout import Timeout

        if isinstance(event, CCEventTry):
            self.timer = Timeout(self._answer, self.phones.rng.uniform(2.0, 5.0))
        elif isinstance(event, (CCEventDisconnect, CCEventFail)) and self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _answer(self) -> None:
        from sippy.CCEvents import CCEventConnect
        from sippy.Time.Timeout import Timeout

        self.ua.recvEvent(CCEventConnect((200, "OK", self.phones.sdp(self.number))))
        self.phones.tally.called_back += 1
        self.timer = Timeout(self._hang_up, self.phones.sample_talk())

    def _hang_up(self) -> None:
        from sippy.CCEvents import CCEventDisconnect

        self.timer = None
        if self.ua is not None and not self.ua.isDead():
            self.ua.recvEvent(CCEventDisconnect())


class SimulatedCaller:
    """A resident calling the hotline (sippy thread)."""

    def __init__(self, phones: LivePhones, number: str, dialled: str, patience_s: float, talk_s: float):
        self.phones, self.number, self.dialled, self.patience_s = phones, number, dialled, patience_s
        self.talk_s = talk_s
        self.ua: Any = None      # a sippy UA (sippy publishes no types)
        self.timer: Any = None
        self.connected = False
        self.over = False

    def dial(self) -> None:
        from sippy.CCEvents import CCEventTry
        from sippy.SipCallId import SipCallId
        from sippy.Time.Timeout import Timeout
        from sippy.UA import UA

        self.ua = UA(self.phones.config, event_cb=self.event, nh_address=self.phones.switch)
        self.phones.callers.add(self)
        self.phones.tally.placed += 1
        self.phones.tally.dialled.append(self.number)
        self.ua.recvEvent(CCEventTry((SipCallId(), self.number, self.dialled, self.phones.sdp("caller"), None, "")))
        self.timer = Timeout(self.give_up, max(0.05, self.patience_s))

    def event(self, event, ua) -> None:
        from sippy.CCEvents import CCEventConnect, CCEventDisconnect, CCEventFail
        from sippy.Time.Timeout import Timeout

        if isinstance(event, CCEventConnect) and not self.connected:
            self.connected = True
            self.phones.tally.answered += 1
            if self.timer is not None:
                self.timer.cancel()
            self.timer = Timeout(self.hang_up, max(0.05, self.talk_s))   # the caller ends the call
        elif isinstance(event, CCEventFail):
            self._done("cut_off_waiting" if self.phones.stopping else "refused")
        elif isinstance(event, CCEventDisconnect):   # the other side ended it: the switch stopping, or a bug
            self._done(("cut_off_talking" if self.connected else "cut_off_waiting") if self.phones.stopping
                       else ("finished" if self.connected else "refused"))

    def hang_up(self) -> None:
        """Talked enough: goodbye."""
        self.timer = None
        self._disconnect()
        self._done("finished")

    def give_up(self) -> None:
        """Waited long enough (or the run stops with the caller still in)."""
        self.timer = None
        self._disconnect()
        if self.phones.stopping:
            self._done("cut_off_talking" if self.connected else "cut_off_waiting")
        else:
            self._done("finished" if self.connected else "gave_up")

    def _disconnect(self) -> None:
        from sippy.CCEvents import CCEventDisconnect

        if self.ua is not None and not self.ua.isDead():
            self.ua.recvEvent(CCEventDisconnect())

    def _done(self, outcome: str) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.over:
            self.over = True
            setattr(self.phones.tally, outcome, getattr(self.phones.tally, outcome) + 1)
        self.phones.callers.discard(self)


class BotAgent:
    """An agent played by the computer: a phone (in LivePhones) and a control connection."""

    def __init__(self, ext: str, pin: str, phones: LivePhones):
        self.ext, self.pin, self.phones = ext, pin, phones
        self.call: BotCall | None = None     # sippy thread only
        self.ready = False
        self.answering = True   # False: rings out every call (a drill's agent who stops answering)
        self.control: ControlClient | None = None
        self.registration: Any = None   # sippy's SipRegistrationAgent
        self.address: str | tuple[str, int] | None = None
        self.token: str | None = None
        self.reconnects = 0
        self._reconnecting: asyncio.Task | None = None

    async def start(self, address, token: str | None = None) -> None:
        self.address, self.token = address, token
        await self._log_in()

    async def _log_in(self) -> None:
        if self.address is None:
            raise RuntimeError("start() names the switch first")
        control = await ControlClient.connect(self.address, self.token)
        try:
            me = await control.ask("login", ext=self.ext, pin=self.pin)
        except BaseException:
            await control.close()
            raise
        self.control = control
        if not self.ready:   # the first time: the phone registers before the switch may ring it
            self.ready = True
            self.phones.add_bot(self)
        else:                # logged in again: a restarted switch knows no phone yet
            self.phones.reregister(self)
        # back after the switch went down: a break (one a supervisor set, say) goes on
        before = me.get("before_restart") if isinstance(me, dict) else None
        try:
            if before and before.get("status") == "on_break":
                await control.ask("status", status="on_break", reason=before.get("reason", ""))
            else:
                await control.ask("status", status="available")
        except ControlError:   # a break reason the switch no longer has: ready, as a person would be
            await control.ask("status", status="available")
        control.on_close = self._lost

    def _lost(self) -> None:
        """The switch went away (a restart, a crash): a person would log in again once it is
        back, and so does the bot; its phone keeps refreshing its registration meanwhile."""
        if self.ready and (self._reconnecting is None or self._reconnecting.done()):
            self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        if await log_in_again(self._log_in, lambda: self.ready):
            self.reconnects += 1
            log.info("bot %s: logged in again after the switch came back", self.ext)

    def after_call(self, interaction: str, queue: str) -> None:
        """asyncio: what a person does after hanging up: a disposition, then ready again."""
        asyncio.get_running_loop().create_task(self._wrap_up(interaction, queue))

    async def _wrap_up(self, interaction: str, queue: str) -> None:
        rng = self.phones.rng
        try:
            if interaction and self.control is not None:
                reason = queue if queue in BOT_NOTES else "general"
                await self.control.ask("disposition", call_id=interaction,
                                       disposition=f"{reason}: {rng.choice(BOT_OUTCOMES)}",
                                       notes=BOT_NOTE_PREFIX + BOT_NOTES[reason])
            await asyncio.sleep(self.phones.behaviour.wrap_delay(queue))
            if self.control is not None:
                await self.control.ask("end_wrap_up")
        except RuntimeError as exc:  # e.g. the wrap-up timer ended first: nothing to do
            log.debug("bot %s: %s", self.ext, exc)
        except ConnectionError:
            pass

    async def stop(self) -> None:
        self.ready = False
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        if self.control is not None:
            self.control.on_close = None
            try:
                await self.control.ask("logout")
            except (RuntimeError, ConnectionError, asyncio.TimeoutError):
                pass
            await self.control.close()
            self.control = None


class Roster:
    """A scenario's agents as bots on the scenario's clock (its time 0 is when
    `keep_the_clock` is called, every time divided by `speed`): each logs in at its
    shift's start (or at once), takes its breaks and logs out at its shift's end."""

    def __init__(self, scenario: Scenario, exts: list[str], pins: dict[str, str], phones: LivePhones, control,
                 *, token: str | None = None, speed: float = 1.0, say=print, silent: frozenset[str] = frozenset()):
        agents = sum(g.count for g in scenario.groups)
        if len(exts) < agents:
            raise ValueError(f"{agents} agents in the scenario, {len(exts)} extensions to log them in with")
        self.phones, self.control, self.token, self.speed, self.say = phones, control, token, speed, say
        self.pins, self.silent = pins, silent
        self.bots: dict[str, BotAgent] = {}
        self.schedule: list[tuple[str, float, float, tuple]] = []
        numbered = iter(exts)
        for group in scenario.groups:
            for _ in range(group.count):
                login, logout = group.shift if group.shift else (0.0, math.inf)
                self.schedule.append((next(numbered), login, logout, group.breaks))
        self._timers: list[asyncio.TimerHandle] = []
        self._tasks: set[asyncio.Task] = set()

    async def log_in(self, ext: str) -> None:
        bot = BotAgent(ext, self.pins[ext], self.phones)
        bot.answering = ext not in self.silent
        await bot.start(self.control, self.token)
        self.bots[ext] = bot

    async def log_out(self, ext: str) -> None:
        bot = self.bots.pop(ext, None)
        if bot is not None:
            await bot.stop()

    def _status(self, ext: str, value: str, reason: str = ""):
        async def job() -> None:
            bot = self.bots.get(ext)
            if bot is not None and bot.control is not None:
                try:
                    await bot.control.ask("status", status=value, **({"reason": reason} if reason else {}))
                except (RuntimeError, ConnectionError, asyncio.TimeoutError) as exc:
                    self.say(f"  {ext}: {value} {reason} not taken: {exc}")
        return job

    def _later(self, at_s: float, job) -> None:
        loop = asyncio.get_running_loop()

        def go() -> None:
            task = loop.create_task(job())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._timers.append(loop.call_later(max(0.0, at_s / self.speed), go))

    async def log_in_first_shift(self) -> None:
        """Those on shift at time 0, logged in before it (available when the first caller comes)."""
        for ext, login, _, _ in self.schedule:
            if login <= 0:
                await self.log_in(ext)

    def keep_the_clock(self) -> None:
        for ext, login, logout, breaks in self.schedule:
            if login > 0:
                self._later(login, lambda ext=ext: self.log_in(ext))
            if logout != math.inf:
                self._later(logout, lambda ext=ext: self.log_out(ext))
            for start, end, reason in breaks:
                if login <= start < logout:
                    self._later(start, self._status(ext, "on_break", reason))
                    self._later(end, self._status(ext, "available"))

    async def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        for bot in list(self.bots.values()):
            await bot.stop()
        self.bots.clear()


async def run_bots(scenario: Scenario, pins: dict[str, str], *, registrar: tuple[str, int], control,
                   token: str | None = None, speed: float = 1.0, seconds: float | None = None,
                   silent: frozenset[str] = frozenset(), say=print) -> Tally:
    """`hotline bots`: the agents of a scenario (or N of them) answering a running switch
    until stopped (SIGINT, SIGTERM, SIGHUP) or for `seconds`."""
    import signal

    loop = asyncio.get_running_loop()
    phones = LivePhones(registrar, loop=loop, behaviour=Behaviour(scenario, speed=speed))
    roster = Roster(scenario, list(pins), pins, phones, control, token=token, speed=speed, say=say, silent=silent)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    phones.start()
    try:
        await roster.log_in_first_shift()
        roster.keep_the_clock()
        say(f"hotline bots: {len(roster.bots)} agents logged in ({', '.join(sorted(roster.bots))}), "
            f"{len(roster.schedule) - len(roster.bots)} to come on their shifts; speed x{speed:g}"
            + (f"; not answering: {', '.join(sorted(silent))}" if silent else "") + ". Ctrl-C stops.")
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except asyncio.TimeoutError:
            pass
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        await roster.stop()
        phones.stop()
    say(f"hotline bots: stopped after {phones.tally.bot_calls} calls answered.")
    return phones.tally


def _header(req, name: str) -> str:
    values = [str(h.getBody()).strip() for h in req.getHFs(name)]
    return values[-1] if values else ""


def read_pins(path: str | Path) -> dict[str, str]:
    """`ext:pin` per line (comments with #): the logins bots use."""
    pins = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        ext, sep, pin = line.partition(":")
        if not sep or not ext.strip() or not pin.strip():
            raise ValueError(f"{path}:{number}: expected EXT:PIN, got {line!r}")
        pins[ext.strip()] = pin.strip()
    return pins
