"""A working day in two minutes: every timer that matters over a day crossed several times.

The switch runs with its day's timers shortened (registration expiry 20 s, nonces 7 s,
qualify every 1 s, wrap-up 3 s, ring timeout 4 s, a lunch break's limit 6 s), and serves
for two minutes: three bot agents (sippy, the demo's bots: they refresh their
registration with the last nonce they had), the real seat (Textual and pjsua2 in a
process of its own, answering, holding, saving its form and taking a lunch break), a
stock softphone (baresip, auto-answering), and simulated residents calling. Then:
every phone stayed registered the whole time, every call is exactly one complete row
(agent, wait, talk, hold, wrap-up, outcome), the queue_log closes every call, and each
timer was in fact crossed (stale nonces challenged, refreshes, ring-outs, wrap-ups,
holds, a break past its limit).
"""
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from records.agents import add_agent
from records.db import connect
from test_sip_calls import _line
from test_sip_register import free_udp_port, start_switch

DAY_S = 120
BOTS = ("1101", "1102", "1103")
BARESIP_EXT, SEAT_EXT = "1104", "1001"
EVERY_SKILL = {"repair": 3, "complaint": 3, "billing": 3, "enquiry": 3, "emergency": 3, "general": 3}
CONFIG = """
sip: {registration_max_s: 20, registration_grace_s: 5, nonce_s: 7, qualify_s: 1, qualify_misses: 3}
breaks: {lunch: 0.1, training: 60}
queues:
""" + "".join(f"  {q}: {{wrap_up_s: 3, ring_timeout_s: 4, max_no_answer: 50}}\n" for q in EVERY_SKILL)

BOTS_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from scenarios.live import Behaviour, BotAgent, LivePhones
    from scenarios.schema import scenario_from_text
    SCENARIO = '''
    name: working-day bots
    seed: 5
    horizon: 24h
    arrivals: {rate_per_hour: 900}
    mix: {types: {repair: 0.4, enquiry: 0.2, billing: 0.15, complaint: 0.15, emergency: 0.05, general: 0.05},
          known_share: 0.8}
    patience: {dist: exponential, mean_s: 60}
    handle_time: {dist: lognormal, mean_s: 6, sd_s: 3}
    wrap_up: {dist: lognormal, mean_s: 3, sd_s: 1.5}
    agents: {count: 3}
    routing: {ring_time_s: 2, no_answer_share: 0.3}   # ring-outs: the switch rings for 4 s
    '''
    async def main(port, control, seconds, exts):
        behaviour = Behaviour(scenario_from_text(SCENARIO))
        phones = LivePhones(("127.0.0.1", port), loop=asyncio.get_running_loop(), behaviour=behaviour, seed=5)
        phones.start()
        bots = []
        for ext in exts:
            bot = BotAgent(ext, "4242", phones)
            await bot.start(control)
            bots.append(bot)
        phones.start_calling(["+85291234567", "+85290000001", "+85290000002"])
        await asyncio.sleep(seconds)
        phones.stop_calling()
        for _ in range(600):             # the calls in progress end as they would
            if phones.tally.in_progress == 0:
                break
            await asyncio.sleep(0.1)
        for bot in bots:
            await bot.stop()
        phones.stop()
        t = phones.tally
        print(f"placed {t.placed} finished {t.finished} gave_up {t.gave_up} refused {t.refused} "
              f"cut_off {t.cut_off}", flush=True)
        assert t.cut_off == 0 and t.refused == 0, t
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4].split(",")))
""")

SEAT_SCRIPT = textwrap.dedent("""
    import asyncio, sys, time
    from console.seat import PhoneEvent, SeatApp
    from console.seatlogic import SeatState
    from records.db import connect
    from telephony.control_client import ControlClient
    from telephony.softphone import Softphone

    async def main(port, control, db_path, seconds):
        client = await ControlClient.connect(control)
        me = await client.ask("login", ext="1001", pin="1111")
        await client.ask("subscribe")
        seat = SeatState("1001", "Ann")
        seat.break_limits = me["breaks"]
        app = SeatApp(seat=seat, phone=None, db=connect(db_path, migrate=False), control=client, agent_id=1,
                      queues=tuple(me["queues"]))
        phone = Softphone("1001", "1111", f"127.0.0.1:{port}", lambda e: app.post_message(PhoneEvent(e)),
                          registration_s=300)
        app.phone = phone
        answered = held = 0
        try:
            async with app.run_test(size=(100, 30)) as pilot:
                phone.start()
                await pilot.press("v")
                start = time.monotonic()
                on_break = False
                while time.monotonic() - start < seconds:
                    await pilot.pause(0.1)
                    elapsed = time.monotonic() - start
                    if seat.state == "ringing":
                        await pilot.press("a")
                        answered += 1
                    elif seat.state == "in_call" and time.time() - seat.connected_at > 1 and not held:
                        await pilot.press("o")                      # hold ...
                        held = 1
                    elif seat.state == "on_hold" and time.time() - seat.since > 1.5:   # the seat's clock is wall time
                        await pilot.press("o")                      # ... and back
                        held = 2
                        app.query_one("#outcome").value = "information given"
                        app.query_one("#reason").value = "general"
                        await pilot.pause(0.1)
                        await pilot.press("ctrl+s")
                    elif seat.state in ("idle", "wrap_up") and held:
                        held = 0                                    # (a caller may hang up while held)
                    if 50 < elapsed < 70 and seat.state in ("idle", "wrap_up") and not on_break:
                        await pilot.press("b", "enter")             # lunch (its limit is 6 s) after wrap-up
                        on_break = seat.status == "on_break"
                    elif elapsed > 70 and seat.status == "on_break":
                        await pilot.press("v")
                print(f"answered {answered} registered {seat.registered}", flush=True)
                await pilot.press("q")
                await pilot.pause(0.2)
                if app.is_running:
                    await pilot.press("y")                          # "a call is up: hang up and quit?"
                while app.is_running:
                    await pilot.pause(0.05)
        finally:
            phone.stop()
            await client.close()
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])))
""")


def baresip(tmp_path: Path, port: int) -> subprocess.Popen:
    """A stock softphone: baresip with a sine tone as its microphone, answering by itself."""
    home = tmp_path / "baresip"
    home.mkdir()
    (home / "config").write_text(textwrap.dedent(f"""
        sip_listen 127.0.0.1:{free_udp_port()}
        audio_source ausine,1000
        ausrc_srate 48000
        ausrc_channels 2
        auplay_srate 48000
        audio_player aubridge,speaker
        module_path /usr/lib/baresip/modules
        module g711.so
        module ausine.so
        module aubridge.so
        module account.so
        """))
    (home / "accounts").write_text(f"<sip:{BARESIP_EXT}@127.0.0.1:{port}>;auth_pass=4242;answermode=auto;"
                                   "regint=3600\n")
    return subprocess.Popen(["baresip", "-f", str(home)], stdout=open(tmp_path / "baresip.log", "w"),
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def test_a_working_day_crosses_every_timer_and_every_call_is_one_complete_row(tmp_path):
    if shutil.which("baresip") is None:
        if os.environ.get("HOTLINE_REQUIRE_SIPP") == "1":
            raise AssertionError("baresip is needed for this test (apt-get install baresip)")
        pytest.skip("baresip is not installed")
    (tmp_path / "day.yaml").write_text(CONFIG)
    port, process, control = start_switch(tmp_path, "--config", str(tmp_path / "day.yaml"))
    line = _line(port, process, control)
    db = connect(tmp_path / "switch.db")
    for ext in (*BOTS, BARESIP_EXT):
        add_agent(db, ext=ext, name=f"Phone {ext}", pin="4242", skills=EVERY_SKILL)
    db.execute("DELETE FROM agent_skills WHERE agent_id = 1")
    db["agent_skills"].insert_all([{"agent_id": 1, "skill": s, "proficiency": 3} for s in EVERY_SKILL])
    db.conn.commit()
    db.close()
    soft = baresip(tmp_path, port)
    line.agent_ready(BARESIP_EXT, "4242")
    seat = subprocess.Popen([sys.executable, "-c", SEAT_SCRIPT, str(port), str(control), str(tmp_path / "switch.db"),
                             str(DAY_S)], stdout=open(tmp_path / "seat.out", "w"), stderr=subprocess.STDOUT)
    bots = subprocess.Popen([sys.executable, "-c", BOTS_SCRIPT, str(port), str(control), str(DAY_S), ",".join(BOTS)],
                            stdout=open(tmp_path / "bots.out", "w"), stderr=subprocess.STDOUT)
    phones = (*BOTS, BARESIP_EXT, SEAT_EXT)
    first_seen: dict[str, float] = {}
    gaps: list[tuple[str, float]] = []
    try:
        started = time.monotonic()
        while time.monotonic() - started < DAY_S - 5:     # the seat leaves at DAY_S
            agents = {a["ext"]: a for a in line.snapshot()["agents"]}
            now = time.monotonic() - started
            for ext in phones:
                if agents.get(ext, {}).get("registered"):
                    first_seen.setdefault(ext, now)
                elif ext in first_seen:
                    gaps.append((ext, now))
            time.sleep(1.0)
        snapshot = line.snapshot()
        assert seat.wait(60) == 0, (tmp_path / "seat.out").read_text()[-3000:]
        assert bots.wait(60) == 0, (tmp_path / "bots.out").read_text()[-3000:]
    finally:
        for proc in (seat, bots, soft):
            if proc.poll() is None:
                proc.kill()
    assert set(first_seen) == set(phones), f"never registered: {set(phones) - set(first_seen)}"
    assert gaps == [], f"phones that fell off: {gaps}"
    process.send_signal(2)      # the switch stopped, every row is final
    process.wait(15)
    rows = line.interactions()
    events = _queue_log(line)
    # every timer of the day was crossed, more than once
    log = (tmp_path / "switch.log").read_text()
    refreshes = {a["ext"]: a["refreshes"] for a in snapshot["agents"]}
    for ext in phones:
        assert refreshes[ext] >= 3, f"{ext} refreshed fewer than 3 times"
        assert log.count(f"SIP: {ext} registered at") <= 2   # a refresh is counted, not logged
    assert snapshot["digest"]["stale"] >= 5        # refreshes with an old nonce were challenged, not refused
    assert snapshot["digest"]["wrong"] == 0 and snapshot["locked_out"] == []
    assert sum(1 for e in events if e[4] == "RINGNOANSWER") >= 2
    assert any(e[4] == "INFO" and e[5] == "BREAKLIMIT" and e[3] == "Agent/1001" for e in events)
    assert not any(e[4] == "INFO" and e[5] == "REQUEUE" for e in events)   # qualify never lost a live phone
    # every call is exactly one complete row, and the queue_log tells how each ended
    entered = {e[1] for e in events if e[4] == "ENTERQUEUE"}
    inbound = [r for r in rows if r["direction"] == "inbound"]
    assert len(inbound) == len({r["uid"] for r in inbound}) == len(entered) >= 20
    answered = [r for r in inbound if r["outcome"] == "answered"]
    assert len(answered) >= 15
    for row in inbound:
        assert row["ended_at"] is not None and row["outcome"] in ("answered", "abandoned", "timeout", "voicemail"), row
        assert row["wait_s"] is not None and row["wait_s"] >= 0, row
    for row in answered:
        assert row["agent_ext"] and row["agent_id"] is not None, row
        assert row["talk_s"] is not None and row["hold_s"] is not None and row["wrapup_s"] is not None, row
        assert 0 < row["wrapup_s"] <= 3.5, row
    assert {r["agent_ext"] for r in answered} == set(phones)              # everyone took calls
    assert any(r["agent_ext"] == SEAT_EXT and r["hold_s"] >= 1 for r in answered)   # the seat held one
    closing = {"COMPLETECALLER", "COMPLETEAGENT", "ABANDON", "EXITWITHTIMEOUT", "EXITEMPTY", "BLINDTRANSFER"}
    unclosed = entered - {e[1] for e in events if e[4] in closing}
    assert unclosed == set(), f"calls the queue_log never closes: {sorted(unclosed)[:5]}"
    db = connect(tmp_path / "switch.db", migrate=False)
    saved = db.execute("SELECT count(*) FROM interactions WHERE agent_ext = '1001' AND disposition != ''").fetchone()[0]
    db.close()
    assert saved >= 1                                                     # the seat's forms reached the rows


def _queue_log(line):
    db = connect(line.db_path, migrate=False)
    try:
        return db.execute("SELECT time, callid, queuename, agent, event, data1, data2, data3 FROM queue_log "
                          "ORDER BY id").fetchall()
    finally:
        db.close()
