"""Service-level deadlines for work orders: pure arithmetic on epoch seconds.

A policy is loaded from YAML (defaults in sla_default.yaml, the table in domain.md).
Calendar durations (15m, 6h, 48h) run round the clock; "N working days" are counted on
the site's working week and holiday list in its own time zone, so a complaint taken on
Friday evening is due at the same wall-clock time N working days later.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from siteconfig.durations import Duration, WorkingDays, parse_duration
from siteconfig.yamlsource import Document, load_file, load_text, type_name

WORK_ORDER_TYPES = ("urgent_repair", "repair", "complaint", "enquiry", "billing")
DEPARTMENTS = ("engineering", "cleaning", "security", "finance", "customer_service")
REPAIR_TYPES = frozenset({"urgent_repair", "repair"})
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class TypeRule:
    department: str
    on_site_within: Duration | None = None
    resolve_within: Duration | None = None
    feedback_within: Duration | None = None
    reply_within: Duration | None = None
    callback_within: Duration | None = None


_RULE_KEYS = ("department", "on_site_within", "resolve_within", "feedback_within",
              "reply_within", "callback_within")


@dataclass(frozen=True)
class SlaPolicy:
    timezone: ZoneInfo
    working_week: frozenset[int]  # 0 = Monday
    holidays: frozenset[dt.date]
    dispatch_within: float
    max_promise: float
    max_postponements: int
    types: dict[str, TypeRule] = field(hash=False)
    source: str = "defaults"

    # --- calendar -------------------------------------------------------------
    def is_working_day(self, day: dt.date) -> bool:
        return day.weekday() in self.working_week and day not in self.holidays

    def add(self, start: float, duration: Duration) -> float:
        if isinstance(duration, WorkingDays):
            return self.add_working_days(start, duration.count)
        return start + duration

    def add_working_days(self, start: float, count: int) -> float:
        """Same wall-clock time `count` working days later.

        A start outside working days (a Saturday call, a holiday) starts the clock at
        00:00 of the next working day, so the caller still gets `count` full days.
        """
        local = dt.datetime.fromtimestamp(start, self.timezone)
        day = local.date()
        time_of_day = local.time().replace(tzinfo=None)
        if not self.is_working_day(day):
            day = self._next_working_day(day)
            time_of_day = dt.time(0, 0)
        for _ in range(count):
            day = self._next_working_day(day)
        # Combine as a naive wall-clock time, then localise: the deadline keeps its
        # wall-clock time across daylight-saving changes.
        deadline = dt.datetime.combine(day, time_of_day).replace(tzinfo=self.timezone)
        return deadline.timestamp()

    def _next_working_day(self, day: dt.date) -> dt.date:
        for _ in range(3660):  # a policy with no working day at all is refused at load
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                return day
        raise ValueError("no working day within ten years")

    # --- deadlines ----------------------------------------------------------------
    def rule(self, order_type: str) -> TypeRule:
        try:
            return self.types[order_type]
        except KeyError:
            raise ValueError(
                f"unknown work-order type '{order_type}' (expected one of: {', '.join(self.types)})"
            ) from None

    def deadlines(self, order_type: str, opened_at: float) -> dict[str, float | None]:
        """Deadlines fixed when an order is opened (callback_due follows resolution)."""
        rule = self.rule(order_type)

        def due(duration: Duration | None) -> float | None:
            return None if duration is None else self.add(opened_at, duration)

        return {
            "dispatch_due": opened_at + self.dispatch_within,
            "on_site_due": due(rule.on_site_within),
            "resolve_due": due(rule.resolve_within),
            "feedback_due": due(rule.feedback_within),
            "reply_due": due(rule.reply_within),
        }

    def callback_due(self, order_type: str, resolved_at: float) -> float | None:
        duration = self.rule(order_type).callback_within
        return None if duration is None else self.add(resolved_at, duration)

    def latest_promise(self, opened_at: float) -> float:
        return opened_at + self.max_promise


# --- loading -----------------------------------------------------------------------

_TOP_KEYS = ("timezone", "working_week", "holidays", "dispatch_within", "max_promise",
             "max_postponements", "types")


def default_policy_text() -> str:
    return resources.files("records").joinpath("sla_default.yaml").read_text(encoding="utf-8")


def load_policy(path: str | Path | None = None) -> SlaPolicy:
    """The policy in `path`, else $HOTLINE_SLA, else the bundled defaults."""
    path = path or os.environ.get("HOTLINE_SLA")
    if path:
        return policy_from_document(load_file(path))
    return policy_from_document(load_text(default_policy_text(), "sla_default.yaml (bundled)"))


def policy_from_document(doc: Document) -> SlaPolicy:
    top = doc.mapping((), allowed=_TOP_KEYS, required=("timezone", "types"))

    try:
        zone = ZoneInfo(str(top["timezone"]))
    except (ZoneInfoNotFoundError, ValueError):
        raise doc.error(("timezone",), f"unknown time zone {top['timezone']!r} "
                                       "(expected an IANA name such as Asia/Hong_Kong)") from None

    week_raw = top.get("working_week", list(WEEKDAYS[:5]))
    if not isinstance(week_raw, list) or not week_raw:
        raise doc.error(("working_week",), "expected a list of days such as [mon, tue, wed, thu, fri]")
    week = set()
    for i, day in enumerate(week_raw):
        if str(day).lower()[:3] not in WEEKDAYS:
            raise doc.error(("working_week", i), f"expected a day name (mon..sun), got {day!r}")
        week.add(WEEKDAYS.index(str(day).lower()[:3]))

    holidays = set()
    holidays_raw = top.get("holidays") or []
    if not isinstance(holidays_raw, list):
        raise doc.error(("holidays",), f"expected a list of dates (YYYY-MM-DD), got {type_name(holidays_raw)}")
    for i, day in enumerate(holidays_raw):
        if isinstance(day, dt.datetime) or not isinstance(day, dt.date):
            try:
                day = dt.date.fromisoformat(str(day))
            except ValueError:
                raise doc.error(("holidays", i), f"expected a date YYYY-MM-DD, got {day!r}") from None
        holidays.add(day)

    def duration(path: tuple) -> Duration:
        try:
            value = parse_duration(doc.get(path))
        except ValueError as exc:
            raise doc.error(path, str(exc)) from None
        if (value.count if isinstance(value, WorkingDays) else value) <= 0:
            raise doc.error(path, "must be longer than zero")
        return value

    def seconds(path: tuple) -> float:
        value = duration(path)
        if isinstance(value, WorkingDays):
            raise doc.error(path, "expected calendar time (such as 3m or 7d), not working days")
        return value

    dispatch = seconds(("dispatch_within",)) if "dispatch_within" in top else 180.0
    max_promise = seconds(("max_promise",)) if "max_promise" in top else 7 * 86400.0
    postponements = top.get("max_postponements", 1)
    if isinstance(postponements, bool) or not isinstance(postponements, int) or postponements < 0:
        raise doc.error(("max_postponements",), f"expected a whole number >= 0, got {postponements!r}")

    types_raw = doc.mapping(("types",), allowed=WORK_ORDER_TYPES, required=WORK_ORDER_TYPES)
    types: dict[str, TypeRule] = {}
    for name in types_raw:
        entry = doc.mapping(("types", name), allowed=_RULE_KEYS, required=("department",))
        if entry["department"] not in DEPARTMENTS:
            raise doc.error(("types", name, "department"),
                            f"unknown department {entry['department']!r} (expected one of: {', '.join(DEPARTMENTS)})")
        fields = {key: duration(("types", name, key)) for key in _RULE_KEYS[1:] if key in entry}
        if name in REPAIR_TYPES:
            for key in ("on_site_within", "resolve_within"):
                if key not in fields:
                    raise doc.error(("types", name), f"a repair needs '{key}'")
        elif "reply_within" not in fields:
            raise doc.error(("types", name), "needs 'reply_within'")
        types[name] = TypeRule(department=entry["department"], **fields)

    return SlaPolicy(zone, frozenset(week), frozenset(holidays), dispatch,
                     max_promise, postponements, types, doc.source)
