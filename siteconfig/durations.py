"""Durations as people write them in config files: 15m, 6h, 2d, or "4 working days"
(counted on a site's working week: records/sla.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class WorkingDays:
    count: int

    def __str__(self) -> str:
        return f"{self.count} working day{'s' if self.count != 1 else ''}"


Duration = float | WorkingDays  # seconds, or working days

_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_CALENDAR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|min|m|h|d)\s*$")
_WORKING = re.compile(r"^\s*(\d+)\s*(?:working\s+days?|wd)\s*$")


def parse_duration(text: object) -> Duration:
    """'15m' -> 900.0; '4 working days' -> WorkingDays(4). ValueError otherwise."""
    if isinstance(text, str):
        match = _CALENDAR.match(text)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
        match = _WORKING.match(text)
        if match:
            return WorkingDays(int(match.group(1)))
    raise ValueError(
        f"expected a duration such as 15m, 6h, 2d or '4 working days', got {text!r}"
    )
