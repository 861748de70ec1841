"""The control API: newline-delimited JSON over a Unix socket (mode 0660) or TCP with a token
(TLS off loopback).

Every request is an object with an `id` and an `op`; every reply echoes the `id` with
`ok: true` and the result, or `ok: false` and `error: {code, message}`. Events arrive
as objects with an `event` key. Roles are checked on every request. Documented in
docs/control-api.md. Whatever a client sends, the server answers or drops that one
client; it never stops serving the others.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import ssl
from pathlib import Path
from typing import Any, Callable

from sqlite_utils import Database

from records.agents import AgentError, parse_skills
from records.db import connect
from telephony import wire
from telephony.desk_ops import DeskOps
from telephony.switchcore import Subscriber, SwitchCore, SwitchError

log = logging.getLogger("hotline.control")

MAX_LINE = 64 * 1024
SUPERVISOR_ROLES = frozenset({"supervisor", "admin"})
STATUSES = ("available", "on_break")
READING_OPS = frozenset({"report", "wallboard"})   # answered from records off the event loop
WALLBOARD_RECORDS_S = 5.0   # the big screen's figures for today are read from records at most this often
# op -> who may call it: None (anyone), "agent" (any logged-in person), "supervisor"
OPS = {"ping": None, "auth": None, "login": None, "logout": "agent", "status": "agent", "end_wrap_up": "agent",
       "extend_wrap_up": "agent", "hang_up": "agent", "hold": "agent", "transfer": "agent", "disposition": "agent", "identify": "agent",
       "subscribe": "agent", "snapshot": "supervisor", "force_status": "supervisor",
       "set_skills": "supervisor", "set_priority": "supervisor", "move_caller": "supervisor",
       "acknowledge": "supervisor", "supervise": "supervisor", "wallboard": None,
       "report": "supervisor",
       **{op: "agent" for op in DeskOps.OPS}}


def control_address(text: str) -> tuple[str, int] | str:
    """`--control` as given: (host, port) for TCP, else the path of a Unix socket.

    HOST:PORT is TCP when the part after the last colon is a port number and the text
    does not look like a path (`/run/hotline.sock`, `./a:1` stay paths)."""
    host, _, port = text.rpartition(":")
    if host and port.isdigit() and not text.startswith(("/", ".", "~")):
        if not 0 < int(port) < 65536:
            raise ValueError(f"control port out of range: {text}")
        return host.strip("[]"), int(port)
    return text


class RequestError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class Connection:
    def __init__(self, server: "ControlServer", writer: asyncio.StreamWriter, *, needs_token: bool):
        self.server, self.writer = server, writer
        self.authorised = not needs_token
        peer = writer.get_extra_info("peername")
        # the TCP peer's address, for counting wrong PINs; the local socket has none
        self.peer_host = peer[0] if isinstance(peer, tuple) and peer else ""
        self.agent: dict | None = None
        self.subscription: Subscriber | None = None

    def send(self, message: dict) -> None:
        if self.writer.is_closing():
            return
        self.writer.write(json.dumps(message, ensure_ascii=False).encode() + b"\n")

    def close(self) -> None:
        if self.subscription is not None:
            self.server.core.unsubscribe(self.subscription)
            self.subscription = None

    def lost(self) -> None:
        """The client went away without logging out (its terminal closed, its machine
        died, the network went): an agent nobody can reach is offered no calls. A seat
        that comes back logs in again (and restores its status itself)."""
        agent, self.agent = self.agent, None
        if agent is None or self.server.core.closed or self.server.closing:
            return   # the switch itself is closing the connections: it logs everyone out its own way
        if any(other.agent is not None and other.agent["ext"] == agent["ext"] for other in self.server._connections):
            return   # the same person on another connection (a seat reconnecting) carries on
        self.server.core.seat_disconnected(agent["ext"])
        try:
            if self.server.core.view_of(agent["ext"])["status"] != "logged_out":
                log.warning("control: %s's connection was lost without a logout; logged out", agent["ext"])
                self.server.core.set_status(agent["ext"], "logged_out")
        except Exception:   # the switch is stopping, or the agent is gone from records
            log.debug("control: could not log out %s", agent["ext"], exc_info=True)


class ControlServer:
    def __init__(self, core: SwitchCore, *, token: str | None = None):
        self.core, self.token = core, token
        self.desk = DeskOps(core)
        self._today_cache: tuple[float, dict] | None = None   # the wallboard's figures for today, and when
        core.offer_details = self.desk.offer_details
        self._servers: list[asyncio.AbstractServer] = []
        self._socket_paths: list[Path] = []
        self._connections: set[Connection] = set()
        self.closing = False

    async def start_unix(self, path: str | Path) -> None:
        self.closing = False
        path = Path(path)
        if path.exists():
            path.unlink()  # a socket left by a previous run
        server = await asyncio.start_unix_server(lambda r, w: self._serve(r, w, needs_token=False), path=str(path),
                                                 limit=MAX_LINE)
        os.chmod(path, 0o660)
        self._servers.append(server)
        self._socket_paths.append(path)

    async def start_tcp(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> int:
        """TCP, with TLS when `tls` is given; without it only on loopback (the token and
        PINs would cross the network in clear)."""
        from telephony.tls import is_loopback

        self.closing = False
        if not self.token:
            raise ValueError("the TCP control API needs a token (HOTLINE_CONTROL_TOKEN)")
        if tls is None and not is_loopback(host):
            raise ValueError(f"control on {host}:{port} without TLS would carry PINs in clear: give a certificate "
                             "and key (hotline certs makes a pair) or listen on 127.0.0.1")
        def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
            return self._serve(reader, writer, needs_token=True)
        if tls is None:
            server = await asyncio.start_server(serve, host, port, limit=MAX_LINE)
        else:
            server = await asyncio.start_server(serve, host, port, limit=MAX_LINE, ssl=tls, ssl_handshake_timeout=10)
        self._servers.append(server)
        return server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.closing = True
        for server in self._servers:
            server.close()
        for connection in list(self._connections):
            connection.close()
            connection.writer.close()  # each client's reader sees the end and its task returns
        for server in self._servers:
            await server.wait_closed()
        for path in self._socket_paths:
            path.unlink(missing_ok=True)  # nobody is listening any more: no stale socket left

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, needs_token: bool):
        connection = Connection(self, writer, needs_token=needs_token)
        self._connections.add(connection)
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    break  # the client went away (perhaps mid-request): nothing to answer
                except asyncio.LimitOverrunError as exc:
                    # Skip the oversize line, answer, and go on with the next one.
                    await _discard_line(reader, exc.consumed)
                    log.warning("control: oversize line (> %d bytes) from a client", MAX_LINE)
                    connection.send({"id": None, "ok": False, "error": {
                        "code": "line_too_long", "message": f"a request may be at most {MAX_LINE} bytes"}})
                    continue
                if line.strip():
                    reply = self._handle(connection, line)
                    if not isinstance(reply, dict):   # a report read from records off the loop
                        reply = await reply
                    connection.send(reply)
                    await writer.drain()
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            self._connections.discard(connection)
            connection.close()
            connection.lost()
            writer.close()

    def _handle(self, connection: Connection, line: bytes):
        """The reply to one request; for an op that reads much of the records (READING_OPS),
        a coroutine giving it: the reading runs on a thread with its own connection, so
        calls are never held up by a report."""
        request_id = None
        try:
            try:
                request = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                raise RequestError("bad_json", "not a JSON object on one line") from None
            if not isinstance(request, dict):
                raise RequestError("bad_json", "a request is a JSON object")
            request_id = request.get("id")
            if "id" not in request:
                raise RequestError("bad_request", "every request needs an 'id'")
            op = request.get("op")
            if op not in OPS:
                raise RequestError("unknown_op", f"unknown op {op!r} (expected one of: {', '.join(OPS)})")
            if not connection.authorised and op not in ("ping", "auth"):
                raise RequestError("unauthorised", "send {op: auth, token} first")
            needed, agent = OPS[op], connection.agent
            if needed is not None and agent is None:
                raise RequestError("not_logged_in", "log in first")
            if needed == "supervisor" and agent is not None and agent["role"] not in SUPERVISOR_ROLES:
                raise RequestError("forbidden", f"'{op}' is for supervisors")
            if op in DeskOps.OPS:
                result = getattr(self.desk, f"op_{op}")(connection.agent, request)
            elif op in READING_OPS:
                return self._reading(request_id, getattr(self, f"_op_{op}")(connection, request))
            else:
                result = getattr(self, f"_op_{op}")(connection, request)
            return {"id": request_id, "ok": True, **(result or {})}
        except RequestError as exc:
            return _error(request_id, exc.code, str(exc))
        except SwitchError as exc:
            return _error(request_id, exc.code, str(exc))
        except AgentError as exc:
            return _error(request_id, "bad_request", str(exc))
        except Exception:  # a bug must not take the switch down: answer, log, carry on
            log.exception("control: request failed")
            return _error(request_id, "internal", "the switch could not do that; it is logged")

    # --- ops -------------------------------------------------------------------------
    def _op_ping(self, connection, request):
        return {"pong": True}

    def _op_auth(self, connection, request):
        token = request.get("token")
        if not self.token or not isinstance(token, str) or not hmac.compare_digest(token, self.token):
            raise RequestError("unauthorised", "wrong token")
        connection.authorised = True

    def _op_login(self, connection, request):
        ext, pin = _text(request, "ext"), _text(request, "pin")
        agent = self.core.authenticate(ext, pin, address=connection.peer_host)
        connection.agent = agent
        view = self.core.view_of(agent["ext"])
        before = self.core.status_before_restart(agent["ext"]) if view["status"] == "logged_out" else None
        return {"agent": {k: agent[k] for k in ("ext", "name", "role")},
                "status": view["status"], "reason": view["reason"], "state": view["state"],
                **({"before_restart": before} if before else {}),
                "registered": agent["ext"] in self.core.registrations,
                "queues": list(self.core.acd.queues), "breaks": dict(self.core.config.breaks),
                "queue_settings": {q.name: {"threshold_s": q.sl_threshold_s, "target": q.sl_target}
                                   for q in self.core.config.queues}}

    def _op_logout(self, connection, request):
        self.core.set_status(connection.agent["ext"], "logged_out")
        connection.close()
        connection.agent = None   # logged out on purpose: the end of the connection changes nothing

    def _op_status(self, connection, request):
        status = _text(request, "status")
        if status not in STATUSES:
            raise RequestError("bad_request", f"status must be one of: {', '.join(STATUSES)}")
        reason = str(request.get("reason", ""))
        breaks = self.core.config.breaks
        if status == "on_break" and reason and reason not in breaks:
            raise RequestError("bad_request", f"unknown break reason {reason!r} (one of: {', '.join(breaks)})")
        self.core.set_status(connection.agent["ext"], status, reason)

    def _op_end_wrap_up(self, connection, request):
        self.core.end_wrap_up(connection.agent["ext"])

    def _op_extend_wrap_up(self, connection, request):
        seconds = request.get("seconds", 60)
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
            raise RequestError("bad_request", "'seconds' is a number")
        return {"until": self.core.extend_wrap_up(connection.agent["ext"], float(seconds))}

    def _op_hang_up(self, connection, request):
        self.core.hang_up(_text(request, "call_id"), by_ext=connection.agent["ext"])

    def _op_hold(self, connection, request):
        held = request.get("held", True)
        if not isinstance(held, bool):
            raise RequestError("bad_request", "'held' is true or false")
        self.core.hold(_text(request, "call_id"), by_ext=connection.agent["ext"], held=held)

    def _op_transfer(self, connection, request):
        queue, ext, number = (str(request.get(key) or "") for key in ("queue", "ext", "number"))
        if (queue != "") + (ext != "") + (number != "") != 1:
            raise RequestError("bad_request", "give one of 'queue', 'ext' or 'number'")
        form = request.get("form")
        if form is not None and not isinstance(form, dict):
            raise RequestError("bad_request", "'form' is an object")
        self.core.transfer(_text(request, "call_id"), by_ext=connection.agent["ext"], role=connection.agent["role"],
                           queue=queue, to_ext=ext, number=number, form=form)

    def _op_disposition(self, connection, request):
        self.core.disposition(_text(request, "call_id"), by_ext=connection.agent["ext"],
                              role=connection.agent["role"], disposition=_text(request, "disposition"),
                              notes=str(request.get("notes", "")))

    def _op_identify(self, connection, request):
        """Who an unknown caller is (their number linked to them if `link`), on the call's
        record; the reply is their pop."""
        resident_id = _text(request, "resident_id")
        if not resident_id.isdigit():
            raise RequestError("bad_request", "'resident_id' is a resident's number")
        if not request.get("call_id") and not request.get("number"):
            raise RequestError("bad_request", "give the 'call_id' or the caller's 'number'")
        return self.desk.identify(connection.agent, request)

    def _op_subscribe(self, connection, request):
        version = request.get("v", wire.EVENT_VERSION)
        if version != wire.EVENT_VERSION:
            raise RequestError("unsupported_version",
                               f"this switch sends events in version {wire.EVENT_VERSION}, the client reads version "
                               f"{version!r}: use a seat or console of the switch's release")
        after = request.get("after_seq")
        if after is not None and (not isinstance(after, int) or isinstance(after, bool) or after < 0):
            raise RequestError("bad_request", "after_seq: the seq of the last event you have (an integer >= 0)")
        since = request.get("since")
        if since is not None:
            # a console starting mid-day: every event since midnight, to rebuild the day
            if not isinstance(since, (int, float)) or isinstance(since, bool):
                raise RequestError("bad_request", "since: epoch seconds")
            if after is None:
                after = self.core.seq_before(float(since))
        supervisor = connection.agent["role"] in SUPERVISOR_ROLES
        ext = None if supervisor else connection.agent["ext"]
        # read and sent before the subscription starts, on the loop that publishes: nothing
        # published in between, so no gap and no event twice
        missed = self.core.events_after(after, ext) if after is not None else []
        if connection.subscription is not None:
            self.core.unsubscribe(connection.subscription)
        for message in missed:
            connection.send(message)
        connection.subscription = self.core.subscribe(connection.send, ext)
        reply = {"last_seq": self.core.last_seq, "replayed": len(missed), "v": wire.EVENT_VERSION}
        if supervisor:
            reply["snapshot"] = self.core.snapshot()
        return reply

    def _op_snapshot(self, connection, request):
        return {"snapshot": self.core.snapshot()}

    def _op_force_status(self, connection, request):
        status = _text(request, "status")
        if status not in (*STATUSES, "logged_out"):
            raise RequestError("bad_request", "status must be available, on_break or logged_out")
        reason = str(request.get("reason", "supervisor" if status == "on_break" else ""))
        ext = _text(request, "ext")
        if status != "logged_out" and not self.core.at_a_seat(ext):
            # found in a demo trial: three agents who had gone home were made "available",
            # counted free on the wallboard with no phone to ring
            raise RequestError("conflict", f"{ext} is not at a seat (logged out, no phone registered): "
                                           "only they can log in")
        self.core.set_status(ext, status, reason)
        self.core.audit(connection.agent["ext"], "force_status", ext, f"{status} {reason}".strip())

    def _op_set_skills(self, connection, request):
        self.core.set_skills(_text(request, "ext"), parse_skills(_text(request, "skills")),
                             by_ext=connection.agent["ext"])

    def _op_set_priority(self, connection, request):
        self.core.set_priority(_text(request, "call_id"), _text(request, "priority"), by_ext=connection.agent["ext"])

    def _op_move_caller(self, connection, request):
        self.core.move_caller(_text(request, "call_id"), _text(request, "queue"), by_ext=connection.agent["ext"])

    def _op_acknowledge(self, connection, request):
        """An alert seen and taken in hand: every supervisor's console stops flashing it."""
        self.core.audit(connection.agent["ext"], "acknowledge", _text(request, "alert"), str(request.get("note", "")))

    async def _reading(self, request_id, work) -> dict:
        try:
            return {"id": request_id, "ok": True, **(await work)}
        except RequestError as exc:
            return _error(request_id, exc.code, str(exc))
        except Exception:  # a bug must not take the switch down: answer, log, carry on
            log.exception("control: request failed")
            return _error(request_id, "internal", "the switch could not do that; it is logged")

    async def _op_wallboard(self, connection, request):
        """The big screen's figures, for anyone this connection lets in (the local socket,
        or TCP with the token): per queue, callers waiting and the longest wait, agents by
        state, and today's offered / answered / abandoned / service level. No caller's
        number or name, no agent's: it hangs on a wall."""
        import datetime as dt

        from telephony.report import interval_report

        now = self.core.clock()
        tz = self.desk.policy.timezone
        cached = self._today_cache
        if cached is None or now - cached[0] >= WALLBOARD_RECORDS_S:
            thresholds = {q.name: q.sl_threshold_s for q in self.core.config.queues}
            day = dt.datetime.fromtimestamp(now, tz).date()
            rows = await _read_records(lambda db: {row.key: row for row in interval_report(
                db, day=day, tz=tz, interval_s=86400, by="queue", thresholds=thresholds, default_threshold_s=15.0,
                now=now)}, self.core.db)
            cached = self._today_cache = (now, rows)
        snapshot = self.core.snapshot()
        queues = []
        for queue in self.core.config.queues:
            waiting = snapshot["queues"].get(queue.name, [])
            serving = [a for a in snapshot["agents"] if a["status"] != "logged_out" and queue.name in a["skills"]]
            today = cached[1].get(queue.name)
            queues.append({
                "name": queue.name, "waiting": len(waiting),
                "longest_wait_s": max((c["wait_s"] for c in waiting), default=0.0),
                "logged_in": len(serving),
                "available": sum(1 for a in serving if a["status"] == "available" and a["state"] == "idle"),
                "in_call": sum(1 for a in serving if a["state"] in ("ringing", "in_call", "on_hold")),
                "on_break": sum(1 for a in serving if a["status"] == "on_break"),
                "offered": today.offered if today else 0, "answered": today.answered if today else 0,
                "abandoned": today.abandoned if today else 0,
                "service_level": today.service_level if today else None, "sl_target": queue.sl_target,
                "threshold_s": queue.sl_threshold_s})
        return {"wallboard": {"at": now, "queues": queues}}

    async def _op_report(self, connection, request):
        """`hotline report` for the supervisors' console: a day's interval rows from records."""
        import datetime as dt

        from telephony.report import GROUPINGS, INTERVALS_S, interval_report

        tz = self.desk.policy.timezone
        now = self.core.clock()
        day_text = request.get("day") or dt.datetime.fromtimestamp(now, tz).date().isoformat()
        try:
            day = dt.date.fromisoformat(str(day_text))
        except ValueError:
            raise RequestError("bad_request", f"day: a date such as 2026-12-01, got {day_text!r}") from None
        interval = str(request.get("interval", "30m"))
        by = str(request.get("by", "queue"))
        if interval not in INTERVALS_S or by not in GROUPINGS:
            raise RequestError("bad_request", f"interval: one of {', '.join(INTERVALS_S)}; by: one of "
                                              f"{', '.join(GROUPINGS)}")
        thresholds = {q.name: q.sl_threshold_s for q in self.core.config.queues}
        rows = await _read_records(lambda db: [row.as_json(by) for row in interval_report(
            db, day=day, tz=tz, interval_s=INTERVALS_S[interval], by=by, thresholds=thresholds,
            default_threshold_s=15.0, now=now)], self.core.db)
        return {"day": day.isoformat(), "interval": interval, "by": by, "rows": rows}

    def _op_supervise(self, connection, request):
        since = request.get("since")
        if not isinstance(since, (int, float)) or isinstance(since, bool):
            raise RequestError("bad_request", "since: epoch seconds (midnight, for today)")
        return {"supervision": self.core.supervision(float(since), self.core.config.alerts)}


async def _read_records(work: Callable[[Database], Any], db: Database) -> Any:
    """`work` on a thread, with a connection of its own to the same database (WAL: it
    reads a consistent picture while the switch writes)."""
    path = db.execute("PRAGMA database_list").fetchone()[2]

    def run():
        reader = connect(path, migrate=False)
        try:
            return work(reader)
        finally:
            reader.close()
    return await asyncio.to_thread(run)


def _text(request: dict, key: str) -> str:
    value = request.get(key)
    if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value) == "":
        raise RequestError("bad_request", f"'{key}' is required")
    return str(value)


def _error(request_id, code: str, message: str) -> dict:
    return {"id": request_id, "ok": False, "error": {"code": code, "message": message}}


async def _discard_line(reader: asyncio.StreamReader, consumed: int) -> None:
    """Throw away the rest of an oversize line, in pieces that fit the buffer."""
    await reader.readexactly(consumed)
    while True:
        try:
            await reader.readuntil(b"\n")
            return
        except asyncio.LimitOverrunError as exc:
            await reader.readexactly(exc.consumed)
        except asyncio.IncompleteReadError:
            return
