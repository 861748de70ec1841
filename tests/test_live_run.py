"""`hotline simulate --live`: the scenario's callers as real SIP calls (SIPp) into a switch
it starts, bot agents answering; every call placed is one interactions row, SIPp's own
counts match the switch's rows, and the live figures lie within the tolerance of the
virtual-time run of the same seed. The switch crash drill uses the sippy phones."""

import sqlite3
import subprocess
import sys
from collections import Counter

import pytest

from console.cli import main
from scenarios.live_run import check_placeable, LiveRunError, map_event, switch_config_for
from scenarios.runs import open_run
from scenarios.schema import load_scenario

SCENARIO = "tests/scenarios/short-live.yaml"


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("live") / "run"
    result = subprocess.run([sys.executable, "-m", "console", "simulate", SCENARIO, "--live", "--speed", "20",
                             "--run", str(run_dir), "--residents", "300"],
                            capture_output=True, text=True, timeout=600)
    return run_dir, result


def test_every_call_placed_is_one_row_and_matches_the_generator(live_run):
    run_dir, result = live_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run = open_run(run_dir)
    assert run.kind == "live" and run.meta["clocks"]["speed"] == 20
    count = run.report["accounting"]
    generator = count["generator"]
    assert count["placed"] == generator["placed"] == 60
    assert count["lost"] == 0 and count["unexpected_rows"] == 0
    # the switch's rows, read here on their own, against what the callers' phones counted
    db = sqlite3.connect(run_dir / "switch" / "records.db")
    outcomes = Counter(o for (o,) in db.execute("SELECT outcome FROM interactions WHERE direction = 'inbound' "
                                                "AND entered_at > strftime('%s','now') - 3600"))
    assert sum(outcomes.values()) == 60
    # SIPp's own counts: a CANCEL for each caller who gave up, a BYE for each who talked
    assert generator["generator"] == "SIPp" and generator["failed"] == 0
    # (a caller whose patience ran out in the instant an agent answered, the 200 crossing
    # their CANCEL, is one of the switch's answered and named in both tallies)
    crossed = len(count["gave_up_as_answered"])
    assert crossed == generator["gave_up_as_answered"]
    assert outcomes["abandoned"] == generator["gave_up"]
    assert outcomes["answered"] == generator["answered"] + crossed
    assert db.execute("SELECT count(*) FROM interactions WHERE ended_at IS NULL").fetchone()[0] == 0
    # the report's offered callers are the generator's (the same plan as the virtual run)
    assert run.report["offered"] == 60 == run.report["virtual"]["offered"]
    assert "(x20)" in result.stdout and "lost 0" in result.stdout


def test_callers_choose_their_queue_in_the_voice_menu_with_a_key(live_run):
    run_dir, result = live_run
    menu = open_run(run_dir).report["accounting"]["menu"]
    # every caller dialled the menu's number and pressed the key of the queue they meant
    assert menu["callers"] == 60 and menu["other_queue"] == 0
    assert menu["reached_their_queue"] + menu["hung_up_in_menu"] == 60
    db = sqlite3.connect(run_dir / "switch" / "records.db")
    assert {d for (d,) in db.execute("SELECT DISTINCT dialled_number FROM interactions WHERE direction = 'inbound' "
                                     "AND entered_at > strftime('%s','now') - 3600")} == {"2000"}
    assert "through the voice menu" in result.stdout


def test_audio_callers_hear_the_menu_and_their_agent_and_are_recorded_both_sides(live_run):
    run_dir, result = live_run
    audio = open_run(run_dir).report["audio"]
    assert len(audio) == 3 and all(item["ok"] for item in audio), audio
    answered = [item for item in audio if item["outcome"] == "answered"]
    assert answered, audio     # seed 3: two of the three are answered
    for item in audio:
        assert item["heard"][0] == "menu"          # the menu's cue first, nothing before it
    for item in answered:
        assert item["heard"][-1] == "agent" and item["agent_heard_caller"]
        left, right = item["recording_hz"]         # the caller's 250 Hz left, the agent's 800 Hz right
        assert 212 <= left <= 288 and 680 <= right <= 920
    assert result.stdout.count("ok   audio caller") == 3


def test_live_lies_within_the_tolerance_of_virtual(live_run):
    run_dir, result = live_run
    run = open_run(run_dir)
    outside = [r for r in run.report["comparison"] if not r["inside"]]
    assert not outside, outside
    # queue lengths from the event log (a QA trial: every live report said max_queue 0)
    assert run.report["max_queue"] >= 1 and run.report["queues"]["repair"]["max_queue"] >= 1
    assert {r["metric"] for r in run.report["comparison"]} >= {"service_level", "asa_s", "abandon_rate"}


def test_a_live_run_replays_and_diffs_against_the_virtual_run(live_run, tmp_path, capsys):
    run_dir, _ = live_run
    virtual = tmp_path / "virtual"
    main(["simulate", SCENARIO, "--run", str(virtual)])
    capsys.readouterr()
    assert main(["replay", "--diff", str(virtual), str(run_dir)]) == 1   # live timing is never the same
    out = capsys.readouterr().out
    assert "(live, seed 3)" in out and "all offered" in out
    rows = list(open_run(run_dir).rows())
    start = open_run(run_dir).start
    assert all(row["at"] >= start - 60 for row in rows)   # mapped onto the scenario's clock
    assert any(row["event"] == "CallConnected" for row in rows)
    # played back as the supervisors' console shows it (call events, dispositions, registrations and all)
    from console.tape import player_for
    player = player_for(open_run(run_dir))
    player.seek(player.end)
    offered = sum(line.offered for line in player.centre.queue_lines(player.end))
    assert offered == 60 and not player.builder.waiting
    assert {a.ext for a in player.centre.snapshot.agents} >= {"7001", "7002", "7003", "7004"}


def test_the_switch_config_follows_the_speed():
    scenario = load_scenario("scenarios/library/weekday.yaml")
    config = switch_config_for(scenario, 10)
    assert config["queues"]["repair"]["max_wait_s"] == 60
    assert config["queues"]["emergency"]["tiers"][1]["after_s"] == 0.5
    assert config["breaks"]["lunch"] >= 45 * 60 / 10 / 60
    assert map_event({"t": 110.0, "wait_s": 2.0, "queue": "x"}, t0=100.0, start=1000.0, speed=10) == \
        {"t": 1100.0, "wait_s": 20.0, "queue": "x"}


def test_a_scenario_the_switch_cannot_place_is_refused():
    scenario = load_scenario("scenarios/library/weekday.yaml")
    with pytest.raises(LiveRunError, match="no queue for complaint"):
        check_placeable(scenario, switch_queues={"repair", "enquiry", "billing", "emergency"}, extensions=50)
    with pytest.raises(LiveRunError, match="14 agents, but only 3 agent extensions"):
        check_placeable(scenario, switch_queues={"repair", "enquiry", "billing", "emergency", "complaint"},
                        extensions=3)


def test_live_options_that_do_not_fit_say_so(capsys):
    assert main(["simulate", SCENARIO, "--speed", "5"]) == 2
    assert "--speed is for --live runs" in capsys.readouterr().err
    assert main(["simulate", SCENARIO, "--live", "--speed", "0"]) == 2
    assert "--speed must be above 0" in capsys.readouterr().err


def test_the_switch_killed_mid_run_loses_nothing_and_the_run_carries_on(tmp_path):
    run_dir = tmp_path / "crash"
    result = subprocess.run([sys.executable, "-m", "console", "simulate", SCENARIO, "--live", "--speed", "20",
                             "--run", str(run_dir), "--residents", "300", "--kill-switch-at", "+6m", "--callers", "phones"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run = open_run(run_dir)
    count = run.report["accounting"]
    [crash] = count["switch_crashes"]
    assert count["placed"] == count["rows"] == 60 and count["lost"] == 0 and count["unexpected_rows"] == 0
    assert count["outcomes"].get("interrupted", 0) >= 1     # the calls it held when it died
    assert "closed as interrupted, the run carried on" in result.stdout and "killed by the drill" in result.stdout
    # after the restart the bots were back and answering
    db = sqlite3.connect(run_dir / "switch" / "records.db")
    after = db.execute("SELECT count(*) FROM events WHERE event = 'CallConnected' AND at > ?",
                       [crash["killed_at"] + crash["back_after_s"]]).fetchone()[0]
    open_rows = db.execute("SELECT count(*) FROM interactions WHERE ended_at IS NULL").fetchone()[0]
    assert after >= 5 and open_rows == 0
    # replayed, the callers the crash cut off are gone (CallFailed), not waiting for ever
    from console.tape import player_for
    player = player_for(run)
    player.seek(player.end)
    assert not player.builder.waiting
    assert all(a.state in ("idle", "wrap_up") or a.status == "logged_out" for a in player.centre.snapshot.agents)


EXISTING = """
name: into a running switch
seed: 9
calls: 12
arrivals: {rate_per_hour: 720}
mix: {types: {general: 1.0}}
handle_time: {dist: fixed, mean_s: 10}
patience: {dist: exponential, mean_s: 60}
agents: {count: 2}
routing: {ring_time_s: 1}
"""


def test_live_into_a_switch_already_running(tmp_path):
    from test_sip_register import start_switch

    port, process, control = start_switch(tmp_path)
    try:
        (tmp_path / "s.yaml").write_text(EXISTING)
        (tmp_path / "pins").write_text("1001:1111\n1002:2222\n2001:9999\n")
        run = lambda *extra: subprocess.run(   # noqa: E731
            [sys.executable, "-m", "console", "--db", str(tmp_path / "switch.db"), "simulate", str(tmp_path / "s.yaml"),
             "--live", "--speed", "5", "--switch", f"sip:127.0.0.1:{port}", "--control", str(control), "--pins",
             str(tmp_path / "pins"), *extra], capture_output=True, text=True, timeout=300)
        result = run("--run", str(tmp_path / "run"))
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        live = open_run(tmp_path / "run")
        count = live.report["accounting"]
        assert count["placed"] == count["rows"] == 12 and count["lost"] == 0
        assert set(live.meta["agents"]) == {"1001", "1002"} and live.meta["switch"] == f"sip:127.0.0.1:{port}"
        assert "not divided by the speed" in result.stdout
        # three agents wanted, two agent logins given (2001 is a supervisor's: never a bot)
        (tmp_path / "s.yaml").write_text(EXISTING.replace("count: 2", "count: 3"))
        result = run("--run", str(tmp_path / "run2"))
        assert result.returncode == 2 and "3 agents, but only 2 agent extensions" in result.stderr
        assert not (tmp_path / "run2").exists() or not (tmp_path / "run2" / "run.json").exists()
    finally:
        process.kill()
        process.wait(5)
