"""The switch's SIP side: sippy's event loop in its own thread, the registrar and the B2BUA.

Threads: sippy runs `ED2.loop()` on one thread it owns; everything that touches sippy
objects runs there. What the switch must know (a seat registered or went away) is
posted into asyncio with `loop.call_soon_threadsafe`; asyncio posts into sippy with
`ED2.callFromThread`. Records are read here only through the secret lookup, which opens
its own connection (one connection per thread).

Agents register with their extension and PIN (digest, realm "hotline"); the registrar
checks the response against the HA1 stored in records and never sees the PIN.

Calls: every inbound INVITE is one `InboundCall`, a sippy UA for the caller's leg and
one for each agent being rung. The routing core decides everything (who rings, when
to stop, when to bridge); this side only carries it out and reports what the phones
did. The caller hears 182 Queued until an agent answers; SDP is passed through, so the
media flows between the two phones (the switch anchors no media yet).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol

log = logging.getLogger("hotline.sip")

REALM = "hotline"
MAX_EXPIRES = 3600
DEFAULT_EXPIRES = 300
EXPIRY_CHECK_S = 5.0   # a seat that stopped refreshing is offered no calls within this
# A seat in a call is asked OPTIONS (within the call's dialog) this often; when this many
# in a row go unanswered, or it answers 481, its phone is taken for gone (killed,
# unplugged, restarted) and its caller is queued again: a caller hears silence for at
# most QUALIFY_S * (QUALIFY_MISSES + 1) seconds. Asterisk's qualify is the same idea
# (out of dialog, for every peer, once a minute).
QUALIFY_S = 2.0
QUALIFY_MISSES = 2
QUALIFY_TICK_S = 0.1


@dataclass(frozen=True)
class Binding:
    ext: str
    host: str
    port: int
    expires_at: float


class CallReports(Protocol):
    """Where the SIP side reports calls (SwitchCore), always on the asyncio thread."""

    def caller_arrived(self, call_id: str, number: str, dialled: str) -> None: ...

    def sip_answered(self, call_id: str, ext: str) -> None: ...

    def sip_not_answered(self, call_id: str, ext: str, *, counts: bool) -> None: ...

    def sip_hung_up(self, call_id: str, *, by: str) -> None: ...

    def seat_lost(self, ext: str) -> None: ...


# Agent replies that mean "not now" rather than "did not answer": no miss is counted.
_REFUSALS = (486, 600, 603)


def _lower_transport(ua) -> None:
    """A phone that writes ";transport=UDP" in capitals in its Contact would make sippy
    refuse to send it the BYE later ("unsupported transport"): normalise it."""
    target = ua.rTarget
    if target is not None and isinstance(target.transport, str):
        target.transport = target.transport.lower()
    address, transport = ua.rAddr
    if isinstance(transport, str):
        ua.rAddr = (address, transport.lower())


def _contact(side: SipSide):
    """Our Contact: sippy's default carries a display name ("Anonymous") some phones
    (SIPp among them) copy into the request line of their ACK and BYE."""
    from sippy.SipAddress import SipAddress
    from sippy.SipContact import SipContact
    from sippy.SipURL import SipURL

    return SipContact(address=SipAddress(url=SipURL(host=side.host, port=side.port)))


@functools.cache
def _named_hf_class():
    """A header body written with its name as given (sippy writes X-hotline-queue; names
    are case-insensitive in SIP, but not in every tool that reads them). Made once:
    sippy is imported on the SIP thread only."""
    from sippy.SipGenericHF import SipGenericHF

    class NamedHF(SipGenericHF):
        def __init__(self, body, name):
            super().__init__(body, name)
            self.hf_name = name

        def getCanName(self, _name, compact=False):
            return self.hf_name

        def getCopy(self):
            return NamedHF(self.body, self.hf_name)

    return NamedHF


def _header(name: str, value: str):
    from sippy.SipHeader import SipHeader

    return SipHeader(name=name, body=_named_hf_class()(value, name))


class InboundCall:
    """One caller and the agents rung for them; lives on the sippy thread only."""

    def __init__(self, side: SipSide, call_id: str):
        from sippy.UA import UA

        self.side, self.id = side, call_id
        self.caller = UA(side.config, event_cb=self._caller_event)
        self.caller.lContact = _contact(side)
        self.agents: dict[str, object] = {}     # ext -> the agent leg's UA (ringing or talking)
        self.answers: dict[str, object] = {}    # ext -> the SDP the agent answered with
        self.connected: str | None = None
        self.offer = None
        self.number = self.dialled = self.caller_name = ""
        self.over = False

    # --- the caller's leg --------------------------------------------------------------
    def _caller_event(self, event, ua) -> None:
        from sippy.CCEvents import CCEventDisconnect, CCEventFail, CCEventTry

        if isinstance(event, CCEventTry) and self.offer is None:
            _cid, cli, cld, body, _auth, name = event.getData()
            self.offer, self.number, self.dialled, self.caller_name = body, cli or "", cld or "", name or ""
            self.side.run_later(self._queued)
            self.side.report("caller_arrived", self.id, self.number, self.dialled)
        elif isinstance(event, (CCEventDisconnect, CCEventFail)):
            self._finish()
            self.side.report("sip_hung_up", self.id, by="caller")

    def _queued(self) -> None:
        from sippy.CCEvents import CCEventRing

        if not self.over and self.connected is None:
            self.caller.recvEvent(CCEventRing((182, "Queued", None)))

    # --- what the routing core asks --------------------------------------------------------
    def ring(self, ext: str, contact: tuple[str, int], headers: dict[str, str]) -> None:
        from sippy.CCEvents import CCEventTry
        from sippy.SipCallId import SipCallId
        from sippy.UA import UA

        if self.over:
            return
        leg = UA(self.side.config, event_cb=lambda event, ua: self._agent_event(ext, event, ua),
                 nh_address=contact)
        leg.lContact = _contact(self.side)
        self.agents[ext] = leg
        body = self.offer.getCopy() if self.offer is not None else None
        invite = CCEventTry((SipCallId(), self.number, ext, body, None, self.caller_name))
        invite.extra_headers = tuple(_header(name, value) for name, value in headers.items())
        leg.recvEvent(invite)

    def bridge(self, ext: str) -> None:
        from sippy.CCEvents import CCEventConnect

        if self.over or ext not in self.agents:
            self.hang_up_agent(ext)
            return
        self.connected = ext
        self.side.watch(ext, self)
        answer = self.answers.get(ext)
        body = answer.getCopy() if answer is not None else None
        if self.caller.state is not None and self.caller.state.connected:
            # Requeued after its agent vanished: the caller already has a dialog; point
            # its media at the new agent with a re-INVITE.
            from sippy.CCEvents import CCEventUpdate

            self.caller.recvEvent(CCEventUpdate(body))
        else:
            self.caller.recvEvent(CCEventConnect((200, "OK", body)))

    def hang_up_agent(self, ext: str) -> None:
        """CANCEL a ringing agent leg, BYE a connected one; nothing if it is gone."""
        from sippy.CCEvents import CCEventDisconnect

        leg = self.agents.pop(ext, None)
        self.answers.pop(ext, None)
        if leg is not None and not leg.isDead():
            leg.recvEvent(CCEventDisconnect())
        if ext == self.connected and not self.over:
            self._finish()
            self.caller.recvEvent(CCEventDisconnect())

    def drop_agent(self, ext: str) -> None:
        """Let go of an agent whose phone is gone; the caller stays, queued again."""
        from sippy.CCEvents import CCEventDisconnect

        leg = self.agents.pop(ext, None)
        self.answers.pop(ext, None)
        if ext == self.connected:
            self.connected = None
            self.side.unwatch(ext)
        if leg is not None and not leg.isDead():
            leg.recvEvent(CCEventDisconnect())  # a BYE nobody may answer; sippy gives up on its own

    def release(self, code: int, reason: str) -> None:
        from sippy.CCEvents import CCEventDisconnect, CCEventFail

        if self.over:
            return
        self._finish()
        self.caller.recvEvent(CCEventFail((code, reason)) if self.connected is None else CCEventDisconnect())

    # --- an agent's leg ---------------------------------------------------------------------
    def _agent_event(self, ext: str, event, ua) -> None:
        from sippy.CCEvents import CCEventConnect, CCEventDisconnect, CCEventFail

        if self.agents.get(ext) is not ua:
            return  # a leg we already let go of
        if isinstance(event, CCEventConnect):
            _lower_transport(ua)
            _code, _reason, body = event.getData()
            self.answers[ext] = body
            self.side.report("sip_answered", self.id, ext)
        elif isinstance(event, CCEventFail):
            code = event.getData()[0]
            del self.agents[ext]
            self.side.report("sip_not_answered", self.id, ext, counts=code not in _REFUSALS)
        elif isinstance(event, CCEventDisconnect):
            del self.agents[ext]
            if ext == self.connected:  # the agent hung up
                self.side.unwatch(ext)
                self._finish()
                self.caller.recvEvent(CCEventDisconnect())
                self.side.report("sip_hung_up", self.id, by="agent")
            else:
                self.side.report("sip_not_answered", self.id, ext, counts=True)

    def _finish(self) -> None:
        """The call is over: every agent leg still up is let go; the record is the core's."""
        from sippy.CCEvents import CCEventDisconnect

        self.over = True
        if self.connected is not None:
            self.side.unwatch(self.connected)
        legs, self.agents = self.agents, {}
        for leg in legs.values():
            if not leg.isDead():
                leg.recvEvent(CCEventDisconnect())
        self.side.calls.pop(self.id, None)


class SipSide:
    """sippy on a thread of its own: registrar and B2BUA. The `Legs` of telephony/switchcore."""

    def __init__(self, host: str, port: int, *, secret_of: Callable[[str], str | None],
                 loop: asyncio.AbstractEventLoop, on_binding: Callable[[Binding | None, str], None],
                 reports: CallReports | None = None, clock: Callable[[], float] = time.time):
        # sippy logs every message unless told otherwise; warnings are enough for a switch.
        os.environ.setdefault("SIPLOG_LVL", "WARN")
        os.environ.setdefault("SIPLOG_BEND", "stderr")
        self.host, self.port = host, port
        self.secret_of, self.loop, self.on_binding, self.clock = secret_of, loop, on_binding, clock
        self.bindings: dict[str, Binding] = {}   # touched on the sippy thread only
        self.calls: dict[str, InboundCall] = {}  # likewise
        # seat in a call -> (call, OPTIONS unanswered in a row, when to ask next)
        self.watched: dict[str, tuple[InboundCall, int, float]] = {}
        self.reports = reports
        self.config: dict = {}
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._tm = None

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sippy", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError(f"SIP did not start on {self.host}:{self.port}")

    def _run(self) -> None:
        from sippy.Core.EventDispatcher import ED2
        from sippy.SipConf import SipConf
        from sippy.SipLogger import SipLogger
        from sippy.SipTransactionManager import SipTransactionManager
        from sippy.Time.Timeout import Timeout

        SipConf.my_uaname = "hotline"
        SipConf.my_address = self.host
        SipConf.my_port = self.port
        self.config = {"_sip_address": self.host, "_sip_port": self.port, "_sip_logger": SipLogger("hotline")}
        self._tm = self.config["_sip_tm"] = SipTransactionManager(self.config, self._request)
        Timeout(self._expire_bindings, EXPIRY_CHECK_S, -1)
        Timeout(self._qualify, QUALIFY_TICK_S, -1)
        ED2.callFromThread(self._started.set)
        ED2.loop()

    def stop(self) -> None:
        from sippy.Core.EventDispatcher import ED2

        if self._thread is None:
            return
        ED2.callFromThread(ED2.breakLoop)
        self._thread.join(5)
        self._thread = None

    # --- requests (sippy thread) -----------------------------------------------------------
    def _request(self, req, sip_t):
        method = req.getMethod()
        try:
            if method == "REGISTER":
                return (self._register(req), None, None)
            if method == "OPTIONS":
                return (req.genResponse(200, "OK"), None, None)
            if req.getHFBody("to").getTag() is not None:  # in a dialog we do not know (any more)
                return (req.genResponse(481, "Call Leg/Transaction Does Not Exist"), None, None)
            if method == "INVITE":
                return self._invite(req, sip_t)
            return (req.genResponse(501, "Not Implemented"), None, None)
        except Exception:  # a malformed request must cost one reply, never the SIP thread
            log.exception("SIP: cannot handle %s", method)
            return (req.genResponse(400, "Bad Request"), None, None)

    def _register(self, req):
        from sippy.SipHeader import SipHeader
        from sippy.SipWWWAuthenticate import SipWWWAuthenticate

        ext = req.getHFBody("to").getUrl().username or ""
        if req.countHFs("authorization") == 0:
            challenge = SipHeader(name="www-authenticate", body=SipWWWAuthenticate(realm=REALM, algorithm="MD5"))
            response = req.genResponse(401, "Unauthorized")
            response.appendHeader(challenge)
            return response
        auth = req.getHFBody("authorization")
        secret = self.secret_of(ext)
        if secret is None or auth.username != ext or auth.realm != REALM \
                or not auth.verifyHA1(secret.encode(), "REGISTER", None):
            log.warning("SIP: REGISTER for %r refused: wrong credentials", ext)
            return req.genResponse(403, "Forbidden")
        expires = self._expires(req)
        contacts = req.getHFBodys("contact")
        if expires == 0 or not contacts:
            if self.bindings.pop(ext, None) is not None:
                self._post(None, ext)
            return req.genResponse(200, "OK")
        url = contacts[0].getUrl()
        binding = Binding(ext, str(url.host), int(url.port or 5060), self.clock() + expires)
        self.bindings[ext] = binding
        self._post(binding, ext)
        response = req.genResponse(200, "OK")
        response.appendHeader(SipHeader(name="expires", bodys=str(expires)))
        return response

    def _expires(self, req) -> int:
        contact = req.getHFBodys("contact")
        value = contact[0].getUri().params.get("expires") if contact else None
        if value is None and req.countHFs("expires"):
            value = req.getHFBody("expires").getNum()
        try:
            return max(0, min(int(value), MAX_EXPIRES)) if value is not None else DEFAULT_EXPIRES
        except ValueError:
            return DEFAULT_EXPIRES

    def _expire_bindings(self) -> None:
        now = self.clock()
        for ext, binding in list(self.bindings.items()):
            if binding.expires_at <= now:
                del self.bindings[ext]
                log.info("SIP: registration of %s expired", ext)
                self._post(None, ext)

    # --- is the seat still there? (sippy thread) --------------------------------------------
    def watch(self, ext: str, call: "InboundCall") -> None:
        # Each seat is asked on its own beat from when its call began, so hundreds of
        # calls do not send their OPTIONS in one burst that would delay new INVITEs.
        self.watched[ext] = (call, 0, time.monotonic() + QUALIFY_S)

    def unwatch(self, ext: str) -> None:
        self.watched.pop(ext, None)

    def _qualify(self) -> None:
        """OPTIONS within each agent's call dialog: a live phone answers (SIPp with -aa
        too), a phone that lost the call answers 481, a dead one not at all."""
        now = time.monotonic()
        for ext, (call, misses, due) in list(self.watched.items()):
            leg = call.agents.get(ext)
            if leg is None or call.connected != ext:
                del self.watched[ext]
            elif due > now:
                continue
            elif misses >= QUALIFY_MISSES:
                self._lost(ext, "stopped answering")
            else:
                self.watched[ext] = (call, misses + 1, due + QUALIFY_S)
                try:
                    leg.lCSeq += 1
                    self._tm.newTransaction(leg.genRequest("OPTIONS"),
                                            functools.partial(self._qualified, ext, call))
                except Exception:  # a dialog we cannot even address counts as unanswered
                    log.exception("SIP: cannot send OPTIONS to %s", ext)

    def _qualified(self, ext: str, call: "InboundCall", response) -> None:
        code = response.getSCode()[0]
        if self.watched.get(ext, (None,))[0] is not call:
            return
        if code == 481:
            self._lost(ext, "no longer knows the call")
        elif code != 408:  # 408 is sippy's own, once the transaction gave up
            self.watched[ext] = (call, 0, self.watched[ext][2])

    def _lost(self, ext: str, why: str) -> None:
        del self.watched[ext]
        log.warning("SIP: seat %s %s during a call; its caller is queued again", ext, why)
        self.report("seat_lost", ext)

    def _invite(self, req, sip_t):
        if self.reports is None:
            return (req.genResponse(503, "Service Unavailable"), None, None)
        self._seq += 1
        call = InboundCall(self, f"{int(self.clock())}.{self._seq}")  # Asterisk-style uniqueid
        self.calls[call.id] = call
        return call.caller.recvRequest(req, sip_t)

    def _post(self, binding: Binding | None, ext: str) -> None:
        self.loop.call_soon_threadsafe(self.on_binding, binding, ext)

    # --- between the threads ------------------------------------------------------------------
    def report(self, name: str, *args, **kwargs) -> None:
        """sippy thread -> asyncio: tell the switch core what a phone did."""
        self.loop.call_soon_threadsafe(self._deliver, name, args, kwargs)

    def _deliver(self, name: str, args, kwargs) -> None:
        try:
            getattr(self.reports, name)(*args, **kwargs)
        except Exception:  # a report the core cannot take must not lose the caller
            log.exception("switch: %s%r failed", name, args)
            if name == "caller_arrived":
                self.release(args[0], 500, "Server Internal Error")

    def run_later(self, fn, *args) -> None:
        from sippy.Core.EventDispatcher import ED2

        ED2.callFromThread(fn, *args)

    def _on_call(self, call_id: str, method: str, *args) -> None:
        call = self.calls.get(call_id)
        if call is not None:
            getattr(call, method)(*args)

    # The Legs of telephony/switchcore: called on the asyncio thread, run on the sippy thread.
    def ring(self, call_id: str, ext: str, contact: tuple[str, int], headers: dict[str, str]) -> None:
        self.run_later(self._on_call, call_id, "ring", ext, contact, headers)

    def bridge(self, call_id: str, ext: str) -> None:
        self.run_later(self._on_call, call_id, "bridge", ext)

    def hang_up_agent(self, call_id: str, ext: str) -> None:
        self.run_later(self._on_call, call_id, "hang_up_agent", ext)

    def drop_agent(self, call_id: str, ext: str) -> None:
        self.run_later(self._on_call, call_id, "drop_agent", ext)

    def release(self, call_id: str, code: int, reason: str) -> None:
        self.run_later(self._on_call, call_id, "release", code, reason)
