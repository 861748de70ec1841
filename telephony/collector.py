"""When the switch lets Python's cyclic garbage collector scan everything.

Measured (bench/switch.py, 125 calls/s, 5 s calls): routing delay p50 4 ms but p95
160 ms, because every 2-4 s the whole process stopped for a *full* collection, 32 ms at
first, 505 ms after 30 s (700,000 live objects: sippy keeps each finished transaction,
its messages and their pre-made ACK/CANCEL/408, for 32 s to absorb retransmissions).
Each pass found a few hundred objects to free; refcounting frees the rest. The young
generations (cheap, frequent) catch nearly all of sippy's cyclic garbage (a request and
the `sendResponse` closure it holds, about 80 objects a call) before it grows old.

So the switch keeps Python's young collections as they are, and runs full collections
itself (`FullCollections`): at least every `full_every_s` (900 s) whatever the load,
and sooner, once `quiet_after_s` (60 s) have passed, when at most `quiet_calls` calls are
up (a night, a lull: little alive, a short pause). What reaches the old generation
between two full collections at 150 calls/s is about 80 objects a second. Objects made
before the switch served its first call (modules, configuration) are frozen out of
every scan (`gc.freeze`).

Same run with this: routing p95 9 ms at 125 calls/s and 57 ms at 150 calls/s (was
156 ms and 4.3 s). One full collection with 800 calls up takes about 0.9 s: at the
worst, under a constant load, once every `full_every_s`.

The switch also hands the C allocator's free memory back to the system every
`trim_every_s` (60 s; glibc's `malloc_trim`). Measured (bench/soak.py, 125 calls/s,
626 calls up): Python's live objects and blocks stayed flat after the second minute, but
the process grew about 0.7 MB a minute, most of it in glibc's free lists (freed, not
returned: 22.6 MB free at 1 minute, 41 MB at 9, in-use flat at 89-90 MB), as many
threads (SIP, RTPproxy's, the database's) allocate and free in their own arenas; the
rest is Python's own arenas settling (155 -> 160 MiB), which levels off by itself. One
trim with 626 calls up took 5-7 ms and gave back 16-26 MB.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger("hotline.switch")

# Python's own full collections: never (the third threshold counts young collections;
# a billion of them is years)
NEVER = 10**9

# the collector is the process's: how many switches in it took it over, and what it was
_taken = 0
_python_thresholds: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class CollectorSettings:
    """`memory:` in the switch config."""
    full_every_s: float = 900.0    # a full collection at least this often, whatever the load
    quiet_after_s: float = 60.0    # and sooner, this long after the last one, when the switch is quiet:
    quiet_calls: int = 10          # at most this many calls up
    slow_s: float = 0.1            # a full collection this long or longer is logged (with the calls up)
    trim_every_s: float = 60.0     # the C allocator's free memory handed back this often (0: never)


def full_collection_due(settings: CollectorSettings, since_last_s: float, calls_up: int) -> bool:
    """Whether to run a full collection now."""
    if since_last_s >= settings.full_every_s:
        return True
    return since_last_s >= settings.quiet_after_s and calls_up <= settings.quiet_calls


def c_allocator_trim() -> Callable[[], object] | None:
    """glibc's `malloc_trim(0)`: free memory in every arena handed back to the system.
    None where the C library has no such call (musl, macOS): nothing is trimmed there."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


class FullCollections:
    """Takes Python's full collections over while the switch runs (`start`/`stop`), and
    runs them when due (`tick`, from the switch's event loop, about once a second); also
    trims the C allocator every `trim_every_s` and after each full collection."""

    def __init__(self, settings: CollectorSettings, calls_up: Callable[[], int], *,
                 clock: Callable[[], float] = time.monotonic, collect: Callable[[], int] = gc.collect,
                 trim: Callable[[], object] | None = c_allocator_trim()):
        self.settings, self.calls_up, self.clock, self.collect, self.trim = settings, calls_up, clock, collect, trim
        self._started = False
        self.last = self.last_trim = clock()
        self.count = self.trims = 0
        self.last_pause_s = 0.0

    def start(self) -> None:
        """Freeze what exists now out of every scan; Python's own full collections off."""
        global _taken, _python_thresholds
        if self._started:
            return
        self._started = True
        if _taken == 0:
            gc.collect()
            gc.freeze()
            _python_thresholds = gc.get_threshold()
            young, middle, _ = _python_thresholds
            gc.set_threshold(young, middle, NEVER)
        _taken += 1
        self.last = self.clock()

    def stop(self) -> None:
        """Python's collector as it was once no switch in this process runs (tests run
        several in one)."""
        global _taken
        if not self._started:
            return
        self._started = False
        _taken -= 1
        if _taken == 0 and _python_thresholds is not None:
            gc.set_threshold(*_python_thresholds)
            gc.unfreeze()

    def tick(self) -> bool:
        """One full collection if due; True if it ran. The trim when due, or after it."""
        collected = self._collect_if_due()
        if self.trim is not None and self.settings.trim_every_s and (
                collected or self.clock() - self.last_trim >= self.settings.trim_every_s):
            self.trim()
            self.last_trim = self.clock()
            self.trims += 1
        return collected

    def _collect_if_due(self) -> bool:
        now = self.clock()
        calls = self.calls_up()
        if not full_collection_due(self.settings, now - self.last, calls):
            return False
        began = time.perf_counter()
        freed = self.collect()
        self.last_pause_s = time.perf_counter() - began
        self.last = self.clock()
        self.count += 1
        if self.last_pause_s >= self.settings.slow_s:
            log.info("full garbage collection: %.2f s with %d call(s) up, %d object(s) freed",
                     self.last_pause_s, calls, freed)
        return True
