"""`hotline agent --phone external`: the agent's extension is a desk phone or a stock
softphone (baresip, linphone, a hardware phone), not the seat's own. The seat hears of
its calls from the switch's events, the phone rings and is answered on the phone, and
hang-up, decline and hold from the seat act through the switch (control ops `hang_up`,
`hold`). It speaks the same events as telephony/softphone.py, so the seat's screens do
not know which phone they have. With it a seat can run over SSH on a server while the
phone is on the desk."""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Awaitable, Callable

from telephony.acd import events as ev
from telephony.call_events import PhoneRegistration
from telephony.softphone import CallHeld, CallState, IncomingCall, PhoneError, Registration
from telephony.wire import Delivered

log = logging.getLogger("hotline.seat.phone")

Ask = Callable[..., Awaitable[dict]]

ENDING = (ev.CallCompleted, ev.CallRequeued, ev.CallTransferred, ev.RingNoAnswer, ev.CallOfferWithdrawn,
          ev.CallAbandoned)


class ExternalPhone:
    """A phone the seat does not drive: its calls as the switch reports them."""

    audio_description = "on your phone (this seat has no audio of its own)"

    def __init__(self, ext: str, on_event: Callable[[object], object], ask: Callable[[], Ask | None]):
        self.ext, self.on_event, self._ask = ext, on_event, ask
        self._keys = itertools.count(1)
        self.calls: dict[str, int] = {}     # the switch's call id -> our key (the seat's)
        self._ids: dict[int, str] = {}
        self._held: set[int] = set()

    # --- what the switch says -------------------------------------------------------------------
    def registered(self, registered: bool) -> None:
        """From the login reply: is a phone registered for the extension now."""
        self.on_event(Registration(registered, 200 if registered else 0,
                                   "OK" if registered else f"no phone registered for {self.ext} at the switch"))

    def switch_said(self, delivered: Delivered) -> None:
        event, call_id, agent_id = delivered.event, delivered.call_id, delivered.agent_id
        if isinstance(event, PhoneRegistration) and agent_id == self.ext:
            self.registered(event.registered)
        elif isinstance(event, (ev.CallOffered, ev.CallbackDue)) and agent_id == self.ext and call_id not in self.calls:
            key = next(self._keys)
            self.calls[call_id], self._ids[key] = key, call_id
            pop = delivered.pop or {}
            headers = {"X-Hotline-Interaction": call_id, "X-Hotline-Queue": event.queue,
                       "X-Hotline-Wait": str(int(pop.get("waited_s") or 0))}
            if pop.get("resident_id") is not None:
                headers["X-Hotline-Resident"] = str(pop["resident_id"])
            number = str(pop.get("number") or getattr(event, "number", "") or "")
            self.on_event(IncomingCall(key, number, "", headers))
        elif call_id in self.calls and agent_id in (self.ext, ""):
            key = self.calls[call_id]
            if isinstance(event, ev.CallConnected):
                self.on_event(CallState(key, "connected"))
            elif isinstance(event, ENDING):
                self._forget(key)
                declined = isinstance(event, (ev.RingNoAnswer, ev.CallOfferWithdrawn))
                self.on_event(CallState(key, "ended", 487 if declined else 200))
        elif isinstance(event, ev.AgentStateChanged) and agent_id == self.ext and self._ids:
            key = max(self._ids)   # the call in progress is the newest
            if event.state == "on_hold" and key not in self._held:
                self._held.add(key)
                self.on_event(CallHeld(key, True))
            elif event.state == "in_call" and key in self._held:
                self._held.discard(key)
                self.on_event(CallHeld(key, False))

    def forget(self, call: int) -> None:
        """A call the switch no longer knows (it restarted): over, here too."""
        if call in self._ids:
            self._forget(call)
            self.on_event(CallState(call, "ended", 0, "the switch no longer has this call"))

    def _forget(self, key: int) -> None:
        self.calls.pop(self._ids.pop(key, ""), None)
        self._held.discard(key)

    # --- what the agent asks ----------------------------------------------------------------
    def _op(self, key: int, op: str, **fields) -> None:
        ask, call_id = self._ask(), self._ids.get(key)
        if call_id is None:
            return
        if ask is None:
            self.on_event(PhoneError("no connection to the switch: use your phone"))
            return

        async def send() -> None:
            try:
                await ask(op, call_id=call_id, **fields)
            except Exception as exc:   # the switch's refusal, or the connection gone
                self.on_event(PhoneError(f"the switch could not {op.replace('_', ' ')} ({exc}): use your phone"))
        asyncio.ensure_future(send())

    def start(self, timeout: float = 10.0) -> None:
        pass

    def stop(self, timeout: float = 10.0) -> None:
        pass

    def answer(self, call: int) -> None:
        self.on_event(PhoneError("Answer on your phone: it is ringing there."))

    def decline(self, call: int, code: int = 486) -> None:
        self._op(call, "hang_up")

    def hang_up(self, call: int) -> None:
        self._op(call, "hang_up")

    def hold(self, call: int, on: bool = True) -> None:
        self._op(call, "hold", held=on)

    def send_dtmf(self, call: int, digits: str) -> None:
        self.on_event(PhoneError("Use your phone's keypad."))

    def mute(self, call: int, on: bool = True) -> None:
        self.on_event(PhoneError("Mute on your phone: this seat has no audio of its own."))

    def dial(self, number: str) -> int:
        raise PhoneUnable(f"dial {number} on your phone")


class PhoneUnable(Exception):
    """Something only the phone itself can do."""
