"""Callers whose audio matters in a live run: what they hear, what their agent hears, and
what the switch recorded of them.

SIPp places these callers like every other (their signalling is the same SIPp scenario),
but their SDP points at an RTP endpoint of the run's own (`RtpVoice`, one UDP socket and
a thread each): it hears every packet the switch sends (the menu's cue, queue music, the
agent, hold music, the voicemail greeting), answers where they come from (symmetric RTP,
as phones behind NAT and the switch's media engine do), presses the caller's menu key as
RFC 2833 events, and then says the caller's voice: a steady tone. The bot that answers
such a caller says the agent's voice (another tone) from an `RtpVoice` of its own and
hears the caller's.

The two voices are tones whose period divides a 20 ms packet, so every packet of a voice
carries the same bytes and the switch's relay (which forwards payloads untouched) can be
checked byte for byte; the switch's own sounds are found in their files the same way.
The recording is checked by frequency: the caller's tone on its left channel, the
agent's on its right.

After the run, `check` gives each audio caller a verdict from what was heard, the
caller's interactions row (queue reached through the menu, outcome) and its recording.
"""

from __future__ import annotations

import math
import random
import socket
import struct
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

CALLER_HZ = 250.0    # 32 samples a period: five in a packet
AGENT_HZ = 800.0     # 10 samples a period: sixteen in a packet
PACKET_SAMPLES = 160
PCMU, TELEPHONE_EVENT = 0, 101
SOUND_NAMES = ("menu", "queue-music", "hold-music", "voicemail")
MIN_TALK_S = 0.3     # shorter calls are not checked for voices (a QA trial's 0.1 s call held 0.1 s of each)


def _tone_packet(frequency: float) -> bytes:
    from telephony.media import g711

    pcm = struct.pack(f"<{PACKET_SAMPLES}h", *(int(6000 * math.sin(2 * math.pi * frequency * i / 8000))
                                               for i in range(PACKET_SAMPLES)))
    return g711().lin2ulaw(pcm, 2)


class RtpVoice:
    """One party's phone audio: a UDP socket that records what reaches it and, once it
    knows where to (`target`, or the source of the first packet heard), presses `key`
    and then says its tone every 20 ms until stopped."""

    def __init__(self, frequency: float, *, key: str | None = None, target: tuple[str, int] | None = None,
                 host: str = "127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.02)
        self.port = self.sock.getsockname()[1]
        self.voice = _tone_packet(frequency)
        self.key, self.target = key, target
        self.heard: list[bytes] = []          # PCMU payloads, in arrival order
        self.first_heard_at: float | None = None
        self.key_sent = False
        self.sent = 0
        self._speaking = False   # a caller's from the first packet heard; a bot's once it answers
        self._stop = threading.Event()
        self._seq, self._ts, self._ssrc = random.randrange(1 << 16), random.randrange(1 << 32), random.randrange(1 << 32)
        self._thread = threading.Thread(target=self._run, name=f"rtp-voice-{self.port}", daemon=True)
        self._thread.start()

    def speak(self, target: tuple[str, int] | None = None) -> None:
        if target is not None:
            self.target = target
        self._speaking = True

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def _send(self, payload_type: int, payload: bytes, *, marker: bool = False, advance: bool = True) -> None:
        assert self.target is not None
        header = struct.pack("!BBHII", 0x80, payload_type | (0x80 if marker else 0), self._seq & 0xFFFF,
                             self._ts & 0xFFFFFFFF, self._ssrc)
        try:
            self.sock.sendto(header + payload, self.target)
        except OSError:
            pass   # the far end has gone: the call is ending
        self._seq += 1
        if advance:
            self._ts += PACKET_SAMPLES

    def _press(self) -> None:
        """RFC 2833: the key's event for 120 ms, then its end three times (one timestamp)."""
        assert self.key is not None
        event = "0123456789*#".index(self.key)
        for n in range(1, 7):
            self._send(TELEPHONE_EVENT, struct.pack("!BBH", event, 10, n * PACKET_SAMPLES), marker=n == 1,
                       advance=False)
            time.sleep(0.02)
        for _ in range(3):
            self._send(TELEPHONE_EVENT, struct.pack("!BBH", event, 0x80 | 10, 7 * PACKET_SAMPLES), advance=False)
        self._ts += 7 * PACKET_SAMPLES
        self.key_sent = True

    def _run(self) -> None:
        next_packet = time.monotonic()
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(2048)
                if len(data) > 12 and data[0] >> 6 == 2 and data[1] & 0x7F == PCMU:
                    self.heard.append(data[12:])
                    if self.first_heard_at is None:
                        self.first_heard_at = time.monotonic()
                    if self.target is None:   # symmetric RTP: answer where the switch's audio comes from
                        self.target = source
                        self._speaking = True
            except (socket.timeout, BlockingIOError):
                pass
            except OSError:
                return
            if not self._speaking or self.target is None:
                continue
            if self.key is not None and not self.key_sent:
                self._press()
                next_packet = time.monotonic()
            now = time.monotonic()
            while next_packet <= now:
                self._send(PCMU, self.voice)
                self.sent += 1
                next_packet += 0.02

    def heard_runs(self, sounds: dict[str, bytes]) -> list[str]:
        """What arrived, as runs of names (a packet found in no sound is left out). Sounds
        share some notes (the menu's last is a note of the queue music), so a packet found
        in the sound being heard stays with it."""
        runs: list[str] = []
        for payload in self.heard:
            if len(set(payload)) <= 2:   # silence (every sound has some): tells nothing apart
                continue
            if runs and payload in sounds[runs[-1]]:
                continue
            name = next((n for n, audio in sounds.items() if payload in audio), None)
            if name is not None:
                runs.append(name)
        return runs


def sounds_heard(sounds_dir: Path | None) -> dict[str, bytes]:
    """The payloads a listener can tell apart: the two voices and the switch's sounds (PCMU)."""
    sounds = {"caller": _tone_packet(CALLER_HZ) * 2, "agent": _tone_packet(AGENT_HZ) * 2}
    if sounds_dir is not None:
        for name in SOUND_NAMES:
            path = sounds_dir / f"{name}.{PCMU}"
            if path.exists():
                audio = path.read_bytes()
                sounds[name] = audio + audio[:PACKET_SAMPLES]   # a packet that spans the loop
    return sounds


def sdp_audio_address(sdp: str) -> tuple[str, int] | None:
    """The connection address and audio port of an SDP body."""
    host, port = None, None
    for line in sdp.splitlines():
        line = line.strip()
        if line.startswith("c=IN IP4 "):
            host = host or line.split()[2]
        elif line.startswith("m=audio "):
            port = int(line.split()[1])
    return (host, port) if host and port else None


def tone_of(samples: list[int]) -> float:
    """The frequency of a steady tone, from its zero crossings (0 when silent)."""
    loud = [i for i, v in enumerate(samples) if abs(v) > 1000]
    if len(loud) < 160:   # under 20 ms of sound: nothing to measure
        return 0.0
    sound = samples[loud[0]:loud[-1] + 1]
    crossings = sum(1 for a, b in zip(sound, sound[1:]) if (a < 0) != (b < 0))
    return crossings / 2 / (len(sound) / 8000)


def recording_tones(path: str | Path) -> tuple[float, float]:
    """The tone on each channel of a recording (caller left, agent right)."""
    with wave.open(str(path)) as wav:
        frames = wav.readframes(wav.getnframes())
        channels = wav.getnchannels()
    samples = struct.unpack(f"<{len(frames) // 2}h", frames)
    if channels == 1:
        return tone_of(list(samples)), 0.0
    return tone_of(list(samples[0::2])), tone_of(list(samples[1::2]))


@dataclass
class AudioCaller:
    """A planned caller whose audio the run checks."""
    index: int               # in the plan
    number: str
    queue: str
    key: str | None          # the menu key it presses (None: dialled straight to the queue)
    voice: RtpVoice
    agent_voices: list[RtpVoice] = field(default_factory=list)   # the bots' side of its call (one per answer)


def _near(value: float, target: float) -> bool:
    return abs(value - target) <= 0.15 * target


def verdict(caller: AudioCaller, row: dict | None, sounds: dict[str, bytes], *, recording: bool) -> dict:
    """What one audio caller heard and what the switch made of it, and whether that is
    right for how its call ended."""
    heard = caller.voice.heard_runs(sounds)
    agent_heard = [name for voice in caller.agent_voices for name in voice.heard_runs(sounds)]
    out: dict = {"number": caller.number, "queue": caller.queue, "key": caller.key, "heard": heard,
                 "agent_heard_caller": "caller" in agent_heard, "problems": []}
    problems = out["problems"]
    if row is None:
        problems.append("no interactions row")
        return out
    out.update(outcome=row["outcome"], queue_reached=row["queue"], dialled=row["dialled_number"])
    if caller.key is not None:
        if not heard or heard[0] != "menu":
            problems.append("did not hear the menu first")
        if row["queue"] != caller.queue and row["outcome"] != "abandoned":
            problems.append(f"pressed {caller.key} for {caller.queue} but reached {row['queue']}")
    if row["outcome"] == "answered" and (row.get("talk_s") or 0.0) < MIN_TALK_S:
        out["too_short"] = True   # a caller who hung up as the agent answered: too short to hear
    elif row["outcome"] == "answered":
        if "agent" not in heard:
            problems.append("answered, but the agent's voice never reached the caller")
        if caller.agent_voices and "caller" not in agent_heard:
            problems.append("answered, but the caller's voice never reached the agent")
        if recording:
            path = row.get("recording_path")
            if not path or not Path(path).exists():
                problems.append("answered, but no recording")
            else:
                left, right = recording_tones(path)
                out["recording_hz"] = [round(left), round(right)]
                if not _near(left, CALLER_HZ):
                    problems.append(f"the recording's caller side holds {left:.0f} Hz, not the caller's {CALLER_HZ:.0f}")
                if not _near(right, AGENT_HZ):
                    problems.append(f"the recording's agent side holds {right:.0f} Hz, not the agent's {AGENT_HZ:.0f}")
    elif row["outcome"] == "timeout" and row.get("recording_path"):
        if "voicemail" not in heard:
            problems.append("sent to voicemail, but did not hear its greeting")
    out["ok"] = not problems
    return out
