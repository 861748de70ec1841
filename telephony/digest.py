"""The switch's SIP digest checks (RFC 7616, RFC 2617): nonces, nonce counts, lockouts.

Pure apart from the clock it is given; runs on the sippy thread. What it decides:

- every challenge carries a nonce of ours and offers `qop="auth"`; a nonce lives
  `nonce_s` seconds;
- the right credentials with a nonce that is too old, unknown (the switch restarted) or
  already used (a nonce count that does not grow, or a second use without qop) get a
  new challenge with `stale=true`, never a refusal: phones refresh their registration
  with the last nonce they were given, and a captured request replayed by someone else
  gets nothing but a challenge it cannot answer;
- wrong credentials are refused (403) and counted per extension and per source
  address; too many lock that extension or address out for a while (telephony/lockout.py).
  The address where an extension is registered is not locked out of it by someone
  else's guesses.
"""

from __future__ import annotations

import enum
import hmac
import secrets
from dataclasses import dataclass
from typing import Callable

from telephony.lockout import Lockout

MAX_NONCES = 100_000   # outstanding challenges kept; beyond it the oldest are forgotten (they become stale)


class Verdict(enum.Enum):
    OK = "ok"
    STALE = "stale"      # right credentials, nonce no longer valid: challenge again, stale=true
    WRONG = "wrong"      # wrong credentials (or unknown user): 403
    LOCKED = "locked"    # too many wrong credentials lately: 403 without looking


@dataclass(frozen=True)
class Credentials:
    """An Authorization / Proxy-Authorization header's fields."""
    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    algorithm: str | None = None

    @classmethod
    def from_sippy(cls, header) -> "Credentials":
        """From a parsed sippy SipAuthorization body."""
        if not header.parsed:
            header.parse()
        return cls(header.username or "", header.realm or "", header.nonce or "", header.uri or "",
                   header.response or "", header.qop, header.nc, header.cnonce, header.algorithm)


def response_for(ha1: str, nonce: str, method: str, uri: str, *, qop: str | None = None, nc: str | None = None,
                 cnonce: str | None = None) -> str:
    """The digest response a phone that knows HA1 sends (RFC 2617 3.2.2.1, MD5, qop auth or
    none), computed by sippy's digest code."""
    from sippy.SipAuthorization import DigestCalcResponse

    return DigestCalcResponse("MD5", ha1.encode(), nonce, nc, cnonce, qop, method, uri, None)


class DigestGuard:
    def __init__(self, realm: str, *, nonce_s: float, clock: Callable[[], float], failures_per_ext: int = 5,
                 failures_per_address: int = 20, window_s: float = 300.0, lock_s: float = 300.0,
                 on_lock: Callable[[str, str, float], None] | None = None):
        self.realm, self.nonce_s, self.clock = realm, nonce_s, clock
        self._nonces: dict[str, list] = {}   # nonce -> [issued at, highest nonce count seen, used without qop]
        self.by_ext = Lockout(max_failures=failures_per_ext, window_s=window_s, lock_s=lock_s)
        self.by_address = Lockout(max_failures=failures_per_address, window_s=window_s, lock_s=lock_s)
        # on_lock(kind, key, seconds): "extension"/"address" locked out; the switch logs it
        # and shows it to supervisors
        self.on_lock = on_lock
        self.counts = {verdict: 0 for verdict in Verdict}

    def challenge(self, *, stale: bool = False) -> str:
        """A WWW-Authenticate / Proxy-Authenticate value with a fresh nonce."""
        now = self.clock()
        if len(self._nonces) >= MAX_NONCES:
            self._forget_old(now)
        nonce = secrets.token_hex(16)
        self._nonces[nonce] = [now, 0, False]
        value = f'Digest realm="{self.realm}",nonce="{nonce}",qop="auth",algorithm=MD5'
        return value + ",stale=true" if stale else value

    def check(self, credentials: Credentials, *, ext: str, ha1: str | None, method: str, address: str,
              registered_here: bool = False) -> Verdict:
        """Is this the phone of `ext` (whose stored HA1 is `ha1`, None if there is none)?
        `address`: the request's source host; `registered_here`: `ext` is registered from
        it, so guesses from elsewhere do not lock it out there."""
        verdict = self._check(credentials, ext, ha1, method, address, registered_here)
        self.counts[verdict] += 1
        return verdict

    def _check(self, c: Credentials, ext: str, ha1: str | None, method: str, address: str,
               registered_here: bool) -> Verdict:
        now = self.clock()
        if self.by_address.locked_for(address, now) or (not registered_here and self.by_ext.locked_for(ext, now)):
            return Verdict.LOCKED
        right = (ha1 is not None and c.username == ext and c.realm == self.realm
                 and (c.algorithm or "MD5").upper() == "MD5" and c.qop in (None, "auth")
                 and (c.qop is None or (c.nc is not None and c.cnonce is not None))
                 and hmac.compare_digest(response_for(ha1, c.nonce, method, c.uri, qop=c.qop, nc=c.nc,
                                                      cnonce=c.cnonce), c.response.lower()))
        if not right:
            for kind, lockout, key in (("extension", self.by_ext, ext), ("address", self.by_address, address)):
                if lockout.failed(key, now) and self.on_lock is not None:
                    self.on_lock(kind, key, lockout.lock_s)
            return Verdict.WRONG
        entry = self._nonces.get(c.nonce)
        if entry is None or now - entry[0] > self.nonce_s:
            self._nonces.pop(c.nonce, None)
            return Verdict.STALE
        if c.qop:
            try:
                count = int(c.nc or "", 16)
            except ValueError:
                return Verdict.STALE
            if count <= entry[1]:
                return Verdict.STALE   # a count already used: a replay, or a phone that started over
            entry[1] = count
        elif entry[2]:
            return Verdict.STALE       # without qop a nonce is good for one request
        else:
            entry[2] = True
        self.by_ext.succeeded(ext)
        self.by_address.succeeded(address)
        return Verdict.OK

    def prune(self) -> None:
        """Forget expired nonces and old failures (called now and then: memory stays flat)."""
        now = self.clock()
        self._forget_old(now)
        self.by_ext.prune(now)
        self.by_address.prune(now)

    def _forget_old(self, now: float) -> None:
        for nonce in [n for n, entry in self._nonces.items() if now - entry[0] > self.nonce_s]:
            del self._nonces[nonce]
        while len(self._nonces) >= MAX_NONCES:
            del self._nonces[next(iter(self._nonces))]

    def locked(self) -> dict[str, dict[str, float]]:
        now = self.clock()
        return {"extensions": self.by_ext.locked_keys(now), "addresses": self.by_address.locked_keys(now)}
