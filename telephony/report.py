"""Interval reports from records: a day cut into 15, 30 or 60 minute intervals, by queue,
by agent or by call type (`hotline report`, and later the supervisor console's report).

The contacts are counted with the Counters of telephony/acd/stats.py, the module the
simulator's report uses, so a figure means the same in QA's report and the supervisor's:
offered, answered, abandoned (short abandons, under SHORT_ABANDON_S, also apart),
answered within the queue's service-level threshold, service level (answered within /
offered), ASA, AHT (talk + hold + wrap-up per answered call), occupancy (handling over
time logged in and not on break, from agent_states). A contact counts in the interval in
which it arrived. By queue: the queue the contact was served in (after any overflow); by
type: the queue the caller first asked for; by agent: each agent's own part of the
contacts they answered (interaction_legs), offered counting the rings they let go too,
the wait being the caller's wait for that agent (after a transfer: since the transfer).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Iterable

from sqlite_utils import Database

from records.workorders import DEADLINES
from telephony.acd.stats import Counters, occupancy

GROUPINGS = ("queue", "agent", "type")
INTERVALS_S = {"15m": 900, "30m": 1800, "60m": 3600}
MENU = "menu"   # a caller who left in the voice menu never reached a queue: not offered


@dataclass(frozen=True)
class ReportRow:
    interval_start: float   # epoch seconds
    key: str                # the queue, the agent's extension or the call type
    offered: int
    answered: int
    abandoned: int
    short_abandoned: int
    answered_within: int
    service_level: float | None   # None: nothing offered
    asa_s: float | None           # None: nothing answered
    aht_s: float | None
    occupancy: float | None       # None: nobody logged in
    transfers: int
    callbacks_made: int
    orders_opened: int
    orders_closed: int
    orders_overdue: int           # deadlines that fell in the interval and were missed
    survey_score: float | None    # mean 1-5, of the contacts that answered the survey

    def as_json(self, by: str) -> dict:
        """The row as `--format json` and csv print it: the key named for its grouping."""
        fields = asdict(self)
        return {"interval_start": fields.pop("interval_start"), by: fields.pop("key"), **fields}


class _Group:
    __slots__ = ("counters", "threshold", "transfers", "callbacks", "opened", "closed", "overdue", "scores",
                 "handling", "staffed")

    def __init__(self, threshold: float) -> None:
        self.counters, self.threshold = Counters(), threshold
        self.transfers = self.callbacks = self.opened = self.closed = self.overdue = 0
        self.scores: list[int] = []
        self.handling = self.staffed = 0.0


def day_bounds(day: dt.date, tz: dt.tzinfo) -> tuple[float, float]:
    start = dt.datetime.combine(day, dt.time(), tz)
    return start.timestamp(), (start + dt.timedelta(days=1)).timestamp()


def interval_report(db: Database, *, day: dt.date, tz: dt.tzinfo, interval_s: int, by: str,
                    thresholds: dict[str, float], default_threshold_s: float, now: float) -> list[ReportRow]:
    """The report's rows, by interval then key; an interval with nothing in it has no row."""
    if by not in GROUPINGS:
        raise ValueError(f"--by: one of {', '.join(GROUPINGS)}")
    start, end = day_bounds(day, tz)
    end_now = min(end, now)
    groups: dict[tuple[int, str], _Group] = {}

    def group(t: float, key: str) -> _Group:
        slot = int((t - start) // interval_s)
        found = groups.get((slot, key))
        if found is None:
            threshold = default_threshold_s if by == "agent" else thresholds.get(key, default_threshold_s)
            found = groups[(slot, key)] = _Group(threshold)
        return found

    column = {"queue": "queue", "type": "call_type"}.get(by)
    if column is not None:
        _count_contacts(db, start, end, column, thresholds, default_threshold_s, group)
    else:
        _count_agents(db, start, end, thresholds, default_threshold_s, group)
    _count_orders(db, start, end, end_now, by, group)
    staffed = _agent_time(db, start, end_now, interval_s)
    rows = []
    for (slot, key), g in sorted(groups.items()):
        c = g.counters
        metrics = c.metrics(g.threshold)
        handling, logged_in = staffed.get((slot, key), (0.0, 0.0)) if by == "agent" else \
            staffed.get((slot, None), (0.0, 0.0))
        rows.append(ReportRow(
            interval_start=start + slot * interval_s, key=key, offered=c.offered, answered=c.answered,
            abandoned=c.abandoned, short_abandoned=c.short_abandoned, answered_within=c.within,
            service_level=metrics["service_level"]["answered_within_over_offered"] if c.offered else None,
            asa_s=metrics["asa_s"] if c.answered else None, aht_s=metrics["aht_s"] if c.handled else None,
            occupancy=occupancy(handling, logged_in) if logged_in else None,
            transfers=g.transfers, callbacks_made=g.callbacks, orders_opened=g.opened, orders_closed=g.closed,
            orders_overdue=g.overdue, survey_score=sum(g.scores) / len(g.scores) if g.scores else None))
    return rows


def _count_contacts(db: Database, start: float, end: float, column: str, thresholds: dict[str, float],
                    default_threshold_s: float, group) -> None:
    legs_ended = defaultdict(int)
    for interaction_id, transferred in db.execute(
            "SELECT l.interaction_id, count(*) FROM interaction_legs l JOIN interactions i ON i.id = l.interaction_id "
            "WHERE i.entered_at >= ? AND i.entered_at < ? AND l.ended = 'transferred' GROUP BY l.interaction_id",
            [start, end]):
        legs_ended[interaction_id] = transferred
    # every queue a caller entered (an overflow, a transfer or a supervisor's move puts them in
    # another): offered in each, as the simulator's statistics count them; the outcome goes
    # to the queue they ended in
    entered_queues: dict[str, list[str]] = defaultdict(list)
    answered_in: dict[int, str] = {}   # contact -> the queue its first agent answered it from
    legs_of: dict[int, list[tuple[str, float, float | None]]] = defaultdict(list)   # (queue, answered, ended)
    if column == "queue":
        for interaction_id, queue_name, leg_answered, leg_ended in db.execute(
                "SELECT l.interaction_id, l.queue, l.answered_at, l.ended_at FROM interaction_legs l JOIN interactions i "
                "ON i.id = l.interaction_id WHERE i.entered_at >= ? AND i.entered_at < ? ORDER BY l.id", [start, end]):
            legs_of[interaction_id].append((queue_name, leg_answered, leg_ended))
        answered_in = {contact: legs[0][0] for contact, legs in legs_of.items()}
        for call, queue_name in db.execute("SELECT callid, queuename FROM queue_log WHERE event = 'ENTERQUEUE' "
                                           "AND time >= ? AND time < ? ORDER BY id", [start - 1, end + 86400]):
            if queue_name not in entered_queues[call]:
                entered_queues[call].append(queue_name)
    for row_id, uid, entered, direction, key, queue, outcome, answered, ended, wait, talk, hold, wrap, score in \
            db.execute(f"SELECT id, uid, entered_at, direction, {column}, queue, outcome, answered_at, ended_at, "
                       "wait_s, talk_s, hold_s, wrapup_s, survey_score FROM interactions WHERE entered_at >= ? "
                       "AND entered_at < ? ORDER BY entered_at", [start, end]):
        if direction == "outbound":
            if outcome != "failed":
                group(entered, "outbound").callbacks += 1
            continue
        if key == MENU or outcome == "failed" or not key:
            continue   # left in the voice menu, or turned away by the switch: never offered to a queue
        g = group(entered, key)
        for earlier in entered_queues.get(uid, ()):
            if earlier != key:
                group(entered, earlier).counters.offered += 1
        first = answered_in.get(row_id, key) if column == "queue" else key
        _count_contact(g.counters, group(entered, first).counters if first and first != key else g.counters,
                       outcome, answered is not None, ended is not None, wait, talk, hold, wrap,
                       thresholds.get(first if column == "queue" and first else queue, default_threshold_s))
        if column == "queue" and len(legs_of.get(row_id, ())) > 0:
            _count_later_parts(legs_of[row_id], key, outcome, ended, group, entered, thresholds, default_threshold_s)
        g.transfers += legs_ended.get(row_id, 0)
        if score is not None:
            g.scores.append(score)


def _count_later_parts(legs: list[tuple[str, float, float | None]], final_queue: str, outcome: str | None,
                       ended: float | None, group, entered: float, thresholds: dict[str, float],
                       default_threshold_s: float) -> None:
    """A contact answered, then transferred or moved into another queue: that queue
    counts the part answered (its wait from the end of the part before) or, if the
    caller hung up waiting there, abandoned, as the statistics of the events do."""
    queue_now, part_ended = legs[0][0], legs[0][2]
    for queue_name, leg_answered, leg_ended in legs[1:]:
        if queue_name != queue_now and part_ended is not None:
            part_wait = leg_answered - part_ended
            group(entered, queue_name).counters.answered_call(
                part_wait, part_wait <= thresholds.get(queue_name, default_threshold_s))
        queue_now, part_ended = queue_name, leg_ended
    if outcome == "answered" and final_queue != queue_now and ended is not None and part_ended is not None \
            and part_ended < ended and legs[-1][2] is not None:
        group(entered, final_queue).counters.abandoned_call(ended - part_ended)


def _count_contact(c: Counters, answered_in: Counters, outcome: str | None, answered: bool, ended: bool,
                   wait: float | None, talk: float | None, hold: float | None, wrap: float | None,
                   threshold: float) -> None:
    """Answered means it reached an agent, counted at once (a call still up, or one a
    switch stop cut, included) in the queue it was answered from; its handling counts
    once it has ended, in the queue it ended in (`c`), as the simulator's statistics do."""
    c.offered += 1
    wait = wait or 0.0
    if answered:
        answered_in.answered_call(wait, wait <= threshold)
        if ended:
            c.handled_call(talk or 0.0, hold or 0.0)
            c.wrap += wrap or 0.0
    elif outcome == "abandoned":
        c.abandoned_call(wait)
    elif outcome == "timeout":   # left at the queue's longest wait, for the mailbox
        c.timed_out += 1
        c.voicemail += 1
    elif outcome == "voicemail":
        c.voicemail += 1


def _count_agents(db: Database, start: float, end: float, thresholds: dict[str, float], default_threshold_s: float,
                  group) -> None:
    part_ended: dict[int, float] = {}   # contact -> when its previous agent's part ended
    for row_id, entered, ext, queue, first_wait, leg_answered, leg_ended, talk, hold, wrap, ended, direction in \
            db.execute("SELECT i.id, i.entered_at, l.agent_ext, i.queue, i.wait_s, l.answered_at, l.ended_at, "
                       "l.talk_s, l.hold_s, l.wrapup_s, l.ended, i.direction FROM interaction_legs l "
                       "JOIN interactions i ON i.id = l.interaction_id WHERE i.entered_at >= ? AND i.entered_at < ? "
                       "ORDER BY i.entered_at, i.id, l.answered_at, l.id", [start, end]):
        g = group(entered, ext)
        previous = part_ended.get(row_id)
        if leg_ended is not None:
            part_ended[row_id] = leg_ended
        if direction == "outbound":
            g.callbacks += 1   # a follow-up call they made: not a contact offered to them
            continue
        c = g.counters
        c.offered += 1
        # how long the caller waited for this agent: the contact's wait for the first, the
        # wait since the transfer (or the lost phone) for the next
        wait = (first_wait or 0.0) if previous is None else max(0.0, leg_answered - previous)
        c.answered_call(wait, wait <= thresholds.get(queue, default_threshold_s))
        if leg_ended is not None:
            c.handled_call(talk or 0.0, hold or 0.0)
            c.wrap += wrap or 0.0
        if ended == "transferred":
            g.transfers += 1
    # rings they let go (or declined): offered to them, not answered
    for t, agent in db.execute("SELECT time, agent FROM queue_log WHERE event = 'RINGNOANSWER' AND time >= ? "
                               "AND time < ?", [start, end]):
        if agent.startswith("Agent/"):
            group(t, agent[6:]).counters.offered += 1


def _count_orders(db: Database, start: float, end: float, end_now: float, by: str, group) -> None:
    key_sql = {"queue": "coalesce(i.queue, '')", "type": "coalesce(i.call_type, '')",
               "agent": "coalesce(a.ext, '')"}[by]
    dues = ", ".join(f"w.{due}, w.{met}" for due, met, _ in DEADLINES)
    for opened, closed, cancelled, key, *deadlines in db.execute(
            f"SELECT w.opened_at, w.closed_at, w.cancelled_at, {key_sql}, {dues} FROM work_orders w "
            "LEFT JOIN interactions i ON i.id = w.interaction_id LEFT JOIN agents a ON a.id = w.owner_agent_id "
            "WHERE w.opened_at < ? AND (w.closed_at IS NULL OR w.closed_at >= ?) "
            "AND (w.cancelled_at IS NULL OR w.cancelled_at >= ?)", [end, start, start]):
        key = key or "-"   # an order not opened on a call (or by nobody known)
        if opened >= start:
            group(opened, key).opened += 1
        if closed is not None and start <= closed < end:
            group(closed, key).closed += 1
        for due, met in zip(deadlines[::2], deadlines[1::2]):
            if due is None or not (start <= due < end_now):
                continue
            if (met is None or met > due) and (cancelled is None or cancelled > due) and (closed is None or closed > due):
                group(due, key).overdue += 1


def _agent_time(db: Database, start: float, end: float, interval_s: int) -> dict[tuple[int, str | None], tuple]:
    """(slot, agent ext) and (slot, None) for the centre -> (handling s, logged in and not
    on break s), walking each agent's status and state changes (agent_states)."""
    handling: dict[tuple[int, str | None], float] = defaultdict(float)
    staffed: dict[tuple[int, str | None], float] = defaultdict(float)

    def add(table, ext: str, a: float, b: float) -> None:
        a, b = max(a, start), min(b, end)
        while a < b:
            slot = int((a - start) // interval_s)
            cut = min(b, start + (slot + 1) * interval_s)
            table[(slot, ext)] += cut - a
            table[(slot, None)] += cut - a
            a = cut

    last: dict[str, tuple[float, str, str]] = {}
    # each agent's changes in the day, after the last one before it (what they were doing
    # at midnight)
    for at, ext, status, state in db.execute(
            "SELECT at, ext, status, state FROM agent_states WHERE at < ? AND (at >= ? OR id IN "
            "(SELECT max(id) FROM agent_states WHERE at < ? GROUP BY ext)) ORDER BY at, id", [end, start, start]):
        before = last.get(ext)
        if before is not None:
            _segment(add, handling, staffed, ext, before, at)
        last[ext] = (at, status, state)
    for ext, before in last.items():
        _segment(add, handling, staffed, ext, before, end)
    return {key: (handling.get(key, 0.0), seconds) for key, seconds in staffed.items()}


def _segment(add, handling, staffed, ext: str, before: tuple[float, str, str], until: float) -> None:
    since, status, state = before
    if status == "available":
        add(staffed, ext, since, until)
        if state != "idle":
            add(handling, ext, since, until)


# --- output ---------------------------------------------------------------------------------
COLUMNS = ("offered", "answered", "abandoned", "short_abandoned", "answered_within", "service_level", "asa_s",
           "aht_s", "occupancy", "transfers", "callbacks_made", "orders_opened", "orders_closed", "orders_overdue",
           "survey_score")
HEADINGS = {"offered": "offered", "answered": "answered", "abandoned": "aband", "short_abandoned": "short",
            "answered_within": "within", "service_level": "SL", "asa_s": "ASA", "aht_s": "AHT",
            "occupancy": "occ", "transfers": "xfer", "callbacks_made": "cb made", "orders_opened": "WO open",
            "orders_closed": "WO closed", "orders_overdue": "WO late", "survey_score": "survey"}


def cell(name: str, value) -> str:
    if value is None:
        return "-"
    if name in ("service_level", "occupancy"):
        return f"{value:.0%}"
    if name in ("asa_s", "aht_s"):
        return f"{value:.0f}s" if value < 600 else f"{value / 60:.0f}m"
    if name == "survey_score":
        return f"{value:.1f}"
    return str(value)


def table_lines(rows: Iterable[ReportRow], by: str, tz: dt.tzinfo) -> list[str]:
    rows = list(rows)
    header = ["time", by, *(HEADINGS[c] for c in COLUMNS)]
    body = [[dt.datetime.fromtimestamp(r.interval_start, tz).strftime("%H:%M"), r.key,
             *(cell(c, getattr(r, c)) for c in COLUMNS)] for r in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    out = []
    for line in [header, *body]:
        out.append("  ".join(text.ljust(w) if i < 2 else text.rjust(w) for i, (text, w) in enumerate(zip(line, widths)))
                   .rstrip())
    return out
