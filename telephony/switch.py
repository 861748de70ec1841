"""`hotline switch`: the switch process (asyncio + the sippy thread), start to clean stop."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from pathlib import Path

from records.agents import sip_secret
from records.db import connect
from telephony.control import ControlServer, control_address
from telephony.sip import Binding, SipSide
from telephony.switchconfig import SwitchConfig, load_switch_config
from telephony.switchcore import SwitchCore

log = logging.getLogger("hotline.switch")


def parse_address(text: str, default_port: int) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host:
        return text, default_port
    try:
        return host, int(port)
    except ValueError:
        raise ValueError(f"expected HOST:PORT, got '{text}'") from None


def default_control_path(db_path: str) -> Path:
    return Path(db_path).with_suffix(".sock")


def default_queue_log_path(db_path: str) -> Path:
    return Path(db_path).with_suffix(".queue_log")


def default_media_path(db_path: str) -> Path:
    """Recordings (WAV per call, pcap while recording) and sounds, beside the database."""
    return Path(db_path).with_suffix(".media")


class SecretLookup:
    """The registrar's view of SIP secrets: a read connection of its own per thread."""

    def __init__(self, db_path: str):
        self.db_path, self._local = db_path, threading.local()

    def __call__(self, ext: str) -> str | None:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = connect(self.db_path, migrate=False)
        return sip_secret(db, ext)


async def serve(db_path: str, sip: str, control: str, *, config: SwitchConfig | None = None,
                queue_log: str | Path | None = None, token: str | None = None,
                media: str | Path | None | bool = True, record_calls: bool = True,
                ready: asyncio.Event | None = None) -> None:
    config = config or load_switch_config()
    address = control_address(control)
    if not isinstance(address, str) and not token:
        raise ValueError("a TCP control API needs a token: set HOTLINE_CONTROL_TOKEN")
    db = connect(db_path)
    media_dir = None if media is False else Path(default_media_path(db_path) if media is True else media)
    core = SwitchCore(db, config=config, queue_log_path=queue_log or default_queue_log_path(db_path),
                      recordings=media_dir)
    interrupted = core.recover()
    if interrupted:
        log.warning("closed %d contact(s) left open by the previous run as interrupted", interrupted)
    server = ControlServer(core, token=token)
    if isinstance(address, str):
        await server.start_unix(address)
    else:
        port = await server.start_tcp(*address)
        control = f"{address[0]}:{port}"
    loop = asyncio.get_running_loop()

    def on_binding(binding: Binding | None, ext: str) -> None:
        core.seat_registered(ext, None if binding is None else (binding.host, binding.port))
        if binding is None:
            log.info("SIP: %s unregistered", ext)
        else:
            log.info("SIP: %s registered at %s:%d", ext, binding.host, binding.port)

    host, port = parse_address(sip, 5060)
    sip_side = SipSide(host, port, secret_of=SecretLookup(db_path), loop=loop, on_binding=on_binding,
                       reports=core, media_dir=media_dir, record_calls=record_calls)
    sip_side.start()
    core.attach_legs(sip_side)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    await asyncio.sleep(0)   # let the media engine's verdict reach the core
    if any(route == "menu" for route in config.numbers.values()) and not core.menu_playable:
        log.warning("the voice menu needs media anchored in the switch, which is off or failed: callers to "
                    "its numbers go to the %s queue", config.menu.default)
    media_text = (f"media anchored, recordings in {media_dir}" if core.media
                  else "media passed through (no RTPproxy)")
    print(f"hotline switch: SIP on {host}:{port}, control on {control}, records in {db_path}, "
          f"config {config.source}, {media_text}", flush=True)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        await server.close()
        core.shut_down()
        await asyncio.sleep(0.3)   # let the releases reach the phones before SIP stops
        sip_side.stop()
        core.close()
        db.close()
        print("hotline switch: stopped", flush=True)
