import pytest

from scenarios.erlang import agents_for_service_level, erlang_a, erlang_b, erlang_c

RATE, AHT = 10 / 180, 180.0  # A = 10 Erlangs


def test_erlang_b_known_values():
    assert erlang_b(10, 10) == pytest.approx(0.214582, abs=1e-6)
    assert erlang_b(0, 5) == 1.0


def test_erlang_c_reference_values():
    m = erlang_c(13, RATE, AHT, 20)
    assert round(m.p_wait, 6) == 0.285270
    assert round(m.asa_s, 4) == 17.1162
    assert round(m.sl_over_offered, 6) == 0.795595
    assert m.occupancy == pytest.approx(10 / 13)
    with pytest.raises(ValueError, match="load < agents"):
        erlang_c(10, RATE, AHT, 20)


def test_erlang_a_reference_values():
    m = erlang_a(12, RATE, AHT, 120, 20)
    assert round(m.p_wait, 6) == 0.279807
    assert round(m.p_abandon, 6) == 0.061597
    assert round(m.asa_s, 4) == 6.3348
    assert round(m.sl_over_offered, 6) == 0.825583
    assert m.sl_over_answered == pytest.approx(m.sl_over_offered / (1 - m.p_abandon))


def test_erlang_a_tends_to_erlang_c_with_endless_patience():
    a, c = erlang_a(13, RATE, AHT, 1e9, 20), erlang_c(13, RATE, AHT, 20)
    assert a.p_wait == pytest.approx(c.p_wait, rel=1e-5)
    assert a.asa_s == pytest.approx(c.asa_s, rel=1e-4)
    assert a.sl_over_offered == pytest.approx(c.sl_over_offered, rel=1e-5)


def test_erlang_a_is_stable_when_overloaded():
    m = erlang_a(5, 20 / 180, 180, 60, 20)  # 20 Erlangs on 5 agents
    assert 0.7 < m.p_abandon < 0.8 and 0 < m.sl_over_offered < 0.1 and m.occupancy > 0.99


def test_staffing():
    assert agents_for_service_level(RATE, AHT, 20, 0.80) == 14   # Erlang C: 13 gives 0.7956
    assert agents_for_service_level(RATE, AHT, 20, 0.80, patience_s=120) == 12


def test_the_healthy_rate_meets_both_targets_and_a_little_more_does_not():
    from scenarios.erlang import erlang_a, healthy_rate
    rate = healthy_rate(4, 50.0, 90.0, 15.0)
    at = erlang_a(4, rate, 50.0, 90.0, 15.0)
    assert at.sl_over_offered >= 0.8 and at.p_abandon < 0.05
    above = erlang_a(4, rate * 1.02, 50.0, 90.0, 15.0)
    assert above.sl_over_offered < 0.8 or above.p_abandon >= 0.05
    assert 100 < rate * 3600 < 250     # 4 agents at 50 s a call: about 40% busy keeps it this healthy
