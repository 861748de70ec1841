"""Which seats in a call the switch asks OPTIONS now: the pacing of its liveness checks,
without I/O (telephony/sip.py sends the requests and reports the answers).

A seat whose phone dies mid-call (killed, unplugged, rebooted) sends no BYE; its caller
would hear silence for ever. So every seat in a call is asked OPTIONS within its dialog,
each on its own beat from when its call began (`interval_s` apart), and after `misses`
unanswered in a row its caller is queued again.

Asking every seat every 2 s cost the switch one transaction per call every 2 s: at 1,500
calls 750 requests a second, most of a core. So all seats together are asked at most
`rate` times a second: with more seats in calls than `rate * interval_s`, each seat's
beat stretches to `seats / rate`. A question unanswered after `interval_s` makes the seat
suspect: it is asked again at the short interval, whatever the load, so a dead phone is
noticed within one stretched beat plus `misses * interval_s`. A seat whose agent's control connection
dropped is suspect at once (`suspect`). Asterisk's qualify is the same idea, out of
dialog and once a minute.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass


@dataclass
class _Watch:
    due: float
    misses: int = 0       # asked and not answered since the last answer
    generation: int = 0   # entries in the heap with another generation are stale


# Routine questions take at most this share of the budget: the rest is kept for suspects.
_ROUTINE_SHARE = 0.9
# At most this many seconds' worth of the budget goes out at once (the 100 ms tick).
_BURST_S = 0.1


class QualifyPacer:
    def __init__(self, interval_s: float = 2.0, misses: int = 2, rate: float = 100.0):
        self.interval_s, self.misses, self.rate = interval_s, misses, rate
        self._watched: dict[str, _Watch] = {}
        # (due, generation, ext): seats asked on their beat, and suspects, who go first
        self._routine: list[tuple[float, int, str]] = []
        self._suspects: list[tuple[float, int, str]] = []
        self._tokens = self._burst = max(1.0, rate * _BURST_S)
        self._last: float | None = None
        self.sent = 0                # OPTIONS asked, in all (for benchmarks)

    def __len__(self) -> int:
        return len(self._watched)

    def __contains__(self, ext: str) -> bool:
        return ext in self._watched

    def beat(self) -> float:
        """Seconds between two questions to a seat that answers, at the present load."""
        return max(self.interval_s, len(self._watched) / (self.rate * _ROUTINE_SHARE))

    def watch(self, ext: str, now: float) -> None:
        self._schedule(ext, _Watch(due=0.0), now + self.beat())

    def unwatch(self, ext: str) -> None:
        self._watched.pop(ext, None)

    def suspect(self, ext: str, now: float) -> None:
        """Ask this seat at once (its agent's seat lost its connection to the switch)."""
        watch = self._watched.get(ext)
        if watch is not None and watch.due > now:
            self._schedule(ext, watch, now, suspect=True)

    def answered(self, ext: str) -> None:
        """The seat's phone answered (anything but "the call does not exist here")."""
        watch = self._watched.get(ext)
        if watch is not None and watch.misses:
            watch.misses = 0
            # it was to be looked at again after the short interval: back to the load's beat
            self._schedule(ext, watch, watch.due - self.interval_s + self.beat())

    def take(self, now: float) -> tuple[list[str], list[str]]:
        """(seats to ask now, seats taken for gone). Asking costs one of the `rate` a
        second, suspects first; a seat whose turn comes with `misses` questions
        unanswered is gone (which costs nothing)."""
        if self._last is not None:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        ask: list[str] = []
        gone: list[str] = []
        for heap in (self._suspects, self._routine):
            while heap and heap[0][0] <= now:
                due, generation, ext = heap[0]
                watch = self._watched.get(ext)
                if watch is None or watch.generation != generation:
                    heapq.heappop(heap)   # stale: unwatched, or moved to another time
                    continue
                if watch.misses >= self.misses:
                    heapq.heappop(heap)
                    del self._watched[ext]
                    gone.append(ext)
                    continue
                if self._tokens < 1:
                    break   # the rest wait for the budget, in the order they fell due
                heapq.heappop(heap)
                self._tokens -= 1
                self.sent += 1
                watch.misses += 1
                ask.append(ext)
                # looked at again after the short interval: unanswered by then, it is suspect
                # and asked again first; answered, `answered` moves it to its beat
                self._schedule(ext, watch, now + self.interval_s, suspect=True)
        return ask, gone

    def _schedule(self, ext: str, watch: _Watch, due: float, *, suspect: bool = False) -> None:
        watch.due = due
        watch.generation += 1
        self._watched[ext] = watch
        heapq.heappush(self._suspects if suspect else self._routine, (due, watch.generation, ext))
