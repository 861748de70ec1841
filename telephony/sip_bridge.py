"""Between the switch's two threads: the SIP side (sippy's loop) tells the switch core
(asyncio) what the phones did.

`CallReports` is what the core takes; `ReportsToLoop` is the same interface for the
sippy thread: each call is posted to the event loop and run there, so the SIP side
calls typed methods (mypy checks every name and argument) and never touches the core's
state from its own thread. A report the core cannot take is logged; a caller whose
arrival could not be taken is released and recorded as refused, never left ringing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Protocol

log = logging.getLogger("hotline.sip")


class CallReports(Protocol):
    """Where the SIP side reports calls (SwitchCore), always on the asyncio thread."""

    def caller_arrived(self, call_id: str, number: str, dialled: str, seat: str = "") -> None: ...

    def sip_answered(self, call_id: str, ext: str) -> None: ...

    def sip_not_answered(self, call_id: str, ext: str, *, counts: bool) -> None: ...

    def sip_hung_up(self, call_id: str, *, by: str) -> None: ...

    def seat_lost(self, ext: str) -> None: ...

    def media_lost(self, call_id: str, why: str) -> None: ...

    def media_ready(self, ok: bool) -> None: ...

    def menu_key(self, call_id: str, key: str | None) -> None: ...

    def recording_done(self, call_id: str, pcaps: list[str], caller_port: int | None) -> None: ...

    def call_refused(self, number: str, dialled: str, *, seat: str, code: int, reason: str) -> None: ...

    def sip_refused(self, cause: str) -> None: ...

    def sip_hold(self, call_id: str, ext: str, held: bool) -> None: ...

    def auth_locked(self, kind: str, key: str, seconds: float) -> None: ...

    def sip_failed(self, message: str) -> None: ...


class ReportsToLoop:
    """CallReports for the sippy thread: every method runs the core's on the loop.

    `release(call_id, code, reason)` answers a caller whose arrival the core could not
    take (on the sippy thread, where the call lives)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, core: CallReports | None,
                 release: Callable[[str, int, str], None]):
        self.loop, self.core, self._release = loop, core, release

    def _post(self, what: str, report: Callable[[CallReports], None]) -> None:
        self.loop.call_soon_threadsafe(self._run, what, report)

    def _run(self, what: str, report: Callable[[CallReports], None]) -> None:
        if self.core is None:
            return
        try:
            report(self.core)
        except Exception:  # a report the core cannot take must not stop the others
            log.exception("switch: %s failed", what)

    def caller_arrived(self, call_id: str, number: str, dialled: str, seat: str = "") -> None:
        def arrive(core: CallReports) -> None:
            try:
                core.caller_arrived(call_id, number, dialled, seat)
            except Exception:   # never a caller left ringing with nobody routing them
                log.exception("switch: the arrival of %s (%s) failed", call_id, number)
                self._release(call_id, 500, "Server Internal Error")
                core.call_refused(number, dialled, seat=seat, code=500, reason="Server Internal Error")
        self._post(f"the arrival of {call_id}", arrive)

    def sip_answered(self, call_id: str, ext: str) -> None:
        self._post(f"{ext} answering {call_id}", lambda core: core.sip_answered(call_id, ext))

    def sip_not_answered(self, call_id: str, ext: str, *, counts: bool) -> None:
        self._post(f"{ext} not answering {call_id}", lambda core: core.sip_not_answered(call_id, ext, counts=counts))

    def sip_hung_up(self, call_id: str, *, by: str) -> None:
        self._post(f"the {by}'s hang-up of {call_id}", lambda core: core.sip_hung_up(call_id, by=by))

    def seat_lost(self, ext: str) -> None:
        self._post(f"seat {ext} lost", lambda core: core.seat_lost(ext))

    def media_lost(self, call_id: str, why: str) -> None:
        self._post(f"the media of {call_id} lost", lambda core: core.media_lost(call_id, why))

    def media_ready(self, ok: bool) -> None:
        self._post("media ready", lambda core: core.media_ready(ok))

    def menu_key(self, call_id: str, key: str | None) -> None:
        self._post(f"menu key {key!r} of {call_id}", lambda core: core.menu_key(call_id, key))

    def recording_done(self, call_id: str, pcaps: list[str], caller_port: int | None) -> None:
        self._post(f"the recording of {call_id}", lambda core: core.recording_done(call_id, pcaps, caller_port))

    def call_refused(self, number: str, dialled: str, *, seat: str, code: int, reason: str) -> None:
        self._post(f"a refused call from {number}",
                   lambda core: core.call_refused(number, dialled, seat=seat, code=code, reason=reason))

    def sip_refused(self, cause: str) -> None:
        self._post("a refused SIP request", lambda core: core.sip_refused(cause))

    def sip_hold(self, call_id: str, ext: str, held: bool) -> None:
        self._post(f"hold of {call_id}", lambda core: core.sip_hold(call_id, ext, held))

    def auth_locked(self, kind: str, key: str, seconds: float) -> None:
        self._post(f"the lock of {kind} {key}", lambda core: core.auth_locked(kind, key, seconds))

    def sip_failed(self, message: str) -> None:
        self._post("the SIP thread's failure", lambda core: core.sip_failed(message))
