"""The switch's asyncio side: the routing core on the real clock, records, and listeners.

Everything here runs on the event-loop thread (the SIP thread posts into it with
`loop.call_soon_threadsafe`). It is the only writer of the records database in the
switch process. The SIP leg reports what callers and agents do through the `call_*`
methods; people act through the control API (telephony/control.py), which calls the
rest. After every change the routing core's events go, in order, to the interaction
recorder, the queue_log writer, the agent-state history and the subscribers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, TypeVar

from sqlite_utils import Database

from records import agents as agent_records
from records.directory import resident_by_phone
from records import supervision
from records.phones import PhoneNumberError, normalise
from telephony.recorder import InteractionRecorder, QueueLogWriter
from records.db import insert_row
from telephony.acd import Acd, AcdError, QueueConfig
from telephony.acd import events as ev
from telephony.acd.queue_log import agent_field, interrupted_rows
from telephony.call_events import (CallerIdentified, CallFailed, DispositionSet, MenuEntered, OutboundDialled,
                                   PhoneRegistration, RecordingSaved)
from telephony.errors import SwitchError
from telephony.lockout import Lockout
from telephony.switch_calls import (TRUNK_LEG, Caller, InMenu, Outbound, Routed, SwitchCall, TransferredOut,
                                    display_name)
from telephony.switchconfig import MENU, SwitchConfig, default_queues
from telephony import wire


log = logging.getLogger("hotline.switch")
T = TypeVar("T")

VOICEMAIL_MAX_S = 120.0            # a message longer than this is cut off
VOICEMAIL_CALLBACK_S = 24 * 3600.0  # a message is called back within a day
__all__ = ["SwitchCore", "SwitchError", "Subscriber", "Legs", "TRUNK_LEG"]


# why the switch logged its agents out (agent_states.reason) when it went down or stopped
SWITCH_LOG_OUT_REASONS = ("switch went down", "switch stopped")


class Legs(Protocol):
    """What the switch core asks of the SIP side (telephony/sip.py): all calls return at
    once; what then happens comes back through SwitchCore.call_* methods."""

    def ring(self, call_id: str, ext: str, contact: tuple[str, int], headers: dict[str, str],
             caller_name: str = "") -> None: ...

    def bridge(self, call_id: str, ext: str) -> None: ...

    def hang_up_agent(self, call_id: str, ext: str) -> None: ...

    def voicemail(self, call_id: str, max_s: float) -> None: ...

    def start_menu(self, call_id: str) -> None: ...

    def end_menu(self, call_id: str) -> None: ...

    def wait_in_queue(self, call_id: str) -> None: ...

    def drop_agent(self, call_id: str, ext: str) -> None: ...

    def release(self, call_id: str, code: int, reason: str) -> None: ...

    def end_for_agent(self, call_id: str, ext: str) -> None: ...

    def hold_for_agent(self, call_id: str, ext: str, held: bool) -> None: ...

    def digest_counts(self) -> dict[str, int]: ...

    def media_status(self) -> dict | None: ...

    def check_seat(self, ext: str) -> None: ...


@dataclass
class Subscriber:
    deliver: Callable[[dict], None]
    ext: str | None   # None: everything (supervisors)


class SwitchCore:
    def __init__(self, db: Database, queues: list[QueueConfig] | None = None, *, node: str = "switch",
                 clock: Callable[[], float] = time.time, queue_log_path: str | Path | None = None,
                 config: SwitchConfig | None = None, recordings: str | Path | None = None):
        self.db, self.node, self.clock = db, node, clock
        self.config = config or SwitchConfig(tuple(queues) if queues else default_queues())
        self.acd = Acd(self.config.queues, break_limits={reason: minutes * 60.0
                                                         for reason, minutes in self.config.breaks.items()})
        self.menu_playable = False  # set by a media engine that can play the menu and hear the keys
        self.media = False          # calls' audio anchored in the switch (telephony/media.py)
        self.recordings = Path(recordings) if recordings is not None else None
        self._empty_recordings = 0   # recordings that held no audio (logged once)
        # Recordings become WAV in a process of their own: reading a pcap and mixing its audio
        # holds the GIL, which the SIP thread needs for signalling (profiled under load).
        self._converter: ProcessPoolExecutor | None = None
        self._stop_news: list[dict] = []   # events of a stop or a recovery, heard once committed
        self.recorder = InteractionRecorder(db, node=node, live=True, agent_id_of=self._agent_id)
        self.queue_log = QueueLogWriter(queue_log_path, db, batch=1)
        self._subscribers: list[Subscriber] = []
        # fields the ringing seat's CallOffered carries besides the event's (the control API's pop)
        self.offer_details: Callable[[dict], dict] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._views: dict[str, dict] = {}    # ext -> status, reason, state, since, call
        self.before_restart: dict[str, dict] = {}   # ext -> status, reason when the last run ended
        self._breaks_before_restart: dict[str, tuple[str, float]] = {}   # ext -> reason, when the break began
        self.agents: dict[str, dict] = {}    # ext -> records row (id, name, role)
        self.registrations: dict[str, tuple[str, int]] = {}   # ext -> SIP contact (host, port)
        self.registration_refreshes: Counter[str] = Counter()   # ext -> REGISTERs that renewed the same contact
        self.legs: Legs | None = None
        self.closed = False   # shut down: what phones report now changes nothing
        # call id -> the call in its state (telephony/switch_calls.py): every call from its
        # INVITE until its contact is over
        self.calls: dict[str, SwitchCall] = {}
        self.refused: Counter[str] = Counter()  # SIP cause -> calls turned away with it
        self.sip_refusals: Counter[str] = Counter()   # SIP cause -> requests of any kind turned away
        self.lockouts: dict[tuple[str, str], float] = {}   # ("extension"|"address", key) -> locked until
        # control-API logins: the same PINs as SIP's digest, counted on their own
        sip = self.config.sip
        self._login_guards = {
            "extension": Lockout(max_failures=sip.auth_failures_per_ext, window_s=sip.auth_window_s,
                                 lock_s=sip.auth_lock_s),
            "address": Lockout(max_failures=sip.auth_failures_per_address, window_s=sip.auth_window_s,
                               lock_s=sip.auth_lock_s)}
        self.on_fatal: Callable[[str], None] | None = None   # the switch must stop (its SIP thread failed)
        self._refused_seq = 0
        self._write_depth = 0   # _committed() blocks open now
        for agent in agent_records.list_agents(db):
            self._add_agent(agent)

    def _agent_id(self, ext: str) -> int | None:
        agent = self.agents.get(ext)
        return agent["id"] if agent is not None else None

    def status_before_restart(self, ext: str) -> dict | None:
        """Once per agent: their status when the switch last went down or stopped."""
        return self.before_restart.pop(ext, None)

    def _add_agent(self, agent: dict) -> None:
        self.agents[agent["ext"]] = agent
        self.acd.add_agent(agent["ext"], agent["skills"])
        self._views[agent["ext"]] = {"status": "logged_out", "reason": "", "state": "idle",
                                     "since": self.clock(), "call": None, "status_since": self.clock()}

    # --- start-up ------------------------------------------------------------------
    def recover(self) -> int:
        """Close what a previous run left open when it went down (a crash, a kill): its
        contacts as interrupted, with the talk they had and a queue_log line that ends
        each; its agents as logged out. The time it went down is the last thing it wrote
        (queue_log, agent states or interactions). Only the switch holding the
        database's lock runs this (telephony/switch.py), so a live switch's calls are
        never touched. Returns how many contacts were closed."""
        last = self.db.execute(
            "SELECT max(t) FROM (SELECT max(time) AS t FROM queue_log UNION ALL SELECT max(at) FROM agent_states "
            "UNION ALL SELECT max(coalesce(answered_at, offered_at, entered_at)) FROM interactions "
            "WHERE ended_at IS NULL UNION ALL SELECT at FROM switch_alive WHERE node = ?)",
            [self.node]).fetchone()[0] or self.clock()
        with self._committed():
            rows = self.recorder.close_rows_left_open(last)
            self.recorder.close_wrap_ups_left_open(last)
            for uid, queue, agent, answered, wait, talk, end in rows:
                entry = self.db.execute("SELECT data3 FROM queue_log WHERE callid = ? AND event = 'ENTERQUEUE' "
                                        "ORDER BY id LIMIT 1", [uid]).fetchone()
                if entry is not None:   # it was in a queue: its queue_log story gets its end
                    self.queue_log.write_rows(interrupted_rows(
                        end, uid, queue, agent if answered else "", answered=answered,
                        wait_s=wait or 0.0, talk_s=talk or 0.0, original_position=int(entry[0] or 1),
                        why="switch went down"))
                number, dialled = self.db.execute("SELECT coalesce(caller_number, ''), coalesce(dialled_number, '') "
                                                  "FROM interactions WHERE uid = ?", [uid]).fetchone() or ("", "")
                self.log_interrupted(end, uid, queue or "", agent or "", answered=answered, wait_s=wait or 0.0,
                                     talk_s=talk or 0.0, original_position=int(entry[0] or 1) if entry else 1,
                                     why="switch went down", number=number, dialled=dialled)
            self._log_out_everyone(last, SWITCH_LOG_OUT_REASONS[0], only_if_logged_in=True)
            self.queue_log.flush()
        self._stop_news.clear()   # logged; nobody subscribes before the start
        self._recover_recordings()
        self._remember_statuses_before_restart()
        return len(rows)

    def _remember_statuses_before_restart(self) -> None:
        """What each agent was doing when the last run of the switch went down or stopped
        (their last status before its log-out): a client logging in again is told, so a
        break a supervisor set is not lost to a restart (found by the demo's trial: the
        bots came back available)."""
        reasons = ",".join("?" * len(SWITCH_LOG_OUT_REASONS))
        ended = self.db.execute(f"SELECT max(at) FROM agent_states WHERE status = 'logged_out' AND node = ? AND "
                                f"reason IN ({reasons})", [self.node, *SWITCH_LOG_OUT_REASONS]).fetchone()[0]
        if ended is None:
            return
        for ext, agent in self.agents.items():
            rows = self.db.execute("SELECT status, reason, at FROM agent_states WHERE agent_id = ? ORDER BY at DESC, "
                                   "id DESC LIMIT 2", [agent["id"]]).fetchall()
            # logged out by the last run's end, not by one before (an agent who never came back)
            if len(rows) == 2 and rows[0][0] == "logged_out" and rows[0][1] in SWITCH_LOG_OUT_REASONS \
                    and rows[0][2] == ended and rows[1][0] != "logged_out":
                self.before_restart[ext] = {"status": rows[1][0], "reason": rows[1][1] or ""}
                if rows[1][0] == "on_break":
                    # taken up again, the break runs from when the agent went on it: its
                    # first row of that status and reason since anything else
                    began = self.db.execute(
                        "SELECT min(at) FROM agent_states WHERE agent_id = ? AND at <= ? AND at > coalesce("
                        "(SELECT max(at) FROM agent_states WHERE agent_id = ? AND at < ? AND (status != 'on_break' "
                        "OR coalesce(reason, '') != ?)), -1)",
                        [agent["id"], rows[1][2], agent["id"], rows[0][2], rows[1][1] or ""]).fetchone()[0]
                    self._breaks_before_restart[ext] = (rows[1][1] or "", began if began is not None else rows[1][2])

    def _recover_recordings(self) -> None:
        """Recordings a previous run left as pcap (it stopped or died before converting
        them: found using the demo, header-only files of the calls a stop cut) become
        their contact's WAV, or go if they hold no audio."""
        from telephony.media import pcap_to_wav

        if self.recordings is None or not (self.recordings / "raw").is_dir():
            return
        raw = self.recordings / "raw"
        leftovers: dict[str, list[Path]] = {}
        for pcap in sorted(raw.glob("*.pcap")):
            session = pcap.name.split("=", 1)[0]
            leftovers.setdefault(session.rsplit("-", 1)[0], []).append(pcap)   # SESSION is the call id, dashed, -N
        if not leftovers:
            return
        uids = {uid.replace(".", "-"): uid for (uid,) in self.db.execute(
            "SELECT uid FROM interactions WHERE recording_path IS NULL AND answered_at IS NOT NULL "
            "ORDER BY id DESC LIMIT 5000")}
        kept = unknown = 0
        for session, pcaps in leftovers.items():
            uid = uids.get(session)
            if uid is None:   # no contact of ours (another node's, or renamed): left for a person
                unknown += 1
                continue
            try:
                seconds = pcap_to_wav(pcaps, self.recordings / f"{uid}.wav")
            except (OSError, ValueError):
                log.warning("a recording left by the last run could not be converted; it stays in %s", raw)
                continue
            if seconds > 0:   # the recorder puts it on the row, as for any recording
                self._happened(RecordingSaved(self.clock(), uid, str(self.recordings / f"{uid}.wav")))
                kept += 1
            for pcap in pcaps:
                pcap.unlink(missing_ok=True)
        log.info("recordings left by the last run: %d kept as WAV, %d held no audio, %d of no contact known here "
                 "(left in %s)", kept, len(leftovers) - kept - unknown, unknown, raw)

    def log_interrupted(self, t: float, call_id: str, queue: str, agent: str, *, answered: bool, wait_s: float,
                        talk_s: float, original_position: int, why: str, number: str = "", dialled: str = "") -> None:
        """A contact the switch's stop ended (or a crash: closed at the next start) ends in
        the event log too, so a client catching up does not see it up for ever: talked, a
        CallCompleted `by` "switch"; not yet, a CallFailed whose cause says why. Its row is
        already written; subscribers hear it once the stop's transaction is committed."""
        if answered:
            event: wire.SwitchEvent = ev.CallCompleted(t, call_id, queue, agent, "switch", wait_s, talk_s, 0.0,
                                                       original_position, 0.0)
        else:
            event = CallFailed(t, call_id, number, dialled, "", f"interrupted: {why}")
        self._stop_news.append(self._logged(event))

    def still_alive(self) -> None:
        """Called every few seconds: the time a crash cut this switch's calls is known to
        within that (recover() reads it)."""
        with self._committed():
            self.db.execute("INSERT OR REPLACE INTO switch_alive (node, at) VALUES (?, ?)", [self.node, self.clock()])

    def _log_out_everyone(self, t: float, why: str, *, only_if_logged_in: bool) -> None:
        """Agents the switch no longer serves are logged out in agent_states and queue_log
        (AGENTLOGOFF), so time logged in adds up."""
        for ext, agent in self.agents.items():
            if only_if_logged_in:
                last = self.db.execute("SELECT status FROM agent_states WHERE agent_id = ? ORDER BY at DESC, id DESC "
                                       "LIMIT 1", [agent["id"]]).fetchone()
                logged_in = last is not None and last[0] != "logged_out"
            else:
                logged_in = self._views[ext]["status"] != "logged_out"
            if not logged_in:
                continue
            insert_row(self.db, "agent_states", {"at": t, "agent_id": agent["id"], "ext": ext, "status": "logged_out",
                                                 "state": "idle", "reason": why, "node": self.node})
            previous = last[0] if only_if_logged_in and last is not None else self._views[ext]["status"]
            self._stop_news.append(self._logged(ev.AgentStatusChanged(t, ext, "logged_out", why, previous)))
            self.queue_log.write_rows([(int(t), "NONE", "NONE", agent_field(ext), "AGENTLOGOFF", why, "", "", "", "")])

    # --- people (control API) ------------------------------------------------------------
    def authenticate(self, ext: str, pin: str, address: str = "") -> dict:
        """A login's extension and PIN. Wrong PINs are counted per extension and per
        source address (`address`: the TCP peer; "" for the local socket); too many lock
        that key out for a while, the right PIN included, and supervisors see it."""
        now = self.clock()
        keys = {"extension": str(ext), **({"address": address} if address else {})}
        for kind, key in keys.items():
            left = self._login_guards[kind].locked_for(key, now)
            if left > 0:
                who = f"extension {key}" if kind == "extension" else f"address {key}"
                raise SwitchError("locked_out", f"too many wrong PINs: {who} may try again in {left:.0f} s")
        agent = agent_records.check_login(self.db, str(ext), str(pin))
        if agent is None:
            # every wrong PIN leaves a line (a supervisor who mistyped, or someone guessing)
            by_ext = self._login_guards["extension"]
            log.warning("control: wrong extension or PIN for %s from %s (%d of %d before a lockout)", ext,
                        address or "this machine's control socket", by_ext.failures(str(ext), now) + 1,
                        by_ext.max_failures)
            for kind, key in keys.items():
                guard = self._login_guards[kind]
                guard.prune(now)   # memory stays flat under a guessing run over many extensions
                if guard.failed(key, now):
                    log.warning("control: %s %s locked out of logins for %.0f s after repeated wrong PINs",
                                kind, key, guard.lock_s)
                    self.auth_locked(kind, key, guard.lock_s)
            raise SwitchError("bad_credentials", "wrong extension or PIN")
        self._login_guards["extension"].succeeded(str(ext))
        if agent["ext"] not in self.agents:  # added to records after the switch started
            self._add_agent({**agent, "skills": dict(self._skills_of(agent["id"]))})
        return agent

    def _skills_of(self, agent_id: int):
        return self.db.execute("SELECT skill, proficiency FROM agent_skills WHERE agent_id = ?", [agent_id])

    def set_status(self, ext: str, status: str, reason: str = "") -> None:
        self._known(ext)
        if status == "on_break" and not reason:
            raise SwitchError("bad_request", "a break needs a reason code (lunch, training, ...)")
        # The same break, taken up again by the agent's seat after a restart of the switch,
        # goes on from when it began (a demo trial's 15-minute limit fired 18 minutes in)
        resumed = self._breaks_before_restart.pop(ext, None)
        began = resumed[1] if resumed is not None and status == "on_break" and resumed[0] == reason \
            and self._views[ext]["status"] == "logged_out" else None
        self._apply(lambda now: self.acd.set_status(ext, status, now, reason, began=began))

    def at_a_seat(self, ext: str) -> bool:
        """Logged in, or with a phone registered (a seat open, its agent not ready yet).
        Without a SIP side attached (the routing core alone, in tests) everyone is."""
        self._known(ext)
        return self.legs is None or ext in self.registrations or self._views[ext]["status"] != "logged_out"

    def end_wrap_up(self, ext: str) -> None:
        self._known(ext)
        self._apply(lambda now: self.acd.end_wrap_up(ext, now))

    def extend_wrap_up(self, ext: str, seconds: float) -> float:
        """More wrap-up time, once per wrap-up; returns when it now ends."""
        self._known(ext)
        until: list[float] = []
        self._apply(lambda now: until.append(self.acd.extend_wrap_up(ext, seconds, now)))
        return until[0]

    def transfer(self, call_id: str, *, by_ext: str, role: str, queue: str = "", to_ext: str = "",
                 number: str = "", form: dict | None = None) -> None:
        """Blind transfer of a connected caller to a queue, a free agent or an outside number
        (through the trunk). The agent's phone is released at once (the caller hears the
        queue's music); a receiving seat gets the same interaction, and `form` (what the
        agent had typed) with the offer."""
        call = self.acd.calls.get(call_id)
        if call is None or call.agent is None:
            raise SwitchError("conflict", f"call {call_id} is not connected")
        if role == "agent" and call.agent.id != by_ext:
            raise SwitchError("forbidden", f"call {call_id} is not with extension {by_ext}")
        if to_ext and self.legs is not None and to_ext not in self.registrations:
            raise SwitchError("conflict", f"extension {to_ext} has no phone registered")
        if number:
            if self.config.trunk is None or self.legs is None:
                raise SwitchError("conflict", "transfers to outside numbers need a trunk (trunk: in the switch config)")
            try:
                number = normalise(number)
            except PhoneNumberError as exc:
                raise SwitchError("bad_request", str(exc)) from None
        routed = self.calls.get(call_id)
        if not isinstance(routed, Routed):
            raise SwitchError("conflict", f"call {call_id} is not a routed call")
        kept = {k: str(v) for k, v in (form or {}).items() if isinstance(v, (str, int, float))}
        if kept:
            routed.form = kept
            self._keep_transferring_notes(call_id, call.agent.id, kept)
        if number:
            self.calls[call_id] = TransferredOut(call_id, routed.caller, number=number, queue=call.queue,
                                                 priority=call.priority, form=routed.form, since=self.clock())
        try:
            self._apply(lambda now: self.acd.transfer(call_id, now, queue=queue, to_agent=to_ext, outside=number))
        except SwitchError:
            self.calls[call_id] = routed
            raise

    def _keep_transferring_notes(self, call_id: str, ext: str, form: dict) -> None:
        """What the transferring agent typed is theirs on the contact, whatever the next
        agent does with the form that goes along."""
        if self.recorder.row_id(call_id) is None or not (form.get("notes") or form.get("reason")):
            return
        reason = form.get("reason") or "general"
        self._happened(DispositionSet(self.clock(), call_id, ext, f"{reason}: transferred", form.get("notes", "")))

    def set_skills(self, ext: str, skills: dict[str, int], *, by_ext: str = "") -> None:
        agent = self._known(ext)
        agent_records.update_agent(self.db, ext, skills=skills)
        agent["skills"] = dict(skills)
        self._apply(lambda now: self.acd.set_skills(ext, skills, now))
        self.audit(by_ext, "set_skills", ext, ",".join(f"{k}:{v}" for k, v in sorted(skills.items())))

    def set_priority(self, call_id: str, priority: str, *, by_ext: str = "") -> None:
        call = self.acd.calls.get(call_id)
        before = f"{call.priority} -> " if call is not None else ""
        self._apply(lambda now: self.acd.set_priority(call_id, priority, now))
        self.audit(by_ext, "set_priority", call_id, f"{before}{priority}{self._caller_said(call)}")

    def move_caller(self, call_id: str, queue: str, *, by_ext: str = "") -> None:
        """A supervisor moves a waiting caller to another queue (their place kept by arrival)."""
        call = self.acd.calls.get(call_id)
        before = f"{call.queue} -> " if call is not None else ""
        self._apply(lambda now: self.acd.move(call_id, queue, now))
        self.audit(by_ext, "move_caller", call_id, f"{before}{queue}{self._caller_said(call)}")

    @staticmethod
    def _caller_said(call) -> str:
        """Who the caller is, for the audit trail (a call id alone tells a reader nothing)."""
        return f" ({call.number})" if call is not None and call.number else ""

    def audit(self, by_ext: str, action: str, subject: str, detail: str = "") -> None:
        """A supervisor's action, on disk with who and when (records/supervision.py)."""
        if by_ext:
            with self._committed():
                supervision.audit(self.db, self.clock(), by_ext, action, subject, detail)

    def supervision(self, since: float, settings: supervision.AlertSettings) -> dict:
        """What the supervisors' console reads from records: work orders due within the
        hour or overdue, follow-up calls given up, repeat callers, mass complaints forming,
        the audit trail and the alerts acknowledged since `since` (midnight)."""
        now = self.clock()
        return {"at": now, "orders_due": supervision.orders_due(self.db, now),
                "callbacks_given_up": supervision.callbacks_given_up(self.db, since),
                "repeat_callers": supervision.repeat_callers(self.db, now, since, settings),
                "mass_complaints": supervision.mass_complaints(self.db, now, settings),
                "audit": supervision.audit_lines(self.db, since),
                "acknowledged": supervision.acknowledged(self.db, since)}

    def seq_before(self, t: float) -> int:
        """The seq after which the events logged at or after `t` begin."""
        first = self.db.execute("SELECT min(seq) FROM events WHERE at >= ?", [t]).fetchone()[0]
        return self.last_seq if first is None else first - 1

    def _taken_row(self, call_id: str, by_ext: str, role: str) -> int:
        """The interaction row of a call, if `by_ext` may write on it (agents: their own calls)."""
        row_id = self.recorder.row_of(call_id)
        if row_id is None:
            raise SwitchError("not_found", f"no interaction for call {call_id}")
        taker = self.db.execute("SELECT agent_ext FROM interactions WHERE id = ?", [row_id]).fetchone()[0]
        live = self.acd.calls.get(call_id)
        if live is not None and live.agent is not None:
            taker = live.agent.id
        elif live is not None and by_ext in live.ringing:
            taker = by_ext   # the seat identifies the caller while it rings
        if role == "agent" and taker != by_ext:
            raise SwitchError("forbidden", f"call {call_id} was not taken by extension {by_ext}")
        return row_id

    def disposition(self, call_id: str, *, by_ext: str, role: str, disposition: str, notes: str) -> None:
        """Attach the agent's disposition and notes to the caller's interaction row."""
        self._taken_row(call_id, by_ext, role)
        self._happened(DispositionSet(self.clock(), call_id, by_ext, disposition, notes))

    def identify(self, call_id: str, resident_id: int, *, by_ext: str, role: str) -> None:
        """The agent found out who an unknown caller is: their contact row says so (and
        the rest of the call, a transfer or a voicemail callback, knows it)."""
        self._taken_row(call_id, by_ext, role)
        found = self.db.execute("SELECT name FROM residents WHERE id = ?", [resident_id]).fetchone()
        if found is None:
            raise SwitchError("not_found", f"no resident with id {resident_id}")
        caller = self.calls[call_id].caller if call_id in self.calls else None
        if caller is not None:
            caller.resident_id, caller.name = resident_id, found[0] or ""
        self._happened(CallerIdentified(self.clock(), call_id, by_ext, resident_id))

    def resident_of(self, call_id: str) -> int | None:
        """Who a live call is from, as far as the switch knows (None: not known, or not live)."""
        call = self.calls.get(call_id)
        return call.caller.resident_id if call is not None and call.caller is not None else None

    def view_of(self, ext: str) -> dict:
        """One agent's status and state as the switch has them (a seat starting up)."""
        return dict(self._views[self._known(ext)["ext"]])

    def snapshot(self) -> dict:
        now = self.clock()
        queues = {}
        for name in self.acd.queues:
            queues[name] = [{"call_id": c.id, "number": c.number, "priority": c.priority,
                             "wait_s": now - c.first_entered, "callback": c.callback}
                            for c in self.acd.waiting_calls(name)]
        agents = [{"ext": ext, "name": self.agents[ext]["name"], **view, **self._current_call(view["call"]),
                   "skills": dict(self.agents[ext]["skills"]), "registered": ext in self.registrations,
                   "refreshes": self.registration_refreshes[ext], "reachable": ext in self.registrations and self.acd.agents[ext].reachable}
                  for ext, view in sorted(self._views.items())]
        locked = [{"kind": kind, "key": key, "seconds_left": until - now}
                  for (kind, key), until in sorted(self.lockouts.items()) if until > now]
        digest = self.legs.digest_counts() if self.legs is not None else {}   # the registrar's checks, by verdict
        in_progress = Counter(call.state for call in self.calls.values())   # menu, routed, outside, outbound
        media = self.legs.media_status() if self.legs is not None else None
        return {"at": now, "queues": queues, "agents": agents, "calls": dict(in_progress), "media": media,
                "calls_refused": dict(self.refused),
                "sip_refused": dict(self.sip_refusals), "locked_out": locked, "digest": digest}

    def _current_call(self, call_id: str | None) -> dict:
        """An agent's call as a supervisor sees it: the caller's number and the queue."""
        call = self.acd.calls.get(call_id) if call_id else None
        if call is None:
            outbound = self.calls.get(call_id) if call_id else None
            number = getattr(getattr(outbound, "caller", None), "number", "") if outbound is not None else ""
            return {"caller": number, "queue": "outbound" if outbound is not None else ""}
        return {"caller": call.number, "queue": call.queue}

    def _known(self, ext: str) -> dict:
        agent = self.agents.get(str(ext))
        if agent is None:
            raise SwitchError("not_found", f"no agent with extension {ext}")
        return agent

    # --- the SIP leg ---------------------------------------------------------------
    @property
    def _sip(self) -> Legs:
        """The SIP side, for acting on a report it made (so it is attached)."""
        if self.legs is None:
            raise SwitchError("unavailable", "the switch has no SIP side attached")
        return self.legs

    def attach_legs(self, legs: Legs) -> None:
        """From now on calls ring real phones: only agents with a live registration are offered."""
        self.legs = legs
        now = self.clock()
        for ext in self.agents:
            self.acd.set_reachable(ext, ext in self.registrations, now)
        self._publish()

    def queue_for(self, dialled: str) -> str:
        """The queue a dialled number leads to (the config's `numbers`). The voice menu
        needs anchored media to speak and hear keys; without it, its default queue."""
        route = self.config.route(dialled)
        if route == MENU and not self.menu_playable:
            return self.config.menu.default
        return route

    def caller_arrived(self, call_id: str, number: str, dialled: str, seat: str = "") -> None:
        """A new call from the SIP side: identify the caller, then queue them (or first let
        them choose in the voice menu). `seat`: the INVITE came from that agent's phone,
        authenticated; a number that is not the switch's own then goes out the trunk."""
        if self.closed:
            if self.legs is not None:
                self.legs.release(call_id, 503, "Service Unavailable")
            self._record_failure(number, dialled, seat=seat, cause="503 Service Unavailable", call_id=call_id)
            return
        if seat and not self.config.is_internal(dialled):
            self._dial_out(call_id, seat, dialled)
            return
        queue = self.queue_for(dialled)
        resident = resident_by_phone(self.db, number) if number else None
        owner = None
        if resident is not None:
            row = self.db.execute(
                "SELECT a.ext FROM work_orders w JOIN agents a ON a.id = w.owner_agent_id WHERE w.resident_id = ? "
                "AND w.status NOT IN ('closed', 'cancelled') ORDER BY w.opened_at DESC LIMIT 1",
                [resident["id"]]).fetchone()
            owner = row[0] if row else None
        caller = Caller(number, dialled, resident["id"] if resident else None, name=resident["name"] if resident else "",
                        vip=resident is not None and resident["segment"] == "vip", owner=owner)
        if queue == MENU:
            self._enter_menu(call_id, caller)
        else:
            self._queue_caller(call_id, queue, caller)
            if self.legs is not None:   # queue music: not before, or a menu caller would hear it first
                self.legs.wait_in_queue(call_id)

    def _queue_caller(self, call_id: str, queue: str, caller: Caller) -> None:
        priority = "emergency" if queue == "emergency" else ("vip" if caller.vip else "normal")
        self.recorder.expect(call_id, dialled_number=caller.dialled, resident_id=caller.resident_id)
        self.calls[call_id] = Routed(call_id, caller)
        try:
            self.call_arrived(call_id, queue, caller.number, priority=priority, owner=caller.owner)
        except SwitchError:
            self.recorder.forget(call_id)
            raise

    # --- outbound calls from seats (callbacks) ---------------------------------------------
    def _dial_out(self, call_id: str, ext: str, dialled: str) -> None:
        """The seat's call goes to the trunk; the agent is busy until it ends, and the
        contact is an outbound interaction row (recorded like any other call)."""
        assert self.legs is not None
        refusal = None
        trunk = self.config.trunk
        if trunk is None:
            log.warning("outbound: %s dialled %s but no trunk is configured", ext, dialled)
            refusal = (503, "No Trunk Configured")
        elif ext not in self.agents:
            refusal = (403, "Forbidden")
        else:
            try:
                self.acd.start_outbound(ext, self.clock())
            except AcdError as exc:
                log.info("outbound: %s refused (%s)", ext, exc)
                refusal = (486, "Busy Here")
        if refusal is not None or trunk is None:
            refusal = refusal or (503, "No Trunk Configured")
            self.legs.release(call_id, *refusal)
            self._record_failure(dialled, dialled, seat=ext, cause=f"{refusal[0]} {refusal[1]}", call_id=call_id)
            return
        now = self.clock()
        resident = resident_by_phone(self.db, dialled)
        self.calls[call_id] = Outbound(call_id, ext, dialled, now)
        self._happened(OutboundDialled(now, call_id, ext, dialled, resident["id"] if resident else None))
        self._publish()
        self.legs.ring(call_id, f"{TRUNK_LEG}:{dialled}", trunk, {})   # nothing of ours to a carrier

    # --- the voice menu (needs anchored media: a prompt to play, keys to hear) -------------
    def _enter_menu(self, call_id: str, caller: Caller) -> None:
        """The caller hears the menu; a key picks the queue, silence the default. Their
        contact row exists from now on (queue "menu"), so one hanging up here is counted."""
        now = self.clock()
        self._happened(MenuEntered(now, call_id, caller.number, caller.dialled, caller.resident_id))
        timer = asyncio.get_running_loop().call_later(self.config.menu.timeout_s, self.menu_key, call_id, None)
        self.calls[call_id] = InMenu(call_id, caller, now, timer)
        if self.legs is not None:
            self.legs.start_menu(call_id)

    def menu_key(self, call_id: str, key: str | None) -> None:
        """A key the caller pressed in the menu (None: they pressed nothing in time)."""
        call = self.calls.get(call_id)
        if not self.closed and isinstance(call, InMenu):
            call.key(self, key)

    def call_arrived(self, call_id: str, queue: str, number: str, *, priority: str = "normal",
                     owner: str | None = None) -> None:
        """A caller enters routing (from SIP, the menu, a failed transfer out, or a test)."""
        if not isinstance(self.calls.get(call_id), Routed):
            self.calls[call_id] = Routed(call_id, Caller(number))
        try:
            self._apply(lambda now: self.acd.enqueue(call_id, queue, now, number=number, priority=priority,
                                                     owner=owner))
        except SwitchError:
            if call_id not in self.acd.calls:
                self.calls.pop(call_id, None)
            raise

    def call_answered(self, call_id: str, ext: str) -> None:
        self._apply(lambda now: self.acd.answer(call_id, ext, now))

    def call_not_answered(self, call_id: str, ext: str, *, counts: bool = True) -> None:
        self._apply(lambda now: self.acd.ring_no_answer(call_id, ext, now, counts=counts))

    def call_ended(self, call_id: str, *, by: str) -> None:
        self._apply(lambda now: self.acd.hangup(call_id, now, by=by))

    # What the SIP side reports goes to the call it is about (telephony/switch_calls.py).
    def sip_answered(self, call_id: str, ext: str) -> None:
        if not self.closed:
            self._call_or_over(call_id).answered(self, ext)

    def sip_not_answered(self, call_id: str, ext: str, *, counts: bool) -> None:
        if not self.closed:
            self._call_or_over(call_id).not_answered(self, ext, counts=counts)

    def sip_hung_up(self, call_id: str, *, by: str) -> None:
        if not self.closed:
            self._call_or_over(call_id).hung_up(self, by=by)

    def sip_hold(self, call_id: str, ext: str, held: bool) -> None:
        """The agent's phone put the other party on hold (they hear music) or took them off
        it: the agent's state and the call's hold time follow."""
        if not self.closed:
            self._call_or_over(call_id).held(self, ext, held)

    def _call_or_over(self, call_id: str) -> SwitchCall:
        """The call a report is about; one already over takes reports as a no-op."""
        return self.calls.get(call_id) or SwitchCall(call_id)

    def call_refused(self, number: str, dialled: str, *, seat: str, code: int, reason: str) -> None:
        """The SIP side turned a new call away before it reached routing: it leaves a row
        (outcome failed, with its SIP cause), a log line and a count, never nothing."""
        self._record_failure(number, dialled, seat=seat, cause=f"{code} {reason}")

    def _record_failure(self, number: str, dialled: str, *, seat: str = "", cause: str,
                        call_id: str | None = None) -> None:
        now = self.clock()
        self.refused[cause] += 1
        if call_id is None:
            self._refused_seq += 1
            call_id = f"{int(now)}.r{self._refused_seq}"
        agent = self.agents.get(seat) if seat else None
        log.info("call from %s to %s refused: %s", number or "(no number)", dialled or "(nothing)", cause)
        try:
            caller = normalise(number) if number and not seat else number
        except PhoneNumberError:
            caller = number
        self._happened(CallFailed(now, call_id, caller, dialled, seat if agent else "", cause))

    def sip_refused(self, cause: str) -> None:
        self.sip_refusals[cause] += 1

    def auth_locked(self, kind: str, key: str, seconds: float) -> None:
        """Wrong PINs locked an extension or an address out of SIP for a while (supervisors see it)."""
        now = self.clock()
        self.lockouts = {k: until for k, until in self.lockouts.items() if until > now}
        self.lockouts[(kind, key)] = now + seconds

    def sip_failed(self, message: str) -> None:
        if self.on_fatal is not None:
            self.on_fatal(message)

    def media_ready(self, ok: bool) -> None:
        self.media = ok
        self.menu_playable = ok

    def recording_done(self, call_id: str, pcaps: list[str], caller_port: int | None) -> None:
        """A recorded call ended: its pcap becomes a WAV (off the event loop) and the
        interaction row points at it."""
        if self.recordings is None:
            return
        loop = asyncio.get_running_loop()
        # RTPproxy closes the pcap just after the session is deleted: give it a moment.
        loop.call_later(0.5, lambda: loop.create_task(self._convert_recording(call_id, pcaps, caller_port)))

    async def _convert_recording(self, call_id: str, names: list[str], caller_port: int | None) -> None:
        from telephony.media import convert_recording

        if self.recordings is None:
            return   # (only a recording switch converts)
        raw = str(self.recordings / "raw")
        wav = str(self.recordings / f"{call_id}.wav")
        try:
            seconds = await asyncio.get_running_loop().run_in_executor(
                self._conversions(), convert_recording, [os.path.join(raw, name) for name in names], wav, caller_port)
        except (OSError, ValueError):
            log.exception("recording of %s could not be converted; the pcap stays in %s", call_id, raw)
            return
        except (BrokenProcessPool, RuntimeError) as exc:   # the converter died (or the switch is stopping)
            log.warning("recording of %s is not converted yet (%s); the next start converts it from %s",
                        call_id, exc or type(exc).__name__, raw)
            self._converter = None if isinstance(exc, BrokenProcessPool) else self._converter
            return
        if seconds > 0:
            self._happened(RecordingSaved(self.clock(), call_id, wav))
        else:   # nothing was said (a phone that sent no audio): nothing to keep, and no file left behind
            self._empty_recordings += 1
            # said once (a site of phones that send no audio, like the demo's, would fill the log)
            log.log(logging.INFO if self._empty_recordings == 1 else logging.DEBUG,
                    "recording of %s holds no audio%s", call_id,
                    " (phones that send none?); later ones are logged at debug level"
                    if self._empty_recordings == 1 else "")

    def _conversions(self) -> ProcessPoolExecutor:
        if self._converter is None:
            from telephony.media import converter_pool

            self._converter = converter_pool()
        return self._converter

    def media_lost(self, call_id: str, why: str) -> None:
        """The media node carrying this call stopped answering (telephony/sip.py): the call
        ends for everyone on it, recorded as interrupted with `why`; the switch and its
        other calls carry on, new calls anchored on the nodes that answer."""
        if self.closed:
            return
        call = self.calls.get(call_id)
        if call is None:   # over as far as routing knows: only its legs may be left
            if self.legs is not None:
                self.legs.release(call_id, 503, "Service Unavailable")
            return
        log.warning("call %s ended: %s", call_id, why)
        call.media_lost(self, why)
        news, self._stop_news = self._stop_news, []   # what shut_down logged, now committed
        for message in news:
            self._deliver(message)

    def seat_disconnected(self, ext: str) -> None:
        """The agent's seat lost its control connection: if their phone is in a call, it is
        asked at once whether it is still there (a seat app that died took its softphone
        with it), ahead of its turn in the paced checks."""
        if self.legs is not None and not self.closed and self._views.get(ext, {}).get("state") == "in_call":
            self.legs.check_seat(ext)

    def seat_lost(self, ext: str) -> None:
        """The seat's phone stopped answering (killed, unplugged): a caller it was talking
        to goes back to the head of the queue; it is offered calls again once it registers."""
        if self.closed:
            return
        if ext in self.agents:
            self._apply(lambda now: self.acd.lose_agent(ext, now))

    def seat_registered(self, ext: str, contact: tuple[str, int] | None) -> None:
        """The registrar's news: where a seat can be reached, or None when it went away.
        A change is an event (a seat whose phone is a desk phone shows it)."""
        before = self.registrations.get(ext)
        if contact is None:
            self.registrations.pop(ext, None)
            log.info("SIP: %s unregistered", ext)
        else:
            self.registrations[ext] = contact
            if before == contact:   # every few minutes per phone: counted, not a line in the log
                self.registration_refreshes[ext] += 1
            else:
                log.info("SIP: %s registered at %s:%d", ext, *contact)
        if self.closed:
            return
        if before != contact and ext in self.agents:
            with self._committed():
                message = self._logged(PhoneRegistration(self.clock(), ext, contact is not None,
                                                         f"{contact[0]}:{contact[1]}" if contact else ""))
            self._deliver(message)
        if self.legs is not None and ext in self.agents:
            self._apply(lambda now: self.acd.set_reachable(ext, contact is not None, now))

    def _agents_call(self, call_id: str, ext: str, *, ringing: bool = False) -> str:
        """How call `call_id` is the agent's: "connected", "ringing" (if asked) or
        "outbound"; SwitchError otherwise."""
        how = self._call_or_over(call_id).agents_call(self, ext, ringing=ringing)
        if how is not None:
            return how
        raise SwitchError("conflict", f"call {call_id} is not {'at' if ringing else 'connected to'} extension {ext}")

    def hang_up(self, call_id: str, *, by_ext: str) -> None:
        """The agent ends their call from the seat (their phone is a desk phone the seat
        does not drive): as if the phone had hung up. A call still ringing there is
        declined: it goes on to the next agent."""
        if self.legs is None:
            raise SwitchError("conflict", "this switch has no SIP side")
        if self._agents_call(call_id, by_ext, ringing=True) == "ringing":
            self.call_not_answered(call_id, by_ext, counts=False)
        else:
            self.legs.end_for_agent(call_id, by_ext)

    def hold(self, call_id: str, *, by_ext: str, held: bool) -> None:
        """Hold from the seat: the other party hears the switch's hold music; the hold
        time is counted as when the phone holds."""
        if self.legs is None or not self.media:
            raise SwitchError("conflict", "hold from the seat needs the switch's media (it plays the music); "
                                          "hold on the phone instead")
        self._agents_call(call_id, by_ext)
        self.legs.hold_for_agent(call_id, by_ext, held)

    # --- listeners -----------------------------------------------------------------
    def subscribe(self, deliver: Callable[[dict], None], ext: str | None = None) -> Subscriber:
        subscriber = Subscriber(deliver, ext)
        self._subscribers.append(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    @contextmanager
    def _committed(self):
        """A write that is on disk when the block ends. (sqlite3's implicit transactions
        would otherwise keep the rows uncommitted until some later, unrelated write.)"""
        self._write_depth += 1
        try:
            with self.db.atomic():
                yield
        finally:
            self._write_depth -= 1
        if self._write_depth == 0 and self.db.conn.in_transaction:   # nested blocks commit with the outermost
            self.db.conn.commit()

    # --- the engine ------------------------------------------------------------------
    def _apply(self, change: Callable[[float], None]) -> None:
        if self.closed:
            raise SwitchError("unavailable", "the switch is stopping")
        try:
            change(self.clock())
        except AcdError as exc:
            raise SwitchError("conflict", str(exc)) from None
        finally:
            self._publish()

    def _publish(self) -> None:
        events = self.acd.drain()
        messages = []
        if events:
            # One transaction per change, committed before anyone hears of it: a phone
            # rings, or a supervisor sees a call, only once its record is on disk; the
            # event log's lines are in the same transaction as the rows they caused.
            with self._committed():
                for event in events:
                    self.recorder(event)
                    self.queue_log(event)
                    self._track_agent(event)
                    messages.append(self._logged(event))
        for event, message in zip(events, messages):
            if self.legs is not None:
                self._drive_legs(event)
            if isinstance(event, (ev.CallCompleted, ev.CallAbandoned, ev.CallToVoicemail)):
                self.calls.pop(event.call_id, None)   # the contact is over (a voicemail is being left)
            self._deliver(message, offer=type(event) is ev.CallOffered)
        self._arm_timer()

    def _deliver(self, message: dict, *, offer: bool = False) -> None:
        agent_id = message.get("agent_id")
        to_agent = message
        for subscriber in list(self._subscribers):
            if subscriber.ext is None:
                subscriber.deliver(message)
            elif subscriber.ext == agent_id:
                if offer and to_agent is message and self.offer_details is not None:
                    to_agent = self._with_offer_details(message)
                subscriber.deliver(to_agent)

    def _with_offer_details(self, message: dict) -> dict:
        """The offer as the ringing seat gets it: with what its first screen needs (the
        pop), so the agent sees the caller before answering. Not in the event log."""
        details = self.offer_details
        if details is None:
            return message
        try:
            return {**message, **details(message)}
        except Exception:   # the seat can still ask for the pop; the call must ring regardless
            log.exception("the details of the offer of %s could not be added", message.get("call_id"))
            return message

    def record(self, write: Callable[[], T], event_of: Callable[[T], object]) -> T:
        """A change to records asked for by a seat (a resident added, a work order opened,
        a follow-up's outcome): written, with its line in the event log, in one
        transaction by the switch (the one writer), then told to subscribers."""
        if self.closed:
            raise SwitchError("unavailable", "the switch is stopping")
        with self._committed():
            result = write()
            message = self._logged(event_of(result))
        self._deliver(message)
        return result

    def _happened(self, event: wire.SwitchEvent) -> None:
        """What a call's legs or a seat did (telephony/call_events.py): the recorder
        writes the row and the event log its line in one transaction, then subscribers
        hear it (an agent the events that name them, supervisors all)."""
        with self._committed():
            self.recorder(event)
            message = self._logged(event)
        self._deliver(message)

    def _logged(self, event) -> dict:
        """The event as the control API sends it, numbered by its line in the event log."""
        message = wire.encode(event)
        if type(event) is ev.CallOffered and (call := self.calls.get(event.call_id)) is not None \
                and isinstance(call, Routed) and call.form:
            message["form"] = call.form   # a transferred caller's notes
        cursor = self.db.conn.execute(
            "INSERT INTO events (at, node, event, call_id, agent_ext, body) VALUES (?, ?, ?, ?, ?, ?)",
            [message.get("t", self.clock()), self.node, message["event"], message.get("call_id") or "",
             message.get("agent_id") or "", json.dumps(message, ensure_ascii=False)])
        message["seq"] = cursor.lastrowid
        return message

    def events_after(self, seq: int, ext: str | None = None, limit: int = 100_000) -> list[dict]:
        """The logged events after `seq` that a subscriber of `ext` (None: a supervisor)
        gets, in order. Raises SwitchError `pruned` if some of them are no longer kept."""
        oldest = self.db.execute("SELECT min(seq) FROM events").fetchone()[0]
        if seq > 0 and (oldest is None or seq < oldest - 1) and self.last_seq > seq:
            kept = f"the log starts at {oldest}" if oldest is not None else "the log is empty"
            raise SwitchError("pruned", f"events after {seq} are no longer all kept ({kept}; retention "
                                        f"{self.config.events_retention_days:g} days): take a snapshot instead")
        params: list[object] = [seq] if ext is None else [seq, ext]
        where = "seq > ?" if ext is None else "seq > ? AND agent_ext = ?"
        rows = self.db.execute(f"SELECT seq, body FROM events WHERE {where} ORDER BY seq LIMIT ?", [*params, limit])
        return [{**json.loads(body), "seq": number} for number, body in rows]

    @property
    def last_seq(self) -> int:
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return row[0] if row else 0

    def prune_events(self, batch: int = 5000) -> int:
        """Drop events older than the retention, a batch at a time (a call's writes never
        wait long behind it); returns how many went."""
        cutoff = self.clock() - self.config.events_retention_days * 86400
        with self._committed():
            cursor = self.db.conn.execute(
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE at < ? ORDER BY seq LIMIT ?)",
                [cutoff, batch])
        return cursor.rowcount

    def _drive_legs(self, event) -> None:
        """Routing decisions become SIP: ring an agent, stop ringing, release a caller."""
        legs = self.legs
        assert legs is not None
        if isinstance(event, (ev.CallOffered, ev.CallbackDue)):
            contact = self.registrations.get(event.agent_id)
            call = self.acd.calls.get(event.call_id)
            if call is None or event.agent_id not in call.ringing:
                return  # offered and over within the same change: nothing to ring
            if contact is None:  # went away between the decision and now: next agent
                asyncio.get_running_loop().call_soon(self._not_reachable, event.call_id, event.agent_id)
                return
            routed = self.calls.get(event.call_id)
            caller = routed.caller if routed is not None else None
            legs.ring(event.call_id, event.agent_id, contact, {
                "X-Hotline-Interaction": event.call_id,
                "X-Hotline-Queue": event.queue,
                "X-Hotline-Resident": str(caller.resident_id or "") if caller is not None else "",
                "X-Hotline-Wait": str(int(event.t - call.first_entered)),
            }, caller_name=display_name(caller.name) if caller is not None and caller.resident_id else "")
        elif isinstance(event, ev.CallConnected):
            legs.bridge(event.call_id, event.agent_id)
        elif isinstance(event, (ev.RingNoAnswer, ev.CallOfferWithdrawn)):
            legs.hang_up_agent(event.call_id, event.agent_id)
        elif isinstance(event, (ev.CallRequeued, ev.CallTransferred)):
            legs.drop_agent(event.call_id, event.agent_id)
            trunk = self.config.trunk
            outside = self.calls.get(event.call_id)
            if isinstance(event, ev.CallTransferred) and isinstance(outside, TransferredOut) and trunk is not None:
                legs.ring(event.call_id, outside.leg, trunk, {})   # (the transfer op checked for a trunk)
        elif isinstance(event, ev.CallToVoicemail):
            if self.media:
                legs.voicemail(event.call_id, VOICEMAIL_MAX_S)
                self._voicemail_callback(event)
            else:  # nothing to take a message with: "unavailable" from their own phone
                legs.release(event.call_id, 480, "Temporarily Unavailable")

    def _voicemail_callback(self, event) -> None:
        """Every message becomes a callback task (the recording joins the contact row when
        the caller hangs up)."""
        row = self.db.execute("SELECT id FROM interactions WHERE uid = ?", [event.call_id]).fetchone()
        call = self.calls.get(event.call_id)
        caller = call.caller if call is not None else None
        with self._committed():
            insert_row(self.db, "callbacks", {
                "kind": "voicemail", "status": "pending", "resident_id": caller.resident_id if caller else None,
                "interaction_id": row[0] if row else None, "number": caller.number if caller else "",
                "created_at": event.t, "due_at": event.t + VOICEMAIL_CALLBACK_S,
                "notes": f"voicemail from the {event.queue} queue after {event.wait_s:.0f} s waiting"})

    def _not_reachable(self, call_id: str, ext: str) -> None:
        self.sip_not_answered(call_id, ext, counts=False)

    def _track_agent(self, event) -> None:
        if type(event) is ev.AgentStatusChanged:
            view = self._views[event.agent_id]
            view.update(status=event.status, reason=event.reason, status_since=event.since)
        else:
            change = ev.agent_state_after(event)
            if change is None:
                return
            view = self._views[change[0]]
            call_id = getattr(event, "call_id", None)
            if call_id is None and change[1] in ("in_call", "on_hold") and view["state"] in ("in_call", "on_hold"):
                # held or taken off hold: the same call, its caller and its clock (a supervisor
                # saw "on hold 0:01 - -" and then a call clock started again at 0:00)
                view.update(state=change[1])
            else:
                view.update(state=change[1], since=event.t, call=call_id if change[1] != "idle" else None)
        agent = self.agents[event.agent_id]
        insert_row(self.db, "agent_states", {"at": event.t, "agent_id": agent["id"], "ext": event.agent_id,
                                             "status": view["status"], "state": view["state"],
                                             "reason": view["reason"], "node": self.node})

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = self.acd.next_timer()
        if due == float("inf"):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a unit test driving the core by hand): the caller advances time
        self._timer = loop.call_later(max(0.0, due - self.clock()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed:   # shut down since it was set: nothing left to time
            return
        self._apply(lambda now: self.acd.advance(now))

    def shut_down(self) -> int:
        """The switch is stopping: every caller and agent leg still up is released, and
        their contacts are closed as interrupted now (not left for the next start to
        guess when), keeping the talk they had, each with a queue_log line that ends it;
        agents are logged out. Returns how many contacts were closed."""
        now = self.clock()
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        closed = 0
        with self._committed():
            live = len(self.acd.calls)
            for call in list(self.calls.values()):
                closed += call.shut_down(self, now)
            self.calls.clear()
            self.recorder.close(now)   # wrap-ups still running end now
            self._log_out_everyone(now, SWITCH_LOG_OUT_REASONS[1], only_if_logged_in=False)
            # a row this run opened that nothing above knew of (a bug, or a race with the stop)
            closed += self.recorder.interrupt_strays(now)
        news, self._stop_news = self._stop_news, []
        for message in news:
            self._deliver(message)
        if live:
            log.warning("stopping with %d call(s) in progress: released, recorded as interrupted", live)
        return closed

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._converter is not None:   # a conversion under way finishes; the rest wait for the next start
            self._converter.shutdown(wait=True, cancel_futures=True)
            self._converter = None
        self.queue_log.close()
