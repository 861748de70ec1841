"""The switch's media engine (RTPproxy embedded with rtp.io) before anything builds on it:
relay, a prompt played to the caller, RFC 2833 keys, and recording of both directions.

Two UDP sockets stand in for the caller's and the agent's phones and send real RTP
through the proxy; nothing is mocked.
"""
import math
import os
import re
import socket
import struct
import threading
import time
import wave
from pathlib import Path

import pytest

from telephony.media import MediaEngine, MediaSession, convert_recording

SDP = ("v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n")


class SippyThread:
    """sippy's event loop on a thread of its own, as in the switch; run() waits for a result."""

    def __init__(self):
        os.environ.setdefault("SIPLOG_LVL", "ERR")
        self.config, self.ed = {}, None
        started = threading.Event()

        def loop():
            # sippy's dispatcher belongs to the thread that first imports it: import it here
            from sippy.Core.EventDispatcher import ED2
            from sippy.SipConf import SipConf
            from sippy.SipLogger import SipLogger

            self.ed = ED2
            SipConf.my_address, SipConf.my_port = "127.0.0.1", 5999
            self.config.update({"_sip_address": "127.0.0.1", "_sip_port": 5999,
                                "_sip_logger": SipLogger("media-test")})
            started.set()
            ED2.loop()
        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()
        assert started.wait(10)

    def run(self, fn, *args, timeout=5.0):
        """Call fn(*args, done) on the sippy thread; return what it passed to done()."""
        box, ready = [], threading.Event()

        def done(*result):
            box.append(result[0] if len(result) == 1 else result)
            ready.set()
        self.ed.callFromThread(fn, *args, done)
        assert ready.wait(timeout), f"{getattr(fn, '__name__', fn)} did not finish"
        return box[0]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    sippy = SippyThread()
    root = tmp_path_factory.mktemp("media")
    engine = MediaEngine(sippy.config, recordings=root / "recordings", sounds=root / "sounds")
    assert sippy.run(engine.start, timeout=10) is True
    yield sippy, engine


def phone():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.3)
    return s


def rtp(seq, payload, payload_type=0, marker=0, ts=None, ssrc=0x1111):
    return struct.pack("!BBHII", 0x80, (marker << 7) | payload_type, seq & 0xFFFF,
                       (seq * 160 if ts is None else ts) & 0xFFFFFFFF, ssrc) + payload


def drain(sock):
    packets = []
    try:
        while True:
            packets.append(sock.recv(2000))
    except socket.timeout:
        return packets


def tone(frequency, count=160, phase=0):
    from telephony.media import g711
    audioop = g711()
    pcm = struct.pack(f"<{count}h", *(int(8000 * math.sin(2 * math.pi * frequency * (phase + i) / 8000))
                                      for i in range(count)))
    return audioop.lin2ulaw(pcm, 2)


def test_relay_prompt_keys_and_recording_through_the_embedded_proxy(media, tmp_path):
    from sippy.MsgBody import MsgBody

    sippy, engine = media
    caller, agent = phone(), phone()
    session = sippy.run(lambda done: done(MediaSession(engine, "1795400000.7")))
    offer = sippy.run(session.caller_offer, MsgBody(SDP.format(port=caller.getsockname()[1])))
    answer = sippy.run(session.agent_answer, MsgBody(SDP.format(port=agent.getsockname()[1])))
    to_agent_side = int(re.search(r"m=audio (\d+)", str(offer.content)).group(1))    # where the agent sends
    to_caller_side = int(re.search(r"m=audio (\d+)", str(answer.content)).group(1))  # where the caller sends
    assert {to_agent_side, to_caller_side}.isdisjoint({caller.getsockname()[1], agent.getsockname()[1]})

    # 1. relay both ways, recorded
    assert sippy.run(session.record) is True
    for i in range(50):
        caller.sendto(rtp(i, tone(440, phase=160 * i)), ("127.0.0.1", to_caller_side))
        agent.sendto(rtp(i, tone(1000, phase=160 * i), ssrc=0x2222), ("127.0.0.1", to_agent_side))
        time.sleep(0.02)
    assert len(drain(caller)) >= 45 and len(drain(agent)) >= 45

    # 2. a prompt to the caller: its packets carry the sound file's bytes
    sippy.run(lambda done: session.play_to_caller("queue-music", loop=False, done=done))
    heard = b"".join(p[12:] for p in drain(caller) if p[1] & 0x7F == 0)
    music = (engine.sounds / "queue-music.0").read_bytes()
    assert len(heard) >= 1600 and heard[:800] in music
    sippy.run(lambda done: done(session.stop_playing()))

    # 3. the caller presses 7 (RFC 2833): the switch hears "7"
    keys = []
    assert sippy.run(session.listen_for_keys, keys.append, "127.0.0.1", caller.getsockname()[1]) is True
    ts = 200 * 160
    for i in range(8):
        end = 0x80 if i >= 5 else 0
        caller.sendto(rtp(200 + i, struct.pack("!BBH", 7, end | 10, (i + 1) * 160), 101, marker=int(i == 0), ts=ts),
                      ("127.0.0.1", to_caller_side))
        time.sleep(0.02)
    deadline = time.monotonic() + 3
    while not keys and time.monotonic() < deadline:
        time.sleep(0.05)
    assert keys == ["7"]

    # 4. the recording: both directions in one pcap -> a stereo WAV, caller left, agent right
    sippy.run(lambda done: done(session.close()))
    time.sleep(0.5)
    # what the switch's converter process is given: the names RTPproxy writes to (one
    # that was never written is skipped), removed once converted
    pcaps = [str(engine.recordings / name) for name in session.recording_names()]
    assert any(Path(pcap).exists() for pcap in pcaps)
    seconds = convert_recording(pcaps + [str(engine.recordings / "never-written.pcap")], str(tmp_path / "call.wav"),
                                caller_port=caller.getsockname()[1])
    assert 0.9 <= seconds <= 3.0
    assert not any(Path(pcap).exists() for pcap in pcaps)
    with wave.open(str(tmp_path / "call.wav")) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (2, 8000, 2)
        frames = wav.readframes(wav.getnframes())
    left = struct.unpack(f"<{len(frames) // 2}h", frames)[0::2]
    right = struct.unpack(f"<{len(frames) // 2}h", frames)[1::2]

    def crossings(samples):  # sign changes per second of sound ~ 2 x its frequency
        loud = [i for i, s in enumerate(samples) if abs(s) > 1000]
        sound = samples[loud[0]:loud[-1] + 1]
        return sum(1 for a, b in zip(sound, sound[1:]) if (a < 0) != (b < 0)) / (len(sound) / 8000)
    assert 700 < crossings(left) < 1100        # the caller's 440 Hz
    assert 1700 < crossings(right) < 2300      # the agent's 1000 Hz


def test_a_session_closed_while_its_offer_is_in_the_proxy_is_deleted_when_the_answer_comes(media, capfd):
    # the restarted demo switch printed sippy's AttributeError ('NoneType' ... 'proxy_address')
    # for a caller who hung up while the offer was still being answered
    from sippy.MsgBody import MsgBody

    sippy, engine = media
    caller = phone()
    offered = []

    def offer_then_hang_up(done):
        session = MediaSession(engine, "1795400001.9")
        session.caller_offer(MsgBody(SDP.format(port=caller.getsockname()[1])), offered.append)
        session.close()          # before the proxy answered
        # sippy reads the session's proxy client when the answer arrives (for an answer
        # without an address: the crash), so closing must not have cleared it yet
        done((session, session.rtpps.rtp_proxy_client is not None))
    session, kept_until_answered = sippy.run(offer_then_hang_up)
    assert kept_until_answered
    # one more offer on the same control connection: answered in order, so by its answer
    # the first one's has been handled
    later = sippy.run(lambda done: done(MediaSession(engine, "1795400001.10")))
    assert sippy.run(later.caller_offer, MsgBody(SDP.format(port=caller.getsockname()[1]))) is not None
    sippy.run(lambda done: done(later.close()))
    assert session.rtpps.rtp_proxy_client is None     # deleted, once the answer was in
    assert offered == []                              # nobody is told about a call that is gone
    err = capfd.readouterr().err
    assert "Traceback" not in err and "proxy_address" not in err


def test_a_proxy_that_stops_answering_is_noticed_within_the_stall_time(media):
    # found using the demo: the switch went on answering REGISTERs while no call could
    # ring an agent any more (every ring waited for the proxy's offer), and said nothing
    sippy, engine = media
    stalls: list[float] = []
    sippy.run(lambda done: done(engine.watch(0.5, stalls.append, every_s=0.1)))
    try:
        time.sleep(1.0)
        status = engine.status()
        assert stalls == [] and status["answering"] and status["last_answer_s"] < 0.5
        assert status["active_sessions"] is not None
        real = engine.client.send_command
        engine.client.send_command = lambda *args, **kwargs: None   # takes commands, never answers
        try:
            deadline = time.monotonic() + 5
            while not stalls and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
        finally:
            engine.client.send_command = real
        assert len(stalls) == 1 and stalls[0] >= 0.5         # said once, after the stall time
        assert engine.status()["answering"] is False
    finally:
        sippy.run(lambda done: done(engine.unwatch()))
        engine.stalled = False


def test_a_switch_too_busy_to_hear_the_proxy_in_time_does_not_take_it_for_dead(media):
    # a burst of 150 calls/s kept the SIP thread seconds behind: the proxy's answer was
    # handled as late as everything else, the node was taken for dead and its calls ended
    from sippy.Time.Timeout import Timeout

    sippy, engine = media
    stalls: list[float] = []
    real = engine.client.send_command

    def behind(command, callback=None, *args, **kwargs):
        def late(*answer, **more):
            time.sleep(1.5)    # the thread busy with everything else for 3x the stall time,
            Timeout(lambda: callback(*answer, **more), 0.25)   # the answer handled after the next tick
        return real(command, late if command == "V" else callback, *args, **kwargs)
    sippy.run(lambda done: done(engine.watch(0.5, stalls.append, every_s=0.1)))
    try:
        time.sleep(0.3)
        engine.client.send_command = behind
        time.sleep(6.0)
        engine.client.send_command = real
        time.sleep(0.5)
        assert stalls == [] and engine.status()["answering"]
    finally:
        engine.client.send_command = real
        sippy.run(lambda done: done(engine.unwatch()))
        engine.stalled = False


def test_the_recording_converter_ends_when_its_switch_is_killed(tmp_path):
    """A switch killed with -9 left its converter process (and multiprocessing's resource
    tracker) running for good; each restart added two."""
    import signal
    import subprocess
    import sys

    script = ("import os, sys\n"
              "from telephony.media import converter_pool\n"
              "pool = converter_pool()\n"
              "print(pool.submit(os.getpid).result(60), flush=True)\n"
              "sys.stdin.read()\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=Path(__file__).resolve().parent.parent)
    try:
        worker = int(parent.stdout.readline())
        os.kill(worker, 0)   # there
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(worker, signal.SIGKILL)
            pytest.fail("the converter outlived its switch")
    finally:
        if parent.poll() is None:
            parent.kill()


def test_a_ring_waits_for_the_seats_phone_to_let_go_of_a_cancelled_one(media):
    """A ring cancelled at a seat (it rang out) and a new call offered to the same seat at
    once: the phone, still finishing the old INVITE, answered the new one 486 (busy), and
    that counted as the agent refusing it (test_bots' agent who stops answering was then
    never put on a break). The new ring now waits until the old leg is over (at most
    LEAVING_WAIT_S)."""
    import functools
    import types

    from telephony.sip import SipSide

    sippy, _engine = media
    rung: list[float] = []
    side = types.SimpleNamespace(_leaving={}, calls={"c2": object()},
                                 _on_call=lambda call_id, act: rung.append(time.monotonic()))
    side._ring_when_free = functools.partial(SipSide._ring_when_free, side)
    side._still_leaving = functools.partial(SipSide._still_leaving, side)

    class Leg:   # a sippy UA whose CANCEL is answered after 0.3 s
        def __init__(self):
            self.until = time.monotonic() + 0.3

        def isDead(self):
            return time.monotonic() >= self.until

    started = time.monotonic()
    sippy.run(lambda done: done(SipSide.leaving(side, "1002", Leg())))
    sippy.run(lambda done: done(side._ring_when_free("c2", "1002", None)))
    deadline = time.monotonic() + 3
    while not rung and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rung and rung[0] - started >= 0.3          # not before the old leg was over
    assert "1002" not in side._leaving
    # a seat with nothing being cancelled rings at once
    sippy.run(lambda done: done(side._ring_when_free("c3", "1003", None)))
    assert len(rung) == 2
