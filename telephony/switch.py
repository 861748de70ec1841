"""`hotline switch`: the switch process (asyncio + the sippy thread), start to clean stop.

One switch per database and per SIP address: a lock file beside the database (flock,
released by the kernel whatever way the process ends) and a bind test of the SIP port
are checked before anything is opened, written or listened on, so a second switch
refuses with one sentence and leaves the first one's calls, records and control socket
alone. A fatal error on the SIP thread stops the switch at once, as cleanly as a signal.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Callable

from records.agents import sip_secret
from records.db import connect
from telephony.collector import FullCollections
from telephony.control import ControlServer, control_address
from telephony.registrar import Binding
from telephony.sip import SipSide, SipStartError, describe_os_error
from telephony.switchconfig import SwitchConfig, load_switch_config
from telephony.switchcore import SwitchCore

log = logging.getLogger("hotline.switch")


class StartError(ValueError):
    """The switch cannot start as asked; the message says why in one sentence."""


class SwitchFailed(RuntimeError):
    """The switch had to stop while running (its SIP thread failed); the message says why."""


def parse_address(text: str, default_port: int) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host:
        host, port = text, str(default_port)
    host = host.strip("[]")
    if not host:
        raise StartError(f"expected HOST:PORT, got '{text}'")
    if not port.isdigit():
        raise StartError(f"expected HOST:PORT, got '{text}'")
    if not 0 < int(port) < 65536:
        raise StartError(f"port {port} is out of range (1-65535) in '{text}'")
    return host, int(port)


def default_control_path(db_path: str) -> Path:
    return Path(db_path).with_suffix(".sock")


def default_queue_log_path(db_path: str) -> Path:
    return Path(db_path).with_suffix(".queue_log")


def default_media_path(db_path: str) -> Path:
    """Recordings (WAV per call, pcap while recording) and sounds, beside the database."""
    return Path(db_path).with_suffix(".media")


def lock_path(db_path: str | Path) -> Path:
    return Path(db_path).with_suffix(".switch.lock")


class SwitchLock:
    """The one switch of a database: an flock on a file beside it, naming its holder."""

    def __init__(self, db_path: str | Path):
        self.path = lock_path(db_path)
        self._fd: int | None = None

    def acquire(self, sip: str) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise StartError(f"another switch is already running on this database ({holder}); "
                                 "one switch per database") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, SIP {sip}\n".encode())
        self._fd = fd

    def release(self) -> None:
        # The file stays: removing it would let a switch that opened it a moment earlier
        # lock a file nobody else can see, while a third creates a new one.
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


def check_sip_address(host: str, port: int) -> None:
    """Bind the SIP address once, exclusively: refuses a port in use (by another switch
    or anything else), a host that is not this machine's, a name that does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise StartError(f"cannot listen for SIP: {describe_os_error(exc, host, port)}") from None
    family, _, _, _, sockaddr = infos[0]
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            raise StartError(f"cannot listen for SIP: {describe_os_error(exc, host, port)}") from None


def check_control_path(path: Path) -> None:
    """A Unix socket path already answered by a live process is someone's: refuse; one
    nobody answers is left from a run that died, and is replaced."""
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_socket():
        raise StartError(f"{path} exists and is not a socket; pass another --control")
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return   # stale: ControlServer replaces it
    raise StartError(f"the control socket {path} is in use by a running switch; pass another --control")


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
                tls_cert: str | Path | None = None, tls_key: str | Path | None = None,
                media: str | Path | None | bool = True, record_calls: bool = True,
                ready: asyncio.Event | None = None) -> None:
    """Run the switch until a signal; raises StartError (could not start, nothing changed)
    or SwitchFailed (had to stop while running)."""
    config = config or load_switch_config()
    try:
        address = control_address(control)
    except ValueError as exc:
        raise StartError(str(exc)) from None
    if not isinstance(address, str) and not token:
        raise StartError("a TCP control API needs a token: set HOTLINE_CONTROL_TOKEN")
    tls = None
    if bool(tls_cert) != bool(tls_key):
        raise StartError("TLS needs both the certificate and its key (--tls-cert and --tls-key)")
    if tls_cert and tls_key:
        from telephony.tls import TlsError, server_context

        if isinstance(address, str):
            raise StartError("--tls-cert is for a TCP control API (HOST:PORT); a Unix socket is guarded by its "
                             "file permissions")
        try:
            tls = server_context(tls_cert, tls_key)
        except TlsError as exc:
            raise StartError(f"TLS: {exc}") from None
    if not isinstance(address, str) and tls is None:
        from telephony.tls import is_loopback

        if not is_loopback(address[0]):
            raise StartError(f"control on {address[0]}:{address[1]} can be reached from other machines: give "
                             "--tls-cert and --tls-key (hotline certs makes a pair), or listen on 127.0.0.1")
    host, port = parse_address(sip, 5060)
    check_sip_address(host, port)
    lock = SwitchLock(db_path)
    lock.acquire(f"{host}:{port}")
    try:
        if isinstance(address, str):
            check_control_path(Path(address))
        await _run(db_path, host, port, address, config=config, queue_log=queue_log, token=token, media=media,
                   record_calls=record_calls, ready=ready, tls=tls)
    finally:
        lock.release()


def keep_private(paths) -> None:
    """Files of the switch that others on the machine could read (made by an older
    hotline, or by hand, before the umask) lose that: they hold residents' names and
    numbers, PIN digests and recordings. Their group keeps what it had."""
    for path in paths:
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            continue
        if mode & 0o007:
            path.chmod(mode & ~0o007)
            log.warning("%s was readable by everyone on this machine; it is now private to its owner and group", path)


EVENT_PRUNE_EVERY_S = 3600.0
ALIVE_EVERY_S = 5.0   # a crash's calls are closed with their talk up to at most this before it


async def _every(seconds: float, action: Callable[[], object], failed: str) -> None:
    """`action` now and every `seconds`; a failure is logged (`failed`) and tried again."""
    while True:
        try:
            action()
        except Exception:
            log.exception(failed)
        await asyncio.sleep(seconds)


async def _prune_events(core: SwitchCore) -> None:
    """The event log's old lines go in small batches with pauses between them, so a
    call's write never waits behind a long delete."""
    while True:
        try:
            while core.prune_events(batch=5000) == 5000:
                await asyncio.sleep(0.05)
        except Exception:   # a locked or broken database: say so, try again later
            log.exception("pruning the event log failed")
        await asyncio.sleep(EVENT_PRUNE_EVERY_S)


async def _run(db_path: str, host: str, port: int, address, *, config: SwitchConfig, queue_log, token, media,
               record_calls: bool, ready: asyncio.Event | None, tls=None) -> None:
    db = connect(db_path)
    media_dir = None if media is False else Path(default_media_path(db_path) if media is True else media)
    queue_log_path = Path(queue_log or default_queue_log_path(db_path))
    keep_private([Path(db_path), Path(f"{db_path}-wal"), Path(f"{db_path}-shm"), queue_log_path,
                  *([media_dir, *media_dir.rglob("*")] if media_dir is not None and media_dir.exists() else [])])
    core = SwitchCore(db, config=config, queue_log_path=queue_log_path, recordings=media_dir)
    collections = FullCollections(config.memory, lambda: len(core.calls))
    interrupted = core.recover()
    if interrupted:
        log.warning("closed %d contact(s) left open by the previous run as interrupted", interrupted)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    failure: list[str] = []

    def sip_failed(message: str) -> None:
        log.error("%s; the switch stops", message)
        failure.append(message)
        stop.set()
    core.on_fatal = sip_failed

    def on_binding(binding: Binding | None, ext: str) -> None:
        core.seat_registered(ext, None if binding is None else (binding.host, binding.port))

    server = ControlServer(core, token=token)
    sip_side = SipSide(host, port, secret_of=SecretLookup(db_path), loop=loop, on_binding=on_binding,
                       reports=core, media_dir=media_dir, record_calls=record_calls, settings=config.sip,
                       media_settings=config.media)
    try:
        try:
            sip_side.start()
        except SipStartError as exc:
            raise StartError(str(exc)) from None
        core.attach_legs(sip_side)
        try:
            if isinstance(address, str):
                await server.start_unix(address)
                control = address
            else:
                control = f"{address[0]}:{await server.start_tcp(address[0], address[1], tls=tls)}" + (" (TLS)" if tls else "")
        except OSError as exc:
            raise StartError(f"cannot listen for the control API on {address}: {exc.strerror or exc}") from None
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
        pruning = loop.create_task(_prune_events(core))
        alive = loop.create_task(_every(ALIVE_EVERY_S, core.still_alive,
                                        "could not record that the switch is alive"))
        collections.start()
        collecting = loop.create_task(_every(1.0, collections.tick, "a full garbage collection failed"))
        await stop.wait()
        pruning.cancel()
        alive.cancel()
        collecting.cancel()
    finally:
        collections.stop()
        await server.close()
        core.shut_down()
        if sip_side.failure is None:
            await asyncio.sleep(0.3)   # let the releases reach the phones before SIP stops
        sip_side.stop()
        core.close()
        db.close()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)
    if failure:
        raise SwitchFailed(failure[0])
    print("hotline switch: stopped", flush=True)
