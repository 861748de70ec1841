"""The switch's SIP side: sippy's event loop in its own thread, serving the registrar
(telephony/registrar.py) and the B2BUA's calls (telephony/call_legs.py).

Threads: sippy runs `ED2.loop()` on one thread it owns; everything that touches sippy
objects runs there. What the phones did goes to the switch core (asyncio) through
telephony/sip_bridge.py (typed reports posted with `loop.call_soon_threadsafe`); what
the core decides comes back as the `Legs` methods below, run on the sippy thread with
`ED2.callFromThread`. Records are read here only through the secret lookup, which opens
its own connection (one connection per thread). A malformed request costs one reply
(400) and a rate-limited log line, never the SIP thread.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from telephony import sippy_speedups
from telephony.call_legs import InboundCall
from telephony.qualify import QualifyPacer
from telephony.registrar import Binding, Registrar
from telephony.sip_bridge import CallReports, ReportsToLoop
from telephony.switchconfig import MediaSettings, SipSettings

if TYPE_CHECKING:
    from telephony.media import MediaEngine, MediaPool

log = logging.getLogger("hotline.sip")

EXPIRY_CHECK_S = 1.0   # a seat that stopped refreshing is offered no calls within this (after its grace)
# A seat in a call is asked OPTIONS (within the call's dialog), paced by telephony/qualify.py:
# every qualify_s, all seats together at most qualify_rate a second; qualify_misses in a
# row unanswered, or a 481, and its phone is taken for gone (killed, unplugged, restarted)
# and its caller is queued again.
QUALIFY_TICK_S = 0.1
PRUNE_S = 60.0   # old nonces and failed-login counts are forgotten this often
LEAVING_WAIT_S = 2.0   # a new ring waits at most this long for the seat's phone to let go of a cancelled one

class SipSide:
    """sippy on a thread of its own: registrar and B2BUA. The `Legs` of telephony/switchcore."""

    def __init__(self, host: str, port: int, *, secret_of: Callable[[str], str | None],
                 loop: asyncio.AbstractEventLoop, on_binding: Callable[[Binding | None, str], None],
                 reports: CallReports | None = None, clock: Callable[[], float] = time.time,
                 media_dir: str | Path | None = None, record_calls: bool = True,
                 settings: SipSettings | None = None, media_settings: MediaSettings | None = None):
        # sippy logs every message unless told otherwise; warnings are enough for a switch.
        os.environ.setdefault("SIPLOG_LVL", "WARN")
        os.environ.setdefault("SIPLOG_BEND", "stderr")
        self.host, self.port = host, port
        self.secret_of, self.loop, self.on_binding, self.clock = secret_of, loop, on_binding, clock
        self.settings = settings or SipSettings()
        self.media_settings = media_settings or MediaSettings()
        self.calls: dict[str, InboundCall] = {}  # likewise
        self._leaving: dict[str, list] = {}   # ext -> cancelled rings (sippy UAs) its phone has not let go of yet
        # seat in a call -> its call; when to ask each one OPTIONS: self.qualify
        self.watched: dict[str, InboundCall] = {}
        self.qualify = QualifyPacer(self.settings.qualify_s, self.settings.qualify_misses, self.settings.qualify_rate)
        self.reports = reports
        self.to_core = ReportsToLoop(loop, reports, self.release)   # for this (the sippy) thread
        self.registrar = Registrar(secret_of=secret_of, clock=clock, settings=self.settings, refuse=self._refuse,
                                   on_binding=self._post, on_lock=self._locked_out)
        self.media_dir = Path(media_dir) if media_dir is not None else None
        self.record_calls = record_calls
        self.media: MediaPool | None = None   # once RTPproxy answers; None: SDP passed through
        self.config: dict = {}
        self.unparsable = _RateLimitedLog(log, "SIP: cannot parse a message from %s (%s)%s")
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self.failure: str | None = None   # why the SIP thread stopped, if it did on its own
        self._tm: Any = None   # sippy's SipTransactionManager

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Start sippy; raises SipStartError with one plain sentence if it cannot."""
        self._thread = threading.Thread(target=self._run, name="sippy", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._started.wait(0.05):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise SipStartError(self.failure or f"SIP did not start on {self.host}:{self.port}")
        if self.failure is not None:
            raise SipStartError(self.failure)

    def _run(self) -> None:
        try:
            self._serve()
        except Exception as exc:   # the SIP thread is gone: the switch must stop, now
            self.failure = self.failure or f"SIP stopped: {describe_os_error(exc, self.host, self.port)}"
            log.debug("SIP thread failed", exc_info=True)
            if self._started.is_set():
                self.to_core.sip_failed(self.failure)

    def _serve(self) -> None:
        from sippy.Core.EventDispatcher import ED2
        from sippy.SipConf import SipConf
        from sippy.SipLogger import SipLogger
        from sippy.Time.Timeout import Timeout

        SipConf.my_uaname = "hotline"
        SipConf.my_address = self.host
        SipConf.my_port = self.port
        self.config = {"_sip_address": self.host, "_sip_port": self.port, "_sip_logger": SipLogger("hotline")}
        try:
            self._tm = self.config["_sip_tm"] = _transactions_class()(self.config, self._request, self)
        except OSError as exc:
            self.failure = f"cannot listen for SIP: {describe_os_error(exc, self.host, self.port)}"
            raise
        Timeout(self.registrar.expire, EXPIRY_CHECK_S, -1)
        Timeout(self._qualify, QUALIFY_TICK_S, -1)
        Timeout(self.registrar.guard.prune, PRUNE_S, -1)
        if self.media_dir is not None:
            self._start_media(self.media_dir)
        else:
            ED2.callFromThread(self._started.set)
        ED2.loop()

    def _start_media(self, media_dir: Path) -> None:
        """RTPproxy in this process, or the media nodes of the config; until one answers (or
        if none can start) calls pass SDP through. SIP is ready only once this is settled,
        so the first call is anchored."""
        from sippy.Time.Timeout import Timeout

        from telephony.media import MediaEngine, MediaPool

        nodes = self.media_settings.nodes
        try:
            if nodes:
                engines = [MediaEngine(self.config, control=node.control, notify=self.media_settings.notify,
                                       weight=node.weight, recordings=node.recordings or media_dir / "raw",
                                       sounds=node.sounds or media_dir / "sounds") for node in nodes]
                pool = MediaPool(engines)
                pool.listen(self.media_settings.notify)
            else:
                pool = MediaPool([MediaEngine(self.config, recordings=media_dir / "raw", sounds=media_dir / "sounds",
                                              rtp_ports=self.settings.rtp_ports)])
        except Exception as exc:  # no rtp.io wheel, a notify port taken: calls still connect
            log.warning("media: cannot start RTPproxy (%s); SDP is passed through between phones", exc)
            self.to_core.media_ready(False)
            self._started.set()
            return
        settled: dict[MediaEngine, bool] = {}

        def ready(engine: MediaEngine, ok: bool) -> None:
            settled[engine] = ok
            if len(settled) < len(pool.engines):
                return
            answering = [e for e in pool.engines if settled[e]]
            if pool.embedded:
                if answering:
                    engine.watch(self.settings.media_stall_s, self._media_stalled)
            else:
                for node in pool.engines:   # one not answering yet is watched until it does
                    node.watch(self.settings.media_stall_s, functools.partial(self._node_lost, node),
                               on_back=functools.partial(self._node_back, node))
                    if not settled[node]:
                        node.stalled = True
                        log.error("media: node %s does not answer; calls go to the others until it does", node.name)
            # with nodes, media is anchored as soon as one answers (a switch started before its
            # nodes passes SDP through until then)
            ok = bool(answering) or not pool.embedded
            if ok:
                self.media = pool
                Timeout(self._check_offers, 1.0, -1)
                if answering:
                    log.info("media: anchored in %s; recordings in %s", "RTPproxy (rtp.io)" if pool.embedded else
                             ", ".join(f"{e.name} (weight {e.weight:g})" for e in answering), answering[0].recordings)
                else:
                    log.error("media: no media node answers yet; calls pass SDP through until one does")
            else:
                log.warning("media: RTPproxy did not answer; SDP is passed through between phones")
            self.to_core.media_ready(ok)
            self._started.set()
        for engine in pool.engines:
            try:
                engine.start(functools.partial(ready, engine))
            except Exception as exc:
                log.warning("media: cannot start %s (%s)", engine.name, exc)
                ready(engine, False)

    def _node_lost(self, node: MediaEngine, seconds: float) -> None:
        """A media node stopped answering: its calls are over (nobody on them hears a thing),
        recorded as interrupted; new calls go to the nodes that answer."""
        calls = [call for call in self.calls.values() if call.media is not None and call.media.engine is node]
        others = [e.name for e in self.media.engines if e.up] if self.media is not None else []
        log.error("media: node %s has not answered for %.0f s: its %d call(s) end as interrupted; new calls go to %s",
                  node.name, seconds, len(calls), ", ".join(others) or "no node (SDP passed through between phones)")
        for call in calls:
            self.to_core.media_lost(call.id, f"media node {node.name} stopped answering")

    def _node_back(self, node: MediaEngine) -> None:
        log.warning("media: node %s answers again; it takes new calls", node.name)

    def _check_offers(self) -> None:
        now = time.monotonic()
        for call in list(self.calls.values()):
            if call.offer_overdue(now, self.settings.media_stall_s):
                call.give_up_on_media()

    def _media_stalled(self, seconds: float) -> None:
        waiting = sum(1 for call in self.calls.values() if call.pending_rings)
        status = self.media.status() if self.media is not None else {}
        message = (f"the media engine (RTPproxy) has not answered for {seconds:.0f} s ({len(self.calls)} calls up, "
                   f"{waiting} waiting for it to ring an agent, {status.get('active_sessions')} media sessions): "
                   "no call can be connected without it")
        self.failure = message
        self.to_core.sip_failed(message)

    def media_status(self) -> dict | None:
        """The media engine's health for the snapshot (None: media not anchored)."""
        return self.media.status() if self.media is not None else None

    def stop(self) -> None:
        from sippy.Core.EventDispatcher import ED2

        if self._thread is None:
            return
        if self._thread.is_alive():
            if self.media is not None:
                ED2.callFromThread(self.media.shutdown)
            ED2.callFromThread(ED2.breakLoop)
            self._thread.join(5)
        self._thread = None

    # --- requests (sippy thread) -----------------------------------------------------------
    def _request(self, req, sip_t):
        method = req.getMethod()
        try:
            if method == "REGISTER":
                return (self.registrar.register(req), None, None)
            if method == "OPTIONS":
                return (req.genResponse(200, "OK"), None, None)
            if req.getHFBody("to").getTag() is not None:  # in a dialog we do not know (any more)
                return (self._refuse(req, 481, "Call Leg/Transaction Does Not Exist"), None, None)
            if method == "INVITE":
                return self._invite(req, sip_t)
            return (self._refuse(req, 501, "Not Implemented"), None, None)
        except Exception as exc:  # a malformed request must cost one reply, never the SIP thread
            self.unparsable.warn(f"{req.getSource()[0]}:{req.getSource()[1]}", f"{method}: {exc!r}", "; answered 400")
            log.debug("SIP: %s failed", method, exc_info=True)
            return (self._refuse(req, 400, "Bad Request"), None, None)

    def _refuse(self, req, code: int, reason: str):
        self.refused(f"{code} {reason}")
        return req.genResponse(code, reason)

    def refused(self, cause: str) -> None:
        """Count a request turned away (the supervisor's snapshot shows the counts)."""
        self.to_core.sip_refused(cause)

    # --- is the seat still there? (sippy thread) --------------------------------------------
    def watch(self, ext: str, call: "InboundCall") -> None:
        self.watched[ext] = call
        self.qualify.watch(ext, time.monotonic())

    def unwatch(self, ext: str) -> None:
        self.watched.pop(ext, None)
        self.qualify.unwatch(ext)

    def suspect(self, ext: str) -> None:
        """Ask this seat's phone at once whether it still has its call (its agent's seat
        dropped its connection to the switch)."""
        self.qualify.suspect(ext, time.monotonic())

    def _qualify(self) -> None:
        """OPTIONS within each agent's call dialog, paced (telephony/qualify.py): a live
        phone answers (SIPp with -aa too), a phone that lost the call answers 481, a dead
        one not at all."""
        ask, gone = self.qualify.take(time.monotonic())
        for ext in gone:
            self._lost(ext, "stopped answering")
        for ext in ask:
            call = self.watched.get(ext)
            leg = call.agents.get(ext) if call is not None else None
            if call is None or leg is None or call.connected != ext:
                self.unwatch(ext)
                continue
            try:
                leg.lCSeq += 1
                self._tm.newTransaction(leg.genRequest("OPTIONS"), functools.partial(self._qualified, ext, call))
            except Exception:  # a dialog we cannot even address counts as unanswered
                log.exception("SIP: cannot send OPTIONS to %s", ext)

    def _qualified(self, ext: str, call: "InboundCall", response) -> None:
        code = response.getSCode()[0]
        if self.watched.get(ext) is not call:
            return
        if code == 481:
            self.qualify.unwatch(ext)
            self._lost(ext, "no longer knows the call")
        elif code != 408:  # 408 is sippy's own, once the transaction gave up
            self.qualify.answered(ext)

    def _lost(self, ext: str, why: str) -> None:
        self.watched.pop(ext, None)
        log.warning("SIP: seat %s %s during a call; its caller is queued again", ext, why)
        self.to_core.seat_lost(ext)

    def _invite(self, req, sip_t):
        if self.reports is None:
            return (self._refuse(req, 503, "Service Unavailable"), None, None)
        seat = ""
        from_user = req.getHFBody("from").getUrl().username or ""
        binding = self.registrar.bindings.get(from_user)
        if binding is not None and tuple(req.getSource()) == binding.source:
            # From where that seat's phone registered (address and port): the seat dialling
            # out (a callback). It proves it is the seat, as for REGISTER, before anything
            # goes out the trunk in its name. A resident whose number equals an extension,
            # calling from anywhere else (another port of the same host included), calls in.
            refusal = self.registrar.authenticate(req, from_user, "INVITE", proxy=True)
            if refusal is not None:
                if refusal.getSCode()[0] >= 403 and refusal.getSCode()[0] != 407:
                    self._report_refusal(req, refusal, seat=from_user)
                return (refusal, None, None)
            seat = from_user
        self._seq += 1
        call = InboundCall(self, f"{int(self.clock())}.{self._seq}")  # Asterisk-style uniqueid
        call.seat = seat
        self.calls[call.id] = call
        return call.caller.recvRequest(req, sip_t)

    def _report_refusal(self, req, response, *, seat: str = "") -> None:
        """A new call the switch turned away still leaves a trace: a row with its cause."""
        code, reason = response.getSCode()[:2]
        number = req.getHFBody("from").getUrl().username or ""
        dialled = req.getRURI().username or ""
        self.to_core.call_refused(number, dialled, seat=seat, code=code, reason=str(reason))

    def _locked_out(self, kind: str, key: str, seconds: float) -> None:
        log.warning("SIP: %s %s locked out for %.0f s after repeated wrong credentials", kind, key, seconds)
        self.to_core.auth_locked(kind, key, seconds)

    def _post(self, binding: Binding | None, ext: str) -> None:
        self.loop.call_soon_threadsafe(self.on_binding, binding, ext)

    # --- between the threads ------------------------------------------------------------------
    def run_later(self, fn, *args) -> None:
        from sippy.Core.EventDispatcher import ED2

        ED2.callFromThread(fn, *args)

    def _on_call(self, call_id: str, act: Callable[[InboundCall], None]) -> None:
        call = self.calls.get(call_id)
        if call is not None:
            act(call)

    # The Legs of telephony/switchcore: called on the asyncio thread, run on the sippy thread.
    def ring(self, call_id: str, ext: str, contact: tuple[str, int], headers: dict[str, str],
             caller_name: str = "") -> None:
        self.run_later(self._ring_when_free, call_id, ext,
                       lambda call: call.ring(ext, contact, headers, caller_name))

    def leaving(self, ext: str, leg) -> None:
        """A ring at `ext` is being cancelled: until its phone has answered the CANCEL, a
        new ring there waits (the phone is still busy with the old one and answers 486,
        which counts as the agent's refusal: found by test_bots' agent who stops answering,
        whose second ring-out came back busy and never counted)."""
        self._leaving[ext] = [*self._still_leaving(ext), (leg, time.monotonic())]

    def _still_leaving(self, ext: str) -> list:
        """The cancelled rings at `ext` its phone has not let go of, waited for at most
        LEAVING_WAIT_S each (also pruned this way: a seat never rung again keeps no more)."""
        now = time.monotonic()
        return [(leg, since) for leg, since in self._leaving.get(ext, ())
                if not leg.isDead() and now - since < LEAVING_WAIT_S]

    def _ring_when_free(self, call_id: str, ext: str, act: Callable[[InboundCall], None]) -> None:
        from sippy.Time.Timeout import Timeout

        legs = self._still_leaving(ext)
        if legs:
            self._leaving[ext] = legs
            Timeout(self._ring_when_free, 0.02, 1, call_id, ext, act)
            return
        self._leaving.pop(ext, None)
        self._on_call(call_id, act)

    def bridge(self, call_id: str, ext: str) -> None:
        self.run_later(self._on_call, call_id, lambda call: call.bridge(ext))

    def hang_up_agent(self, call_id: str, ext: str) -> None:
        self.run_later(self._on_call, call_id, lambda call: call.hang_up_agent(ext))

    def drop_agent(self, call_id: str, ext: str) -> None:
        self.run_later(self._on_call, call_id, lambda call: call.drop_agent(ext))

    def end_for_agent(self, call_id: str, ext: str) -> None:
        self.run_later(self._on_call, call_id, lambda call: call.end_for_agent(ext))

    def check_seat(self, ext: str) -> None:
        self.run_later(self.suspect, ext)

    def hold_for_agent(self, call_id: str, ext: str, held: bool) -> None:
        self.run_later(self._on_call, call_id, lambda call: call.hold_for_agent(ext, held))

    def start_menu(self, call_id: str) -> None:
        self.run_later(self._on_call, call_id, lambda call: call.start_menu())

    def end_menu(self, call_id: str) -> None:
        self.run_later(self._on_call, call_id, lambda call: call.end_menu())

    def wait_in_queue(self, call_id: str) -> None:
        self.run_later(self._on_call, call_id, lambda call: call.wait_in_queue())

    def release(self, call_id: str, code: int, reason: str) -> None:
        self.run_later(self._on_call, call_id, lambda call: call.release(code, reason))

    def voicemail(self, call_id: str, max_s: float) -> None:
        self.run_later(self._on_call, call_id, lambda call: call.voicemail(max_s))

    def digest_counts(self) -> dict[str, int]:
        """The registrar's digest checks so far, by verdict (read from any thread: a copy)."""
        return {verdict.value: count for verdict, count in dict(self.registrar.guard.counts).items()}


class SipStartError(RuntimeError):
    """SIP could not start (an address that is not this machine's, a port in use...)."""


def describe_os_error(exc: BaseException, host: str, port: int) -> str:
    """One sentence a person can act on, for a socket error on the SIP address."""
    import errno

    code = getattr(exc, "errno", None)
    if code == errno.EADDRINUSE:
        return f"{host}:{port} is already in use (another switch, or another SIP program, listens there)"
    if code == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine"
    if code == errno.EACCES:
        return f"no permission to listen on port {port} (ports below 1024 need privileges)"
    if isinstance(exc, socket.gaierror):
        return f"{host!r} is not a known host name or address"
    return str(getattr(exc, "strerror", None) or exc)


class _RateLimitedLog:
    """A warning per event, but at most `burst` a minute: a flood of garbage costs a line a minute."""

    def __init__(self, logger: logging.Logger, template: str, burst: int = 10):
        self.logger, self.template, self.burst = logger, template, burst
        self._window_start, self._in_window, self._dropped = 0.0, 0, 0

    def warn(self, *args) -> None:
        now = time.monotonic()
        if now - self._window_start >= 60:
            if self._dropped:
                self.logger.warning("SIP: %d more messages like that in the last minute were not logged", self._dropped)
            self._window_start, self._in_window, self._dropped = now, 0, 0
        if self._in_window < self.burst:
            self._in_window += 1
            self.logger.warning(self.template, *args)
        else:
            self._dropped += 1


_HEADER_FORMS = {"v": "via", "f": "from", "t": "to", "i": "call-id"}


def bad_request_for(data: str) -> str | None:
    """A 400 for a request sippy could not parse, from its raw text, if it has what a
    response needs (RFC 3261 8.2.6: Via, From, To, Call-ID, CSeq); None for anything else
    (a response, an ACK, or too little to answer)."""
    head = data.split("\r\n\r\n", 1)[0].split("\n")
    request_line = head[0].strip().split(" ")
    if len(request_line) != 3 or request_line[2] != "SIP/2.0" or request_line[0] == "ACK":
        return None
    found: dict[str, list[str]] = {}
    for line in head[1:]:
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        name = _HEADER_FORMS.get(name, name)
        if sep and name in ("via", "from", "to", "call-id", "cseq"):
            found.setdefault(name, []).append(value.strip())
    if any(name not in found for name in ("via", "from", "to", "call-id", "cseq")):
        return None
    lines = ["SIP/2.0 400 Bad Request"] + [f"Via: {via}" for via in found["via"]]
    lines += [f"From: {found['from'][0]}", f"To: {found['to'][0]}", f"Call-ID: {found['call-id'][0]}",
              f"CSeq: {found['cseq'][0]}", "Server: hotline", "Content-Length: 0", "", ""]
    return "\r\n".join(lines)


@functools.cache
def _transactions_class():
    """sippy's transaction manager, with two changes that a switch needs:

    - the socket is bound without SO_REUSEADDR / SO_REUSEPORT (sippy's default), so a
      second switch on the same port fails to start instead of quietly sharing its calls;
    - a request to a transport named in capitals ("UDP", as some phones write it) is sent;
    - one sender and one receiver thread, so messages keep their order on the wire;
    - a message sippy cannot parse costs one log line (and a 400 where one can be
      addressed), never a traceback on the terminal.
    Made once, on the SIP thread (sippy is imported there only), with sippy's two
    costliest idioms made cheap first (telephony/sippy_speedups.py)."""
    sippy_speedups.install()
    import sippy.SipTransactionManager as sippy_tm
    from sippy.Exceptions.SipParseError import SipParseError
    from sippy.SipTransactionManager import SipTransactionManager
    from sippy.Udp_server import Udp_server, Udp_server_opts

    class Unparsable(Exception):
        pass

    def unparsable(message, *_args, **_kwargs):
        raise Unparsable(str(message))

    # sippy reports what it cannot parse by printing a traceback and the message; here
    # it raises instead, and handleIncoming below says it in one line.
    sippy_tm.dump_exception = unparsable
    sippy_tm.print = lambda *args, **_kwargs: log.warning("SIP: %s", " ".join(str(a) for a in args[1:] or args))

    class ExclusiveUdpOpts(Udp_server_opts):
        flags = 0   # copies of the options (sippy makes them) keep this too
        # One thread sends and one receives, so messages go out and come in in the order
        # they were made: with sippy's pool of senders a 182 made just before a 200 could
        # reach the phone after it (the 2,000-call benchmark: 64 SIPp callers ended their
        # call on the 182 after its 200). The GIL makes more threads no faster.
        nworkers = 1

    class Transactions(SipTransactionManager):
        model_udp_server = (Udp_server, ExclusiveUdpOpts)

        def __init__(self, config, request_cb, side: SipSide):
            self.side = side
            super().__init__(config, request_cb)

        def handleIncoming(self, data_in, ra, server, rtime):
            try:
                super().handleIncoming(data_in, ra, server, rtime)
            except (Unparsable, UnicodeDecodeError, SipParseError) as exc:
                self._unparsable(data_in, ra, server, exc)
            except Exception as exc:
                if isinstance(exc.__context__, SipParseError):   # sippy fails on its own parse error
                    self._unparsable(data_in, ra, server, exc.__context__)
                else:
                    raise

        def newTransaction(self, msg, *args, **kwargs):
            # A phone that writes ";transport=UDP" in capitals in its Contact: sippy sends
            # to "udp" only, and would raise on the request (the BYE after a 200 that
            # crossed our CANCEL, among others), leaving that phone's call up.
            target = msg.getTarget()
            if target is not None and isinstance(target[1], str) and target[1] != target[1].lower():
                msg.setTarget((target[0], target[1].lower()))
            return super().newTransaction(msg, *args, **kwargs)

        def _unparsable(self, data_in, ra, server, exc) -> None:
            data = data_in.decode("utf-8", "replace") if isinstance(data_in, bytes) else data_in
            answer = bad_request_for(data)
            if answer is not None:
                server.send_to(answer.encode(), ra.address)
                self.side.refused("400 Bad Request")
            what = str(exc).split("\n")[0][:120] or type(exc).__name__
            self.side.unparsable.warn(f"{ra.address[0]}:{ra.address[1]}", what,
                                      "; answered 400" if answer is not None else "; not answered")

    return Transactions
