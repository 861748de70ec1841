"""The switch's media: RTPproxy embedded in the process (the `rtp.io` wheel), driven by
sippy's RTPproxy client on the sippy thread.

What it gives the switch, per call (`MediaSession`): both legs' SDP rewritten so the
audio flows through the proxy (the switch anchors it), a prompt or music played to the
caller (looped, stopped when an agent answers), RFC 2833 keys the caller presses
(`catch_dtmf` module), and recording of both directions into one pcap, which
`pcap_to_wav` turns into a stereo WAV (caller left, agent right).

Prompts are raw G.711 payload files named by payload type (`NAME.0` PCMU, `NAME.8`
PCMA), as RTPproxy plays them; `ensure_sounds` makes the built-in ones (tones: there is
no speech engine here; a site drops recorded prompts with the same names into its
sounds directory).

Everything here runs on the sippy thread, except `pcap_to_wav` and `ensure_sounds`.
"""

from __future__ import annotations

import ctypes
import logging
import math
import multiprocessing
import os
import signal
import struct
import time
import wave
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

log = logging.getLogger("hotline.media")

# PCMU and PCMA: what RTPproxy can play, and what every phone offers.
PLAYABLE_CODECS = "0,8"
DTMF_PAYLOAD = 101


def g711():
    """audioop's G.711 codecs (C; in the standard library up to 3.12, which is as far as
    the project runs; `audioop-lts` carries it on if that ever changes)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    return audioop


_ENCODE = {0: lambda pcm: g711().lin2ulaw(pcm, 2), 8: lambda pcm: g711().lin2alaw(pcm, 2)}
_DECODE = {0: lambda payload: g711().ulaw2lin(payload, 2), 8: lambda payload: g711().alaw2lin(payload, 2)}

# The built-in sounds: (frequency Hz or 0 for silence, milliseconds) steps.
SOUNDS: dict[str, list[tuple[float, int]]] = {
    # queue music: a slow chime, then a pause, looped while the caller waits
    "queue-music": [(523.3, 400), (659.3, 400), (784.0, 400), (659.3, 400), (0, 1400)],
    # the voice menu's cue: a rising three-tone "please choose"
    "menu": [(440.0, 250), (554.4, 250), (659.3, 400), (0, 300)],
    # voicemail: "nobody can take your call" (falling), then the beep to speak after
    "voicemail": [(659.3, 300), (523.3, 300), (440.0, 400), (0, 400), (1000.0, 500)],
    # music on hold: a softer, lower figure than the queue's, so a caller knows they are
    # held by their agent and not back in the queue
    "hold-music": [(392.0, 500), (493.9, 500), (587.3, 700), (0, 1300)],
}


def ensure_sounds(directory: str | Path) -> Path:
    """Write any built-in sound missing from `directory` (both codecs); return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, steps in SOUNDS.items():
        samples: list[int] = []
        for frequency, ms in steps:
            samples += [int(6000 * math.sin(2 * math.pi * frequency * i / 8000)) if frequency else 0
                        for i in range(8 * ms)]
        pcm = struct.pack(f"<{len(samples)}h", *samples)
        for payload_type, encode in _ENCODE.items():
            path = directory / f"{name}.{payload_type}"
            if not path.exists():
                path.write_bytes(encode(pcm))
    return directory


class MediaEngine:
    """One RTPproxy: inside the switch process (`control` None, the default), or a media
    node in a process of its own (`hotline media-node`), on this host or another, driven
    over its control socket ("udp:HOST:PORT"). Start it on the sippy thread.

    A node's `recordings` and `sounds` are paths on the node's host (where RTPproxy opens
    them); its key presses come back to the switch's `notify` socket."""

    def __init__(self, config: dict, *, recordings: str | Path, sounds: str | Path,
                 rtp_ports: tuple[int, int] | None = None, control: str | None = None,
                 notify: str | None = None, weight: float = 1.0):
        self.config = config
        self.control, self.notify, self.weight = control, notify, weight
        self.name = control or "embedded"
        self.rtp_ports = rtp_ports   # (low, high) for a firewall; None: RTPproxy's own range
        self.recordings = Path(recordings)
        # a node writes its own sounds (the same built-in ones) where it plays them from
        self.sounds = ensure_sounds(sounds) if control is None else Path(sounds)
        self.session_config = config   # what each call's session is made with (its client)
        self.client = None
        self.notify_spec: str | None = None
        self.dtmf_module: int | None = None
        self._dtmf_listeners: dict[str, Callable[[str], None]] = {}
        self._cli = None
        self._watch = None                    # the probe's Timeout (watch())
        self._probe_sent: float | None = None   # monotonic time of the unanswered probe
        self.stalled = False                  # the proxy stopped answering (watch())
        self.last_answer: float | None = None

    def start(self, on_ready: Callable[[bool], None]) -> None:
        """Start RTPproxy; `on_ready(True)` once it answers and the DTMF module is found."""
        from sippy.Rtp_proxy.client import Rtp_proxy_client
        from sippy.Time.Timeout import Timeout

        if self.control is not None:
            client = self.client = Rtp_proxy_client(self.config, spath=self.control)
            client.notify_socket = self.notify_spec = self.notify
            # sippy asks an offline proxy again once a minute; a node back from a restart
            # should take calls within seconds (watch() notices it first)
            client.hrtb_retr_ival = 2.0
            self.session_config = {**self.config, "rtp_proxy_client": client}
        else:
            self.recordings.mkdir(parents=True, exist_ok=True)
            self.client = Rtp_proxy_client(self.config, spath=embedded_spec(self.recordings, self.rtp_ports),
                                           nworkers=1, nsetup_f=self._notify_setup)
            self.config["rtp_proxy_client"] = self.client
        deadline = [50]

        def wait_online():
            if self.client.online:
                on_ready(True)
            elif deadline[0] > 0:
                deadline[0] -= 1
                Timeout(wait_online, 0.1)
            else:
                on_ready(False)
        wait_online()

    @property
    def up(self) -> bool:
        """Taking new calls: answering its control socket."""
        return self.client is not None and bool(self.client.online) and not self.stalled

    def watch(self, stall_s: float, on_stall: Callable[[float], None], every_s: float = 1.0,
              on_back: Callable[[], None] | None = None) -> None:
        """Ask the proxy its version every `every_s`; a question still unanswered after
        `stall_s` calls `on_stall(seconds)`, once. sippy's client waits for each reply with
        no time limit, one command at a time, so a proxy that stops answering stops every
        call's setup (rings wait for their offer, BYEs for their session), silently.
        With `on_back`, a stalled proxy is still asked every `stall_s`, and `on_back()`
        is called when it answers again (a media node restarted)."""
        from sippy.Time.Timeout import Timeout

        self._probe_sent = None
        self.stalled = False

        def answered(result=None, *_args, **_kwargs) -> None:
            if result is None:
                return   # a UDP client that gave up on the question: still unanswered
            self._probe_sent, self.last_answer = None, time.monotonic()
            if self.stalled and on_back is not None:
                self.stalled = False
                coming_back[0] = True
                if self.client is not None and not self.client.online:
                    self.client.version_check()   # sippy's own client back online first
                back_if_up()

        last_tick = [time.monotonic()]
        behind = [0.0]   # seconds this thread was late since the question went out
        # answering again, and said so (on_back) only once sippy's client is online too: a
        # call in between would find the node not up and pass its audio between the phones
        coming_back = [False]

        def back_if_up() -> None:
            if coming_back[0] and self.up and on_back is not None:
                coming_back[0] = False
                on_back()

        def probe() -> None:
            if self.client is None or (self.stalled and on_back is None):
                return
            back_if_up()
            now = time.monotonic()
            # An overloaded switch runs this late, and handles the proxy's answer as late:
            # the time it was behind is not the proxy's silence (a burst of 150 calls/s
            # made a node that answered in time look dead after 10 s, and ended its calls).
            behind[0] += max(0.0, now - last_tick[0] - every_s)
            last_tick[0] = now
            if self._probe_sent is None:
                self._probe_sent, behind[0] = now, 0.0
                self.client.send_command("V", answered)
            elif now - self._probe_sent - behind[0] >= stall_s:
                if not self.stalled:
                    self.stalled = True
                    on_stall(now - self._probe_sent)
                else:   # still down: ask again (a node's UDP question may have been lost)
                    self._probe_sent, behind[0] = now, 0.0
                    self.client.send_command("V", answered)
        self.unwatch()
        self._watch = Timeout(probe, every_s, -1)

    def unwatch(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    def status(self) -> dict:
        """What the supervisors' snapshot says of the media (read from any thread)."""
        client = self.client
        return {"answering": not self.stalled, "node": self.name, "weight": self.weight,
                "last_answer_s": round(time.monotonic() - self.last_answer, 1) if self.last_answer else None,
                "active_sessions": getattr(client, "active_sessions", None),
                "sessions_created": getattr(client, "sessions_created", None)}

    def _notify_setup(self, nsock, spec: str) -> None:
        from sippy.CLIManager import CLIManager

        self.notify_spec = spec
        self._cli = CLIManager(nsock, self._notified)

    def _notified(self, _cli, line: str) -> None:
        # catch_dtmf: "TAG DIGIT VOLUME DURATION FLAG"
        parts = line.split()
        if len(parts) >= 2 and parts[0] in self._dtmf_listeners:
            self._dtmf_listeners[parts[0]](parts[1])

    def shutdown(self) -> None:
        self.unwatch()
        if self.client is not None:
            self.client.shutdown()
            self.client = None


# RFC 2833 keys; RTPproxy's accounting module is not loaded, so nothing is written into the cwd.
RTPPROXY_MODULES = ("catch_dtmf",)


def rtpproxy_args(recordings: Path, rtp_ports: tuple[int, int] | None, control: str | None = None,
                  notify: str | None = None) -> list[str]:
    """RTPproxy's command line. -F: no privileges to drop; -d ERR: it logs every session
    otherwise; -m/-M: the media port range; -r/-P: recordings as pcap. A media node adds
    -s (its control socket) and -n (where key presses are sent)."""
    ports = ["-m", str(rtp_ports[0]), "-M", str(rtp_ports[1])] if rtp_ports else []
    node = (["-s", control] if control else []) + (["-n", notify] if notify else [])
    return ["-F", "-d", "ERR", *ports, *node, "-r", str(recordings), "-P"]


def embedded_spec(recordings: Path, rtp_ports: tuple[int, int] | None) -> str:
    """RTPproxy inside this process, as sippy's rtp.io spec ("rtp.io:ARG;...;modules=M")."""
    return "rtp.io:" + ";".join(rtpproxy_args(recordings, rtp_ports)) + ";modules=" + "+".join(RTPPROXY_MODULES)


class MediaPool:
    """The engines calls are anchored in: the embedded one (the default), or media nodes
    with weights. Each new call goes to a node that answers, drawn by weight; a node
    that stops answering takes no new calls, and its calls are ended by the switch
    (`on_node_lost`); it takes calls again once it answers."""

    def __init__(self, engines: list[MediaEngine], *, rng: Callable[[], float] | None = None):
        import random

        self.engines = engines
        self._random = rng or random.random
        self.listeners: dict[str, Callable[[str], None]] = {}   # key-press tag -> the call's listener
        for engine in engines:
            engine._dtmf_listeners = self.listeners
        self._cli = None

    @property
    def embedded(self) -> bool:
        return len(self.engines) == 1 and self.engines[0].control is None

    def choose(self) -> MediaEngine:
        """A node for a new call, drawn by weight among those that answer."""
        up = [engine for engine in self.engines if engine.up]
        if not up:
            raise RuntimeError("no media node answers")
        draw = self._random() * sum(engine.weight for engine in up)
        for engine in up:
            draw -= engine.weight
            if draw < 0:
                return engine
        return up[-1]

    def listen(self, notify: str) -> None:
        """Receive the nodes' key presses on `notify` ("tcp:HOST:PORT"), where they connect."""
        from sippy.CLIManager import CLIConnectionManager

        host, _, port = notify.removeprefix("tcp:").rpartition(":")
        self._cli = CLIConnectionManager(lambda cli, line: self.engines[0]._notified(cli, line),
                                         (host, int(port)), tcp=True)

    def status(self) -> dict:
        if self.embedded:
            return self.engines[0].status()
        nodes = [engine.status() for engine in self.engines]
        sessions = [n["active_sessions"] for n in nodes if n["active_sessions"] is not None]
        return {"answering": any(n["answering"] for n in nodes), "nodes": nodes,
                "active_sessions": sum(sessions) if sessions else None,
                "sessions_created": sum(n["sessions_created"] or 0 for n in nodes)}

    def shutdown(self) -> None:
        for engine in self.engines:
            engine.shutdown()
        if self._cli is not None:
            self._cli.shutdown()
            self._cli = None


class MediaSession:
    """One call's media in the proxy (sippy thread). Caller = the resident's leg."""

    def __init__(self, engine: MediaEngine, call_id: str):
        from sippy.Rtp_proxy.session import Rtp_proxy_session

        self.engine, self.call_id = engine, call_id
        self.rtpps = Rtp_proxy_session(engine.session_config, call_id=call_id.replace(".", "-"))
        self.playing_to: set[str] = set()   # "caller", "agent": who hears a sound of ours now
        self.recording = False
        self._dtmf_tag: str | None = None
        # SDP updates sent and not yet answered: sippy reads the session's proxy client when
        # the answer arrives, so a session closed meanwhile (a caller who hangs up while the
        # offer is in the proxy) is deleted only after the last answer
        self._updates_in_flight = 0
        self._closed = False

    @property
    def session(self) -> str:
        return f"{self.rtpps.call_id}-0"

    def caller_offer(self, body, done: Callable) -> None:
        """The caller's SDP -> what to offer agents (the proxy's agent-facing address)."""
        self._sdp_update(self.rtpps.on_caller_sdp_change, body, done)

    def agent_answer(self, body, done: Callable) -> None:
        """An agent's SDP -> what the caller is told (the proxy's caller-facing address)."""
        self._sdp_update(self.rtpps.on_callee_sdp_change, body, done)

    def _sdp_update(self, change: Callable, body, done: Callable) -> None:
        if self._closed:
            return   # the call is over: nobody waits for its media
        self._updates_in_flight += 1

        def answered(rewritten, *_, **__):
            self._updates_in_flight -= 1
            if not self._closed:
                done(rewritten)
            elif self._updates_in_flight == 0:
                self._delete()
        change(body.getCopy(), answered)

    def play_to_caller(self, sound: str, *, loop: bool = True, done: Callable | None = None) -> None:
        """Play a sound to the caller (looped until stopped, or once)."""
        self.play_to("caller", sound, loop=loop, done=done)

    def play_to(self, side: str, sound: str, *, loop: bool = True, done: Callable | None = None) -> None:
        """Play a sound to "caller" (the leg that called the switch) or "agent" (the other
        leg: a seat, or the far end of a seat's outbound call), in place of what the other
        leg sends, looped until stopped (or once)."""
        from_tag, to_tag = self._tags(side)
        path = self.engine.sounds / sound
        times = 1000 if loop else 1
        self.playing_to.add(side)
        self.rtpps.rtpp_seq.send_command(f"P{times} {self.session} {path} {PLAYABLE_CODECS} {from_tag} {to_tag}",
                                         lambda result, *_: done and done(result))

    def stop_playing(self, side: str = "caller") -> None:
        if side in self.playing_to:
            self.playing_to.discard(side)
            from_tag, to_tag = self._tags(side)
            self.rtpps.rtpp_seq.send_command(f"S {self.session} {from_tag} {to_tag}")

    @property
    def playing(self) -> bool:
        return "caller" in self.playing_to

    def _tags(self, side: str) -> tuple[str, str]:
        tags = (self.rtpps.from_tag, self.rtpps.to_tag)
        return tags if side == "caller" else (tags[1], tags[0])

    def listen_for_keys(self, on_key: Callable[[str], None], caller_ip: str, caller_port: int,
                        done: Callable[[bool], None], payload: int = DTMF_PAYLOAD) -> None:
        """RFC 2833 keys the caller presses -> on_key(digit)."""
        engine = self.engine
        tag = f"{self.rtpps.call_id}-dtmf"
        self._dtmf_tag = tag
        engine._dtmf_listeners[tag] = on_key

        def subscribe(index: int) -> None:
            command = (f"U {self.session} {caller_ip} {caller_port} {self.rtpps.from_tag} {engine.notify_spec} "
                       f"{tag} && M{index}:1 {tag} {payload}")

            def result(answer, *_):
                ok = answer is not None and not str(answer).startswith("E")
                if ok:
                    engine.dtmf_module = index
                    done(True)
                elif engine.dtmf_module is None and index < 9:
                    subscribe(index + 1)   # the module's index depends on what is loaded
                else:
                    log.warning("media: cannot listen for keys on %s (%s)", self.call_id, answer)
                    done(False)
            self.rtpps.rtpp_seq.send_command(command, result)
        subscribe(engine.dtmf_module or 1)

    def record(self, done: Callable[[bool], None] | None = None) -> None:
        """Record both directions (one pcap in the engine's recordings directory)."""
        f, t = self.rtpps.from_tag, self.rtpps.to_tag
        answers: list = []

        def result(answer, *_):
            answers.append(answer)
            if len(answers) == 2:
                self.recording = all(a is not None and not str(a).startswith("E") for a in answers)
                if done is not None:
                    done(self.recording)
        self.rtpps.rtpp_seq.send_command(f"Rs {self.session} {f} {t}", result)
        self.rtpps.rtpp_seq.send_command(f"Rs {self.session} {t} {f}", result)

    def recording_names(self) -> list[str]:
        """The pcap files RTPproxy writes this session's recording to (SESSION=TAG.pcap):
        named, not searched for, since the directory holds every recording in progress."""
        return [f"{self.session}={tag}.pcap" for tag in (self.rtpps.from_tag, self.rtpps.to_tag)]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._dtmf_tag is not None:
            self.engine._dtmf_listeners.pop(self._dtmf_tag, None)
        if self._updates_in_flight == 0:
            self._delete()

    def _delete(self) -> None:
        self.rtpps.delete()


def converter_pool() -> ProcessPoolExecutor:
    """The switch's recording converter: one worker process, spawned (a fork would copy the
    SIP and media threads' locks mid-use), that ends with the switch: a switch killed with
    -9 left its worker, and multiprocessing's resource tracker with it, running for good."""
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=die_with_parent, initargs=(os.getpid(),))


def die_with_parent(parent: int) -> None:
    """In a child: be killed when `parent` dies (Linux's PR_SET_PDEATHSIG); if it already
    has, go now."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)   # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass   # not Linux: the worker ends when it next reads from its dead parent
    if os.getppid() != parent:
        os._exit(0)


def convert_recording(pcaps: list[str], wav: str, caller_port: int | None = None) -> float:
    """In the switch's converter process: a finished call's pcaps (paths; those RTPproxy
    never wrote, a call whose audio never started, are skipped) into `wav`, then removed.
    Returns the seconds written (0: no audio, and no WAV). A pcap that cannot be read or
    converted raises, and stays for the next start. Every file touched here rather than on
    the event loop: each stat and unlink there let the SIP thread take the interpreter
    lock back for a switch interval."""
    present = [Path(pcap) for pcap in pcaps if os.path.exists(pcap)]
    seconds = pcap_to_wav(present, Path(wav), caller_port)
    for pcap in present:
        pcap.unlink(missing_ok=True)
    return seconds


def pcap_to_wav(pcaps: list[Path], wav: Path, caller_port: int | None = None) -> float:
    """A call's recording (RTP in pcap) as a stereo 8 kHz WAV, aligned on arrival time:
    one channel per sender. Returns the seconds written. `caller_port`: the UDP source
    port of the caller's audio, which goes to the left channel (else: first seen)."""
    streams: dict[tuple, list[tuple[float, bytes, int]]] = {}
    for pcap in pcaps:
        data = pcap.read_bytes()
        if len(data) < 24:
            continue
        magic = struct.unpack("<I", data[:4])[0]
        endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
        linktype = struct.unpack(endian + "I", data[20:24])[0]
        offset = 24
        while offset + 16 <= len(data):
            sec, frac, caplen, _ = struct.unpack(endian + "IIII", data[offset:offset + 16])
            packet = data[offset + 16:offset + 16 + caplen]
            offset += 16 + caplen
            t = sec + frac / (1e9 if nano else 1e6)
            ip = packet[{1: 14, 101: 0, 0: 4, 113: 16}.get(linktype, 0):]
            if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
                continue
            header = (ip[0] & 0x0F) * 4
            source = (ip[12:16], struct.unpack("!H", ip[header:header + 2])[0])
            rtp = ip[header + 8:]
            if len(rtp) < 12 or rtp[0] >> 6 != 2:
                continue
            payload_type = rtp[1] & 0x7F
            if payload_type not in _DECODE:
                continue  # telephone-event and comfort noise carry no audio to keep
            skip = 12 + 4 * (rtp[0] & 0x0F)
            streams.setdefault(source, []).append((t, rtp[skip:], payload_type))
    if not streams:
        return 0.0
    sources = sorted(streams, key=lambda s: (s[1] != caller_port, streams[s][0][0]))[:2]
    start = min(streams[s][0][0] for s in sources)
    channels = []
    for source in sources:
        pcm = bytearray()
        for t, payload, payload_type in streams[source]:
            at = 2 * int((t - start) * 8000)   # bytes: 16-bit samples
            if at > len(pcm):
                pcm.extend(bytes(at - len(pcm)))   # a gap in arrival is silence
            decoded = _DECODE[payload_type](payload)
            pcm[at:at + len(decoded)] = decoded
        channels.append(bytes(pcm))
    if len(channels) == 1:
        channels.append(b"")
    length = max(len(c) for c in channels)
    left, right = (c + bytes(length - len(c)) for c in channels)
    audioop = g711()
    stereo = audioop.add(audioop.tostereo(left, 2, 1, 0), audioop.tostereo(right, 2, 0, 1), 2)
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(stereo)
    return length / 2 / 8000
