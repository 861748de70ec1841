"""The registrar's digest rules (telephony/digest.py), with a clock the test moves."""
import re

from records.agents import sip_ha1
from telephony.digest import Credentials, DigestGuard, Verdict, response_for
from telephony.lockout import Lockout

HA1 = sip_ha1("1001", "1111")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def nonce_of(challenge: str) -> str:
    return re.search(r'nonce="([^"]+)"', challenge).group(1)


def signed(nonce, *, nc="00000001", cnonce="abc", ha1=HA1, method="REGISTER", qop="auth", user="1001"):
    uri = "sip:127.0.0.1"
    return Credentials(user, "hotline", nonce, uri,
                       response_for(ha1, nonce, method, uri, qop=qop, nc=nc if qop else None,
                                    cnonce=cnonce if qop else None),
                       qop, nc if qop else None, cnonce if qop else None, "MD5")


def guard(clock, **kwargs):
    return DigestGuard("hotline", nonce_s=30, clock=clock, **kwargs)


def check(g, credentials, address="10.0.0.5", **kwargs):
    return g.check(credentials, ext="1001", ha1=HA1, method="REGISTER", address=address, **kwargs)


def test_the_challenge_offers_qop_auth_and_md5():
    challenge = guard(Clock()).challenge()
    assert 'realm="hotline"' in challenge and 'qop="auth"' in challenge and "algorithm=MD5" in challenge
    assert "stale" not in challenge
    assert guard(Clock()).challenge(stale=True).endswith(",stale=true")


def test_the_right_answer_is_accepted_and_each_nonce_count_only_once():
    clock = Clock()
    g = guard(clock)
    nonce = nonce_of(g.challenge())
    assert check(g, signed(nonce)) is Verdict.OK
    assert check(g, signed(nonce)) is Verdict.STALE            # the same request again: a replay
    assert check(g, signed(nonce, nc="00000002")) is Verdict.OK
    assert check(g, signed(nonce, nc="00000002", cnonce="x")) is Verdict.STALE


def test_an_expired_or_unknown_nonce_with_the_right_pin_is_stale_never_wrong():
    clock = Clock()
    g = guard(clock)
    nonce = nonce_of(g.challenge())
    assert check(g, signed(nonce)) is Verdict.OK
    clock.now += 31                                             # past nonce_s: a refresh with the old nonce
    assert check(g, signed(nonce, nc="00000002")) is Verdict.STALE
    assert check(g, signed("a-nonce-of-a-switch-that-restarted")) is Verdict.STALE
    assert g.by_ext.locked_for("1001", clock.now) == 0           # nothing counted against the phone


def test_without_qop_a_nonce_serves_one_request():
    g = guard(Clock())
    nonce = nonce_of(g.challenge())
    assert check(g, signed(nonce, qop=None)) is Verdict.OK
    assert check(g, signed(nonce, qop=None)) is Verdict.STALE


def test_wrong_pins_are_wrong_and_lock_the_extension_then_the_address():
    clock = Clock()
    locked = []
    g = guard(clock, failures_per_ext=3, failures_per_address=5, window_s=60, lock_s=120,
              on_lock=lambda kind, key, s: locked.append((kind, key, s)))
    bad = sip_ha1("1001", "0000")
    for _ in range(2):
        assert check(g, signed(nonce_of(g.challenge()), ha1=bad)) is Verdict.WRONG
    assert locked == []
    assert check(g, signed(nonce_of(g.challenge()), ha1=bad)) is Verdict.WRONG
    assert locked == [("extension", "1001", 120)]
    # locked: even the right PIN from elsewhere is refused without being looked at
    assert check(g, signed(nonce_of(g.challenge()))) is Verdict.LOCKED
    # ... but the seat registered from its own address is not locked out by someone's guesses
    assert check(g, signed(nonce_of(g.challenge())), address="10.0.0.9", registered_here=True) is Verdict.OK
    clock.now += 121
    assert check(g, signed(nonce_of(g.challenge()))) is Verdict.OK
    # an address guessing at many extensions is locked out as an address
    for ext in ("1002", "1003", "1004", "1005", "1006"):
        g.check(signed(nonce_of(g.challenge()), user=ext, ha1=bad), ext=ext, ha1=HA1, method="REGISTER", address="6.6.6.6")
    assert ("address", "6.6.6.6", 120) in locked
    assert g.check(signed(nonce_of(g.challenge()), user="1001"), ext="1001", ha1=HA1, method="REGISTER",
                   address="6.6.6.6") is Verdict.LOCKED
    assert set(g.locked()["addresses"]) == {"6.6.6.6"}


def test_an_unknown_user_or_another_realm_is_wrong():
    g = guard(Clock())
    nonce = nonce_of(g.challenge())
    assert g.check(signed(nonce), ext="1001", ha1=None, method="REGISTER", address="a") is Verdict.WRONG
    c = signed(nonce)
    other_realm = Credentials(c.username, "asterisk", c.nonce, c.uri, c.response, c.qop, c.nc, c.cnonce)
    assert check(g, other_realm) is Verdict.WRONG
    assert g.counts[Verdict.WRONG] == 2


def test_old_failures_fall_out_of_the_window_and_memory_stays_bounded():
    clock = Clock()
    lockout = Lockout(max_failures=3, window_s=10, lock_s=5)
    assert not lockout.failed("k", clock.now)
    assert not lockout.failed("k", clock.now + 1)
    assert lockout.failures("k", clock.now + 1) == 2
    assert lockout.failures("k", clock.now + 20) == 0   # what the log says counts toward a lockout
    assert not lockout.failed("k", clock.now + 20)     # the first two no longer count
    assert lockout.failures("k", clock.now + 20) == 1
    lockout.prune(clock.now + 40)
    assert lockout.locked_keys(clock.now + 40) == {} and not lockout._failures
    g = guard(clock)
    for _ in range(100):
        g.challenge()
    clock.now += 31
    g.prune()
    assert not g._nonces
