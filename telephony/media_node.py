"""`hotline media-node`: RTPproxy in a process of its own, for a switch whose calls'
audio should not share its process or its host (docs/scale.md).

The switch drives it over its control socket (RTPproxy's own protocol, which sippy
speaks), exactly as it drives the embedded engine: the node relays, plays the prompts
and music from its sounds directory, records into its recordings directory and sends
the keys callers press to the switch's notify socket. It holds no state of the switch:
killed, its calls end (the switch records them as interrupted) and new calls go to the
other nodes; started again, it takes new calls within seconds.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from telephony.media import RTPPROXY_MODULES, ensure_sounds, rtpproxy_args

log = logging.getLogger("hotline.media_node")


class MediaNodeError(Exception):
    """A media node that cannot start, said in one sentence."""


def run_media_node(control: str, notify: str, directory: Path, rtp_ports: tuple[int, int] | None = None,
                   *, stop: threading.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or `stop`). Raises MediaNodeError if RTPproxy cannot start."""
    try:
        from rtp.io import rtpproxy
    except ImportError as exc:
        raise MediaNodeError(f"the rtp.io wheel is not installed ({exc})") from None
    recordings = directory / "raw"
    recordings.mkdir(parents=True, exist_ok=True)
    ensure_sounds(directory / "sounds")
    try:
        proxy = rtpproxy(extra_args=rtpproxy_args(recordings, rtp_ports, control, notify), modules=RTPPROXY_MODULES)
    except Exception as exc:   # a control port taken, an address not of this host
        raise MediaNodeError(f"RTPproxy would not start on {control}: {exc}") from None
    stop = stop or threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    print(f"hotline media-node: RTPproxy on {control}, key presses to {notify}, recordings in {recordings}, "
          f"sounds in {directory / 'sounds'}", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        del proxy
