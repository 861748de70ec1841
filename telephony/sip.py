"""The switch's SIP side: sippy's event loop in its own thread, the registrar and the B2BUA.

Threads: sippy runs `ED2.loop()` on one thread it owns; everything that touches sippy
objects runs there. What the switch must know (a seat registered or went away) is
posted into asyncio with `loop.call_soon_threadsafe`; asyncio posts into sippy with
`ED2.callFromThread`. Records are read here only through the secret lookup, which opens
its own connection (one connection per thread).

Agents register with their extension and PIN (digest, realm "hotline"); the registrar
checks the response against the HA1 stored in records and never sees the PIN. Nonces,
nonce counts, stale challenges and lockouts after wrong PINs: telephony/digest.py.

Calls: every inbound INVITE is one `InboundCall`, a sippy UA for the caller's leg and
one for each agent being rung. The routing core decides everything (who rings, when
to stop, when to bridge); this side only carries it out and reports what the phones
did. The caller hears 182 Queued until an agent answers. With media (telephony/media.py)
the audio flows through the switch's RTPproxy: the 182 carries its SDP and the caller
hears queue music (early media), agents are offered its address, answered calls are
recorded. Without it (no rtp.io, or it failed) SDP is passed between the phones.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from telephony.digest import Credentials, DigestGuard, Verdict
from telephony.sip_bridge import CallReports, ReportsToLoop
from telephony.switchconfig import SipSettings

if TYPE_CHECKING:
    from telephony.media import MediaEngine, MediaSession

log = logging.getLogger("hotline.sip")

REALM = "hotline"
EXPIRY_CHECK_S = 1.0   # a seat that stopped refreshing is offered no calls within this (after its grace)
# A seat in a call is asked OPTIONS (within the call's dialog) every qualify_s (a setting);
# when qualify_misses in a row go unanswered, or it answers 481, its phone is taken for
# gone (killed, unplugged, restarted) and its caller is queued again: a caller hears
# silence for at most qualify_s * (qualify_misses + 1) seconds. Asterisk's qualify is the
# same idea (out of dialog, for every peer, once a minute).
QUALIFY_TICK_S = 0.1
PRUNE_S = 60.0   # old nonces and failed-login counts are forgotten this often


@dataclass(frozen=True)
class Binding:
    ext: str
    host: str            # where the phone says it can be called (its Contact)
    port: int
    expires_at: float    # the expiry granted, plus the grace (SipSettings.registration_grace_s)
    source: tuple[str, int] = ("", 0)   # where its REGISTER came from: its INVITEs come from there too


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


def _sdp_address(body) -> tuple[str, int] | None:
    """(IP, audio port) an SDP body says its media comes from."""
    import re

    text = str(body.content) if body is not None else ""
    host = re.search(r"^c=IN IP4 (\S+)", text, re.M)
    port = re.search(r"^m=audio (\d+)", text, re.M)
    return (host.group(1), int(port.group(1))) if host and port else None


def narrow_sdp(offer):
    """The offer cut down to one codec the switch can play to (PCMU or PCMA, whichever the
    phone prefers) and its telephone-event at 8 kHz for keys; None if it offers neither."""
    import re

    from sippy.MsgBody import MsgBody

    text = str(offer.content).replace("\r\n", "\n")
    media = re.search(r"^m=audio (\d+) (\S+) ([\d ]+)$", text, re.M)
    if media is None:
        return None
    offered = media.group(3).split()
    rtpmap = dict(re.findall(r"^a=rtpmap:(\d+) (\S+)$", text, re.M))
    voice = next((pt for pt in offered if pt in ("0", "8")
                  or rtpmap.get(pt, "").upper() in ("PCMU/8000", "PCMA/8000")), None)
    if voice is None:
        return None
    keys = [pt for pt in offered if rtpmap.get(pt, "").lower() == "telephone-event/8000"]
    kept = [voice, *keys]
    lines = []
    for line in text.split("\n"):
        attribute = re.match(r"^a=(rtpmap|fmtp):(\d+) ", line)
        if attribute and attribute.group(2) not in kept:
            continue
        if line.startswith("m=audio "):
            line = f"m=audio {media.group(1)} {media.group(2)} {' '.join(kept)}"
        if line:
            lines.append(line)
    return MsgBody("\r\n".join(lines) + "\r\n")


def telephone_event_pt(body) -> int:
    """The payload type the phone sends RFC 2833 keys with (101 when it does not say)."""
    import re

    found = re.search(r"^a=rtpmap:(\d+) telephone-event/8000", str(body.content) if body is not None else "",
                      re.M | re.I)
    return int(found.group(1)) if found else 101


def _discard_sdp(offer):
    """The caller's own SDP pointed at the discard port: a peer that hears nothing."""
    import re

    from sippy.MsgBody import MsgBody

    text = str(offer.content)
    text = re.sub(r"^c=IN IP4 \S+", "c=IN IP4 127.0.0.1", text, flags=re.M)
    text = re.sub(r"^m=audio \d+", "m=audio 9", text, flags=re.M)
    return MsgBody(text)


_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


def sdp_holds(body) -> bool:
    """Does this offer put the call on hold (RFC 3264 8.4: sendonly or inactive, or the
    older RFC 2543 way, a connection address of 0.0.0.0)?"""
    import re

    text = str(body.content) if body is not None else ""
    return bool(re.search(r"^a=(sendonly|inactive)\s*$", text, re.M) or re.search(r"^c=IN IP4 0\.0\.0\.0", text, re.M))


def answer_sdp(ours, offer, version_bump: int):
    """Our SDP as the answer to `offer`: the direction that answers it (sendonly ->
    recvonly, inactive -> inactive, else sendrecv), and a newer version in its o= line
    (an answer that changes must say so, or phones ignore it)."""
    import re

    from sippy.MsgBody import MsgBody

    offered = re.findall(r"^a=(sendrecv|sendonly|recvonly|inactive)\s*$", str(offer.content), re.M)
    direction = {"sendonly": "recvonly", "inactive": "inactive", "recvonly": "sendonly"}.get(
        offered[-1] if offered else "sendrecv", "sendrecv")
    if re.search(r"^c=IN IP4 0\.0\.0\.0", str(offer.content), re.M):
        direction = "inactive" if not offered else direction
    lines = [line for line in str(ours.content).replace("\r\n", "\n").split("\n")
             if line and line.removeprefix("a=") not in _DIRECTIONS]

    def newer(match):
        return f"{match.group(1)}{int(match.group(2)) + version_bump}{match.group(3)}"
    lines = [re.sub(r"^(o=\S+ \S+ )(\d+)( .*)$", newer, line) for line in lines]
    lines.append(f"a={direction}")
    return MsgBody("\r\n".join(lines) + "\r\n")


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
        # sippy's objects are Any: sippy publishes no types
        self.agents: dict[str, Any] = {}     # ext -> the agent leg's UA (ringing or talking)
        self.answers: dict[str, Any] = {}    # ext -> the SDP the agent answered with
        self.connected: str | None = None
        self.offer = None
        # Media anchored in the switch's RTPproxy (None: SDP passed through between phones).
        self.media: MediaSession | None = None
        self.agent_offer = None      # the proxy's SDP for agents (None until the proxy said)
        self.caller_sdp = None       # the proxy's SDP for the caller (early media and the 200)
        self.pending_rings: list[tuple] = []
        self.recorded = False
        self.in_menu = False
        self.number = self.dialled = self.caller_name = ""
        self.seat = ""   # the agent whose phone placed this call (authenticated), for outbound calls
        self.over = False
        self.held = False           # the agent's phone put the other party on hold
        self._sdp_version = 0       # raised in every answer of ours to a re-INVITE (RFC 3264 8)
        # SDP passed through (no media): a re-INVITE from one leg is relayed to the other and
        # the answer brought back: leg name ("caller" or an ext) -> the UA waiting for it
        self._relayed: dict[str, Any] = {}
        self._early_reinvite: tuple | None = None   # a re-INVITE from an agent who answered a moment ago

    # --- the caller's leg --------------------------------------------------------------
    def _caller_event(self, event, ua) -> None:
        from sippy.CCEvents import CCEventConnect, CCEventDisconnect, CCEventFail, CCEventTry, CCEventUpdate

        if isinstance(event, CCEventTry) and self.offer is None:
            _cid, cli, cld, body, _auth, name = event.getData()
            self.offer, self.number, self.dialled, self.caller_name = body, cli or "", cld or "", name or ""
            if self.side.media is not None and body is not None:
                self._anchor(body)
            else:
                self.side.run_later(self._queued)
            # Routing starts at once; a ring waits for the proxy's SDP if it must.
            self.side.to_core.caller_arrived(self.id, self.number, self.dialled, self.seat)
        elif isinstance(event, CCEventUpdate):
            self._reinvited("caller", ua, event.getData())
        elif "caller" in self._relayed and isinstance(event, (CCEventConnect, CCEventFail)):
            self._relay_answer("caller", event)   # the caller's answer to a re-INVITE we relayed
        elif isinstance(event, (CCEventDisconnect, CCEventFail)):
            self._finish()
            self.side.to_core.sip_hung_up(self.id, by="caller")

    def _queued(self) -> None:
        from sippy.CCEvents import CCEventRing

        if not self.over and self.connected is None:
            body = self.caller_sdp.getCopy() if self.caller_sdp is not None else None
            self.caller.recvEvent(CCEventRing((182, "Queued", body)))

    # --- media ----------------------------------------------------------------------------
    def _anchor(self, offer) -> None:
        """Put the call's audio through the proxy: agents get its address, the caller hears
        queue music from it at once (early media on the 182)."""
        from telephony.media import MediaSession

        narrowed = narrow_sdp(offer)
        if narrowed is None:
            log.info("media: %s offers neither PCMU nor PCMA; its audio is passed through", self.id)
            self._unanchored()
            return
        # Everyone on the call speaks the one codec the caller heard the switch answer in
        # the 182 (RFC 3261 13.2.1: the first SDP a phone receives is the answer), and one
        # the switch can play its music in: RTPproxy relays, it does not transcode.
        self.offer = narrowed
        try:
            engine = self.side.media
            if engine is None:
                raise RuntimeError("no media engine")
            self.media = media = MediaSession(engine, self.id)
            media.caller_offer(narrowed, self._agent_offer_ready)
        except Exception:  # the proxy is unusable: connect the phones directly
            log.exception("media: cannot anchor %s; passing SDP through", self.id)
            self._unanchored()

    def _unanchored(self) -> None:
        self.media = None
        self.side.run_later(self._queued)
        self._ring_pending()

    def _agent_offer_ready(self, rewritten) -> None:
        if self.over or self.media is None:
            return
        if rewritten is None:
            log.warning("media: the proxy refused %s; passing SDP through", self.id)
            self._unanchored()
            return
        self.agent_offer = rewritten
        # The caller-facing side needs a peer before anyone answers: a placeholder that
        # sends the caller's audio nowhere (discard port) until an agent's SDP replaces it.
        # Commands to the proxy run in order, so this is done before any agent's answer.
        self.media.agent_answer(_discard_sdp(self.offer), self._caller_sdp_ready)
        self._ring_pending()   # agents need only their side's address

    def _caller_sdp_ready(self, rewritten) -> None:
        if self.over:
            return
        if rewritten is None:
            log.warning("media: no caller-side address for %s; passing SDP through", self.id)
            self._unanchored()
            return
        self.caller_sdp = rewritten
        self._queued()
        if self.in_menu:
            self._play_menu()
        elif self.connected is None and self.media is not None:
            self.media.play_to_caller("queue-music")

    # --- the voice menu -------------------------------------------------------------------------
    def start_menu(self) -> None:
        self.in_menu = True
        if self.media is not None and self.caller_sdp is not None:
            self._play_menu()
        # else: played as soon as the proxy has the caller's side (_caller_sdp_ready)

    def _play_menu(self) -> None:
        address = _sdp_address(self.offer)
        if self.over or self.media is None or address is None:
            return
        self.media.stop_playing()
        self.media.play_to_caller("menu")
        self.media.listen_for_keys(self._key, *address, done=lambda ok: None, payload=telephone_event_pt(self.offer))

    def _key(self, digit: str) -> None:
        if self.in_menu and not self.over:
            self.side.to_core.menu_key(self.id, digit)

    def end_menu(self) -> None:
        self.in_menu = False
        if self.media is not None and not self.over and self.connected is None:
            self.media.stop_playing()
            self.media.play_to_caller("queue-music")

    def _ring_pending(self) -> None:
        pending, self.pending_rings = self.pending_rings, []
        for args in pending:
            self.ring(*args)

    # --- what the routing core asks --------------------------------------------------------
    def ring(self, ext: str, contact: tuple[str, int], headers: dict[str, str]) -> None:
        from sippy.CCEvents import CCEventTry
        from sippy.SipCallId import SipCallId
        from sippy.UA import UA

        if self.over:
            return
        if self.media is not None and self.agent_offer is None:
            self.pending_rings.append((ext, contact, headers))   # the proxy has not answered yet
            return
        leg = UA(self.side.config, event_cb=lambda event, ua: self._agent_event(ext, event, ua),
                 nh_address=contact)
        leg.lContact = _contact(self.side)
        self.agents[ext] = leg
        offer = self.agent_offer if self.media is not None else self.offer
        body = offer.getCopy() if offer is not None else None
        # A seat is called by its extension; a trunk leg is named "trunk:NUMBER" and asks for NUMBER.
        callee = ext.partition(":")[2] or ext
        invite = CCEventTry((SipCallId(), self.number, callee, body, None, self.caller_name))
        invite.extra_headers = tuple(_header(name, value) for name, value in headers.items())
        leg.recvEvent(invite)

    def bridge(self, ext: str) -> None:
        if self.over or ext not in self.agents:
            self.hang_up_agent(ext)
            return
        self.connected = ext
        if ext.isdigit():   # a seat: asked OPTIONS to notice it dying; the trunk is not a seat
            self.side.watch(ext, self)
        answer = self.answers.get(ext)
        if self.media is not None and answer is not None:
            # The agent's address goes to the proxy; the caller keeps the proxy's.
            self.media.stop_playing()
            self.media.agent_answer(answer, lambda _rewritten: self._connect_caller(ext, self.caller_sdp))
            if self.side.record_calls and not self.recorded:
                self.recorded = True
                self.media.record()
        else:
            self._connect_caller(ext, answer)
        early, self._early_reinvite = self._early_reinvite, None
        if early is not None and early[0] == ext:
            self._reinvited(*early)

    def _connect_caller(self, ext: str, body) -> None:
        from sippy.CCEvents import CCEventConnect, CCEventUpdate

        if self.over or self.connected != ext:
            return
        body = body.getCopy() if body is not None else None
        if self.caller.state is not None and self.caller.state.connected:
            if self.media is None:
                # Requeued after its agent vanished: point the caller's media at the new
                # agent with a re-INVITE (with the proxy in between, nothing changes for it).
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
            self.release(480, "Temporarily Unavailable")   # a BYE, or this if the caller's 200 is not out yet

    def end_for_agent(self, ext: str) -> None:
        """The agent hung up at their seat, not on their phone (a desk phone the seat does
        not drive): both legs are released as if the phone had sent its BYE."""
        if self.over or ext not in (self.seat, self.connected):
            return
        self.release(487, "Request Terminated")   # a BYE to an answered caller, else this
        self.side.to_core.sip_hung_up(self.id, by="agent")

    def hold_for_agent(self, ext: str, held: bool) -> None:
        """Hold asked for at the seat: the other party hears the hold music from the
        switch's media (the agent's phone is not re-INVITEd; it may not be ours to drive)."""
        if self.over or self.media is None or ext not in (self.seat, self.connected) or held == self.held:
            return
        far = "agent" if self.seat else "caller"   # who the agent is talking to
        if held:
            self.media.play_to(far, "hold-music")
        else:
            self.media.stop_playing(far)
        self.held = held
        self.side.to_core.sip_hold(self.id, ext, held)

    def drop_agent(self, ext: str) -> None:
        """Let go of an agent whose phone is gone; the caller stays, queued again."""
        from sippy.CCEvents import CCEventDisconnect

        leg = self.agents.pop(ext, None)
        self.answers.pop(ext, None)
        if ext == self.connected:
            self.connected = None
            self.side.unwatch(ext)
            if self.media is not None:
                self.media.play_to_caller("queue-music")   # waiting again
        if leg is not None and not leg.isDead():
            leg.recvEvent(CCEventDisconnect())  # a BYE nobody may answer; sippy gives up on its own

    def voicemail(self, max_s: float) -> None:
        """Nobody can take the call: answer, play the voicemail prompt and beep, record
        what the caller says until they hang up (or `max_s`)."""
        from sippy.CCEvents import CCEventConnect
        from sippy.Time.Timeout import Timeout

        if self.over:
            return
        if self.media is None or self.caller_sdp is None:
            self.release(480, "Temporarily Unavailable")   # nothing to record with
            return
        self.in_menu = False
        self.media.stop_playing()
        if not (self.caller.state is not None and self.caller.state.connected):
            self.caller.recvEvent(CCEventConnect((200, "OK", self.caller_sdp.getCopy())))
        self.media.play_to_caller("voicemail", loop=False)
        if not self.recorded:
            self.recorded = True
            self.media.record()
        Timeout(lambda: self.release(200, "Message too long"), max_s)

    def release(self, code: int, reason: str) -> None:
        from sippy.CCEvents import CCEventDisconnect, CCEventFail

        if self.over:
            return
        answered = self.caller.state is not None and self.caller.state.connected
        self._finish()
        self.caller.recvEvent(CCEventDisconnect() if answered else CCEventFail((code, reason)))

    # --- re-INVITEs: hold, unhold, a phone's new address ------------------------------------
    def _reinvited(self, leg: str, ua, offer) -> None:
        """A connected leg sent a re-INVITE. With media anchored it is answered here (the
        proxy learns the phone's address, the phone keeps ours); when it comes from the
        agent's phone and holds the call, the other party hears music until it is taken
        off hold. Without media it is relayed to the other leg, as a B2BUA does."""
        from sippy.CCEvents import CCEventFail, CCEventUpdate

        seat_leg = (leg == "caller") == bool(self.seat)   # the leg of our agent's phone
        other = self._other_leg(leg)
        if offer is None or other is None:
            ua.recvEvent(CCEventFail((488, "Not Acceptable Here")))
            return
        held = sdp_holds(offer)
        if self.media is not None:
            ours = self.caller_sdp if leg == "caller" else self.agent_offer
            update = self.media.caller_offer if leg == "caller" else self.media.agent_answer
            update(offer, lambda _rewritten: self._answer_reinvite(ua, ours, offer))
            if seat_leg and held != self.held:
                far = "agent" if leg == "caller" else "caller"   # who the seat is talking to
                if held:
                    self.media.play_to(far, "hold-music")
                else:
                    self.media.stop_playing(far)
        else:
            self._relayed[other[0]] = ua
            other[1].recvEvent(CCEventUpdate(offer.getCopy()))
        if seat_leg and held != self.held:
            self.held = held
            self.side.to_core.sip_hold(self.id, self.seat or self.connected or "", held)

    def _other_leg(self, leg: str):
        if leg == "caller":
            return (self.connected, self.agents[self.connected]) if self.connected in self.agents else None
        return ("caller", self.caller)

    def _answer_reinvite(self, ua, ours, offer) -> None:
        from sippy.CCEvents import CCEventConnect

        if self.over or ours is None:
            return
        self._sdp_version += 1
        ua.recvEvent(CCEventConnect((200, "OK", answer_sdp(ours, offer, self._sdp_version))))

    def _relay_answer(self, leg: str, event) -> None:
        from sippy.CCEvents import CCEventConnect, CCEventFail

        waiting = self._relayed.pop(leg)
        if isinstance(event, CCEventConnect):
            body = event.getData()[2]
            waiting.recvEvent(CCEventConnect((200, "OK", body.getCopy() if body is not None else None)))
        else:
            waiting.recvEvent(CCEventFail(event.getData()[:2]))

    # --- an agent's leg ---------------------------------------------------------------------
    def _agent_event(self, ext: str, event, ua) -> None:
        from sippy.CCEvents import CCEventConnect, CCEventDisconnect, CCEventFail, CCEventUpdate

        if self.agents.get(ext) is not ua:
            return  # a leg we already let go of
        if isinstance(event, CCEventUpdate):
            if ext == self.connected:
                self._reinvited(ext, ua, event.getData())
            elif ext in self.answers:   # answered, bridge on its way from the core: after it
                self._early_reinvite = (ext, ua, event.getData())
            else:   # not (or no longer) bridged: nothing to change
                ua.recvEvent(CCEventFail((488, "Not Acceptable Here")))
        elif ext in self._relayed and isinstance(event, (CCEventConnect, CCEventFail)):
            self._relay_answer(ext, event)   # the leg's answer to a re-INVITE we relayed
        elif isinstance(event, CCEventConnect):
            _lower_transport(ua)
            _code, _reason, body = event.getData()
            self.answers[ext] = body
            self.side.to_core.sip_answered(self.id, ext)
        elif isinstance(event, CCEventFail):
            code = event.getData()[0]
            del self.agents[ext]
            self.side.to_core.sip_not_answered(self.id, ext, counts=code not in _REFUSALS)
        elif isinstance(event, CCEventDisconnect):
            del self.agents[ext]
            if ext == self.connected:  # the agent hung up
                self.side.unwatch(ext)
                self._finish()
                self.caller.recvEvent(CCEventDisconnect())
                self.side.to_core.sip_hung_up(self.id, by="agent")
            else:
                self.side.to_core.sip_not_answered(self.id, ext, counts=True)

    def _finish(self) -> None:
        """The call is over: every agent leg still up is let go; the record is the core's."""
        from sippy.CCEvents import CCEventDisconnect

        if self.over:
            return
        self.over = True
        if self.connected is not None:
            self.side.unwatch(self.connected)
        legs, self.agents = self.agents, {}
        for leg in legs.values():
            if not leg.isDead():
                leg.recvEvent(CCEventDisconnect())
        self.side.calls.pop(self.id, None)
        if self.media is not None:
            media, self.media = self.media, None
            media.close()
            if self.recorded:
                address = _sdp_address(self.offer)
                self.side.to_core.recording_done(self.id, media.recording_names(), address[1] if address else None)


class SipSide:
    """sippy on a thread of its own: registrar and B2BUA. The `Legs` of telephony/switchcore."""

    def __init__(self, host: str, port: int, *, secret_of: Callable[[str], str | None],
                 loop: asyncio.AbstractEventLoop, on_binding: Callable[[Binding | None, str], None],
                 reports: CallReports | None = None, clock: Callable[[], float] = time.time,
                 media_dir: str | Path | None = None, record_calls: bool = True,
                 settings: SipSettings | None = None):
        # sippy logs every message unless told otherwise; warnings are enough for a switch.
        os.environ.setdefault("SIPLOG_LVL", "WARN")
        os.environ.setdefault("SIPLOG_BEND", "stderr")
        self.host, self.port = host, port
        self.secret_of, self.loop, self.on_binding, self.clock = secret_of, loop, on_binding, clock
        self.settings = settings or SipSettings()
        self.guard = DigestGuard(REALM, nonce_s=self.settings.nonce_s, clock=clock,
                                 failures_per_ext=self.settings.auth_failures_per_ext,
                                 failures_per_address=self.settings.auth_failures_per_address,
                                 window_s=self.settings.auth_window_s, lock_s=self.settings.auth_lock_s,
                                 on_lock=self._locked_out)
        self.bindings: dict[str, Binding] = {}   # touched on the sippy thread only
        self.calls: dict[str, InboundCall] = {}  # likewise
        # seat in a call -> (call, OPTIONS unanswered in a row, when to ask next)
        self.watched: dict[str, tuple[InboundCall, int, float]] = {}
        self.reports = reports
        self.to_core = ReportsToLoop(loop, reports, self.release)   # for this (the sippy) thread
        self.media_dir = Path(media_dir) if media_dir is not None else None
        self.record_calls = record_calls
        self.media: MediaEngine | None = None   # once RTPproxy answers; None: SDP passed through
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
        Timeout(self._expire_bindings, EXPIRY_CHECK_S, -1)
        Timeout(self._qualify, QUALIFY_TICK_S, -1)
        Timeout(self.guard.prune, PRUNE_S, -1)
        if self.media_dir is not None:
            self._start_media(self.media_dir)
        else:
            ED2.callFromThread(self._started.set)
        ED2.loop()

    def _start_media(self, media_dir: Path) -> None:
        """RTPproxy in this process; until it answers (or if it cannot start) calls pass
        SDP through. SIP is ready only once this is settled, so the first call is anchored."""
        from telephony.media import MediaEngine

        def ready(ok: bool) -> None:
            if ok:
                self.media = engine
                log.info("media: anchored in RTPproxy (rtp.io); recordings in %s", media_dir / "raw")
            else:
                log.warning("media: RTPproxy did not answer; SDP is passed through between phones")
            self.to_core.media_ready(ok)
            self._started.set()
        try:
            engine = MediaEngine(self.config, recordings=media_dir / "raw", sounds=media_dir / "sounds",
                                 rtp_ports=self.settings.rtp_ports)
            engine.start(ready)
        except Exception as exc:  # no rtp.io wheel, or it would not start: calls still connect
            log.warning("media: cannot start RTPproxy (%s); SDP is passed through between phones", exc)
            self.to_core.media_ready(False)
            self._started.set()

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
                return (self._register(req), None, None)
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

    def _challenge(self, req, *, proxy: bool, stale: bool = False):
        from sippy.SipHeader import SipHeader

        response = req.genResponse(407 if proxy else 401, "Proxy Authentication Required" if proxy else "Unauthorized")
        name = "proxy-authenticate" if proxy else "www-authenticate"
        response.appendHeader(SipHeader(name=name, bodys=self.guard.challenge(stale=stale)))
        return response

    def _authenticate(self, req, ext: str, method: str, *, proxy: bool):
        """None if `req` carries good digest credentials of `ext`, else the response to send
        (a challenge, stale or fresh, or 403)."""
        header = "proxy-authorization" if proxy else "authorization"
        if req.countHFs(header) == 0:
            return self._challenge(req, proxy=proxy)
        source = req.getSource()
        binding = self.bindings.get(ext)
        verdict = self.guard.check(Credentials.from_sippy(req.getHFBody(header)), ext=ext, ha1=self.secret_of(ext),
                                   method=method, address=source[0],
                                   registered_here=binding is not None and binding.source[0] == source[0])
        if verdict is Verdict.OK:
            return None
        if verdict is Verdict.STALE:
            return self._challenge(req, proxy=proxy, stale=True)
        if verdict is Verdict.LOCKED:
            log.info("SIP: %s for %r from %s refused: locked out after too many wrong credentials",
                     method, ext, source[0])
            return self._refuse(req, 403, "Forbidden (too many wrong credentials, try later)")
        log.warning("SIP: %s for %r from %s:%d refused: wrong credentials", method, ext, *source)
        return self._refuse(req, 403, "Forbidden")

    def _locked_out(self, kind: str, key: str, seconds: float) -> None:
        log.warning("SIP: %s %s locked out for %.0f s after repeated wrong credentials", kind, key, seconds)
        self.to_core.auth_locked(kind, key, seconds)

    def _register(self, req):
        from sippy.SipHeader import SipHeader

        ext = req.getHFBody("to").getUrl().username or ""
        refusal = self._authenticate(req, ext, "REGISTER", proxy=False)
        if refusal is not None:
            return refusal
        expires = self.settings.granted_expiry(self._asked_expiry(req))
        contacts = req.getHFBodys("contact")
        if expires == 0 or not contacts or contacts[0].asterisk:
            if self.bindings.pop(ext, None) is not None:
                self._post(None, ext)
            return req.genResponse(200, "OK")
        url = contacts[0].getUrl()
        source = req.getSource()
        binding = Binding(ext, str(url.host), int(url.port or 5060),
                          self.clock() + expires + self.settings.registration_grace_s, (source[0], int(source[1])))
        self.bindings[ext] = binding
        self._post(binding, ext)
        response = req.genResponse(200, "OK")
        # RFC 3261 10.3: the 200 lists the bindings now in force (phones such as baresip
        # show "0 bindings" otherwise), each with the expiry the registrar granted.
        contact = contacts[0].getCopy()
        contact.address.params["expires"] = str(expires)
        response.appendHeader(SipHeader(name="contact", body=contact))
        response.appendHeader(SipHeader(name="expires", bodys=str(expires)))
        return response

    @staticmethod
    def _asked_expiry(req) -> float | None:
        contact = req.getHFBodys("contact")
        value = contact[0].address.params.get("expires") if contact and not contact[0].asterisk else None
        if value is None and req.countHFs("expires"):
            value = req.getHFBody("expires").getNum()
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None

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
        self.watched[ext] = (call, 0, time.monotonic() + self.settings.qualify_s)

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
            elif misses >= self.settings.qualify_misses:
                self._lost(ext, "stopped answering")
            else:
                self.watched[ext] = (call, misses + 1, due + self.settings.qualify_s)
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
        self.to_core.seat_lost(ext)

    def _invite(self, req, sip_t):
        if self.reports is None:
            return (self._refuse(req, 503, "Service Unavailable"), None, None)
        seat = ""
        from_user = req.getHFBody("from").getUrl().username or ""
        binding = self.bindings.get(from_user)
        if binding is not None and tuple(req.getSource()) == binding.source:
            # From where that seat's phone registered (address and port): the seat dialling
            # out (a callback). It proves it is the seat, as for REGISTER, before anything
            # goes out the trunk in its name. A resident whose number equals an extension,
            # calling from anywhere else (another port of the same host included), calls in.
            refusal = self._authenticate(req, from_user, "INVITE", proxy=True)
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

    def _post(self, binding: Binding | None, ext: str) -> None:
        self.loop.call_soon_threadsafe(self.on_binding, binding, ext)

    # --- between the threads ------------------------------------------------------------------
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

    def end_for_agent(self, call_id: str, ext: str) -> None:
        self.run_later(self._on_call, call_id, "end_for_agent", ext)

    def hold_for_agent(self, call_id: str, ext: str, held: bool) -> None:
        self.run_later(self._on_call, call_id, "hold_for_agent", ext, held)

    def start_menu(self, call_id: str) -> None:
        self.run_later(self._on_call, call_id, "start_menu")

    def end_menu(self, call_id: str) -> None:
        self.run_later(self._on_call, call_id, "end_menu")

    def release(self, call_id: str, code: int, reason: str) -> None:
        self.run_later(self._on_call, call_id, "release", code, reason)

    def voicemail(self, call_id: str, max_s: float) -> None:
        self.run_later(self._on_call, call_id, "voicemail", max_s)


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
    - a message sippy cannot parse costs one log line (and a 400 where one can be
      addressed), never a traceback on the terminal.
    Made once, on the SIP thread (sippy is imported there only)."""
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
