"""The live run's audio checks (scenarios/audio_check.py) on real UDP sockets: a caller's
RTP endpoint answers where the switch's audio comes from, presses its key as RFC 2833,
and tells the switch's sounds and the two voices apart; the recording check reads tones."""
import socket
import struct
import time
import wave

from scenarios.audio_check import (AGENT_HZ, CALLER_HZ, AudioCaller, RtpVoice, _tone_packet, recording_tones,
                                   sdp_audio_address, sounds_heard, verdict)
from scenarios.live_run import menu_keys, switch_config_for
from scenarios.schema import load_scenario
from scenarios.sipp_load import NO_KEY, SippLoad
from telephony.media import ensure_sounds


def _rtp(payload: bytes, seq: int, pt: int = 0) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, seq * 160, 7) + payload


def test_a_caller_answers_where_the_audio_comes_from_presses_its_key_then_speaks(tmp_path):
    sounds = sounds_heard(ensure_sounds(tmp_path))
    switch = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    switch.bind(("127.0.0.1", 0))
    switch.settimeout(2)
    voice = RtpVoice(CALLER_HZ, key="3")
    try:
        menu = (tmp_path / "menu.0").read_bytes()
        for n in range(5):                      # the menu's cue reaches the caller
            switch.sendto(_rtp(menu[n * 160:(n + 1) * 160], n), ("127.0.0.1", voice.port))
        got = []
        while len(got) < 12:
            data, source = switch.recvfrom(2048)
            got.append(data)
            assert source[1] == voice.port      # symmetric: from the port it listens on
        events = [d for d in got if d[1] & 0x7F == 101]
        assert events and events[0][1] & 0x80   # marker on the key's first packet
        assert {d[12] for d in events} == {3}   # the key: 3
        assert any(d[13] & 0x80 for d in events)   # and its end
        speech = [d[12:] for d in got if d[1] & 0x7F == 0]
        assert speech and all(p == _tone_packet(CALLER_HZ) for p in speech)
        agent = _tone_packet(AGENT_HZ)
        for n in range(5, 8):
            switch.sendto(_rtp(agent, n), ("127.0.0.1", voice.port))
        time.sleep(0.2)
    finally:
        voice.stop()
        switch.close()
    assert voice.heard_runs(sounds) == ["menu", "agent"]


def test_a_bots_voice_waits_for_its_answer():
    ear = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ear.bind(("127.0.0.1", 0))
    ear.settimeout(0.3)
    voice = RtpVoice(AGENT_HZ, target=ear.getsockname())
    try:
        try:
            ear.recvfrom(2048)
            raise AssertionError("a bot spoke before it answered")
        except socket.timeout:
            pass
        voice.speak()
        data, _ = ear.recvfrom(2048)
        assert data[12:] == _tone_packet(AGENT_HZ)
    finally:
        voice.stop()
        ear.close()


def _wav(path, left_hz, right_hz, seconds=1.0):
    import math
    frames = b"".join(struct.pack("<hh", int(8000 * math.sin(2 * math.pi * left_hz * i / 8000)) if left_hz else 0,
                                  int(8000 * math.sin(2 * math.pi * right_hz * i / 8000)) if right_hz else 0)
                      for i in range(int(8000 * seconds)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames)


def test_the_verdict_names_what_is_wrong(tmp_path):
    sounds = sounds_heard(ensure_sounds(tmp_path))
    good, silent = tmp_path / "good.wav", tmp_path / "one-sided.wav"
    _wav(good, CALLER_HZ, AGENT_HZ)
    _wav(silent, CALLER_HZ, 0)
    assert [round(x) for x in recording_tones(good)] == [250, 800]
    voice = RtpVoice(CALLER_HZ, key="1")
    voice.stop()
    menu = (tmp_path / "menu.0").read_bytes()
    voice.heard = [menu[:160], menu[160:320], _tone_packet(AGENT_HZ)]
    caller = AudioCaller(0, "+85291234567", "repair", "1", voice)
    row = {"outcome": "answered", "queue": "repair", "dialled_number": "2000", "recording_path": str(good),
           "talk_s": 5.0}
    assert verdict(caller, row, sounds, recording=True)["ok"]
    wrong = verdict(caller, dict(row, queue="billing", recording_path=str(silent)), sounds, recording=True)
    assert not wrong["ok"]
    assert any("reached billing" in p for p in wrong["problems"])
    assert any("agent side holds 0 Hz" in p for p in wrong["problems"])
    voice.heard = [menu[:160]]
    unheard = verdict(caller, row, sounds, recording=False)
    assert unheard["problems"] == ["answered, but the agent's voice never reached the caller"]
    assert verdict(caller, None, sounds, recording=True)["problems"] == ["no interactions row"]
    # a caller who hung up as the agent answered (a QA trial's 0.1 s call): not a fault
    brief = verdict(caller, dict(row, talk_s=0.1, recording_path=str(silent)), sounds, recording=True)
    assert brief["ok"] and brief["too_short"]


def test_the_switch_sdp_address_is_read():
    sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\nc=IN IP4 127.0.0.1\r\nm=audio 40000 RTP/AVP 0\r\n"
    assert sdp_audio_address(sdp) == ("127.0.0.1", 40000)
    assert sdp_audio_address("v=0\r\n") is None


def test_menu_keys_follow_the_shipped_menu_and_callers_press_them(tmp_path):
    scenario = load_scenario("scenarios/library/weekday.yaml")
    keys = menu_keys(scenario)
    assert keys["repair"] == "1" and keys["emergency"] == "9"
    config = switch_config_for(scenario, 20)
    assert config["numbers"] == {"2000": "menu"}
    assert config["menu"]["options"]["1"] == "repair" and config["menu"]["timeout_s"] >= 1
    from scenarios.plan import caller_plan
    plan = [(p, f"+8529000{n:04d}") for n, p in enumerate(caller_plan(scenario, seed=1, calls=20))]
    load = SippLoad.write(tmp_path, ("127.0.0.1", 5060), plan, 20, menu=("2000", keys), audio_ports={0: 40002})
    calls = sorted((c for b in load.buckets.values() for c in b.calls), key=lambda c: c.at_ms)
    assert all(c.dialled == "2000" for c in calls)
    first = next(c for c in calls if c.number == plan[0][1])
    assert first.key == NO_KEY and first.media_port == 40002     # its own RTP endpoint presses the key
    others = [c for c in calls if c is not first]
    assert all(str(c.key) == keys[c.queue] and c.media_port == 9 for c in others)
    xml = next(tmp_path.glob("callers-*.xml")).read_text()
    assert "dtmf_2833_" in xml or 'recv response="182" rrs="true"' in xml
    direct = SippLoad.write(tmp_path / "direct", ("127.0.0.1", 5060), plan, 20)
    assert all(c.dialled == c.queue for b in direct.buckets.values() for c in b.calls)
    assert "dtmf" not in "".join(p.read_text() for p in (tmp_path / "direct").glob("*.xml"))
