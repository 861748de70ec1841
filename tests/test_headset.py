"""The seat's headset through a real sound server: PulseAudio with two null sinks as a
virtual sound card (the "ear" the seat plays into, and a "mouth" whose monitor is its
microphone), PortAudio reaching it through ALSA's pulse plugin, as on an agent's desk.

A SIPp resident says 440 Hz into a call through the switch; the seat answers with
`audio="pulse"`; the mouth plays 1000 Hz. The ear must hear 440 Hz and the switch's
recording must hold 1000 Hz on the agent's side. Needs pulseaudio and libportaudio2:
skipped without them, failed in CI (HOTLINE_REQUIRE_AUDIO=1).
"""
import math
import os
import queue
import shutil
import struct
import subprocess
import time
import wave

import pytest

from test_sip_calls import CALLER, _line, _speaking_caller, finished
from test_sip_register import SIPP, free_udp_port, start_switch
from test_softphone import next_event

from telephony.softphone import CallState, IncomingCall, Registration, Softphone


def _audio_missing() -> str:
    if not shutil.which("pulseaudio") or not shutil.which("parec"):
        return "pulseaudio is not installed (apt-get install pulseaudio pulseaudio-utils)"
    import ctypes.util

    # not `import sounddevice` here: PortAudio lists the devices once, when it is loaded,
    # and the sound server this test starts must be running by then
    if ctypes.util.find_library("portaudio") is None:
        return "PortAudio is not installed (apt-get install libportaudio2)"
    return ""


@pytest.fixture
def sound_server(tmp_path, monkeypatch):
    missing = _audio_missing()
    if missing:
        if os.environ.get("HOTLINE_REQUIRE_AUDIO") == "1":
            raise RuntimeError(f"HOTLINE_REQUIRE_AUDIO=1 but {missing}")
        pytest.skip(missing)
    home = tmp_path / "pulse"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(home), "PULSE_SERVER": f"unix:{home}/native"}
    server = subprocess.Popen(
        ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit", "--log-target=stderr",
         f"--load=module-native-protocol-unix socket={home}/native auth-anonymous=1",
         "--load=module-null-sink sink_name=ear rate=16000 channels=1",
         "--load=module-null-sink sink_name=mouth rate=16000 channels=1"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "pulse.log", "w"))
    deadline = time.monotonic() + 10
    while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode != 0:
        assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "pulse.log").read_text()
        time.sleep(0.1)
    subprocess.run(["pactl", "set-default-sink", "ear"], env=env, check=True)
    subprocess.run(["pactl", "set-default-source", "mouth.monitor"], env=env, check=True)
    for name in ("HOME", "XDG_RUNTIME_DIR", "PULSE_SERVER"):
        monkeypatch.setenv(name, env[name])
    yield env
    server.kill()
    server.wait(5)


def _crossings_per_s(samples, rate):
    loud = [i for i, v in enumerate(samples) if abs(v) > 1000]
    if len(loud) < rate // 10:
        return 0.0
    sound = samples[loud[0]:loud[-1] + 1]
    return sum(1 for a, b in zip(sound, sound[1:]) if (a < 0) != (b < 0)) / (len(sound) / rate)


def test_the_headset_hears_the_caller_and_the_caller_hears_the_headset(tmp_path, sound_server):
    env = sound_server
    tone = struct.pack("<16000h", *(int(8000 * math.sin(2 * math.pi * 1000 * i / 16000)) for i in range(16000)))
    mouth = subprocess.Popen(["pacat", "--playback", "-d", "mouth", "--rate=16000", "--channels=1",
                              "--format=s16le"], env=env, stdin=subprocess.PIPE)
    mouth.stdin.write(tone * 12)     # the agent talks (1000 Hz) for the whole test
    mouth.stdin.flush()
    heard = open(tmp_path / "ear.raw", "wb")
    ear = subprocess.Popen(["parec", "-d", "ear.monitor", "--rate=16000", "--channels=1", "--format=s16le"],
                           env=env, stdout=heard)
    port, process, control = start_switch(tmp_path)
    line = _line(port, process, control)
    events: queue.Queue = queue.Queue()
    phone = Softphone("1001", "1111", f"127.0.0.1:{port}", events.put, audio="pulse")
    try:
        phone.start()
        assert "headset on 'pulse' through PortAudio" in phone.audio_description
        assert next_event(events, Registration).ok
        line.agent_ready("1001", "1111")
        scenario = _speaking_caller(tmp_path, seconds=3.0)
        rows = []
        for muted in (False, True):
            caller = subprocess.Popen(
                [SIPP, f"127.0.0.1:{port}", "-sf", str(scenario), "-s", "general", "-key", "caller", CALLER,
                 "-m", "1", "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mp", str(free_udp_port()),
                 "-d", "3500", "-timeout", "40s", "-nostdin"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True)
            incoming = next_event(events, IncomingCall)
            if muted:
                phone.mute(incoming.call, True)   # before the media is up: applied when it is
            phone.answer(incoming.call)
            while next_event(events, CallState).state != "ended":
                pass
            code, output = finished(caller)
            assert code == 0, output[-3000:]
            rows.append(line.wait_until(lambda: [r for r in line.interactions() if r["recording_path"]
                                                 and r["uid"] not in [x["uid"] for x in rows]], timeout=10)[0])
            line.request(line.seats[0][1], op="end_wrap_up")   # ready for the next call now
    finally:
        headset = phone.headset
        print(f"headset: dropped {headset.ear.dropped} B to the ear, {headset.mouth.dropped} B from the mouth; "
              f"{headset.ear.short} short reads")
        phone.stop()
        for p in (ear, mouth, process):
            p.kill()
            p.wait(5)
        heard.close()
    raw = (tmp_path / "ear.raw").read_bytes()
    ear_samples = struct.unpack(f"<{len(raw) // 2}h", raw[:len(raw) // 2 * 2])
    assert 750 < _crossings_per_s(ear_samples, 16000) < 1000          # the caller's 440 Hz, in the headset
    talking, muted = (_sides(row["recording_path"]) for row in rows)
    assert 1800 < _crossings_per_s(talking[1], 8000) < 2200     # the agent's 1000 Hz, heard by the caller
    assert 750 < _crossings_per_s(muted[0], 8000) < 1000        # muted: the caller is still heard ...
    assert max(abs(v) for v in muted[1]) < 200                  # ... and the agent is not


def _sides(path):
    with wave.open(path) as wav:
        frames = wav.readframes(wav.getnframes())
    samples = struct.unpack(f"<{len(frames) // 2}h", frames)
    return samples[0::2], samples[1::2]


def test_the_fifo_drops_back_to_a_short_delay_after_a_stall():
    from telephony.headset import Fifo

    fifo = Fifo(limit=8, keep=3)
    fifo.put(b"abcdef")
    assert fifo.take(4) == b"abcd"
    fifo.put(b"ghijklm")                    # 9 waiting > 8: only the newest 3 stay
    assert fifo.dropped == 6 and fifo.take(3) == b"klm"
    assert fifo.take(2) == b"\x00\x00" and fifo.short == 1   # nothing there: silence, counted
