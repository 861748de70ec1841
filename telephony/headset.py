"""The agent's headset: a sound device bridged to the softphone's conference bridge.

The pjsua2 wheel is built without sound devices, so the phone runs on pjmedia's null
device (which clocks the bridge) and this module adds an AudioMediaPort whose frames
come from and go to a PortAudio stream (the `sounddevice` library): what the caller
says goes to the device's output, what the microphone hears goes to the caller. The two
clocks (pjmedia's and the sound card's) differ a little, so each direction goes through
a short FIFO that drops the oldest audio rather than let the delay grow.

Threads: pjmedia calls the port from its clock thread, PortAudio calls its callback
from its own; both only touch the FIFOs (under a lock each), never the UI or pjsua2.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

log = logging.getLogger("hotline.headset")

FRAME_MS = 20
MAX_DELAY_MS = 200     # each direction lets at most this much audio wait ...
KEEP_MS = 60           # ... and then drops back to this much


class AudioError(RuntimeError):
    """The sound device cannot be used; the message says which and what there is."""


class Fifo:
    """Bytes in, bytes out. Past `limit` waiting (the reader stalled or started late) only
    the newest `keep` are kept: the delay drops back to a few frames instead of staying
    at the limit for the rest of the call."""

    def __init__(self, limit: int, keep: int):
        self.limit, self.keep = limit, keep
        self._data = bytearray()
        self._lock = threading.Lock()
        self.dropped = 0        # bytes thrown away because the reader fell behind
        self.short = 0          # reads that found too little (silence was played instead)

    def put(self, chunk: bytes) -> None:
        with self._lock:
            self._data += chunk
            if len(self._data) > self.limit:
                extra = len(self._data) - self.keep
                del self._data[:extra]
                self.dropped += extra

    def take(self, size: int) -> bytes:
        with self._lock:
            if len(self._data) < size:
                self.short += 1
                chunk = bytes(self._data) + bytes(size - len(self._data))
                self._data.clear()
                return chunk
            chunk = bytes(self._data[:size])
            del self._data[:size]
            return chunk


def list_devices() -> str:
    """The sound devices PortAudio sees, for `hotline agent --audio list`."""
    sd = _sounddevice()
    lines = []
    for index, device in enumerate(sd.query_devices()):
        lines.append(f"{index:>3}  {device['name']}  (in {device['max_input_channels']}, "
                     f"out {device['max_output_channels']}, {device['default_samplerate']:.0f} Hz)")
    return "\n".join(lines) or "no sound devices"


def _sounddevice():
    try:
        import sounddevice
    except OSError as exc:   # the Python package is there, the PortAudio library is not
        raise AudioError(f"PortAudio is not installed ({exc}); on Debian: apt-get install libportaudio2, "
                         "or run the seat with --audio null") from None
    return sounddevice


class Headset:
    """A sound device (PortAudio name or index; "default") as the seat's ear and mouth."""

    def __init__(self, device: str, clock_rate: int = 16000):
        self.device = int(device) if device.isdigit() else (None if device == "default" else device)
        self.name = device
        self.rate = clock_rate
        self.frame_bytes = clock_rate * FRAME_MS // 1000 * 2          # 16-bit mono
        limit, keep = clock_rate * MAX_DELAY_MS // 1000 * 2, clock_rate * KEEP_MS // 1000 * 2
        self.ear, self.mouth = Fifo(limit, keep), Fifo(limit, keep)   # caller -> device, device -> caller
        self.port: Any = None      # pjsua2's AudioMediaPort (no types published)
        self._stream: Any = None   # sounddevice's RawStream (no types published)
        self.description = ""

    # --- on the phone's pump thread ------------------------------------------------------------
    def start(self, pj) -> None:
        sd = _sounddevice()
        try:
            self._stream = sd.RawStream(device=self.device, samplerate=self.rate, channels=1, dtype="int16",
                                        blocksize=self.frame_bytes // 2, latency="low", callback=self._sound_card)
            self._stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            self._stream = None
            raise AudioError(f"sound device {self.name!r} cannot be opened ({exc}). Devices:\n{list_devices()}\n"
                             "Choose one with --audio NAME, or --audio null for a silent seat") from None
        info = sd.query_devices(self._stream.device[0] if isinstance(self._stream.device, tuple)
                                else self._stream.device)
        self.description = f"headset on {info['name']!r} through PortAudio, {self.rate} Hz"
        fmt = pj.MediaFormatAudio()
        fmt.init(pj.PJMEDIA_FORMAT_PCM, self.rate, 1, FRAME_MS * 1000, 16)
        self.port = _port_class()(self)
        self.port.createPort("headset", fmt)

    def connect(self, call_audio) -> None:
        """A call's audio is live: the caller to the ear, the mouth to the caller."""
        call_audio.startTransmit(self.port)
        self.port.startTransmit(call_audio)

    def stop(self) -> None:
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            finally:
                self._stream = None
        if self.ear.dropped or self.mouth.dropped:
            log.info("headset: dropped %d bytes to the device and %d from it (clock drift)",
                     self.ear.dropped, self.mouth.dropped)
        self.port = None

    # --- PortAudio's thread ---------------------------------------------------------------------
    def _sound_card(self, indata, outdata, frames, _time, status) -> None:
        if status:
            log.debug("headset: %s", status)
        self.mouth.put(bytes(indata))
        outdata[:] = self.ear.take(len(outdata))


@functools.cache
def _port_class():
    """Made on first use, as the softphone's pjsua2 subclasses are (pjsua2 is imported late)."""
    import pjsua2 as pj

    class Port(pj.AudioMediaPort):
        """pjmedia's clock thread: frames from the bridge (the caller) and for it (the mic)."""

        def __init__(self, headset: Headset):
            super().__init__()
            self.headset = headset

        def onFrameReceived(self, frame):
            if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO:
                self.headset.ear.put(bytes(frame.buf))

        def onFrameRequested(self, frame):
            frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
            frame.buf = pj.ByteVector(self.headset.mouth.take(self.headset.frame_bytes))
            frame.size = self.headset.frame_bytes

    return Port
