import json
import math

import pytest

from console.cli import main
from records.db import connect
from siteconfig.yamlsource import ConfigError
from scenarios.schema import load_scenario, scenario_from_text
from scenarios.simulator import Simulation, rate_segments, simulate

SHORT = """\
name: erlang-check
seed: 11
calls: 200000
arrivals: {rate_per_hour: 200}
handle_time: {dist: exponential, mean_s: 180}
patience: {dist: exponential, mean_s: 120}
agents: {count: 12}
service_level: {threshold_s: 20}
"""


def test_the_short_form_is_accepted_exactly_as_written():
    s = scenario_from_text(SHORT)
    assert (s.name, s.seed, s.calls, s.threshold_s) == ("erlang-check", 11, 200000, 20.0)
    assert s.segments == ((0.0, 200 / 3600),) and s.mix == {"general": 1.0}
    assert s.handle_time["default"].kind == "exponential" and s.patience.mean_s == 120
    assert sum(g.count for g in s.groups) == 12 and [q.name for q in s.queues] == ["general"]


@pytest.mark.parametrize("change,line,key,message", [
    (("agents: {count: 12}", "agents: {count: 12, skils: {general: 3}}"), 7, "agents.skils", "unknown key"),
    (("dist: exponential, mean_s: 180", "dist: gamma, mean_s: 180"), 5, "handle_time.dist", "unknown distribution"),
    (("calls: 200000", "calls: lots"), 3, "calls", "expected a whole number"),
    (("rate_per_hour: 200", "rate_per_hour: -5"), 4, "arrivals.rate_per_hour", "at least 0"),
    (("service_level: {threshold_s: 20}", "service_level: {threshold_s: 20}\nexpect: ['sl > 0.8']"), 9, "expect[0]",
     "METRIC OP NUMBER"),
    (("service_level: {threshold_s: 20}", "service_level: {threshold_s: 20}\nexpect: ['priorities.gold.asa_s < 9']"),
     9, "expect[0]", "no priority 'gold'"),
    (("agents: {count: 12}", "agents: {count: 12}\nrouting: {strategy: ring_all}"), 8, "routing", "live switch"),
    (("patience: {dist: exponential, mean_s: 120}", "patience: {dist: exponential}"), 6, "patience", "mean_s"),
    (("name: erlang-check\n", "name: erlang-check\nbogus: 1\n"), 2, "bogus", "unknown key"),
    (("agents: {count: 12}", "agents: {count: 12}\nmix: {types: {repair: 0.5, billing: 0.4}}"), 8, "mix.types",
     "add up to 0.9"),
    (("rate_per_hour: 200", "rate_per_hour: 0"), 4, "arrivals", "no caller ever arrives"),
    (("agents: {count: 12}", "agents: {count: 12, skills: {}}"), 7, "agents.skills", "at least one skill"),
])
def test_errors_name_file_line_and_key(tmp_path, change, line, key, message):
    path = tmp_path / "bad.yaml"
    path.write_text(SHORT.replace(*change))
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    error = info.value
    assert (error.source, error.line, error.key) == (str(path), line, key), str(error)
    assert message in error.message


def test_missing_calls_and_horizon_and_bad_overflow(tmp_path):
    with pytest.raises(ConfigError, match="give 'calls'"):
        scenario_from_text(SHORT.replace("calls: 200000\n", ""))
    text = SHORT.replace("agents: {count: 12}", "agents: {count: 12}\nrouting: {queues: {general: {max_length: 5, "
                                                "on_full: 'overflow:billing'}}}")
    with pytest.raises(ConfigError, match="overflow to 'billing', which no call reaches"):
        scenario_from_text(text)


def strip_wall(report):
    return {k: v for k, v in report.items() if k not in ("calls_per_second", "wall_s")}


def test_same_seed_same_result_to_the_last_digit():
    s = scenario_from_text(SHORT)
    first, second = simulate(s, calls=20000), simulate(s, calls=20000)
    assert json.dumps(strip_wall(first), sort_keys=True) == json.dumps(strip_wall(second), sort_keys=True)
    other = simulate(s, calls=20000, seed=12)
    assert other["answered"] != first["answered"] or other["asa_s"] != first["asa_s"]


def test_non_homogeneous_arrivals_follow_the_profile_and_bursts():
    text = """
name: profile
seed: 5
horizon: 3h
interval: 30m
arrivals:
  profile: {interval: 30m, rates_per_hour: [0, 600, 1200, 600, 600, 600]}
  bursts:
    - {at: 2h, for: 20m, factor: 8, mix: {complaint: 1}, label: water outage}
mix: {types: {repair: 1}}
handle_time: {dist: fixed, mean_s: 1}
agents: {count: 400}
"""
    s = scenario_from_text(text)
    assert [(seg.start, round(seg.rate * 3600), seg.burst_share) for seg in rate_segments(s)] == [
        (0, 0, 0), (1800, 600, 0), (3600, 1200, 0), (5400, 600, 0), (7200, 4800, 0.875), (8400, 600, 0),
        (9000, 600, 0)]
    report = simulate(s)
    counts = [row["offered"] for row in report["intervals"]]
    starts = [row["start"] for row in report["intervals"]]
    assert starts[0] == 1800  # nobody calls while the rate is zero
    expected = [300, 600, 300, 300 * (8 * 20 + 10) / 30, 300]
    for got, mean in zip(counts, expected):
        assert abs(got - mean) < 4 * math.sqrt(mean), (counts, expected)
    complaints = report["queues"]["complaint"]["offered"]
    assert abs(complaints - 7 * 200) < 4 * math.sqrt(1400)   # the extra 7x of the burst


def test_shifts_breaks_and_mixed_queues_run_to_completion():
    s = load_scenario("scenarios/library/weekday.yaml")
    report = simulate(s)
    assert 800 < report["offered"] < 1100  # 1,010 expected over the 12-hour profile
    assert report["answered"] + report["abandoned"] + report["voicemail"] == report["offered"]
    assert set(report["queues"]) >= {"repair", "complaint", "billing", "enquiry", "emergency"}
    assert 0 < report["occupancy"] < 1


def test_times_of_day_are_the_nearest_occurrence():
    s = load_scenario("scenarios/library/night-shift.yaml")   # starts 22:00
    [group] = s.groups
    assert group.shift == (0.0, 9 * 3600.0) and group.breaks == ((4 * 3600.0, 4.5 * 3600.0, "meal"),)
    early = scenario_from_text(SHORT.replace("agents: {count: 12}", "start: 2026-11-23T08:00\nagents: {groups: "
                                             "[{count: 2, shift: '07:00-16:00'}]}"))
    assert early.groups[0].shift == (-3600.0, 8 * 3600.0)


def test_every_bundled_scenario_loads_and_runs():
    from pathlib import Path
    for path in sorted(Path("scenarios/library").glob("*.yaml")):
        s = load_scenario(path)
        report = Simulation(s, calls=min(s.calls or 2000, 2000)).run()
        assert report["offered"] > 0, path


def test_cli_writes_report_queue_log_and_records(tmp_path, capsys):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SHORT + "wrap_up: {dist: fixed, mean_s: 10}\n"
                        "expect: ['service_level >= 0.99', 'abandon_rate <= 0.2']\n")
    db_path, log, out = tmp_path / "sim.db", tmp_path / "queue_log", tmp_path / "r.json"
    code = main(["simulate", str(scenario), "--calls", "3000", "--report", str(out), "--queue-log", str(log),
                 "--db", str(db_path)])
    captured = capsys.readouterr()
    assert code == 1
    assert "1 expectation(s) failed: service_level >= 0.99" in captured.err
    assert "FAIL service_level >= 0.99" in captured.out and "ok   abandon_rate <= 0.2" in captured.out
    report = json.loads(out.read_text())
    for key in ("offered", "answered", "abandoned", "p_wait", "asa_s", "abandon_rate", "aht_s", "occupancy",
                "max_queue", "longest_wait_s", "calls_per_second", "seed", "intervals", "queues"):
        assert key in report
    assert set(report["service_level"]) == {"threshold_s", "answered_within_over_offered",
                                            "answered_within_over_answered"}
    lines = log.read_text().splitlines()
    assert sum(line.split("|")[4] == "ENTERQUEUE" for line in lines) == 3000
    db = connect(db_path)
    outcomes = dict(db.execute("SELECT outcome, count(*) FROM interactions GROUP BY outcome").fetchall())
    assert outcomes == {"answered": report["answered"], "abandoned": report["abandoned"]}
    assert db.execute("SELECT count(*) FROM queue_log").fetchone()[0] == len(lines)
    # the simulated rows are as complete as live ones: every answered call has its agent,
    # talk and the wrap-up after it
    incomplete = db.execute("SELECT count(*) FROM interactions WHERE outcome = 'answered' AND (agent_ext = '' "
                            "OR talk_s IS NULL OR wrapup_s IS NULL OR wait_s IS NULL)").fetchone()[0]
    assert incomplete == 0
    mean_wrap = db.execute("SELECT avg(wrapup_s) FROM interactions WHERE outcome = 'answered'").fetchone()[0]
    assert mean_wrap == pytest.approx(10.0, abs=0.05)   # those still wrapping when the run ends are cut there
    assert main(["simulate", str(scenario), "--calls", "10", "--db", str(db_path)]) == 2   # same run twice
    assert "already holds run" in capsys.readouterr().err


def test_every_caller_is_accounted_for_when_queues_fill_and_time_out():
    s = scenario_from_text(SHORT.replace("agents: {count: 12}", """agents: {count: 6}
mix: {types: {repair: 0.5, complaint: 0.5}}
routing:
  callback_accept_share: 0.5
  queues:
    repair: {max_length: 3, on_full: callback, max_wait_s: 60, on_max_wait: 'overflow:complaint'}
    complaint: {max_length: 4, on_full: voicemail, max_wait_s: 90, on_max_wait: callback}"""))
    report = simulate(s, calls=5000)
    assert report["offered"] == 5000
    assert report["answered"] + report["abandoned"] + report["voicemail"] == 5000
    assert report["voicemail"] > 0 and report["timed_out"] > 0


def test_unquoted_times_are_times_and_plain_numbers_are_seconds():
    base = SHORT.replace("arrivals: {rate_per_hour: 200}", "start: 2026-11-23T08:00\narrivals:\n  rate_per_hour: 200\n"
                         "  bursts:\n    - {at: AT, for: 10m, factor: 2}")
    assert scenario_from_text(base.replace("AT", "09:30")).bursts[0].at_s == 5400
    assert scenario_from_text(base.replace("AT", "570")).bursts[0].at_s == 570
    assert scenario_from_text(base.replace("AT", "1h")).bursts[0].at_s == 3600


def test_agents_who_do_not_turn_up_never_log_in():
    s = load_scenario("scenarios/library/no-shows.yaml")
    assert [(g.rostered, g.count) for g in s.groups] == [(6, 4), (5, 3), (3, 3)]
    seen = []
    Simulation(s, calls=300, sinks=(seen.append,)).run()
    logged_in = {e.agent_id for e in seen if type(e).__name__ == "AgentStatusChanged" and e.status == "available"}
    assert len(logged_in) == 10
    with pytest.raises(ConfigError, match="absent.*must be at most 2"):
        scenario_from_text(SHORT.replace("agents: {count: 12}", "agents: {groups: [{count: 2, absent: 3}]}"))


def test_every_bundled_drill_meets_its_own_expectations():
    from pathlib import Path
    for path in sorted(Path("scenarios/library").glob("*.yaml")):
        s = load_scenario(path)
        if not s.expect or (s.calls or 0) > 20000:
            continue
        report = Simulation(s).run()
        failed = [e for e in report["expectations"] if not e["passed"]]
        assert not failed, (path.name, failed)


def test_a_queue_no_agent_can_serve_is_refused():
    with pytest.raises(ConfigError, match="no agent has a skill that serves repair"):
        scenario_from_text(SHORT.replace("agents: {count: 12}", "mix: {types: {repair: 1.0}}\n"
                                         "agents: {groups: [{count: 2, skills: {billing: 3}}]}"))


def test_callers_are_counted_by_the_priority_they_arrived_with_and_expect_can_name_one():
    # a VIP storm's point is that priority does not starve the rest: the report says so
    from scenarios.simulator import Simulation
    scenario = load_scenario("scenarios/library/vip-storm.yaml")
    report = Simulation(scenario).run()
    vip, normal = report["priorities"]["vip"], report["priorities"]["normal"]
    assert vip["offered"] + normal["offered"] == report["offered"]
    assert vip["answered"] + normal["answered"] == report["answered"]
    assert vip["asa_s"] < normal["asa_s"]                      # served first
    checked = {e.text: e.check(report) for e in scenario.expect}
    assert checked["priorities.normal.abandon_rate <= 0.2"] == (True, normal["abandon_rate"])
