"""Run directories, `hotline replay` (pilot: seek, pause, step back) and `--diff`."""

import json
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from console.cli import main
from console.replay import ReplayApp, parse_moment
from console.tape import SnapshotBuilder, player_for
from scenarios.runs import RunError, open_run

SCENARIO = "scenarios/library/water-outage.yaml"
HK = ZoneInfo("Asia/Hong_Kong")


def simulate(tmp_path: Path, seed: int, name: str) -> Path:
    run_dir = tmp_path / name
    main(["simulate", SCENARIO, "--seed", str(seed), "--run", str(run_dir)])
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    return simulate(base, 55, "a"), simulate(base, 55, "again"), simulate(base, 56, "b")


def test_a_run_directory_holds_what_ran(runs):
    run = open_run(runs[0])
    assert (runs[0] / "scenario.yaml").read_bytes() == Path(SCENARIO).read_bytes()
    assert run.meta["seed"] == 55 and run.kind == "virtual" and run.meta["versions"]["event_version"] == 1
    assert run.report["offered"] == sum(1 for r in run.rows() if r["event"] in ("CallQueued", "CallRejectedFull"))
    rows = list(run.rows())
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert set(rows[0]) == {"seq", "at", "node", "event", "call_id", "agent_ext", "body", "message"}
    queue_log = (runs[0] / "queue_log").read_text().splitlines()
    assert sum(1 for line in queue_log if "|ENTERQUEUE|" in line) == run.report["offered"] - sum(
        1 for r in run.rows() if r["event"] == "CallRejectedFull")


def test_the_snapshot_rebuilt_from_events_matches_the_core():
    """Whatever the replay shows (callers waiting and their order, agents' status, state
    and call) is what the routing core had, after every one of 3,000 random operations."""
    import random

    from telephony.acd import Acd
    from telephony.acd.config import QueueConfig

    rng = random.Random(7)
    queues = [QueueConfig(name="repair", ring_timeout_s=5), QueueConfig(name="billing", ring_timeout_s=5)]
    acd = Acd(queues, rng=random.Random(1))
    agents = {f"10{n}": {"name": f"agent {n}", "skills": {"repair": 3, "billing": 2} if n % 2 else {"billing": 3}}
              for n in range(6)}
    for ext, agent in agents.items():
        acd.add_agent(ext, agent["skills"])
    builder = SnapshotBuilder(agents)
    now, calls = 0.0, 0
    for _ in range(3000):
        now += rng.expovariate(1.0)
        acd.advance(now)
        roll = rng.random()
        waiting = [c for c in acd.calls.values() if c.state == "waiting"]
        offered = [c for c in acd.calls.values() if c.state == "offered"]
        talking = [c for c in acd.calls.values() if c.state == "connected"]
        if roll < 0.3:
            calls += 1
            acd.enqueue(str(calls), rng.choice(["repair", "billing"]), now, number=f"9{calls:07d}",
                        priority=rng.choice(["normal", "normal", "vip", "emergency"]))
        elif roll < 0.45 and offered:
            call = rng.choice(offered)
            acd.answer(call.id, rng.choice(call.ringing), now)
        elif roll < 0.55 and waiting:
            acd.abandon(rng.choice(waiting).id, now)
        elif roll < 0.7 and talking:
            acd.hangup(rng.choice(talking).id, now, wrap_up_s=rng.choice([0.0, 3.0]))
        elif roll < 0.75 and waiting:
            call = rng.choice(waiting)
            if call.priority != "emergency":
                acd.set_priority(call.id, "emergency", now)
        elif roll < 0.8 and waiting:
            call = rng.choice(waiting)
            acd.move(call.id, "billing" if call.queue == "repair" else "repair", now)
        else:
            ext = rng.choice(list(agents))
            if acd.agents[ext].state == "idle":
                acd.set_status(ext, rng.choice(["available", "available", "on_break", "logged_out"]), now,
                               reason="lunch")
        for event in acd.drain():
            builder.apply(event)
        shown = builder.snapshot(now, ["repair", "billing"])
        for queue in ("repair", "billing"):
            core = {c.id for c in acd.calls.values() if c.queue == queue and c.state in ("waiting", "offered")}
            assert {w.call_id for w in shown.waiting(queue)} == core, (now, queue)
        for agent in shown.agents:
            real = acd.agents[agent.ext]
            assert (agent.status, agent.state) == (real.status, real.state), (now, agent.ext)
            assert agent.call == (real.call.id if real.call is not None and real.state in ("ringing", "in_call", "on_hold")
                                  else None)
    assert calls > 500


def test_moments_are_times_of_day_or_offsets():
    start = parse_moment("08:00", 1795564800.0, HK)   # the run's own start (08:00 HK)
    assert start == 1795564800.0
    assert parse_moment("09:40", start, HK) - start == 100 * 60
    assert parse_moment("+1h30m", start, HK) - start == 90 * 60
    assert parse_moment("07:00", start, HK) - start == 23 * 3600   # before the start: the next day
    for bad in ("9.40", "25:00", "+soon", "+1h tomorrow"):
        with pytest.raises(ValueError):
            parse_moment(bad, start, HK)


def _cell(app, table: str, row: str, column: str) -> str:
    return str(app.query_one(f"#{table}").get_cell(row, column))


async def test_replay_seeks_pauses_and_steps_back(runs):
    run = open_run(runs[0])
    player = player_for(run, speed=60)
    app = ReplayApp(run, player, tz=HK)
    target = parse_moment("09:40", player.start, HK)
    queued = [r for r in run.rows() if r["event"] == "CallQueued" and r["message"]["queue"] == "complaint"]
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("space")          # paused
        await pilot.press("g")
        await pilot.press(*"09:40", "enter")
        await pilot.pause(0.3)
        assert player.position == target and player.paused
        assert _cell(app, "queues", "complaint", "offered") == str(sum(1 for r in queued if r["at"] <= target))
        assert "09:40:00" in str(app.query_one("#header").render()) and "paused" in str(app.query_one("#header").render())
        await pilot.pause(0.6)
        assert player.position == target    # paused: time stands still
        await pilot.press("left_square_bracket")
        assert player.position == target - 300
        assert _cell(app, "queues", "complaint", "offered") == str(sum(1 for r in queued if r["at"] <= target - 300))
        await pilot.press("plus")
        assert player.speed == 120
        await pilot.press("space")          # playing again
        await pilot.pause(0.6)
        assert player.position > target - 300
        await pilot.press("g")
        await pilot.press(*"25:99", "enter")
        assert "give a time of day" in str(app.screen.query_one("#goto-problem").render())
        await pilot.press("escape")


def test_diff_of_a_run_with_itself_and_with_another_seed(runs, capsys):
    assert main(["replay", "--diff", str(runs[0]), str(runs[1])]) == 0
    out = capsys.readouterr().out
    assert "events: the same, every one" in out
    assert main(["replay", "--diff", str(runs[0]), str(runs[2])]) == 1
    out = capsys.readouterr().out
    assert "events: the same up to event" in out and "  A: " in out and "  B: " in out
    assert "all offered" in out and "complaint service_level" in out


def test_runs_that_cannot_be_read_say_why(runs, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(runs[0], broken)
    (broken / "run.json").unlink()
    with pytest.raises(RunError, match="incomplete run .no run.json"):
        open_run(broken)
    shutil.copytree(runs[0], tmp_path / "old")
    meta = json.loads((tmp_path / "old" / "run.json").read_text())
    meta["versions"]["run_format"] = 99
    (tmp_path / "old" / "run.json").write_text(json.dumps(meta))
    with pytest.raises(RunError, match="another version of hotline"):
        open_run(tmp_path / "old")
    shutil.copytree(runs[0], tmp_path / "gap")
    (tmp_path / "gap" / "events.jsonl").unlink()
    assert main(["replay", "--diff", str(tmp_path / "gap"), str(runs[0])]) == 2
    assert "missing events.jsonl" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "nowhere")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    assert main(["replay", str(runs[0]), "--at", "07:00"]) == 2   # before the drill began at 08:00
    assert "outside the run" in capsys.readouterr().err
    assert main(["replay"]) == 2   # which run? the latest are listed
    assert "no runs under runs/ yet" in capsys.readouterr().err
    main(["simulate", SCENARIO, "--calls", "50"])
    capsys.readouterr()
    assert main(["replay"]) == 2
    assert "the latest:" in capsys.readouterr().err
    # a run is never written over another
    assert main(["simulate", SCENARIO, "--run", str(runs[0])]) == 2
    assert "exists and is not empty" in capsys.readouterr().err


def test_an_agent_not_yet_on_shift_has_been_logged_out_since_the_run_began(tmp_path):
    main(["simulate", "scenarios/library/typhoon-night.yaml", "--run", str(tmp_path / "night")])
    run = open_run(tmp_path / "night")
    player = player_for(run)
    player.seek(parse_moment("22:30", player.start, HK))
    standby = [line for line in player.centre.agent_lines(player.position) if line.name.startswith("standby")]
    assert standby and all(line.status == "logged_out" and line.in_state_s == 30 * 60 for line in standby)
    assert parse_moment("+1h30", player.start, HK) - player.start == 90 * 60   # as the header writes it
