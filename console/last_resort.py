"""The seat's way out when the usual one cannot run: a signal, or a terminal that
vanished (tmux killed, SSH gone)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from console.seat import SeatApp
    from console.supervisor import SupervisorApp


class LastResort:
    """The seat leaves within seconds whatever state its screen is in.

    SIGTERM or SIGHUP, or the terminal vanishing without a word (its tmux server killed,
    an SSH connection gone: reads and tcgetattr then fail with EIO), start the same way
    out as q; if that has not finished within `grace_s` (a screen that blocks writing to a
    terminal that is gone), this thread stops the phone itself, so it unregisters, and
    ends the process. The switch logs out an agent whose control connection closes."""

    def __init__(self, app: "SeatApp | SupervisorApp", *, grace_s: float = 5.0, terminal_fd: int | None = None):
        self.app, self.grace_s, self.terminal_fd = app, grace_s, terminal_fd
        self.done = threading.Event()
        self._triggered = threading.Event()
        self._loop = asyncio.get_running_loop()
        self._previous: dict = {}

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            # signal.signal, not the event loop's handler: its Python handler still runs
            # while the main thread waits on a lock, where the loop would never wake.
            self._previous[signum] = signal.signal(signum, self._on_signal)
        threading.Thread(target=self._watch_terminal, name="seat-terminal", daemon=True).start()

    def uninstall(self) -> None:
        """The screen is closing: the signals and the terminal are no longer watched. A way
        out already under way keeps its deadline (closing the screen is where a dead
        terminal makes Textual wait forever)."""
        self.done.set()
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    def _on_signal(self, signum, _frame) -> None:
        self.trigger(f"signal {signal.Signals(signum).name}")

    def _watch_terminal(self) -> None:
        import termios

        while self.terminal_fd is not None and not self.done.wait(1.0):
            try:
                termios.tcgetattr(self.terminal_fd)
            except (termios.error, OSError):
                self.trigger("the terminal went away")
                return

    def trigger(self, why: str) -> None:
        if self._triggered.is_set():
            return
        self._triggered.set()
        logging.getLogger("hotline.seat").warning("leaving: %s", why)
        try:
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self.app.leave(urgent=True)))
        except RuntimeError:   # the loop is closed: nothing graceful is left to try
            pass
        threading.Thread(target=self._after_grace, name="seat-last-resort", daemon=True).start()

    def _after_grace(self) -> None:
        time.sleep(self.grace_s)   # a seat that got out in time is gone already, with this thread
        logging.getLogger("hotline.seat").error("the screen did not close within %.0f s; stopping the phone "
                                                "and leaving", self.grace_s)
        try:
            if self.app.phone is not None:
                self.app.phone.stop(timeout=self.grace_s)   # hangs up and unregisters on its own thread
        finally:
            os._exit(0)


def terminal_fd() -> int | None:
    """The terminal the seat draws on, if it has one (a headless test has none)."""
    import sys

    for stream in (sys.__stdin__, sys.__stdout__):
        try:
            if stream is not None and stream.isatty():
                return stream.fileno()
        except (ValueError, OSError):
            continue
    return None
