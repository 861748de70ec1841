"""telephony/sippy_speedups.py: sippy writes the same messages, faster."""

from __future__ import annotations

import builtins
import importlib
import inspect
import time
from contextlib import contextmanager

import pytest

from telephony import sippy_speedups

pytest.importorskip("sippy")


@contextmanager
def sippy_as_shipped():
    """sippy with its own dir() and clock, whether or not the speed-ups are on."""
    modules = [importlib.import_module(name) for name in sippy_speedups.MARKER_TEST_MODULES]
    monotime = importlib.import_module("sippy.Time.MonoTime")
    clock_dtime = importlib.import_module("sippy.Time.clock_dtime")
    saved = [(module, module.__dict__.get("dir")) for module in modules]
    saved_clock = monotime.clock_getdtime
    for module in modules:
        module.dir = builtins.dir
    monotime.clock_getdtime = clock_dtime.clock_getdtime
    try:
        yield
    finally:
        for module, value in saved:
            if value is None:
                del module.dir
            else:
                module.dir = value
        monotime.clock_getdtime = saved_clock


def messages() -> list[str]:
    """An INVITE as sippy writes it with its "this host" markers (in the Via, the Contact
    and a URI with transport=<ours>) for each local address it may be sent from, and an
    SDP origin with the marker."""
    from sippy.SdpOrigin import SdpOrigin
    from sippy.SipAddress import SipAddress
    from sippy.SipCallId import SipCallId
    from sippy.SipConf import MyAddress, MyPort, MyTransport
    from sippy.SipContact import SipContact
    from sippy.SipFrom import SipFrom
    from sippy.SipRequest import SipRequest
    from sippy.SipURL import SipURL
    from sippy.SipVia import SipVia

    via = SipVia()
    via.hostname, via.port, via.transport = MyAddress(), MyPort(5060), MyTransport("udp")
    via.params["branch"] = "z9hG4bK-speedups"   # fixed: both writings compared
    ours = SipURL(username="hotline", host=MyAddress(), port=MyPort(5060), transport=MyTransport("udp"))
    request = SipRequest(method="INVITE", ruri=SipURL("sip:2000@192.0.2.7:5062;transport=udp"), via=via,
                         fr0m=SipFrom(address=SipAddress(url=SipURL("sip:1001@192.0.2.8"))),
                         contact=SipContact(address=SipAddress(url=ours)), callid=SipCallId("speedups-1@hotline"), cseq=1)
    written = [request.localStr((("203.0.113.9", port), transport))
               for port, transport in ((5060, "udp"), (5070, "udp"), (5060, "tcp"))]
    origin = SdpOrigin()
    origin.address, origin.session_id, origin.version = MyAddress(), "1", "1"
    written += [origin.localStr((("203.0.113.9", 5060), "udp"))]
    return written


def test_sippy_still_uses_dir_only_to_tell_its_address_markers_apart():
    """An upgrade of sippy that uses dir() otherwise would be made wrong by the stand-in:
    install() refuses then, and this says so first."""
    for name in sippy_speedups.MARKER_TEST_MODULES:
        assert sippy_speedups.only_marker_tests(inspect.getsource(importlib.import_module(name))), name
    assert sippy_speedups.only_marker_tests("if 'my' in dir(x) and 'my' not in dir(y): pass")
    assert not sippy_speedups.only_marker_tests("for attr in dir(obj): pass")


def test_messages_are_written_the_same_with_the_speedups():
    with sippy_as_shipped():
        shipped = messages()
    assert sippy_speedups.install() is True
    assert messages() == shipped
    # the markers were written as the local address (its port only where not 5060), the
    # other addresses as themselves
    assert "Via: SIP/2.0/UDP 203.0.113.9;" in shipped[0] and "<sip:hotline@203.0.113.9>" in shipped[0]
    assert "Via: SIP/2.0/UDP 203.0.113.9:5070;" in shipped[1] and "<sip:hotline@203.0.113.9:5070>" in shipped[1]
    assert "Via: SIP/2.0/TCP 203.0.113.9" in shipped[2] and "transport=tcp" in shipped[2]
    assert "INVITE sip:2000@192.0.2.7:5062;transport=udp SIP/2.0" in shipped[0]
    assert "sip:1001@192.0.2.8" in shipped[0]
    assert shipped[3].endswith("IN IP4 203.0.113.9")


def test_sippy_reads_the_same_clock_with_the_speedups():
    from sippy.Time.MonoTime import MonoTime

    with sippy_as_shipped():
        before = MonoTime()
    sippy_speedups.install()
    now = MonoTime()
    assert 0 <= now.monot - before.monot < 1.0          # same clock (CLOCK_MONOTONIC_RAW), a moment later
    assert abs(now.realt - time.time()) < 1.0
