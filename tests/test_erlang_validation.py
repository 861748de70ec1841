"""The simulator against Erlang C and Erlang A on stationary exponential scenarios.

Tolerance: each run computes 99% batch-means confidence intervals (50 consecutive
batches of calls in arrival order; at 4,000+ calls per batch the batch means are
nearly independent and normal, so mean +- t(0.995, 49) sd/sqrt(50) covers the true
long-run value with probability 0.99). The test asserts that the formula lies inside
the run's own 99% interval, and that the interval is narrow enough to mean something.
Seeds are fixed, so each assertion is deterministic; a correct simulator fails a given
metric for a given seed with probability 1%, and a biased one is caught once its bias
exceeds the half-width. ASA is checked only at moderate load: at 90% load its batch
means converge about 100x more slowly than the service level's.
"""
import pytest

from scenarios.erlang import erlang_a, erlang_c
from scenarios.schema import load_scenario, scenario_from_text
from scenarios.simulator import simulate


def inside(report, name, value, widest):
    ci = report["confidence_99"][name]
    assert ci["half_width"] <= widest, f"{name}: interval too wide to test anything ({ci['half_width']:.4g})"
    assert abs(ci["mean"] - value) <= ci["half_width"], f"{name}: sim {ci['mean']:.6f} formula {value:.6f} +- {ci['half_width']:.6f}"


def test_erlang_a_12_agents():
    report = simulate(load_scenario("scenarios/library/erlang-a.yaml"))
    m = erlang_a(12, 200 / 3600, 180, 120, 20)
    inside(report, "p_wait", m.p_wait, 0.012)
    inside(report, "abandon_rate", m.p_abandon, 0.004)
    inside(report, "service_level_over_offered", m.sl_over_offered, 0.01)
    inside(report, "asa_s", m.asa_s, 0.4)
    assert report["occupancy"] == pytest.approx(m.occupancy, abs=0.01)


def test_erlang_c_13_agents():
    report = simulate(load_scenario("scenarios/library/erlang-c.yaml"))
    m = erlang_c(13, 200 / 3600, 180, 20)
    assert report["abandoned"] == 0
    inside(report, "p_wait", m.p_wait, 0.02)
    inside(report, "service_level_over_offered", m.sl_over_offered, 0.02)
    inside(report, "asa_s", m.asa_s, 2.0)


def test_erlang_a_50_agents_at_90_percent_load():
    scenario = scenario_from_text("""
name: mmn-m-90
seed: 3
calls: 200000
arrivals: {rate_per_hour: 900}
handle_time: {dist: exponential, mean_s: 180}
patience: {dist: exponential, mean_s: 120}
agents: {count: 50}
""")
    report = simulate(scenario)
    m = erlang_a(50, 900 / 3600, 180, 120, 15)   # the default threshold: three rings
    inside(report, "p_wait", m.p_wait, 0.02)
    inside(report, "abandon_rate", m.p_abandon, 0.006)
    inside(report, "service_level_over_offered", m.sl_over_offered, 0.015)
