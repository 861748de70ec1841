"""The routing core, driven by hand with explicit times (no I/O, no clock)."""
import random

import pytest

from telephony.acd import Acd, AcdError, QueueConfig, Tier
from telephony.acd import events as ev
from telephony.acd.queue_log import format_line, rows_for


def make(*queues, agents=(), rng=None):
    acd = Acd(queues or [QueueConfig("repair")], rng=rng)
    for agent_id, skills in agents:
        acd.add_agent(agent_id, skills)
    return acd


def offers(acd):
    return [(e.call_id, e.agent_id) for e in acd.drain() if isinstance(e, (ev.CallOffered, ev.CallbackDue))]


def login(acd, *agent_ids, at=0.0):
    for agent_id in agent_ids:
        acd.set_status(agent_id, "available", at)


def test_emergency_then_vip_then_normal_and_nobody_starves():
    acd = make(agents=[("a", {"repair": 3})])
    acd.enqueue("normal-early", "repair", 0)            # has waited 150 s when the VIP comes
    acd.enqueue("vip-recent", "repair", 150, priority="vip")   # VIP credit is 120 s
    acd.enqueue("normal", "repair", 151)
    acd.enqueue("vip", "repair", 200, priority="vip")   # ahead of "normal": it came only 49 s earlier
    acd.enqueue("emergency", "repair", 202, priority="emergency")
    assert [c.id for c in acd.waiting_calls("repair")] == ["emergency", "normal-early", "vip-recent", "vip", "normal"]
    acd.set_priority("normal", "emergency", 203)         # re-ordered at once: it came before the other emergency
    assert [c.id for c in acd.waiting_calls("repair")] == ["normal", "emergency", "normal-early", "vip-recent", "vip"]
    acd.drain()
    login(acd, "a", at=205)
    assert offers(acd) == [("normal", "a")]


def test_longest_idle_agent_gets_the_call():
    acd = make(agents=[("a", {"repair": 3}), ("b", {"repair": 3}), ("c", {"billing": 3})])
    acd.set_status("b", "available", 1)
    acd.set_status("a", "available", 2)
    acd.set_status("c", "available", 0)
    acd.drain()
    acd.enqueue("c1", "repair", 10)
    assert offers(acd) == [("c1", "b")]   # c is idle longest but has no repair skill


@pytest.mark.parametrize("strategy,expected", [
    ("round_robin", ["b", "c", "a", "b"]),
    ("fewest_calls", ["a", "b", "c", "a"]),
])
def test_strategies_with_memory(strategy, expected):
    acd = make(QueueConfig("repair", strategy=strategy), agents=[(x, {"repair": 3}) for x in "abc"])
    login(acd, "a", "b", "c")
    acd._queues["repair"].last_order = 0  # "a" took the last call
    got = []
    for n in range(4):
        acd.drain()
        acd.enqueue(f"c{n}", "repair", 10 + n)
        [(call, agent)] = offers(acd)
        got.append(agent)
        acd.answer(call, agent, 10 + n)
        acd.hangup(call, 10.5 + n)
    assert got == expected


def test_least_talk_time_and_random_are_deterministic():
    acd = make(QueueConfig("repair", strategy="least_talk_time"), agents=[(x, {"repair": 3}) for x in "ab"])
    login(acd, "a", "b")
    for n, talk in ((0, 300), (1, 10)):
        acd.drain()
        acd.enqueue(f"c{n}", "repair", n * 1000)
        [(call, agent)] = offers(acd)
        acd.answer(call, agent, n * 1000)
        acd.hangup(call, n * 1000 + talk)
    acd.drain()
    acd.enqueue("next", "repair", 5000)
    assert offers(acd) == [("next", "b")]   # b talked 10 s, a 300 s

    picks = []
    for _ in range(2):
        acd = make(QueueConfig("repair", strategy="random"), agents=[(x, {"repair": 3}) for x in "abcdef"],
                   rng=random.Random(4))
        login(acd, *"abcdef")
        acd.drain()
        acd.enqueue("c", "repair", 1)
        picks.append(offers(acd))
    assert picks[0] == picks[1]


def test_tiers_widen_the_skill_set_as_the_caller_waits():
    queue = QueueConfig("repair", tiers=(Tier(0, frozenset({"repair"}), 4), Tier(30, frozenset({"repair"}), 1),
                                         Tier(60, frozenset({"repair", "general"}), 1)))
    queue = QueueConfig("repair", tiers=queue.tiers, max_no_answer=1)
    acd = make(queue, agents=[("junior", {"repair": 2}), ("generalist", {"general": 3})])
    login(acd, "junior", "generalist")
    acd.drain()
    acd.enqueue("c1", "repair", 100)
    assert offers(acd) == []
    assert acd.next_timer() == 130
    acd.advance(129.9)
    assert offers(acd) == []
    acd.advance(130)
    assert offers(acd) == [("c1", "junior")]
    acd.ring_no_answer("c1", "junior", 145)          # misses it: on break (max_no_answer 1)
    assert offers(acd) == [] and acd.agents["junior"].status == "on_break"
    acd.advance(160)
    assert offers(acd) == [("c1", "generalist")]     # 60 s: generalists qualify


def test_ring_no_answer_returns_the_call_to_the_head_and_breaks_the_agent():
    acd = make(QueueConfig("repair", max_no_answer=2, ring_timeout_s=15),
               agents=[("a", {"repair": 3}), ("b", {"repair": 3})])
    login(acd, "a")
    acd.enqueue("first", "repair", 0)
    acd.enqueue("second", "repair", 1)
    assert offers(acd) == [("first", "a")]
    acd.advance(15)  # ring timeout
    events = acd.drain()
    assert [e for e in events if isinstance(e, ev.RingNoAnswer)] == [ev.RingNoAnswer(15, "first", "repair", "a", 15)]
    assert [c.id for c in acd.waiting_calls("repair")] == ["first"]   # back at the head
    assert [(e.call_id, e.agent_id) for e in events if isinstance(e, ev.CallOffered)] == [("second", "a")]
    acd.advance(30)  # a misses again: two misses -> on break
    events = acd.drain()
    assert ev.AgentStatusChanged(30, "a", "on_break", "no_answer", "available") in events
    assert acd.agents["a"].status == "on_break" and acd.waiting("repair") == 2
    login(acd, "b", at=31)
    assert offers(acd) == [("first", "b")]


def test_declining_rings_the_next_agent_without_counting_a_miss():
    acd = make(QueueConfig("repair", max_no_answer=1), agents=[("a", {"repair": 3}), ("b", {"repair": 3})])
    login(acd, "a", "b")
    acd.drain()
    acd.enqueue("c", "repair", 0)
    assert offers(acd) == [("c", "a")]
    acd.ring_no_answer("c", "a", 2, counts=False)
    events = acd.drain()
    assert ev.RingNoAnswer(2, "c", "repair", "a", 2, declined=True) in events
    assert ev.CallOffered(2, "c", "repair", "b") in events and acd.agents["a"].status == "available"


def test_owner_of_an_open_work_order_is_offered_first_then_anyone():
    acd = make(QueueConfig("repair", owner_wait_s=30), agents=[("owner", {"repair": 3}), ("other", {"repair": 3})])
    login(acd, "other", "owner")
    acd.drain()
    acd.enqueue("c1", "repair", 0, owner="owner")
    assert offers(acd) == [("c1", "owner")]
    acd.answer("c1", "owner", 1)
    acd.enqueue("c2", "repair", 2, owner="owner")   # the owner is busy: wait for them up to 30 s
    assert offers(acd) == []
    acd.advance(32)
    assert offers(acd) == [("c2", "other")]
    # An owner who is not logged in does not hold anyone up.
    acd2 = make(agents=[("owner", {"repair": 3}), ("other", {"repair": 3})])
    login(acd2, "other")
    acd2.drain()
    acd2.enqueue("c", "repair", 0, owner="owner")
    assert offers(acd2) == [("c", "other")]


def test_callback_keeps_the_place_and_asks_for_an_outbound_call():
    acd = make(agents=[("a", {"repair": 3})])
    acd.enqueue("c1", "repair", 0, number="+85291234567")
    acd.enqueue("c2", "repair", 1)
    acd.accept_callback("c1", 5)
    assert ev.CallbackAccepted(5, "c1", "repair", "+85291234567") in acd.drain()
    assert [c.id for c in acd.waiting_calls("repair")] == ["c1", "c2"]
    login(acd, "a", at=10)
    events = acd.drain()
    assert ev.CallbackDue(10, "c1", "repair", "a", "+85291234567") in events
    assert not any(isinstance(e, ev.CallOffered) for e in events)


def test_full_queue_overflows_or_goes_to_voicemail():
    acd = make(QueueConfig("repair", max_length=1, on_full="overflow:general"),
               QueueConfig("general", max_length=1, on_full="voicemail"))
    acd.enqueue("c1", "repair", 0)
    acd.enqueue("c2", "repair", 1)
    acd.enqueue("c3", "repair", 2)
    events = acd.drain()
    assert ev.CallRejectedFull(1, "c2", "repair", "overflow:general") in events
    assert ev.CallQueued(1, "c2", "general", 1, "", "normal") in events
    assert ev.CallToVoicemail(2, "c3", "general", 0) in events
    assert acd.waiting("repair") == acd.waiting("general") == 1 and "c3" not in acd.calls


def test_overflow_loops_end_in_voicemail():
    acd = make(QueueConfig("a", max_length=0, on_full="overflow:b"), QueueConfig("b", max_length=0, on_full="overflow:a"))
    acd.enqueue("c", "a", 0)
    assert isinstance(acd.drain()[-1], ev.CallToVoicemail)


def test_max_wait_actions():
    acd = make(QueueConfig("repair", max_wait_s=60, on_max_wait="overflow:general"),
               QueueConfig("general", max_wait_s=30, on_max_wait="voicemail"),
               QueueConfig("billing", max_wait_s=10, on_max_wait="callback"))
    acd.enqueue("c", "repair", 0)
    acd.enqueue("b", "billing", 0, number="+852")
    acd.advance(60)
    events = acd.drain()
    assert ev.CallTimedOut(60, "c", "repair", 1, 1, 60, "overflow:general") in events
    assert ev.CallbackOffered(10, "b", "billing") in events and acd.waiting("billing") == 1
    acd.advance(90)
    assert ev.CallToVoicemail(90, "c", "general", 90) in acd.drain()


def test_wrap_up_timer_and_early_end():
    acd = make(QueueConfig("repair", wrap_up_s=30), agents=[("a", {"repair": 3})])
    login(acd, "a")
    acd.enqueue("c1", "repair", 0)
    acd.answer("c1", "a", 1)
    acd.hold("c1", 10)
    acd.unhold("c1", 25)
    acd.hangup("c1", 100, by="agent")
    events = acd.drain()
    # talk and hold apart: 99 s connected, 15 on hold, 84 talking
    assert ev.CallCompleted(100, "c1", "repair", "a", "agent", 1, 84, 15, 1, 30) in events
    assert acd.agents["a"].state == "wrap_up"
    acd.enqueue("c2", "repair", 110)
    assert offers(acd) == []
    acd.advance(130)
    assert offers(acd) == [("c2", "a")]
    acd.answer("c2", "a", 131)
    acd.hangup("c2", 140)
    acd.end_wrap_up("a", 141)
    assert acd.agents["a"].state == "idle"
    with pytest.raises(AcdError, match="not in wrap-up"):
        acd.end_wrap_up("a", 142)


def test_ring_all_and_abandon_while_ringing():
    acd = make(QueueConfig("repair", strategy="ring_all"), agents=[(x, {"repair": 3}) for x in "abc"])
    login(acd, *"abc")
    acd.drain()
    acd.enqueue("c1", "repair", 0)
    assert sorted(offers(acd)) == [("c1", "a"), ("c1", "b"), ("c1", "c")]
    acd.answer("c1", "b", 3)
    events = acd.drain()
    assert {e.agent_id for e in events if isinstance(e, ev.CallOfferWithdrawn)} == {"a", "c"}
    acd.enqueue("c2", "repair", 4)
    acd.drain()
    acd.abandon("c2", 6)
    events = acd.drain()
    assert ev.CallAbandoned(6, "c2", "repair", 1, 1, 2) in events
    assert {e.agent_id for e in events if isinstance(e, ev.CallOfferWithdrawn)} == {"a", "c"}


def test_abandon_reports_position_and_wait():
    acd = make()
    for n in range(3):
        acd.enqueue(f"c{n}", "repair", n)
    acd.abandon("c1", 50)
    assert acd.drain()[-1] == ev.CallAbandoned(50, "c1", "repair", 2, 2, 49)


def test_bad_requests_are_refused():
    acd = make(agents=[("a", {"repair": 3})])
    acd.enqueue("c", "repair", 0)
    for call, message in ((lambda: acd.enqueue("c", "repair", 1), "already"),
                          (lambda: acd.enqueue("d", "plumbing", 1), "unknown queue"),
                          (lambda: acd.enqueue("d", "repair", 1, priority="gold"), "unknown priority"),
                          (lambda: acd.answer("c", "a", 1), "not ringing"),
                          (lambda: acd.answer("zz", "a", 1), "unknown call"),
                          (lambda: acd.set_status("zz", "available", 1), "unknown agent"),
                          (lambda: acd.set_status("a", "asleep", 1), "unknown status")):
        with pytest.raises(AcdError, match=message):
            call()
    with pytest.raises(ValueError, match="unknown strategy"):
        QueueConfig("x", strategy="fastest")
    with pytest.raises(ValueError, match="overflow to unknown queue"):
        Acd([QueueConfig("x", on_full="overflow:nowhere")])


def test_queue_log_lines_in_asterisk_field_order():
    acd = make(agents=[("1001", {"repair": 3})])
    acd.set_status("1001", "available", 1700000000)
    acd.enqueue("1700000001.5", "repair", 1700000001, number="+85291234567")
    acd.answer("1700000001.5", "1001", 1700000004)
    acd.hangup("1700000001.5", 1700000124)
    acd.set_status("1001", "on_break", 1700000130, reason="lunch")
    acd.set_status("1001", "available", 1700000200)
    acd.enqueue("x", "repair", 1700000300)
    lines = [format_line(row) for e in acd.drain() for row in rows_for(e)]
    assert lines[:7] == [
        "1700000000|NONE|NONE|Agent/1001|AGENTLOGIN",
        "1700000001|1700000001.5|repair|NONE|ENTERQUEUE||+85291234567|1",
        "1700000004|1700000001.5|repair|Agent/1001|CONNECT|3|1700000001.5|3",
        "1700000124|1700000001.5|repair|Agent/1001|COMPLETECALLER|3|120|1",
        "1700000130|NONE|NONE|Agent/1001|PAUSE|lunch",
        "1700000200|NONE|NONE|Agent/1001|UNPAUSE",
        "1700000300|x|repair|NONE|ENTERQUEUE|||1",
    ]
    assert format_line(rows_for(ev.CallAbandoned(5, "x", "q", 2, 3, 41.6))[0]) == "5|x|q|NONE|ABANDON|2|3|42"
    assert format_line(rows_for(ev.RingNoAnswer(5, "x", "q", "1001", 15.2))[0]) == "5|x|q|Agent/1001|RINGNOANSWER|15200"
    assert format_line(rows_for(ev.CallTimedOut(5, "x", "q", 1, 2, 600, "voicemail"))[0]) == "5|x|q|NONE|EXITWITHTIMEOUT|1|2|600"


def test_an_agent_who_let_a_call_ring_out_gets_it_again_after_the_retry_pause():
    acd = make(QueueConfig("repair", max_no_answer=5), agents=[("a", {"repair": 3})])
    login(acd, "a")
    acd.enqueue("c", "repair", 0)
    acd.drain()
    acd.ring_no_answer("c", "a", 10)
    assert offers(acd) == []
    acd.advance(14.9)
    assert offers(acd) == []
    acd.advance(15)
    assert offers(acd) == [("c", "a")]


def test_agent_state_is_implied_by_call_events():
    acd = make(QueueConfig("repair", wrap_up_s=10), agents=[("a", {"repair": 3})])
    login(acd, "a")
    acd.enqueue("c", "repair", 0)
    acd.answer("c", "a", 1)
    acd.hold("c", 2)
    acd.unhold("c", 3)
    acd.hangup("c", 9)
    acd.advance(19)
    states = [s for e in acd.drain() if (s := ev.agent_state_after(e))]
    assert states == [("a", "ringing"), ("a", "in_call"), ("a", "on_hold"), ("a", "in_call"), ("a", "wrap_up"),
                      ("a", "idle")]


def test_an_unreachable_agent_is_not_offered_and_is_offered_at_once_when_reachable():
    acd = make(agents=[("a", {"repair": 3}), ("b", {"repair": 3})])
    acd.set_reachable("a", False, 0)
    login(acd, "a", "b")
    acd.enqueue("c1", "repair", 1)
    assert offers(acd) == [("c1", "b")]          # a is available but has no phone
    acd.enqueue("c2", "repair", 2)
    assert offers(acd) == []                      # waits rather than ring nobody
    acd.set_reachable("a", True, 3)
    assert offers(acd) == [("c2", "a")]
    assert acd.agents["a"].status == "available"  # reachability never touches the status
    acd.answer("c2", "a", 4)
    acd.set_reachable("a", False, 5)              # the call in progress goes on
    acd.hangup("c2", 6, wrap_up_s=0)
    acd.enqueue("c3", "repair", 7)
    assert offers(acd) == []


def test_a_caller_whose_agent_vanishes_mid_call_goes_back_to_the_head_of_the_queue():
    acd = make(QueueConfig("repair", max_wait_s=100, wrap_up_s=30, ring_timeout_s=300),
               agents=[("a1", {"repair": 3}), ("a2", {"repair": 3})])
    acd.set_status("a1", "available", 0)
    acd.enqueue("c1", "repair", 1)
    acd.answer("c1", "a1", 2)
    acd.enqueue("c2", "repair", 3)       # waits: nobody else is available yet
    acd.enqueue("c3", "repair", 4, priority="emergency")
    acd.hold("c1", 50)
    acd.drain()
    acd.lose_agent("a1", 60)
    events = acd.drain()
    assert events == [ev.CallRequeued(60, "c1", "repair", "a1", 48, 10)]   # 48 s talking, then 10 on hold
    assert [c.id for c in acd.waiting_calls("repair")] == ["c1", "c3", "c2"]   # ahead of even an emergency
    assert ev.agent_state_after(events[0]) == ("a1", "idle")
    acd.set_status("a2", "available", 61)
    assert offers(acd) == [("c1", "a2")]                # the lost seat is not offered anything
    acd.advance(150)                                    # past c1's old max wait: it is no longer counted
    assert "c1" in acd.calls and not any(isinstance(e, ev.CallTimedOut) and e.call_id == "c1" for e in acd.drain())
    acd.answer("c1", "a2", 151)
    acd.hangup("c1", 171)
    completed = [e for e in acd.drain() if isinstance(e, ev.CallCompleted)]
    # the second agent's part alone (the first part's talk and hold came with CallRequeued)
    assert completed == [ev.CallCompleted(171, "c1", "repair", "a2", "caller", 1, 20, 0, 1, 30)]   # its wait: the first
    assert format_line(rows_for(events[0])[0]) == "60|c1|repair|Agent/a1|INFO|REQUEUE|48|10"


def test_a_ringing_seat_that_vanishes_passes_the_call_on_without_a_miss():
    acd = make(QueueConfig("repair"), agents=[("a1", {"repair": 3}), ("a2", {"repair": 3})])
    acd.set_status("a1", "available", 0)
    acd.enqueue("c1", "repair", 1)
    acd.drain()
    acd.set_status("a2", "available", 2)
    acd.lose_agent("a1", 3)
    events = acd.drain()
    assert ev.RingNoAnswer(3, "c1", "repair", "a1", 2, declined=True) in events and ev.CallOffered(3, "c1", "repair", "a2") in events
    assert acd.agents["a1"].missed == 0 and acd.agents["a1"].status == "available"
    acd.set_reachable("a1", True, 4)                    # re-registered: offered calls again
    acd.enqueue("c2", "repair", 5)
    assert offers(acd) == [("c2", "a1")]


def test_a_blind_transfer_to_a_queue_serves_the_caller_ahead_of_later_callers_and_wraps_the_agent_up():
    acd = make(QueueConfig("repair", wrap_up_s=30), QueueConfig("billing"),
               agents=[("a", {"repair": 3}), ("b", {"billing": 3})])
    login(acd, "a")
    acd.enqueue("c1", "repair", 0)
    acd.answer("c1", "a", 2)
    acd.enqueue("later", "billing", 50)      # nobody for billing yet
    acd.drain()
    acd.transfer("c1", 62, queue="billing")
    events = acd.drain()
    [moved] = [e for e in events if isinstance(e, ev.CallTransferred)]
    assert (moved.agent_id, moved.target, moved.talk_s, moved.wait_s, moved.wrap_up_s) == ("a", "billing", 60, 2, 30)
    assert acd.agents["a"].state == "wrap_up" and acd.agents["a"].calls == 1
    assert [c.id for c in acd.waiting_calls("billing")] == ["c1", "later"]   # waiting since 0, not 62
    assert format_line(rows_for(moved)[0]).endswith("|c1|repair|Agent/a|BLINDTRANSFER|billing|hotline|2|60|1")
    login(acd, "b", at=70)
    assert offers(acd) == [("c1", "b")]
    acd.answer("c1", "b", 72)
    # found using the demo: the second answer's wait counted a's talk (72 s from the start);
    # it waited 10 s since the transfer, and the contact's wait stays its first, 2 s
    [second] = [e for e in acd.drain() if isinstance(e, ev.CallConnected)]
    assert second.wait_s == 10
    acd.hangup("c1", 100)
    [done] = [e for e in acd.drain() if isinstance(e, ev.CallCompleted)]
    assert (done.agent_id, done.talk_s, done.wait_s) == ("b", 28, 2)


def test_a_transfer_to_a_free_agent_rings_only_them_and_goes_back_to_the_queue_if_they_do_not_answer():
    acd = make(QueueConfig("repair", wrap_up_s=0), agents=[("a", {"repair": 3}), ("b", {"billing": 3}),
                                                           ("c", {"repair": 3})])
    login(acd, "a", "b")
    acd.enqueue("c1", "repair", 0)
    acd.answer("c1", "a", 1)
    with pytest.raises(AcdError, match=r"extension c is not free to take a call \(logged out\): transfer to their queue"):
        acd.transfer("c1", 5, to_agent="c")             # logged out
    with pytest.raises(AcdError, match="already on the call"):
        acd.transfer("c1", 5, to_agent="a")
    acd.drain()
    acd.transfer("c1", 10, to_agent="b")                # b has no repair skill: a direct transfer needs none
    assert offers(acd) == [("c1", "b")]
    assert acd.agents["a"].state == "idle"              # no wrap-up in this queue
    acd.ring_no_answer("c1", "b", 25)
    assert offers(acd) == [("c1", "a")]                 # back in repair, where a is free
    with pytest.raises(AcdError, match="not connected"):
        acd.transfer("c1", 26, queue="repair")


def test_wrap_up_can_be_extended_once():
    acd = make(QueueConfig("repair", wrap_up_s=30), agents=[("a", {"repair": 3})])
    login(acd, "a")
    acd.enqueue("c1", "repair", 0)
    acd.answer("c1", "a", 1)
    acd.hangup("c1", 10)
    acd.drain()
    with pytest.raises(AcdError, match="1 to 300"):
        acd.extend_wrap_up("a", 0, 20)
    assert acd.extend_wrap_up("a", 60, 20) == 100       # the end moves from 40 to 100
    with pytest.raises(AcdError, match="already extended"):
        acd.extend_wrap_up("a", 60, 21)
    acd.enqueue("c2", "repair", 41)
    acd.advance(41)
    assert offers(acd) == []                            # the old end (40) no longer counts
    acd.advance(100)
    assert offers(acd) == [("c2", "a")]
    acd.answer("c2", "a", 101)
    acd.hangup("c2", 110)
    assert acd.extend_wrap_up("a", 10, 111) == 150      # a new wrap-up: once again


def test_an_agent_dialling_out_is_offered_nothing_until_the_call_ends():
    acd = make(QueueConfig("repair", wrap_up_s=30), agents=[("a", {"repair": 3})])
    login(acd, "a")
    acd.start_outbound("a", 5)
    acd.enqueue("c1", "repair", 6)
    assert offers(acd) == []
    with pytest.raises(AcdError, match="in call: no outbound"):
        acd.start_outbound("a", 7)
    acd.end_outbound("a", 60, wrap_up_s=20)
    assert acd.agents["a"].state == "wrap_up" and offers(acd) == []
    acd.start_outbound("a", 61)          # a second callback from wrap-up
    acd.end_outbound("a", 90)
    assert offers(acd) == [("c1", "a")]
    with pytest.raises(AcdError, match="not on an outbound call"):
        acd.end_outbound("a", 91)


def test_a_transfer_to_an_outside_number_takes_the_call_out_of_the_acd():
    acd = make(QueueConfig("repair", wrap_up_s=30), agents=[("a", {"repair": 3})])
    login(acd, "a")
    acd.enqueue("c1", "repair", 0)
    acd.answer("c1", "a", 1)
    with pytest.raises(AcdError, match="one queue, agent or outside number"):
        acd.transfer("c1", 5, queue="repair", outside="+85290000000")
    acd.drain()
    acd.transfer("c1", 11, outside="+85290000000")
    [moved] = [e for e in acd.drain() if isinstance(e, ev.CallTransferred)]
    assert moved.target == "number:+85290000000" and moved.talk_s == 10
    assert "c1" not in acd.calls and acd.agents["a"].state == "wrap_up"


def test_a_break_past_its_reasons_limit_is_flagged_once_and_a_new_break_starts_over():
    acd = Acd([QueueConfig("repair")], break_limits={"lunch": 3600, "personal": 900})
    acd.add_agent("a", {"repair": 3})
    acd.set_status("a", "on_break", 0, "lunch")
    acd.drain()
    acd.advance(3599)
    assert acd.drain() == []
    acd.advance(3600)
    assert acd.drain() == [ev.BreakOverrun(3600, "a", "lunch", 3600)]
    assert format_line(rows_for(ev.BreakOverrun(3600, "a", "lunch", 3600))[0]) == "3600|NONE|NONE|Agent/a|INFO|BREAKLIMIT|lunch|3600"
    acd.set_status("a", "available", 4000)
    acd.set_status("a", "on_break", 5000, "personal")
    acd.set_status("a", "available", 5500)          # back in time: nothing to flag
    acd.advance(7000)
    assert not any(isinstance(e, ev.BreakOverrun) for e in acd.drain())
    acd.set_status("a", "on_break", 8000, "training")   # a reason without a limit
    acd.advance(100000)
    assert not any(isinstance(e, ev.BreakOverrun) for e in acd.drain())


def test_a_supervisor_moves_a_waiting_caller_to_another_queue_where_they_keep_their_place():
    acd = make(QueueConfig("repair"), QueueConfig("billing"), agents=[("a", {"repair": 3}), ("b", {"billing": 3})])
    login(acd, "a")
    acd.enqueue("c0", "repair", 0)
    acd.answer("c0", "a", 1)                     # a is busy: c1 waits in repair
    acd.enqueue("c1", "repair", 2)
    acd.enqueue("later", "billing", 5)
    acd.drain()
    with pytest.raises(AcdError, match="already in repair"):
        acd.move("c1", "repair", 6)
    with pytest.raises(AcdError, match="unknown queue"):
        acd.move("c1", "lifts", 6)
    with pytest.raises(AcdError, match="not waiting"):
        acd.move("c0", "billing", 6)
    acd.move("c1", "billing", 6)
    [queued] = [e for e in acd.drain() if isinstance(e, ev.CallQueued)]
    assert (queued.call_id, queued.queue) == ("c1", "billing")
    assert [c.id for c in acd.waiting_calls("billing")] == ["c1", "later"]   # by arrival: 2 before 5
    login(acd, "b", at=7)
    assert offers(acd) == [("c1", "b")]
    acd.move("c1", "repair", 8)                  # ringing at b: the ring is withdrawn
    assert any(isinstance(e, ev.CallOfferWithdrawn) and e.agent_id == "b" for e in acd.drain())
    assert [c.id for c in acd.waiting_calls("repair")] == ["c1"]


def test_finished_calls_leave_no_timers_behind():
    """Timers are skipped, not removed, when their call finishes: a finished call's ring,
    max-wait and wrap-up timers stayed in the heap (holding the call) until their time,
    so at 125 calls/s and a 10-minute max wait the switch's memory grew for ten minutes of
    a soak. 10,000 calls at 20 a second now leave at most a couple of thousand entries,
    and the core does the same (the same events as with every timer kept)."""
    agents = [f"a{i}" for i in range(200)]   # 7 s a call with wrap-up: none waits

    def burst(keep_stale_timers: bool):
        acd = make(QueueConfig("repair", max_wait_s=600, wrap_up_s=5), agents=[(x, {"repair": 3}) for x in agents])
        if keep_stale_timers:
            acd._compact_timers_at = 10**9
        login(acd, *agents)
        seen, most = [], 0
        for n in range(10_000):
            t = n * 0.05
            acd.advance(t)
            acd.enqueue(f"c{n}", "repair", t)
            events = acd.drain()
            [offer] = [e for e in events if isinstance(e, ev.CallOffered)]
            acd.answer(offer.call_id, offer.agent_id, t + 0.01)
            acd.hangup(offer.call_id, t + 2)
            seen += [repr(e) for e in events + acd.drain()]
            most = max(most, len(acd._timers))
        return seen, most
    seen, most = burst(keep_stale_timers=False)
    kept_seen, kept_most = burst(keep_stale_timers=True)
    assert seen == kept_seen
    assert kept_most > 10_000 and most <= 2_100   # a call's ring and max-wait timers, and a wrap-up's
