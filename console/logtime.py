"""Log lines stamped in the centre's time zone, with its offset.

The demo's feed, the seats' screens and the records' reports speak the centre's clock
(the SLA policy's timezone); logs in the machine's zone (often UTC on a server) made the
switch's log and the feed disagree by hours when read side by side."""

from __future__ import annotations

import datetime as dt
import logging


class CentreTimeFormatter(logging.Formatter):
    def __init__(self, fmt: str = "%(asctime)s %(name)s %(levelname)s %(message)s", tz: dt.tzinfo | None = None):
        super().__init__(fmt)
        if tz is None:
            from records.sla import load_policy

            try:
                tz = load_policy().timezone
            except (OSError, ValueError):   # a broken policy is reported where it is used; the log goes on
                tz = None
        self.tz = tz

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        when = dt.datetime.fromtimestamp(record.created, self.tz)
        return (when if self.tz is not None else when.astimezone()).isoformat(sep=" ", timespec="milliseconds")


