"""Two of sippy 2.5's costs per message, taken away without changing what it does.

Profiled at 100 calls/s (bench/switch.py --profile, only the thread holding the
interpreter lock sampled), the switch's one core went mostly to sippy building and
reading messages. Two things in there cost far more than their work:

- **`'my' in dir(value)`**: sippy marks "this host's address / port / transport" with
  small marker objects (`SipConf.MyAddress`, `MyPort`, `MyTransport`, each with an
  attribute `my`) and tells them from plain strings and numbers by asking
  `'my' in dir(value)`. `dir()` of a `str` builds and sorts a list of ~80 names: about
  6 µs, three or four times for every URL written (27 µs for one SIP URI, ~1,000 URIs a
  second at 100 calls/s). The modules below only ever use `dir()` that way, so in them
  `dir` is given a stand-in answering the same question with `hasattr` (0.1 µs).
- **The clock**: `MonoTime()` (made for every timer and every packet received) reads
  the clock through ctypes (0.9 µs a read, two reads each); Python's own
  `time.clock_gettime` reads the same clock (sippy's id: CLOCK_MONOTONIC_RAW on Linux)
  in 0.07 µs.

`install()` is idempotent and checks that sippy still uses `dir()` only as above
(tests/test_sippy_speedups.py reads the modules' source too), so an upgrade of sippy
that changes that leaves sippy as it is rather than wrong.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import time

log = logging.getLogger("hotline.sip")

# sippy's modules whose every use of dir() is `'my' in dir(x)` / `'my' not in dir(x)`
MARKER_TEST_MODULES = ("sippy.SipURL", "sippy.SipVia", "sippy.SipConf", "sippy.SdpOrigin",
                       "sippy.SipWWWAuthenticate", "sippy.SipTransactionManager")
_MARKER_USE = re.compile(r"'my' (?:not )?in dir\(")
_ANY_DIR_USE = re.compile(r"\bdir\(")

_installed = False


class _Attributes:
    """What `dir(obj)` is asked for in sippy: whether a name is among obj's attributes."""
    __slots__ = ("obj",)

    def __init__(self, obj: object):
        self.obj = obj

    def __contains__(self, name: str) -> bool:
        return hasattr(self.obj, name)


def only_marker_tests(source: str) -> bool:
    """True if every `dir(` in `source` is part of `'my' in dir(` or `'my' not in dir(`."""
    return len(_ANY_DIR_USE.findall(source)) == len(_MARKER_USE.findall(source))


def install() -> bool:
    """Apply both; False (and sippy left alone) if sippy's source is not what they assume."""
    global _installed
    if _installed:
        return True
    modules = [importlib.import_module(name) for name in MARKER_TEST_MODULES]
    for module in modules:
        if not only_marker_tests(inspect.getsource(module)):
            log.warning("sippy's %s uses dir() in a way hotline's speed-ups do not know: left as it is",
                        module.__name__)
            return False
    for module in modules:
        setattr(module, "dir", _Attributes)   # a module's globals come before the builtins
    monotime = importlib.import_module("sippy.Time.MonoTime")
    clock_dtime = importlib.import_module("sippy.Time.clock_dtime")
    if getattr(monotime, "clock_getdtime") is getattr(clock_dtime, "clock_getdtime"):
        setattr(monotime, "clock_getdtime", time.clock_gettime)   # same clock ids, same float seconds
    _installed = True
    return True
