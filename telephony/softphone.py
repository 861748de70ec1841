"""The agent seat's softphone: pjsua2 owned by one pump thread.

The rules (architecture.md, measured on the 2.15.1.post1 wheel): one Endpoint per
process, created, pumped and destroyed on one thread we own (`threadCnt = 0`,
`mainThreadOnly = True`), so every pjsua2 callback runs on that thread; callbacks never
block and never touch the UI: they hand a frozen event to `on_event` (a Textual app's
`post_message`, or a queue in tests). Commands from any thread go through one queue the
pump drains. One strong reference per call, dropped in the DISCONNECTED callback (a
stale Call collected after its id is reused hangs up the new call: pjproject #3856).
Shutdown hangs up, pumps, drops every pjsua2 object, collects, then `libDestroy()`.
"""

from __future__ import annotations

import functools
import gc
import logging
import queue
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from telephony.headset import Headset

log = logging.getLogger("hotline.softphone")

PUMP_MS = 20          # libHandleEvents timeout: the pump's latency and its idle cost
REGISTRATION_RETRY_S = 15
REGISTRATION_FIRST_RETRY_S = 5
HOLD_RETRIES = 10     # a hold asked for while another re-INVITE is under way: tried again, 0.2 s apart
HOTLINE_HEADERS = ("X-Hotline-Interaction", "X-Hotline-Queue", "X-Hotline-Resident", "X-Hotline-Wait")


# --- what the phone tells the seat (frozen: they cross threads) -----------------------------
@dataclass(frozen=True)
class Registration:
    ok: bool
    code: int
    reason: str


@dataclass(frozen=True)
class IncomingCall:
    call: int                      # the phone's key for this call: never reused (pjsua2's call ids are)
    number: str                    # the caller's number (From user part)
    display: str
    headers: dict = field(default_factory=dict)   # X-Hotline-* from the INVITE
    # when the phone got the INVITE (time.monotonic()): the seat measures its pop against it
    received: float = field(default_factory=time.monotonic, compare=False)


@dataclass(frozen=True)
class CallState:
    call: int
    state: str                     # "ringing", "connecting", "connected", "ended"
    code: int = 0
    reason: str = ""


@dataclass(frozen=True)
class CallHeld:
    """The call's audio is on hold at our end (True), or flowing again (False): what the
    other side of the re-INVITE agreed to, not just what the agent asked for."""
    call: int
    held: bool


@dataclass(frozen=True)
class PhoneError:
    message: str


def parse_headers(message: str) -> dict[str, str]:
    """The X-Hotline-* headers of a SIP message, by their canonical names."""
    wanted = {name.lower(): name for name in HOTLINE_HEADERS}
    out = {}
    for line in message.split("\r\n\r\n", 1)[0].splitlines()[1:]:
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() in wanted:
            out[wanted[name.strip().lower()]] = value.strip()
    return out


def caller_of(uri: str) -> tuple[str, str]:
    """(number, display name) from a remote URI such as '"Ann" <sip:+852...@host>'."""
    display = re.match(r'\s*"([^"]*)"', uri)
    number = re.search(r"sips?:([^@;>]+)@", uri)
    return (number.group(1) if number else uri.strip("<> "), display.group(1) if display else "")


class Softphone:
    """A SIP account on a registrar (the switch, or any PBX), driven from one thread."""

    def __init__(self, ext: str, password: str, registrar: str, on_event: Callable[[object], object], *,
                 host: str = "127.0.0.1", port: int = 0, audio: str = "null", sip_user: str | None = None,
                 rtp_ports: tuple[int, int] | None = None, registration_s: int = 300):
        # With the switch the SIP account is the extension and PIN; behind another PBX it is
        # whatever that PBX gave the agent (`sip_user` and its password).
        self.ext, self.password, self.on_event = sip_user or ext, password, on_event
        self.registrar = registrar if registrar.startswith("sip:") else f"sip:{registrar}"
        self.host, self.port, self.audio = host, port, audio
        self.rtp_ports = rtp_ports            # (low, high): the UDP ports our audio may use (a firewall's)
        self.registration_s = registration_s  # asked of the registrar, which may grant less
        self._commands: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        # pump-thread only:
        # pjsua2's objects (the wheel publishes no types)
        self._ep: Any = None
        self._account: Any = None
        self._calls: dict[int, Any] = {}   # our key -> the one strong reference to the Call
        self._later: list[tuple[float, tuple]] = []   # (when, command): commands to try again
        self._next_key = 0
        self._keys = threading.Lock()   # keys are taken by dial() on any thread and by the pump
        self.headset: Headset | None = None   # telephony/headset.py, unless audio is "null"
        self.audio_description = "none (--audio null): calls are silent at this seat"
        self._log_writer = None

    # --- any thread --------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._pump, name="pjsua2", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the softphone did not start")
        if self._error is not None:
            raise RuntimeError(f"the softphone could not start: {self._error}") from self._error

    def answer(self, call: int) -> None:
        self._commands.put(("answer", call))

    def decline(self, call: int, code: int = 486) -> None:
        self._commands.put(("hangup", call, code))

    def hang_up(self, call: int) -> None:
        self._commands.put(("hangup", call, 0))

    def hold(self, call: int, on: bool = True) -> None:
        self._commands.put(("hold", call, on))

    def send_dtmf(self, call: int, digits: str) -> None:
        self._commands.put(("dtmf", call, digits))

    def dial(self, number: str) -> int:
        """Call `number` through the registrar (the switch sends it out its trunk); returns
        the call's key, which its CallState events carry."""
        with self._keys:
            self._next_key += 1
            key = self._next_key
        self._commands.put(("dial", key, number))
        return key

    def register_again(self) -> None:
        """REGISTER now, not at the next refresh: the switch restarted and lost the
        binding (it says so at login), so no call could ring here until then."""
        self._commands.put(("register", 0))

    def mute(self, call: int, on: bool = True) -> None:
        """Stop (or resume) sending the agent's voice; the caller is still heard."""
        self._commands.put(("mute", call, on))

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout)
        self._thread = None

    # --- the pump thread ------------------------------------------------------------------------
    def _pump(self) -> None:
        import pjsua2 as pj

        try:
            self._start_endpoint(pj)
        except Exception as exc:  # reported to start(); nothing of pjsua2 is left half-made
            self._error = exc
            self._destroy()
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                self._drain()
                self._ep.libHandleEvents(PUMP_MS)
        finally:
            self._shutdown()

    def _start_endpoint(self, pj) -> None:
        ep = self._ep = pj.Endpoint()
        with _stdout_silenced():   # pjlib logs its start-up at level 5 before libInit can say otherwise
            ep.libCreate()
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0
        config.uaConfig.mainThreadOnly = True
        config.uaConfig.userAgent = "hotline-seat"
        # pjsip's own lines go to our log (a file beside the database for `hotline agent`),
        # never to the terminal the seat draws on.
        self._log_writer = _log_writer_class()()
        config.logConfig.writer = self._log_writer
        config.logConfig.level = 3
        config.logConfig.consoleLevel = 3
        config.logConfig.decor = pj.PJ_LOG_HAS_SENDER
        config.medConfig.sndAutoCloseTime = -1  # else conference slots leak and INVITEs get 488
        # Voice activity detection off: silence is sent as audio, not left out, so the line
        # never goes quiet in a way that clips the agent's first word or closes a NAT mapping.
        config.medConfig.noVad = True
        ep.libInit(config)
        transport = pj.TransportConfig()
        transport.boundAddress = self.host
        transport.port = self.port
        ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        ep.libStart()
        ep.audDevManager().setNullDev()   # the wheel has no sound devices: the null one clocks the bridge
        if self.audio != "null":
            from telephony.headset import Headset

            self.headset = Headset(self.audio, config.medConfig.clockRate)
            self.headset.start(pj)
            self.audio_description = self.headset.description
        account_config = pj.AccountConfig()
        account_config.idUri = f"sip:{self.ext}@{self._registrar_host().split(':')[0]}"
        account_config.regConfig.registrarUri = self.registrar
        account_config.regConfig.timeoutSec = self.registration_s
        # a registrar that refused or did not answer (the switch restarting) is tried again
        # soon, not in pjsua's default five minutes: the seat comes back by itself
        account_config.regConfig.retryIntervalSec = REGISTRATION_RETRY_S
        account_config.regConfig.firstRetryIntervalSec = REGISTRATION_FIRST_RETRY_S
        if self.rtp_ports is not None:
            low, high = self.rtp_ports
            account_config.mediaConfig.transportConfig.port = low
            account_config.mediaConfig.transportConfig.portRange = high - low
        account_config.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", self.ext, 0, self.password))
        self._account = _Account(self, pj)
        self._account.create(account_config)

    def _registrar_host(self) -> str:
        """HOST[:PORT] of the registrar URI: where the account lives and calls are placed."""
        return self.registrar[4:].split(";")[0]

    def _drain(self) -> None:
        if self._later:
            now = time.monotonic()
            due = [command for at, command in self._later if at <= now]
            self._later = [(at, command) for at, command in self._later if at > now]
            for command in due:
                self._commands.put(command)
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                self._run(*command)
            except Exception as exc:  # a call that just ended, a bad digit: say so, carry on
                self.on_event(PhoneError(f"{command[0]}: {exc}"))

    def _run(self, name: str, call_id: int, *args) -> None:
        import pjsua2 as pj

        if name == "dial":
            self._dial(call_id, args[0])
            return
        if name == "register":
            if self._account is not None:
                self._account.setRegistration(True)
            return
        call = self._calls.get(call_id)
        if call is None:
            raise ValueError(f"no call {call_id}")
        param = pj.CallOpParam(True)
        if name == "answer":
            param.statusCode = 200
            call.answer(param)
        elif name == "hangup":
            if args and args[0]:
                param.statusCode = args[0]
            call.hangup(param)
        elif name == "hold":
            try:
                call.setHold(param) if args[0] else call.reinvite(_unhold(pj))
            except Exception as exc:
                # PJ_EINVALIDOP: another re-INVITE of this call is still under way; try
                # again in a moment rather than lose the agent's key press
                retries = args[1] if len(args) > 1 else 0
                if "PJ_EINVALIDOP" not in str(exc) or retries >= HOLD_RETRIES:
                    raise
                self._later.append((time.monotonic() + 0.2, ("hold", call_id, args[0], retries + 1)))
        elif name == "dtmf":
            call.dialDtmf(args[0])
        elif name == "mute":
            call.muted = args[0]
            call.apply_mute()

    def _dial(self, key: int, number: str) -> None:
        import pjsua2 as pj

        call = _call_class()(self._account, pj.PJSUA_INVALID_ID, self, key)
        self._calls[key] = call
        try:
            # the phone has a UDP transport only: said in the URI, pjsip does not first try
            # TCP and log PJSIP_EUNSUPTRANSPORT on every dial (found using the demo)
            call.makeCall(f"sip:{number}@{self._registrar_host()};transport=udp", pj.CallOpParam(True))
        except Exception:
            self._calls.pop(key, None)
            call.phone = None
            self.on_event(CallState(key, "ended", 0, "could not dial"))
            raise

    def _shutdown(self) -> None:
        import pjsua2 as pj

        try:
            self._hang_up_all(pj)
            deadline = 25   # ~0.5 s: let BYEs and the un-REGISTER go out
            if self._account is not None:
                try:
                    self._account.setRegistration(False)
                except Exception:
                    pass
            while deadline and self._ep is not None:
                self._ep.libHandleEvents(PUMP_MS)
                deadline -= 1
        finally:
            self._destroy()

    def _hang_up_all(self, pj) -> None:
        # A function of its own: a loop variable left in _shutdown's frame would keep the
        # last Call alive past libDestroy(), and its C++ destructor then asserts
        # (pjsua_call_set_user_data: call_id>=0) and aborts the seat: seen when a seat was
        # stopped while a call was still ringing at it.
        for call in list(self._calls.values()):
            try:
                call.hangup(pj.CallOpParam(True))
            except Exception:
                pass

    def _destroy(self) -> None:
        self._calls.clear()
        if self.headset is not None:
            self.headset.stop()   # its port goes before the library does
        if self._account is not None:
            self._account.phone = None
            self._account = None
        gc.collect()
        if self._ep is not None:
            try:
                self._ep.libDestroy()
            finally:
                self._ep = None
                self._log_writer = None   # pjsip writes its last lines while being destroyed


@contextmanager
def _stdout_silenced():
    """File descriptor 1 on /dev/null for a moment (C code printing before it can be told not
    to); the seat's screen is not drawn yet when the phone starts."""
    import ctypes
    import os
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        ctypes.CDLL(None).fflush(None)   # what C buffered goes to /dev/null, not later to the screen
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


@functools.cache
def _log_writer_class():
    import pjsua2 as pj

    pjsip_log = logging.getLogger("hotline.pjsip")
    levels = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO}

    class LogWriter(pj.LogWriter):
        def write(self, entry):
            pjsip_log.log(levels.get(entry.level, logging.DEBUG), "%s", entry.msg.rstrip())

    return LogWriter


def _unhold(pj):
    param = pj.CallOpParam(True)
    param.opt.flag = pj.PJSUA_CALL_UNHOLD
    return param


@functools.cache
def _account_class():
    import pjsua2 as pj

    class Account(pj.Account):
        def __init__(self, phone: Softphone, _pj):
            super().__init__()
            self.phone = phone

        def onRegState(self, prm):
            if self.phone is not None:
                self.phone.on_event(Registration(prm.code // 100 == 2 and prm.expiration > 0, prm.code,
                                                 str(prm.reason)))

        def onIncomingCall(self, prm):
            phone = self.phone
            if phone is None:
                return
            # pjsua2 reuses a call id as soon as a call is gone, and the last call's
            # DISCONNECTED can come after the next INVITE: keyed by id, the new call's only
            # reference would be dropped with the old one (pjproject #3856). Our own keys.
            with phone._keys:
                phone._next_key += 1
                key = phone._next_key
            call = _call_class()(self, prm.callId, phone, key)
            phone._calls[call.key] = call
            info = call.getInfo()
            number, display = caller_of(info.remoteUri)
            phone.on_event(IncomingCall(call.key, number, display, parse_headers(prm.rdata.wholeMsg)))
            ringing = pj.CallOpParam(True)
            ringing.statusCode = 180
            call.answer(ringing)

    return Account


@functools.cache
def _call_class():
    import pjsua2 as pj

    class Call(pj.Call):
        def __init__(self, account, call_id: int, phone: Softphone, key: int):
            super().__init__(account, call_id)
            self.phone, self.key = phone, key
            self.muted = False
            self.held = False

        def onCallState(self, prm):
            info = self.getInfo()
            state = {pj.PJSIP_INV_STATE_INCOMING: "ringing", pj.PJSIP_INV_STATE_EARLY: "ringing",
                     pj.PJSIP_INV_STATE_CONNECTING: "connecting", pj.PJSIP_INV_STATE_CONFIRMED: "connected",
                     pj.PJSIP_INV_STATE_DISCONNECTED: "ended"}.get(info.state)
            if state is None:
                return
            phone = self.phone
            if phone is None:
                return
            if state == "ended":
                phone._calls.pop(self.key, None)   # the one strong reference goes here
                self.phone = None
            phone.on_event(CallState(self.key, state, info.lastStatusCode, info.lastReason))

        def onCallMediaState(self, prm):
            self.apply_mute()   # after hold/unhold the call's audio port can be a new one
            phone = self.phone
            headset = phone.headset if phone is not None else None
            if headset is not None and headset.port is not None:
                for index in self.active_audio():
                    headset.connect(self.getAudioMedia(index))
            held = self.on_local_hold()
            if phone is not None and held != self.held:
                self.held = held
                phone.on_event(CallHeld(self.key, held))

        def on_local_hold(self) -> bool:
            info = self.getInfo()
            media = info.media
            return any(media[index].type == pj.PJMEDIA_TYPE_AUDIO and media[index].status == pj.PJSUA_CALL_MEDIA_LOCAL_HOLD
                       for index in range(len(media)))

        def apply_mute(self):
            # The conference bridge's level towards the call's port is what the caller hears.
            for index in self.active_audio():
                self.getAudioMedia(index).adjustTxLevel(0.0 if self.muted else 1.0)

        def active_audio(self) -> list[int]:
            info = self.getInfo()   # held while its media vector is read: SWIG's vector points into it
            media = info.media
            return [index for index in range(len(media))
                    if media[index].type == pj.PJMEDIA_TYPE_AUDIO and media[index].status == pj.PJSUA_CALL_MEDIA_ACTIVE]

    return Call


class _Account:
    """Made on first use on the pump thread (pjsua2 classes are subclassed lazily so this
    module imports without touching pjsua2)."""

    def __new__(cls, phone: Softphone, pj):
        return _account_class()(phone, pj)
