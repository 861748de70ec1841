"""The switch's registrar, on the sippy thread: who is registered where, and digest
authentication for REGISTER and for a seat's own INVITEs (telephony/digest.py has the
rules: nonces, nonce counts, stale challenges, lockouts after wrong PINs).

Agents register with their extension and PIN (realm "hotline"); the registrar checks
the response against the HA1 stored in records and never sees the PIN.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from telephony.digest import Credentials, DigestGuard, Verdict
from telephony.switchconfig import SipSettings

log = logging.getLogger("hotline.sip")

REALM = "hotline"


@dataclass(frozen=True)
class Binding:
    ext: str
    host: str            # where the phone says it can be called (its Contact)
    port: int
    expires_at: float    # the expiry granted, plus the grace (SipSettings.registration_grace_s)
    source: tuple[str, int] = ("", 0)   # where its REGISTER came from: its INVITEs come from there too


class Registrar:
    """REGISTER and digest checks. `refuse(req, code, reason)` makes a counted refusal;
    `on_binding(binding or None, ext)` tells the core a phone came or went;
    `on_lock(kind, key, seconds)` that an extension or address was locked out."""

    def __init__(self, *, secret_of: Callable[[str], str | None], clock: Callable[[], float], settings: SipSettings,
                 refuse: Callable, on_binding: Callable[[Binding | None, str], None],
                 on_lock: Callable[[str, str, float], None]):
        self.secret_of, self.clock, self.settings = secret_of, clock, settings
        self._refuse, self._on_binding, self._on_lock = refuse, on_binding, on_lock
        self.guard = DigestGuard(REALM, nonce_s=settings.nonce_s, clock=clock,
                                 failures_per_ext=settings.auth_failures_per_ext,
                                 failures_per_address=settings.auth_failures_per_address,
                                 window_s=settings.auth_window_s, lock_s=settings.auth_lock_s,
                                 on_lock=self._locked_out)
        self.bindings: dict[str, Binding] = {}   # touched on the sippy thread only

    def challenge(self, req, *, proxy: bool, stale: bool = False):
        from sippy.SipHeader import SipHeader

        response = req.genResponse(407 if proxy else 401, "Proxy Authentication Required" if proxy else "Unauthorized")
        name = "proxy-authenticate" if proxy else "www-authenticate"
        response.appendHeader(SipHeader(name=name, bodys=self.guard.challenge(stale=stale)))
        return response

    def authenticate(self, req, ext: str, method: str, *, proxy: bool):
        """None if `req` carries good digest credentials of `ext`, else the response to send
        (a challenge, stale or fresh, or 403)."""
        header = "proxy-authorization" if proxy else "authorization"
        if req.countHFs(header) == 0:
            return self.challenge(req, proxy=proxy)
        source = req.getSource()
        binding = self.bindings.get(ext)
        verdict = self.guard.check(Credentials.from_sippy(req.getHFBody(header)), ext=ext, ha1=self.secret_of(ext),
                                   method=method, address=source[0],
                                   registered_here=binding is not None and binding.source[0] == source[0])
        if verdict is Verdict.OK:
            return None
        if verdict is Verdict.STALE:
            return self.challenge(req, proxy=proxy, stale=True)
        if verdict is Verdict.LOCKED:
            log.info("SIP: %s for %r from %s refused: locked out after too many wrong credentials",
                     method, ext, source[0])
            return self._refuse(req, 403, "Forbidden (too many wrong credentials, try later)")
        log.warning("SIP: %s for %r from %s:%d refused: wrong credentials", method, ext, *source)
        return self._refuse(req, 403, "Forbidden")

    def _locked_out(self, kind: str, key: str, seconds: float) -> None:
        log.warning("SIP: %s %s locked out for %.0f s after repeated wrong credentials", kind, key, seconds)
        self._on_lock(kind, key, seconds)

    def register(self, req):
        from sippy.SipHeader import SipHeader

        ext = req.getHFBody("to").getUrl().username or ""
        refusal = self.authenticate(req, ext, "REGISTER", proxy=False)
        if refusal is not None:
            return refusal
        expires = self.settings.granted_expiry(self._asked_expiry(req))
        contacts = req.getHFBodys("contact")
        if expires == 0 or not contacts or contacts[0].asterisk:
            if self.bindings.pop(ext, None) is not None:
                self._on_binding(None, ext)
            return req.genResponse(200, "OK")
        url = contacts[0].getUrl()
        source = req.getSource()
        binding = Binding(ext, str(url.host), int(url.port or 5060),
                          self.clock() + expires + self.settings.registration_grace_s, (source[0], int(source[1])))
        self.bindings[ext] = binding
        self._on_binding(binding, ext)
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

    def expire(self) -> None:
        now = self.clock()
        for ext, binding in list(self.bindings.items()):
            if binding.expires_at <= now:
                del self.bindings[ext]
                log.info("SIP: registration of %s expired", ext)
                self._on_binding(None, ext)
