"""The calls of the switch's B2BUA, on the sippy thread: every inbound INVITE is one
`InboundCall`, a sippy UA for the caller's leg and one for each agent being rung.

The routing core decides everything (who rings, when to stop, when to bridge); a call
only carries it out and reports what the phones did (telephony/sip_bridge.py). The
caller hears 182 Queued until an agent answers. With media (telephony/media.py) the
audio flows through the switch's RTPproxy: the 182 carries its SDP and the caller hears
queue music (early media), agents are offered its address, answered calls are
recorded. Without it (no rtp.io, or it failed) SDP is passed between the phones.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import TYPE_CHECKING, Any

from telephony.sdp import answer_sdp, discard_sdp, narrow_sdp, sdp_address, sdp_holds, telephone_event_pt

if TYPE_CHECKING:
    from telephony.media import MediaSession
    from telephony.sip import SipSide

log = logging.getLogger("hotline.sip")

# Agent replies that mean "not now" rather than "did not answer": no miss is counted.
_REFUSALS = (486, 600, 603)


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
        self.offer_asked_at: float | None = None   # when the proxy was asked for the agents' SDP
        self.recorded = False
        self.in_menu = False
        self.waiting = False         # the core queued the caller: queue music until an agent answers
        self.number = self.dialled = self.caller_name = ""
        self.seat = ""   # the agent whose phone placed this call (authenticated), for outbound calls
        self.over = False
        self.held = False           # the agent's phone put the other party on hold
        self._sdp_version = 0       # raised in every answer of ours to a re-INVITE (RFC 3264 8)
        # SDP passed through (no media): a re-INVITE from one leg is relayed to the other and
        # the answer brought back: leg name ("caller" or an ext) -> the UA waiting for it
        self._relayed: dict[str, Any] = {}
        # a re-INVITE from an agent who answered a moment ago, or from the caller their answer
        # connected (_answer_caller_now), before the core's bridge: handled once it comes
        self._early_reinvite: tuple | None = None

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
            if self.connected is None and self.answers and not self.over:
                self._early_reinvite = ("caller", ua, event.getData())   # (a seat holding at once)
            else:
                self._reinvited("caller", ua, event.getData())
        elif "caller" in self._relayed and isinstance(event, (CCEventConnect, CCEventFail)):
            self._relay_answer("caller", event)   # the caller's answer to a re-INVITE we relayed
        elif isinstance(event, (CCEventDisconnect, CCEventFail)):
            self._finish()
            self.side.to_core.sip_hung_up(self.id, by="caller")

    def _queued(self) -> None:
        from sippy.CCEvents import CCEventRing

        if self.over or self.connected is not None:
            return
        if self.caller.state is not None and self.caller.state.connected:
            # answered already (its agent's 200 went out between this being asked and now):
            # a 182 after the 200 is a protocol error a phone may end the call on
            return
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
            pool = self.side.media
            if pool is None:
                raise RuntimeError("no media engine")
            try:
                engine = pool.choose()
            except RuntimeError:   # every media node is down: said once per node, not per call
                log.info("media: no media node answers; the audio of %s passes between the phones", self.id)
                self._unanchored()
                return
            self.media = media = MediaSession(engine, self.id)
            self.offer_asked_at = time.monotonic()
            media.caller_offer(narrowed, self._agent_offer_ready)
        except Exception:  # the proxy is unusable: connect the phones directly
            log.exception("media: cannot anchor %s; passing SDP through", self.id)
            self._unanchored()

    def offer_overdue(self, now: float, limit_s: float) -> bool:
        """Rings waiting for a proxy that has not answered this call's offer in `limit_s`."""
        return (not self.over and self.media is not None and self.agent_offer is None
                and self.offer_asked_at is not None and now - self.offer_asked_at > limit_s)

    def give_up_on_media(self) -> None:
        """The proxy never answered this call's offer: its phones talk directly, and the
        agents it waits for are rung now (without, they would ring out unrung)."""
        log.error("media: the proxy has not answered the offer of %s; its audio passes between the phones", self.id)
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
        self.media.agent_answer(discard_sdp(self.offer), self._caller_sdp_ready)
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
        elif self.waiting and self.connected is None and self.media is not None:
            self.media.play_to_caller("queue-music")
        # else: the core has not said yet whether the caller waits in a queue or hears the
        # menu (found by a live run's audio callers: menu callers heard queue music first)

    def wait_in_queue(self) -> None:
        self.waiting = True
        if self.media is not None and self.caller_sdp is not None and self.connected is None and not self.over \
                and not self.in_menu:
            self.media.play_to_caller("queue-music")

    # --- the voice menu -------------------------------------------------------------------------
    def start_menu(self) -> None:
        self.in_menu = True
        if self.media is not None and self.caller_sdp is not None:
            self._play_menu()
        # else: played as soon as the proxy has the caller's side (_caller_sdp_ready)

    def _play_menu(self) -> None:
        address = sdp_address(self.offer)
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
        self.waiting = True
        if self.media is not None and not self.over and self.connected is None:
            self.media.stop_playing()
            self.media.play_to_caller("queue-music")

    def _ring_pending(self) -> None:
        pending, self.pending_rings = self.pending_rings, []
        for args in pending:
            self.ring(*args)

    # --- what the routing core asks --------------------------------------------------------
    def ring(self, ext: str, contact: tuple[str, int], headers: dict[str, str], caller_name: str = "") -> None:
        from sippy.CCEvents import CCEventTry
        from sippy.SipCallId import SipCallId
        from sippy.UA import UA

        if self.over:
            return
        if self.media is not None and self.agent_offer is None:
            self.pending_rings.append((ext, contact, headers, caller_name))   # the proxy has not answered yet
            return
        leg = UA(self.side.config, event_cb=lambda event, ua: self._agent_event(ext, event, ua),
                 nh_address=contact)
        leg.lContact = _contact(self.side)
        self.agents[ext] = leg
        offer = self.agent_offer if self.media is not None else self.offer
        body = offer.getCopy() if offer is not None else None
        # A seat is called by its extension; a trunk leg is named "trunk:NUMBER" and asks for NUMBER.
        callee = ext.partition(":")[2] or ext
        # the From's display name: the resident's name from records when the switch knows
        # the caller (desk phones show it; the seat draws it before the records arrive)
        invite = CCEventTry((SipCallId(), self.number, callee, body, None, caller_name or self.caller_name))
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
        if early is not None and early[0] in (ext, "caller"):
            self._reinvited(*early)

    def _answer_caller_now(self) -> None:
        """An agent answered: with the media anchored, the caller's 200 (the proxy's SDP,
        known already) goes out in this same instant, on this thread, not after the
        core's bridge comes back. A caller's CANCEL is then either handled before (they
        gave up: nobody answered them) or too late (answered; they hang up at once).
        Found by a live run: a CANCEL that arrived while the bridge was on its way got a
        487, so the caller had given up, while the row said answered."""
        from sippy.CCEvents import CCEventConnect

        if self.media is None or self.caller_sdp is None or self.over or self.in_menu:
            return   # without the proxy, the caller's 200 needs the agent's SDP: at the bridge
        if self.caller.state is not None and self.caller.state.connected:
            return   # answered before (a transfer, a requeue): nothing changes for the caller
        self.caller.recvEvent(CCEventConnect((200, "OK", self.caller_sdp.getCopy())))

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
        from sippy.CCEvents import CCEventDisconnect, CCEventFail

        leg = self.agents.pop(ext, None)
        self.answers.pop(ext, None)
        if leg is not None and not leg.isDead():
            if ext != self.connected:
                self.side.leaving(ext, leg)   # a CANCEL: the next ring there waits for its answer
            leg.recvEvent(CCEventDisconnect())
        early = self._early_reinvite
        if early is not None and early[0] == "caller" and self.connected is None and not self.answers:
            self._early_reinvite = None   # the answer was refused: nobody to change the call with
            early[1].recvEvent(CCEventFail((488, "Not Acceptable Here")))
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
            _code, _reason, body = event.getData()
            self.answers[ext] = body
            self._answer_caller_now()
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
                address = sdp_address(self.offer)
                self.side.to_core.recording_done(self.id, media.recording_names(), address[1] if address else None)
