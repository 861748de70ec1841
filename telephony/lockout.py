"""Failed attempts counted per key (an extension, an address); too many lock the key.

Pure: time is passed in. A PIN is four to eight digits, so wrong guesses must be slowed
down long before they could add up to a guessed PIN: the registrar (SIP digest) and,
later, control-API logins keep one of these each.
"""

from __future__ import annotations

from collections import deque


class Lockout:
    """`max_failures` within `window_s` lock a key for `lock_s` seconds."""

    def __init__(self, *, max_failures: int, window_s: float, lock_s: float):
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        self.max_failures, self.window_s, self.lock_s = max_failures, window_s, lock_s
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    def locked_for(self, key: str, now: float) -> float:
        """Seconds the key stays locked (0: not locked)."""
        until = self._locked_until.get(key)
        if until is None:
            return 0.0
        if until <= now:
            del self._locked_until[key]
            return 0.0
        return until - now

    def failed(self, key: str, now: float) -> bool:
        """Count a failure; True when this one locks the key (say so once, in the log)."""
        times = self._failures.setdefault(key, deque())
        times.append(now)
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if len(times) >= self.max_failures:
            times.clear()
            self._locked_until[key] = now + self.lock_s
            return True
        return False

    def failures(self, key: str, now: float) -> int:
        """Failures that count against the key now (within the window, since its last lock
        or success)."""
        return sum(1 for t in self._failures.get(key, ()) if t > now - self.window_s)

    def succeeded(self, key: str) -> None:
        """The right credentials: earlier mistakes no longer count."""
        self._failures.pop(key, None)

    def locked_keys(self, now: float) -> dict[str, float]:
        """Every key locked now, with the seconds left (for the supervisor's view)."""
        return {key: left for key in list(self._locked_until) if (left := self.locked_for(key, now)) > 0}

    def prune(self, now: float) -> None:
        """Drop what no longer counts (called now and then, so memory stays flat)."""
        for key in [k for k, times in self._failures.items() if not times or times[-1] <= now - self.window_s]:
            del self._failures[key]
        for key in [k for k, until in self._locked_until.items() if until <= now]:
            del self._locked_until[key]
