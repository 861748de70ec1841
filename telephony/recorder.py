"""Events -> records: Asterisk queue_log (text file and table) and interaction rows.

Both are event sinks (callables taking one event), shared by the simulator and the
switch. In the switch the InteractionRecorder is the one writer of interactions rows:
the routing events and what the call legs did (telephony/call_events.py: the voice
menu, outbound calls, failures, recordings, identification, dispositions) all reach
the row through it, in the transaction that logs the event. Records itself knows no
events. Batch rows are written inside one transaction each; `close()` flushes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, TextIO

from sqlite_utils import Database

from records.contacts import record_notes
from records.db import insert_row, update_row
from telephony import call_events as ce
from telephony.acd import events as ev
from telephony.acd.queue_log import format_line, rows_for
from telephony.switchconfig import MENU

_QUEUE_LOG_COLUMNS = ("time", "callid", "queuename", "agent", "event", "data1", "data2", "data3", "data4", "data5")
_INTERACTION_COLUMNS = ("uid", "node", "run", "direction", "caller_number", "dialled_number", "resident_id",
                        "queue", "call_type", "entered_at", "offered_at", "answered_at", "ended_at", "wait_s",
                        "talk_s", "hold_s", "wrapup_s", "agent_ext", "agent_id", "outcome")


class QueueLogWriter:
    """Writes queue_log lines to a text file and/or the queue_log table.

    `offset` turns the driver's clock into epoch seconds (the simulator's virtual time
    starts at 0 at the scenario's start).
    """

    def __init__(self, path: str | Path | None = None, db: Database | None = None, *, offset: float = 0.0,
                 batch: int = 5000):
        self.offset, self.db, self.batch = offset, db, batch
        self.path = Path(path) if path else None
        self._file: TextIO | None = None   # opened at the first line: a switch that never starts leaves no file
        self._rows: list[tuple] = []

    def __call__(self, event) -> None:
        self.write_rows(rows_for(event))

    def write_rows(self, rows) -> None:
        for row in rows:
            if self.offset:
                row = (int(row[0] + self.offset), *row[1:])
            if self.path is not None:
                if self._file is None:
                    self._file = open(self.path, "a", encoding="utf-8")
                self._file.write(format_line(row) + "\n")
            if self.db is not None:
                self._rows.append(row)
                if len(self._rows) >= self.batch:
                    self.flush()

    def flush(self) -> None:
        if self._file:
            self._file.flush()
        if self.db is not None and self._rows:
            marks = ", ".join("?" * len(_QUEUE_LOG_COLUMNS))
            with self.db.atomic():
                self.db.conn.executemany(f"INSERT INTO queue_log ({', '.join(_QUEUE_LOG_COLUMNS)}) VALUES ({marks})",
                                         self._rows)
            self._rows = []

    def close(self) -> None:
        self.flush()
        if self._file:
            self._file.close()
            self._file = None


class InteractionRecorder:
    """One interactions row per caller, as complete as a seeded one: who took it (the
    agent's id, so history follows the person even when the extension is reused), wait,
    talk, hold, wrap-up and outcome.

    Batch mode (the simulator) writes each row when the contact and the wrap-up after it
    have ended. Live mode (the switch) writes the row when the caller enters and updates
    it as the call goes on, so a crash leaves an open row that the next start closes as
    interrupted; wrap-up is added to the row when the agent's wrap-up ends.
    """

    def __init__(self, db: Database, *, offset: float = 0.0, node: str = "", run: str = "", batch: int = 5000,
                 live: bool = False, agent_id_of: Callable[[str], int | None] = lambda ext: None):
        self.db, self.offset, self.node, self.run, self.batch, self.live = db, offset, node, run, batch, live
        self.agent_id_of = agent_id_of
        self._open: dict[str, dict] = {}
        self._rows: list[tuple] = []
        self._row_ids: dict[str, int] = {}  # live mode: call id -> interactions.id
        self._details: dict[str, dict] = {}  # what the driver knows before the core does
        # agent -> (call id, its row: the live row's id or the batch row itself, when the wrap-up began)
        self._wrapping: dict[str, tuple[str, int | dict, float]] = {}
        self._awaiting_wrap: dict[int, dict] = {}   # batch mode: id(row) -> a finished row waiting for its wrap-up
        self._connected_since: dict[str, float] = {}   # call id -> when its current agent answered
        # live mode: each agent's part of a contact (interaction_legs), so a transfer credits both
        self._legs: dict[str, int] = {}             # call id -> its current agent's open leg
        self._outside: dict[str, int] = {}          # call id -> its open outside_transfers row
        self._interrupting: dict[str, str] = {}     # call id -> why: it ends as interrupted, whatever ends it
        self._wrapping_legs: dict[str, int] = {}    # agent -> the leg their running wrap-up belongs to
        self._ended_legs: dict[str, tuple[str, int]] = {}   # agent -> (call, leg) just ended: a wrap-up may follow

    def row_id(self, call_id: str) -> int | None:
        """The interactions.id of a caller still in the system (live mode)."""
        return self._row_ids.get(call_id)

    def expect(self, call_id: str, **columns) -> None:
        """Columns the routing events do not carry (dialled_number, resident_id), for a
        caller about to enter: written with the row's first write."""
        self._details[call_id] = columns

    def amend(self, call_id: str, **columns) -> bool:
        """Change columns of a caller's live row (an agent identified an unknown caller);
        False if the caller has left (the row is final: update it directly)."""
        row = self._open.get(call_id)
        if row is None:
            return False
        row.update(columns)
        self._write(call_id)
        return True

    def finish(self, call_id: str, t: float, outcome: str, *, talk_s: float = 0.0) -> None:
        """End a row the routing core no longer follows (a caller transferred outside):
        `talk_s` adds to what the agents already talked."""
        row = self._open.get(call_id)
        if row is not None:
            self._end(call_id, t, outcome, talk_s=(row["talk_s"] or 0.0) + talk_s)

    def forget(self, call_id: str) -> None:
        """The caller announced with `expect` never entered."""
        self._details.pop(call_id, None)

    def __call__(self, event) -> None:
        kind = type(event)
        t = event.t + self.offset
        if kind is ev.CallQueued or kind is ev.CallRejectedFull:
            if event.call_id not in self._open:
                self._open[event.call_id] = {
                    "uid": f"{self.run}-{event.call_id}" if self.run else event.call_id, "node": self.node,
                    "run": self.run, "direction": "inbound", "caller_number": getattr(event, "number", ""),
                    "queue": event.queue, "call_type": event.queue, "entered_at": t, "offered_at": None,
                    "answered_at": None, "ended_at": None, "wait_s": None, "talk_s": None, "hold_s": None,
                    "wrapup_s": None, "agent_ext": "", "agent_id": None, "outcome": None, "dialled_number": "",
                    "resident_id": None,
                    **self._details.pop(event.call_id, {})}
                self._write(event.call_id)
            else:
                queued = self._open[event.call_id]
                if queued["call_type"] == MENU:   # out of the voice menu: the contact goes on in its row
                    queued.update(call_type=event.queue, **self._details.pop(event.call_id, {}))
                queued["queue"] = event.queue
                self._write(event.call_id)
        elif kind is ev.CallOffered or kind is ev.CallbackDue:
            row = self._open.get(event.call_id)
            if row is not None and row["offered_at"] is None:
                row["offered_at"] = t
                self._write(event.call_id)
        elif kind is ev.CallConnected:
            row = self._open.get(event.call_id)
            if row is not None:
                if row["answered_at"] is None:   # a transferred caller keeps their first answer and wait
                    row.update(answered_at=t, wait_s=event.wait_s)
                row.update(agent_ext=event.agent_id, agent_id=self.agent_id_of(event.agent_id))
                self._connected_since[event.call_id] = t
                self._write(event.call_id)
                self._leg_begins(event.call_id, event.agent_id, event.queue, t)
        elif kind is ev.CallTransferred or kind is ev.CallRequeued:
            row = self._open.get(event.call_id)
            if row is not None:   # the contact goes on: talk and hold add up over the agents
                row.update(talk_s=(row["talk_s"] or 0.0) + event.talk_s, hold_s=(row["hold_s"] or 0.0) + event.hold_s)
                self._connected_since.pop(event.call_id, None)
                self._write(event.call_id)
            self._leg_ends(event.call_id, t, "transferred" if kind is ev.CallTransferred else "requeued",
                           event.talk_s, event.hold_s)
            if kind is ev.CallTransferred:
                self._wrap_begins(event.agent_id, event.call_id, t, event.wrap_up_s)
                if event.target.startswith("number:"):
                    self._outside_asked(event.call_id, event.agent_id, event.target[len("number:"):], t)
        elif kind is ev.CallCompleted:
            row = self._open.get(event.call_id)
            before_talk, before_hold = (row["talk_s"] or 0.0, row["hold_s"] or 0.0) if row is not None else (0.0, 0.0)
            self._leg_ends(event.call_id, t, "completed", event.talk_s, event.hold_s)
            self._wrap_begins(event.agent_id, event.call_id, t, event.wrap_up_s)
            self._end(event.call_id, t, "answered", talk_s=before_talk + event.talk_s,
                      hold_s=before_hold + event.hold_s)
        elif kind is ev.CallAbandoned:
            row = self._open.get(event.call_id)
            if row is not None and row["answered_at"] is not None:
                # answered, then their agent's phone died and they hung up waiting again:
                # still an answered call, with the talk it had and its first wait
                self._end(event.call_id, t, "answered")
            else:
                self._end(event.call_id, t, "abandoned", wait_s=event.wait_s)
        elif kind is ev.AgentStateChanged:
            if event.state != "wrap_up" and event.agent_id in self._wrapping:
                self._wrap_ends(event.agent_id, t)
        elif kind is ev.CallTimedOut:
            row = self._open.get(event.call_id)
            if row is not None:
                row["outcome"] = "timeout"
        elif kind is ev.CallToVoicemail:
            row = self._open.get(event.call_id)
            outcome = "timeout" if row is not None and row["outcome"] == "timeout" else "voicemail"
            self._end(event.call_id, t, outcome, wait_s=event.wait_s)
        else:
            legs = _LEG_EVENTS.get(kind)
            if legs is not None and self.live:
                legs(self, event)

    # --- what the switch's call legs did (live mode: telephony/call_events.py) -------------------
    def _new_row(self, call_id: str, t: float, **columns) -> dict:
        row = {"uid": call_id, "node": self.node, "run": self.run, "direction": "inbound", "caller_number": "",
               "dialled_number": "", "resident_id": None, "queue": "", "call_type": "", "entered_at": t,
               "offered_at": None, "answered_at": None, "ended_at": None, "wait_s": None, "talk_s": None,
               "hold_s": None, "wrapup_s": None, "agent_ext": "", "agent_id": None, "outcome": None, **columns}
        self._open[call_id] = row
        self._write(call_id)
        return row

    def _menu_entered(self, event: ce.MenuEntered) -> None:
        # the contact's row exists from the menu on, so one hanging up there is counted;
        # the routing events carry on in it once a key picks the queue
        self._new_row(event.call_id, event.t, caller_number=event.number, dialled_number=event.dialled,
                      resident_id=event.resident_id, queue=MENU, call_type=MENU)

    def _menu_abandoned(self, event: ce.MenuAbandoned) -> None:
        self._end(event.call_id, event.t, "abandoned", wait_s=event.wait_s)

    def _outbound_dialled(self, event: ce.OutboundDialled) -> None:
        self._new_row(event.call_id, event.t, direction="outbound", caller_number=event.number,
                      dialled_number=event.number, resident_id=event.resident_id, queue="outbound",
                      call_type="outbound", agent_ext=event.agent_id, agent_id=self.agent_id_of(event.agent_id))

    def _outbound_answered(self, event: ce.OutboundAnswered) -> None:
        row = self._open.get(event.call_id)
        if row is not None:
            row.update(answered_at=event.t, offered_at=row["entered_at"], wait_s=event.wait_s)
            self._connected_since[event.call_id] = event.t
            self._write(event.call_id)
            self._leg_begins(event.call_id, event.agent_id, "outbound", event.t)

    def _outbound_ended(self, event: ce.OutboundEnded) -> None:
        row = self._open.get(event.call_id)
        if row is None:
            return
        if row["answered_at"] is not None:
            # a talked callback gets its wrap-up, to write down how it went
            self._leg_ends(event.call_id, event.t, "completed" if event.outcome == "answered" else "interrupted",
                           event.talk_s, event.hold_s)
            self._wrap_begins(event.agent_id, event.call_id, event.t, event.wrap_up_s)
            self._end(event.call_id, event.t, event.outcome, talk_s=event.talk_s, hold_s=event.hold_s)
        else:
            self._end(event.call_id, event.t, event.outcome)

    # A transfer out: the contact row stays the transferring agent's until the caller
    # leaves (OutsideEnded); each try has its own outside_transfers row.
    def _outside_asked(self, call_id: str, agent: str, number: str, t: float) -> None:
        row_id = self._row_ids.get(call_id)
        if self.live and row_id is not None:
            self._outside[call_id] = insert_row(self.db, "outside_transfers", {
                "interaction_id": row_id, "agent_id": self.agent_id_of(agent), "agent_ext": agent, "number": number,
                "asked_at": t})

    def _outside_answered(self, event: ce.OutsideAnswered) -> None:
        if (attempt := self._outside.get(event.call_id)) is not None:
            self.db.execute("UPDATE outside_transfers SET answered_at = ? WHERE id = ?", [event.t, attempt])

    def _outside_not_answered(self, event: ce.OutsideNotAnswered) -> None:
        if (attempt := self._outside.pop(event.call_id, None)) is not None:
            self.db.execute("UPDATE outside_transfers SET ended_at = ?, talk_s = 0, outcome = 'not_answered' "
                            "WHERE id = ?", [event.t, attempt])

    def _outside_ended(self, event: ce.OutsideEnded) -> None:
        if (attempt := self._outside.pop(event.call_id, None)) is not None:
            self.db.execute("UPDATE outside_transfers SET ended_at = ?, talk_s = ?, outcome = CASE "
                            "WHEN ? = 'interrupted' THEN 'interrupted' WHEN answered_at IS NULL THEN 'caller_hung_up' "
                            "ELSE 'answered' END WHERE id = ?", [event.t, event.talk_s, event.outcome, attempt])
        self.finish(event.call_id, event.t, event.outcome, talk_s=event.talk_s)

    def _call_failed(self, event: ce.CallFailed) -> None:
        insert_row(self.db, "interactions", {
            "uid": event.call_id, "node": self.node, "direction": "outbound" if event.agent_id else "inbound",
            "caller_number": event.number, "dialled_number": event.dialled, "queue": "", "call_type": "",
            "entered_at": event.t, "ended_at": event.t, "wait_s": 0.0, "outcome": "failed", "sip_cause": event.cause,
            "agent_ext": event.agent_id, "agent_id": self.agent_id_of(event.agent_id) if event.agent_id else None})

    def _recording_saved(self, event: ce.RecordingSaved) -> None:
        self.db.execute("UPDATE interactions SET recording_path = ? WHERE uid = ?", [event.path, event.call_id])

    def _caller_identified(self, event: ce.CallerIdentified) -> None:
        if not self.amend(event.call_id, resident_id=event.resident_id):   # the contact is over: its row is final
            self.db.execute("UPDATE interactions SET resident_id = ? WHERE uid = ?", [event.resident_id, event.call_id])

    def _disposition_set(self, event: ce.DispositionSet) -> None:
        row_id = self.row_of(event.call_id)
        if row_id is not None:
            record_notes(self.db, row_id, agent_ext=event.agent_id, agent_id=self.agent_id_of(event.agent_id),
                         at=event.t, disposition=event.disposition, notes=event.notes)

    def row_of(self, call_id: str) -> int | None:
        """The interactions.id of a contact, live or over (live mode)."""
        row_id = self._row_ids.get(call_id)
        if row_id is None:
            found = self.db.execute("SELECT id FROM interactions WHERE uid = ?", [call_id]).fetchone()
            row_id = found[0] if found else None
        return row_id

    def close_rows_left_open(self, last: float) -> list[tuple]:
        """Start-up, after a switch went down: every contact it left open ends as
        interrupted at `last` (its last sign of life), with the talk it had. Returns
        (uid, queue, agent_ext, answered, wait_s, talk_s, end) for each, for queue_log."""
        closed = []
        for row_id, uid, queue, agent, entered, answered, wait, talk in self.db.execute(
                "SELECT id, uid, queue, agent_ext, entered_at, answered_at, wait_s, talk_s FROM interactions "
                "WHERE ended_at IS NULL").fetchall():
            # the talk so far is on the row up to the current agent's part (after a transfer:
            # the earlier agents'), which began when its open leg did
            leg = self.db.execute("SELECT max(answered_at) FROM interaction_legs WHERE interaction_id = ? "
                                  "AND ended_at IS NULL", [row_id]).fetchone()[0]
            end = max(last, leg or answered or entered)
            outside = self.db.execute("SELECT max(answered_at) FROM outside_transfers WHERE interaction_id = ? "
                                      "AND ended_at IS NULL", [row_id]).fetchone()[0]
            if answered is not None:   # no open leg: put back to wait (a transfer), or talking outside
                talk = (talk or 0.0) + (end - leg if leg is not None else 0.0) + \
                    (max(0.0, end - outside) if outside is not None else 0.0)
            else:
                wait = end - entered
            self.db.execute("UPDATE interactions SET outcome = 'interrupted', ended_at = ?, wait_s = ?, talk_s = ?, "
                            "hold_s = CASE WHEN answered_at IS NULL THEN hold_s ELSE coalesce(hold_s, 0) END, "
                            "wrapup_s = CASE WHEN answered_at IS NULL THEN wrapup_s ELSE coalesce(wrapup_s, 0) END "
                            "WHERE id = ?", [end, wait, talk, row_id])
            closed.append((uid, queue, agent, answered is not None, wait, talk, end))
            self.db.execute("UPDATE interaction_legs SET ended = 'interrupted', ended_at = max(?, answered_at), "
                            "talk_s = max(?, answered_at) - answered_at, hold_s = 0, wrapup_s = 0 "
                            "WHERE interaction_id = ? AND ended_at IS NULL", [last, last, row_id])
            self._interrupt_outside("interaction_id = ?", end, [row_id])
        return closed

    def close_wrap_ups_left_open(self, last: float) -> int:
        """Start-up, after a switch went down: an agent it left in wrap-up had their
        wrap-up until `last` (its last sign of life), on their leg and on the contact, as
        its end would have written (found by the demo trial: such a contact kept 0 s).
        Returns how many there were."""
        closed = 0
        for ext, began in self.db.execute(
                "SELECT s.ext, s.at FROM agent_states s WHERE s.id = (SELECT s2.id FROM agent_states s2 WHERE "
                "s2.ext = s.ext ORDER BY s2.at DESC, s2.id DESC LIMIT 1) AND s.state = 'wrap_up' AND "
                "s.status != 'logged_out'").fetchall():
            leg = self.db.execute("SELECT id, interaction_id FROM interaction_legs WHERE agent_ext = ? AND ended_at "
                                  "IS NOT NULL AND ended_at <= ? ORDER BY ended_at DESC, id DESC LIMIT 1",
                                  [ext, began + 1.0]).fetchone()
            if leg is None:
                continue
            seconds = max(0.0, last - began)
            self.db.execute("UPDATE interaction_legs SET wrapup_s = coalesce(wrapup_s, 0) + ? WHERE id = ?",
                            [seconds, leg[0]])
            self.db.execute("UPDATE interactions SET wrapup_s = coalesce(wrapup_s, 0) + ? WHERE id = ?",
                            [seconds, leg[1]])
            closed += 1
        return closed

    def _interrupt_outside(self, which: str, end: float, args: list) -> None:
        self.db.execute("UPDATE outside_transfers SET outcome = 'interrupted', ended_at = max(?, asked_at), "
                        "talk_s = CASE WHEN answered_at IS NULL THEN 0 ELSE max(?, answered_at) - answered_at END "
                        f"WHERE ended_at IS NULL AND {which}", [end, end, *args])

    def interrupt_strays(self, t: float) -> int:
        """The switch stops: a row of this node that nothing followed any more (a bug, or
        a race with the stop) still ends. Returns how many there were."""
        self._interrupt_outside("interaction_id IN (SELECT id FROM interactions WHERE ended_at IS NULL AND node = ?)",
                                t + self.offset, [self.node])
        self.db.execute("UPDATE interaction_legs SET ended = 'interrupted', ended_at = ?, "
                        "talk_s = max(0, ? - answered_at), hold_s = 0, wrapup_s = 0 WHERE ended_at IS NULL AND "
                        "interaction_id IN (SELECT id FROM interactions WHERE ended_at IS NULL AND node = ?)",
                        [t + self.offset, t + self.offset, self.node])
        return self.db.execute("UPDATE interactions SET outcome = 'interrupted', ended_at = ? "
                               "WHERE ended_at IS NULL AND node = ?", [t + self.offset, self.node]).rowcount

    def _wrap_begins(self, agent: str, call_id: str, t: float, wrap_up_s: float) -> None:
        row = self._open.get(call_id)
        if row is not None and row["wrapup_s"] is None:
            row["wrapup_s"] = 0.0   # known from now on: none yet, and none at all without a timer
        if wrap_up_s <= 0:
            return
        target: int | dict | None = self._row_ids.get(call_id) if self.live else row
        if target is not None:
            self._wrapping[agent] = (call_id, target, t)
            ended = self._ended_legs.pop(agent, None)
            if ended is not None and ended[0] == call_id:
                self._wrapping_legs[agent] = ended[1]

    def _wrap_ends(self, agent: str, t: float) -> None:
        call_id, target, began = self._wrapping.pop(agent)
        seconds = max(0.0, t - began)
        leg = self._wrapping_legs.pop(agent, None)
        if leg is not None:
            self.db.execute("UPDATE interaction_legs SET wrapup_s = coalesce(wrapup_s, 0) + ? WHERE id = ?",
                            [seconds, leg])
        row = self._open.get(call_id)
        if row is not None and (target is row or self._row_ids.get(call_id) == target):
            row["wrapup_s"] = (row["wrapup_s"] or 0.0) + seconds   # the contact goes on (a transfer)
            self._write(call_id)
        elif isinstance(target, int):   # live, contact over: its row is final in the database
            self.db.execute("UPDATE interactions SET wrapup_s = coalesce(wrapup_s, 0) + ? WHERE id = ?",
                            [seconds, target])
        else:
            target["wrapup_s"] = (target["wrapup_s"] or 0.0) + seconds
            if id(target) in self._awaiting_wrap and not self._wrap_pending(target):
                self._queue_row(self._awaiting_wrap.pop(id(target)))

    def _wrap_pending(self, row: dict) -> bool:
        return any(target is row for _, target, _ in self._wrapping.values())

    def _queue_row(self, row: dict) -> None:
        self._rows.append(tuple(row[c] for c in _INTERACTION_COLUMNS))
        if len(self._rows) >= self.batch:
            self.flush()

    def interrupt(self, call_id: str, t: float) -> dict | None:
        """The run or the switch stopped with this caller still in: the row ends as
        interrupted, keeping the talk it had (hold not known here counts as talk).
        Returns the row as it ended, or None if the caller was not in."""
        row = self._open.get(call_id)
        if row is None:
            return None
        end = t + self.offset
        talk = row["talk_s"]
        since = self._connected_since.get(call_id)
        if since is not None:
            talk = (talk or 0.0) + max(0.0, end - since)
            self._leg_ends(call_id, end, "interrupted", max(0.0, end - since), 0.0)
        answered = row["answered_at"] is not None
        wait = row["wait_s"] if answered else end - row["entered_at"]
        # an answered contact's row is as complete as a finished one: hold and wrap-up known
        # (zero unless a part before a transfer had some); an unanswered one has neither, as
        # an abandoned row
        extra = {"hold_s": row["hold_s"] or 0.0, "wrapup_s": row["wrapup_s"] or 0.0} if answered else {}
        self._end(call_id, end, "interrupted", talk_s=talk, wait_s=wait, **extra)
        return row

    def _leg_begins(self, call_id: str, agent: str, queue: str, t: float) -> None:
        row_id = self._row_ids.get(call_id)
        if self.live and row_id is not None:
            self._legs[call_id] = insert_row(self.db, "interaction_legs", {
                "interaction_id": row_id, "agent_id": self.agent_id_of(agent), "agent_ext": agent, "queue": queue,
                "answered_at": t})

    def end_as_interrupted(self, call_id: str, why: str) -> None:
        """The switch cut this contact (its media node died): whatever ends it next (the
        caller's hang-up as routing sees it) closes its row and its agent's part as
        interrupted, with the cause; times and talk as they were."""
        if call_id in self._open:
            self._interrupting[call_id] = why

    def _leg_ends(self, call_id: str, t: float, how: str, talk_s: float, hold_s: float) -> None:
        if call_id in self._interrupting:
            how = "interrupted"
        leg = self._legs.pop(call_id, None)
        if leg is None:
            return
        agent = self.db.execute("UPDATE interaction_legs SET ended_at = ?, talk_s = ?, hold_s = ?, wrapup_s = 0, "
                                "ended = ? WHERE id = ? RETURNING agent_ext", [t, talk_s, hold_s, how, leg]).fetchone()
        if agent is not None:
            self._ended_legs[agent[0]] = (call_id, leg)   # their wrap-up, if one follows, is this leg's

    def _write(self, call_id: str) -> None:
        """Live mode: put the row as it stands now into the database."""
        if not self.live:
            return
        values = {c: self._open[call_id][c] for c in _INTERACTION_COLUMNS}
        row_id = self._row_ids.get(call_id)
        if row_id is None:
            self._row_ids[call_id] = insert_row(self.db, "interactions", values)
        else:
            update_row(self.db, "interactions", row_id, values)

    def _end(self, call_id: str, t: float, outcome: str, **values) -> None:
        row = self._open.get(call_id)
        if row is None:
            return
        why = self._interrupting.pop(call_id, None)
        row.update(values, ended_at=t, outcome=outcome if why is None else "interrupted")
        self._write(call_id)
        if why is not None and (row_id := self._row_ids.get(call_id)) is not None:
            self.db.execute("UPDATE interactions SET sip_cause = ? WHERE id = ?", [f"interrupted: {why}", row_id])
        since = self._connected_since.get(call_id)
        if since is not None:   # nothing ended its agent's part (a bug): it ends with the contact
            self._leg_ends(call_id, t, "interrupted", max(0.0, t - since), 0.0)
        del self._open[call_id]
        self._row_ids.pop(call_id, None)
        self._connected_since.pop(call_id, None)
        if not self.live:
            if self._wrap_pending(row):
                self._awaiting_wrap[id(row)] = row   # written when the agent's wrap-up ends
            else:
                self._queue_row(row)

    def flush(self) -> None:
        if self._rows:
            marks = ", ".join("?" * len(_INTERACTION_COLUMNS))
            with self.db.atomic():
                self.db.conn.executemany(
                    f"INSERT INTO interactions ({', '.join(_INTERACTION_COLUMNS)}) VALUES ({marks})", self._rows)
            self._rows = []

    def close(self, now: float | None = None) -> None:
        """Flush; callers still in the system when the run ends are written as interrupted
        (with the talk they had), wrap-ups still running end now."""
        end = (now if now is not None else 0.0) + self.offset
        for call_id in list(self._open):
            self.interrupt(call_id, end - self.offset)
        for agent in list(self._wrapping):
            self._wrap_ends(agent, end)
        for row in self._awaiting_wrap.values():
            self._queue_row(row)
        self._awaiting_wrap.clear()
        self.flush()


_LEG_EVENTS: dict[type, Callable[[InteractionRecorder, Any], None]] = {
    ce.MenuEntered: InteractionRecorder._menu_entered, ce.MenuAbandoned: InteractionRecorder._menu_abandoned,
    ce.OutboundDialled: InteractionRecorder._outbound_dialled,
    ce.OutboundAnswered: InteractionRecorder._outbound_answered, ce.OutboundEnded: InteractionRecorder._outbound_ended,
    ce.OutsideAnswered: InteractionRecorder._outside_answered, ce.OutsideEnded: InteractionRecorder._outside_ended,
    ce.OutsideNotAnswered: InteractionRecorder._outside_not_answered,
    ce.CallFailed: InteractionRecorder._call_failed, ce.RecordingSaved: InteractionRecorder._recording_saved,
    ce.CallerIdentified: InteractionRecorder._caller_identified,
    ce.DispositionSet: InteractionRecorder._disposition_set,
}
