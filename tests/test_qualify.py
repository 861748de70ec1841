"""The pacing of the switch's liveness questions to seats in a call (telephony/qualify.py),
in virtual time: a live seat is asked on its beat, a dead one is found within a beat and
the misses, and all seats together never cost more than the budget a second."""

from telephony.qualify import QualifyPacer

TICK = 0.1


def run(pacer: QualifyPacer, until: float, *, start: float = 0.0, dead: set[str] = frozenset(),
        asked: list | None = None, gone: list | None = None) -> float:
    """Tick the pacer every 100 ms from `start` to `until`; live seats answer at once."""
    now = start
    while now < until - 1e-9:
        now = round(now + TICK, 6)
        ask, lost = pacer.take(now)
        for ext in ask:
            if asked is not None:
                asked.append((now, ext))
            if ext not in dead:
                pacer.answered(ext)
        if gone is not None:
            gone += [(now, ext) for ext in lost]
    return now


def test_a_few_seats_are_each_asked_every_interval_and_none_is_lost():
    pacer = QualifyPacer(interval_s=2.0, misses=2, rate=100)
    for n in range(10):
        pacer.watch(f"10{n:02d}", 0.0)
    asked, gone = [], []
    run(pacer, 60.0, asked=asked, gone=gone)
    per_seat = {ext: [t for t, e in asked if e == ext] for ext in {e for _, e in asked}}
    assert len(per_seat) == 10 and not gone
    for times in per_seat.values():
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert all(abs(gap - 2.0) < 0.11 for gap in gaps), gaps   # on the 100 ms tick
        assert len(times) == 30


def test_two_thousand_seats_cost_no_more_than_the_budget_and_each_is_still_asked():
    pacer = QualifyPacer(interval_s=2.0, misses=2, rate=100)
    for n in range(2000):
        pacer.watch(str(3000 + n), n * 0.015)     # calls answered over 30 s
    assert 20.0 < pacer.beat() < 25.0              # a tenth of the budget is kept for suspects
    asked = []
    run(pacer, 120.0, start=30.0, asked=asked)
    for second in range(31, 120):
        assert sum(1 for t, _ in asked if second - 1 < t <= second) <= 100
    per_seat = {}
    for t, ext in asked:
        per_seat.setdefault(ext, []).append(t)
    assert len(per_seat) == 2000                                   # nobody starved
    gaps = [b - a for times in per_seat.values() for a, b in zip(times, times[1:])]
    assert max(gaps) < pacer.beat() + 1.0 and min(gaps) > pacer.beat() - 1.0


def test_a_dead_seat_among_many_is_found_within_its_beat_and_the_misses():
    pacer = QualifyPacer(interval_s=2.0, misses=2, rate=100)
    for n in range(2000):
        pacer.watch(str(3000 + n), 0.0)
    now = run(pacer, 50.0)
    gone = []
    run(pacer, 100.0, start=now, dead={"3500"}, gone=gone)
    [(when, ext)] = gone
    assert ext == "3500" and when - now <= pacer.beat() + 2 * 2.0 + 2 * TICK
    assert "3500" not in pacer and len(pacer) == 1999


def test_a_few_seats_one_dies_it_is_found_as_fast_as_before_pacing():
    pacer = QualifyPacer(interval_s=2.0, misses=2, rate=100)
    pacer.watch("1001", 0.0)
    pacer.watch("1002", 0.0)
    now = run(pacer, 10.0)
    gone = []
    run(pacer, 30.0, start=now, dead={"1001"}, gone=gone)
    [(when, ext)] = gone
    assert ext == "1001" and when - now <= 6.0 + 2 * TICK


def test_a_suspect_seat_is_asked_at_once_and_a_seat_that_answers_late_is_kept():
    pacer = QualifyPacer(interval_s=2.0, misses=2, rate=100)
    for n in range(1000):
        pacer.watch(str(3000 + n), 0.0)
    now = run(pacer, 25.0)
    pacer.suspect("3007", now)
    ask, _ = pacer.take(now + TICK)
    assert ask[0] == "3007"
    # unanswered for one interval, then asked again at the short interval, answers late
    ask, _ = pacer.take(now + TICK + 2.0)
    assert "3007" in ask
    pacer.answered("3007")
    later = []
    run(pacer, now + 40.0, start=now + TICK + 2.0, asked=later)
    assert "3007" in pacer
    times = [t for t, e in later if e == "3007"]
    assert times and times[0] - (now + TICK + 2.0) > 5.0     # back on the load's beat, not every 2 s


def test_unwatched_seats_are_never_asked_and_a_burst_of_new_calls_waits_for_the_budget():
    pacer = QualifyPacer(interval_s=2.0, misses=2, rate=50)
    for n in range(500):
        pacer.watch(str(n), 0.0)
    for n in range(0, 500, 2):
        pacer.unwatch(str(n))
    asked = []
    run(pacer, 30.0, asked=asked)
    assert {int(e) % 2 for _, e in asked} == {1}
    assert max(sum(1 for t, _ in asked if s - 1 < t <= s) for s in range(1, 31)) <= 50
