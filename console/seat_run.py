"""`hotline agent` from the command line: log in at the switch, start the phone (the
seat's own pjsua2 softphone or a desk phone the switch reports on), run the seat's
screen (console/seat.py) and tidy up on the way out, whatever ends it: q, a signal, the
terminal going away."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from pathlib import Path
from typing import Callable

from console.external_phone import ExternalPhone
from console.seat import SeatApp
from console.seat_messages import PhoneEvent
from console.seatlogic import Drafts, SeatState
from telephony.control_client import ControlClient, ControlError

PIN_TRIES = 3   # a typo at the terminal is asked again, this many times in all


def state_dir(control: str | tuple[str, int] | None = None) -> Path:
    """Where a seat keeps its own files (drafts, its log, pjsip's): the agent's XDG state
    directory, not the switch's; nobody else may read them (an agent's notes). One
    folder per switch: a form typed for one switch's caller never shows at another's."""
    base = Path(os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state"))
    if control is None:
        return base / "hotline"
    return base / "hotline" / switch_folder(control)


def switch_folder(control: str | tuple[str, int]) -> str:
    """A folder name for a switch's control address: host-port, or the socket's name and
    a short hash of its path (two demo.sock in different folders are two switches)."""
    import hashlib
    import re

    if isinstance(control, tuple):
        return re.sub(r"[^A-Za-z0-9.-]+", "_", f"{control[0]}-{control[1]}")
    path = os.path.abspath(control)
    return re.sub(r"[^A-Za-z0-9.]+", "_", Path(path).name) + "-" + hashlib.sha1(path.encode()).hexdigest()[:8]


async def run_seat(*, ext: str, pin: str, registrar: str, control: str | tuple[str, int],
                   sip_user: str | None = None, sip_password: str | None = None,
                   token: str | None = None, audio: str = "null", hint: str = "",
                   stop: asyncio.Event | None = None, seconds: float | None = None,
                   rtp_ports: tuple[int, int] | None = None, tls_ca: str | None = None,
                   files: Path | None = None, ask_pin: Callable[[], str] | None = None,
                   phone_kind: str = "own", quit_question: str = "") -> int:
    """Log in at the switch, start the phone, run the app, and tidy up on the way out.
    The seat opens no database: records come from the switch (console/desk.py). `files`
    is where its drafts and logs go (default: state_dir()); `ask_pin` asks again after a
    wrong PIN; `stop` (or `seconds`) ends the seat from outside, as `hotline demo` does."""
    from telephony.softphone import Softphone

    async def connect_and_log_in(after_seq: int | None = None) -> tuple[ControlClient, dict]:
        client = await asyncio.wait_for(ControlClient.connect(control, token, tls_ca), 5)
        try:
            me = await client.ask("login", ext=ext, pin=pin)
            await client.subscribe(after_seq)
        except BaseException:
            await client.close()
            raise
        return client, me

    seat = SeatState(ext, "")
    client = None
    notice = ""
    queues: tuple[str, ...] = ()
    for attempt in range(PIN_TRIES):
        try:
            client, me = await connect_and_log_in()
        except ControlError as exc:
            if exc.code == "bad_credentials" and ask_pin is not None and attempt < PIN_TRIES - 1:
                print("hotline: wrong extension or PIN; try again", file=sys.stderr, flush=True)
                pin = await asyncio.get_running_loop().run_in_executor(None, ask_pin)
                continue
            if exc.code in ("bad_credentials", "locked_out"):
                raise PermissionError(exc.message) from None
            raise RuntimeError(f"the switch refused the seat: {exc.message}") from None
        except FileNotFoundError:
            # No socket at that path: no switch was ever there (a wrong --db or --control),
            # not one restarting. Said and stopped before the phone registers: it would
            # take the extension's calls from the seat that is logged in (a demo trial's
            # seat with a wrong --db did, until the real one's next refresh).
            raise RuntimeError(f"no switch is running at {control} (start it with `hotline switch`, or give "
                               "--db or --control)") from None
        except (OSError, asyncio.TimeoutError) as exc:
            # The phone still rings (the registrar may be elsewhere); who this is is
            # checked when the switch answers again.
            notice = f"No control connection to the switch ({exc}): trying to reach it."
            break
        seat.name = me["agent"]["name"]
        seat.status_changed(me.get("status", "logged_out"), me.get("reason", ""), time.time())
        queues = tuple(me.get("queues", ()))
        seat.break_limits = dict(me.get("breaks") or {})
        break
    files = Path(files) if files is not None else state_dir(control)
    os.umask(os.umask(0) | 0o077)   # the seat's drafts and logs are the agent's alone
    files.mkdir(parents=True, exist_ok=True, mode=0o700)
    drafts = Drafts(files / f"drafts-{ext}.json")
    # The screen belongs to the seat: our log lines and pjsip's go to a file of its own.
    from console.logtime import CentreTimeFormatter

    log_handler = logging.FileHandler(files / f"seat-{ext}.log")
    log_handler.setFormatter(CentreTimeFormatter())
    hotline_log = logging.getLogger("hotline")
    hotline_log.addHandler(log_handler)
    hotline_log.propagate, was_propagating = False, hotline_log.propagate
    if hotline_log.level == logging.NOTSET or hotline_log.level > logging.INFO:
        hotline_log.setLevel(logging.INFO)
    app = SeatApp(seat=seat, phone=None, control=client, drafts=drafts, queues=queues,
                  reconnect=connect_and_log_in, registrar=registrar)
    phone: Softphone | ExternalPhone
    if phone_kind == "external":   # a desk phone: its calls are the switch's events, its acts the switch's ops
        app.registrar = ""
        phone = ExternalPhone(ext, lambda event: app.post_message(PhoneEvent(event)),
                              lambda: app.control.ask if app.control is not None else None)
        if client is not None:
            app.call_later(phone.registered, bool(me.get("registered")))
    else:
        phone = Softphone(ext, sip_password or pin, registrar, lambda event: app.post_message(PhoneEvent(event)),
                          audio=audio, sip_user=sip_user, rtp_ports=rtp_ports)
    app.phone = phone
    if quit_question:
        app.quit_question = quit_question

    async def end_from_outside():
        try:
            await asyncio.wait_for(stop.wait() if stop is not None else asyncio.Future(), seconds)
        except asyncio.TimeoutError:
            pass
        app.exit()
    ender = asyncio.get_running_loop().create_task(end_from_outside()) if stop or seconds else None
    try:
        phone.start()
        audio_note = f"Audio: {phone.audio_description}."
        app.call_later(app.notice, notice or hint or audio_note)
        if client is None:
            app.call_later(app._switch_lost)
        await app.run_async()
    finally:
        if ender is not None:
            ender.cancel()
        app.leaving = True
        phone.stop()
        if app.control is not None:
            await app.control.close()
        hotline_log.removeHandler(log_handler)
        hotline_log.propagate = was_propagating
        log_handler.close()
    return 0
