"""One object per call the switch is handling, in the state the call is in.

A call is in one of four states, each a class here: in the voice menu (`InMenu`), routed
by the ACD core (`Routed`: waiting, ringing an agent or connected; the core has those
details), transferred to an outside number (`TransferredOut`), or a seat's call out the
trunk (`Outbound`). What the SIP side reports about a call (answered, not answered, hung
up, held) goes to its object, which knows what that means in its state; a call that moves
on (a menu key, a transfer out, an outside number that does not answer) is replaced by
its next state's object in `SwitchCore.calls`.

These are the switch core's own parts (telephony/switchcore.py): they act through it, on
the event-loop thread. SIP and routing race (a caller hangs up as the agent answers, a
ring timeout fires as the 486 arrives); the core's answer is final, and a report that no
longer fits is logged or ignored, never raised into the SIP thread.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from telephony.acd.queue_log import interrupted_rows
from telephony.call_events import (MenuAbandoned, MenuKeyPressed, OutboundAnswered, OutboundEnded, OutsideAnswered,
                                   OutsideEnded, OutsideNotAnswered)
from telephony.errors import SwitchError

if TYPE_CHECKING:
    from telephony.switchcore import SwitchCore

log = logging.getLogger("hotline.switch")

# The far leg of a call through the trunk is named "trunk:NUMBER" (extensions are digits:
# no clash); the SIP side asks the trunk for NUMBER.
TRUNK_LEG = "trunk"


@dataclass
class Caller:
    """Who is calling, as the switch found out when the call arrived (an agent may later
    identify an unknown caller)."""
    number: str
    dialled: str = ""
    resident_id: int | None = None
    name: str = ""             # the resident's name in records ("" for an unknown caller)
    vip: bool = False
    owner: str | None = None   # the agent who owns the caller's latest open work order


def display_name(name: str) -> str:
    """A name as a SIP From display name can carry it (a quoted string: no quotes,
    backslashes or control characters), cut to what a phone's screen shows."""
    return "".join(ch for ch in name if ch not in '"\\' and ch.isprintable())[:48].strip()


class SwitchCall:
    """A call the switch is handling. Each report is a no-op unless the state says otherwise."""

    state = ""
    caller: Caller | None = None

    def __init__(self, call_id: str):
        self.call_id = call_id

    def answered(self, core: SwitchCore, leg: str) -> None:
        log.info("SIP: %s answered %s, which is not ringing it (%s); hanging up that leg", leg, self.call_id,
                 self.state or "over")
        if core.legs is not None:
            core.legs.hang_up_agent(self.call_id, leg)

    def not_answered(self, core: SwitchCore, leg: str, *, counts: bool) -> None:
        pass

    def hung_up(self, core: SwitchCore, *, by: str) -> None:
        pass

    def held(self, core: SwitchCore, ext: str, held: bool) -> None:
        pass

    def agents_call(self, core: SwitchCore, ext: str, *, ringing: bool) -> str | None:
        """How this call is extension `ext`'s: "connected", "ringing" (if asked),
        "outbound", or None."""
        return None

    def shut_down(self, core: SwitchCore, now: float) -> int:
        """The switch is stopping: release the call's legs and close its contact as
        interrupted. Returns how many contacts were closed (0 or 1)."""
        return 0

    def media_lost(self, core: SwitchCore, why: str) -> None:
        """The media node carrying this call stopped answering, so nobody on it hears
        anything: its legs are released and its contact closed as interrupted, as at a
        stop, while the switch carries on."""
        self.shut_down(core, core.clock())


class InMenu(SwitchCall):
    """The caller hears the voice menu: a key picks the queue, silence the default."""

    state = "menu"
    caller: Caller

    def __init__(self, call_id: str, caller: Caller, since: float, timer: asyncio.TimerHandle | None):
        super().__init__(call_id)
        self.caller, self.since, self.timer = caller, since, timer

    def key(self, core: SwitchCore, key: str | None) -> None:
        options = core.config.menu.options
        if key is not None and key not in options:
            log.info("menu: caller %s pressed %s, which leads nowhere; still listening", self.call_id, key)
            return
        self._stop_listening(core)
        queue = options[key] if key is not None else core.config.menu.default
        if core.legs is not None:
            core.legs.end_menu(self.call_id)
        core._happened(MenuKeyPressed(core.clock(), self.call_id, key or "", queue))
        core._queue_caller(self.call_id, queue, self.caller)

    def hung_up(self, core: SwitchCore, *, by: str) -> None:
        self._stop_listening(core)   # hung up in the voice menu: abandoned there
        now = core.clock()
        core._happened(MenuAbandoned(now, self.call_id, now - self.since))

    def shut_down(self, core: SwitchCore, now: float) -> int:
        self._stop_listening(core)
        if core.legs is not None:
            core.legs.release(self.call_id, 503, "Service Unavailable")
        return 1 if core.recorder.interrupt(self.call_id, now) is not None else 0

    def media_lost(self, core: SwitchCore, why: str) -> None:
        core.recorder.end_as_interrupted(self.call_id, why)
        with core._committed():
            self.shut_down(core, core.clock())

    def _stop_listening(self, core: SwitchCore) -> None:
        if self.timer is not None:
            self.timer.cancel()
        core.calls.pop(self.call_id, None)


class Routed(SwitchCall):
    """A caller the ACD core routes: waiting, ringing agents, connected, or back in a queue
    after a transfer. `form`: what a transferring agent had typed, for the next seat."""

    state = "routed"
    caller: Caller

    def __init__(self, call_id: str, caller: Caller, form: dict | None = None):
        super().__init__(call_id)
        self.caller, self.form = caller, form or {}

    def answered(self, core: SwitchCore, leg: str) -> None:
        try:
            core.call_answered(self.call_id, leg)
        except SwitchError as exc:
            log.info("SIP: %s answered %s too late (%s); hanging up the agent", leg, self.call_id, exc)
            if core.legs is not None:
                core.legs.hang_up_agent(self.call_id, leg)

    def not_answered(self, core: SwitchCore, leg: str, *, counts: bool) -> None:
        routed = core.acd.calls.get(self.call_id)
        if routed is not None and leg in routed.ringing:
            core.call_not_answered(self.call_id, leg, counts=counts)

    def hung_up(self, core: SwitchCore, *, by: str) -> None:
        routed = core.acd.calls.get(self.call_id)
        if routed is None:
            return   # already over (both sides hung up at the same instant; a voicemail left)
        if by == "agent" and routed.state != "connected":
            return   # an agent leg that failed while ringing is reported by not_answered
        core.call_ended(self.call_id, by=by)

    def media_lost(self, core: SwitchCore, why: str) -> None:
        # routing sees the caller hang up (the agent goes to wrap-up, to note what was said);
        # the row and the agent's part end as interrupted, with the cause
        routed = core.acd.calls.get(self.call_id)
        core.recorder.end_as_interrupted(self.call_id, why)
        if core.legs is not None:
            core.legs.release(self.call_id, 503, "Service Unavailable")
        if routed is not None:
            core.call_ended(self.call_id, by="switch" if routed.state == "connected" else "caller")

    def held(self, core: SwitchCore, ext: str, held: bool) -> None:
        routed = core.acd.calls.get(self.call_id)
        if routed is None or routed.agent is None or routed.agent.id != ext or held == (routed.hold_started is not None):
            return   # over, moved on, or a re-INVITE that changes nothing
        core._apply(lambda at: (core.acd.hold if held else core.acd.unhold)(self.call_id, at))

    def agents_call(self, core: SwitchCore, ext: str, *, ringing: bool) -> str | None:
        routed = core.acd.calls.get(self.call_id)
        if routed is None:
            return None
        if routed.agent is not None and routed.agent.id == ext and routed.state == "connected":
            return "connected"
        if ringing and ext in routed.ringing:
            return "ringing"
        return None

    def shut_down(self, core: SwitchCore, now: float) -> int:
        if core.legs is not None:   # every leg of the call: a BYE, a CANCEL or a 503
            core.legs.release(self.call_id, 503, "Service Unavailable")
        routed = core.acd.calls.get(self.call_id)
        row = core.recorder.interrupt(self.call_id, now)
        if row is None:
            return 0
        if routed is None:
            return 1
        agent = routed.agent
        core.queue_log.write_rows(interrupted_rows(
            now, routed.id, routed.queue, agent.id if agent is not None else "", answered=agent is not None,
            wait_s=row["wait_s"] or 0.0, talk_s=row["talk_s"] or 0.0,
            original_position=routed.original_position, why="switch stopped"))
        core.log_interrupted(now, routed.id, routed.queue, agent.id if agent is not None else "",
                             answered=agent is not None, wait_s=row["wait_s"] or 0.0, talk_s=row["talk_s"] or 0.0,
                             original_position=routed.original_position, why="switch stopped",
                             number=self.caller.number, dialled=self.caller.dialled)
        return 1


class TransferredOut(SwitchCall):
    """A caller an agent transferred to an outside number: it rings through the trunk.
    Nobody answering sends the caller back to the queue they were in."""

    state = "outside"
    caller: Caller

    def __init__(self, call_id: str, caller: Caller, *, number: str, queue: str, priority: str, form: dict,
                 since: float):
        super().__init__(call_id)
        self.caller, self.number, self.queue, self.priority, self.form = caller, number, queue, priority, form
        self.since = since   # when the transfer was asked for (the outside number rings from then)
        self.answered_at: float | None = None

    @property
    def leg(self) -> str:
        return f"{TRUNK_LEG}:{self.number}"

    def answered(self, core: SwitchCore, leg: str) -> None:
        self.answered_at = now = core.clock()
        core._happened(OutsideAnswered(now, self.call_id, self.number, now - self.since))
        core._sip.bridge(self.call_id, leg)

    def not_answered(self, core: SwitchCore, leg: str, *, counts: bool) -> None:
        log.info("transfer of %s to %s not answered; back to the %s queue", self.call_id, self.number, self.queue)
        now = core.clock()
        core._happened(OutsideNotAnswered(now, self.call_id, self.number, now - self.since))
        core.calls[self.call_id] = Routed(self.call_id, self.caller, self.form)
        core.call_arrived(self.call_id, self.queue, self.caller.number, priority=self.priority)

    def hung_up(self, core: SwitchCore, *, by: str) -> None:
        self._finish(core, core.clock(), "answered")

    def shut_down(self, core: SwitchCore, now: float) -> int:
        if core.legs is not None:
            core.legs.hang_up_agent(self.call_id, self.leg)
            core.legs.release(self.call_id, 503, "Service Unavailable")
        self._finish(core, now, "interrupted")
        return 1

    def _finish(self, core: SwitchCore, now: float, outcome: str) -> None:
        core.calls.pop(self.call_id, None)
        talked = now - self.answered_at if self.answered_at is not None else 0.0
        core._happened(OutsideEnded(now, self.call_id, self.number, outcome, talked))


class Outbound(SwitchCall):
    """A seat's call out the trunk (a callback): the agent is busy until it ends."""

    state = "outbound"

    def __init__(self, call_id: str, ext: str, dialled: str, entered_at: float):
        super().__init__(call_id)
        self.ext, self.dialled, self.entered_at = ext, dialled, entered_at
        self.answered_at: float | None = None
        self.hold_started: float | None = None
        self.hold_s = 0.0

    @property
    def leg(self) -> str:
        return f"{TRUNK_LEG}:{self.dialled}"

    def answered(self, core: SwitchCore, leg: str) -> None:
        now = core.clock()
        self.answered_at = now
        core._happened(OutboundAnswered(now, self.call_id, self.ext, now - self.entered_at))
        core._sip.bridge(self.call_id, self.leg)

    def not_answered(self, core: SwitchCore, leg: str, *, counts: bool) -> None:
        core._sip.release(self.call_id, 480, "No Answer")   # the far end refused or never answered
        self._over(core, reached_nobody=True)

    def hung_up(self, core: SwitchCore, *, by: str) -> None:
        self._over(core)

    def held(self, core: SwitchCore, ext: str, held: bool) -> None:
        now = core.clock()
        if held and self.hold_started is None:
            self.hold_started = now
        elif not held:
            self._end_hold(now)
        core._apply(lambda at: core.acd.hold_outbound(self.ext, held, at))

    def agents_call(self, core: SwitchCore, ext: str, *, ringing: bool) -> str | None:
        return "outbound" if ext == self.ext else None

    def shut_down(self, core: SwitchCore, now: float) -> int:
        if core.legs is not None:
            core.legs.hang_up_agent(self.call_id, self.leg)
            core.legs.release(self.call_id, 503, "Service Unavailable")
        self._over(core, outcome="interrupted")
        return 1

    def _end_hold(self, now: float) -> None:
        if self.hold_started is not None:
            self.hold_s += now - self.hold_started
            self.hold_started = None

    def _over(self, core: SwitchCore, reached_nobody: bool = False, outcome: str | None = None) -> None:
        core.calls.pop(self.call_id, None)
        now = core.clock()
        answered = self.answered_at is not None
        if outcome is None:
            outcome = "answered" if answered else ("no_answer" if reached_nobody else "abandoned")
        self._end_hold(now)
        talk = now - self.answered_at - self.hold_s if self.answered_at is not None else 0.0
        # a talked callback gets the wrap-up of the general queue, to write down how it went
        wrap = core.acd.queues["general"].wrap_up_s if answered and "general" in core.acd.queues else 0.0
        core._happened(OutboundEnded(now, self.call_id, self.ext, outcome, talk, self.hold_s if answered else 0.0,
                                     0.0 if core.closed else wrap))
        if not core.closed:
            core._apply(lambda at: core.acd.end_outbound(self.ext, at, wrap))
