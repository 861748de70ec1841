"""Which media node a new call is anchored on (telephony/media.py MediaPool): drawn by
weight among the nodes that answer; none answering is said, not guessed."""
import random

import pytest

from telephony.media import MediaPool


class Node:
    """A media engine as the pool sees it: a name, a weight, whether it answers."""

    def __init__(self, name, weight, up=True):
        self.name, self.weight, self.up, self.control = name, weight, up, f"udp:127.0.0.1:{name}"
        self._dtmf_listeners = {}


def draws(pool, n=4000):
    counts = {}
    for _ in range(n):
        name = pool.choose().name
        counts[name] = counts.get(name, 0) + 1
    return counts


def test_new_calls_are_shared_by_weight():
    pool = MediaPool([Node("a", 3), Node("b", 1)], rng=random.Random(7).random)
    counts = draws(pool)
    assert 0.72 < counts["a"] / 4000 < 0.78 and counts["a"] + counts["b"] == 4000


def test_a_node_that_does_not_answer_takes_no_calls_and_takes_them_again_when_back():
    a, b, c = Node("a", 1), Node("b", 1), Node("c", 2)
    pool = MediaPool([a, b, c], rng=random.Random(1).random)
    b.up = False
    counts = draws(pool, 3000)
    assert "b" not in counts and 0.63 < counts["c"] / 3000 < 0.70
    b.up = True
    assert draws(pool, 3000).get("b", 0) > 600


def test_no_node_answering_is_an_error_the_call_can_act_on():
    pool = MediaPool([Node("a", 1, up=False)])
    with pytest.raises(RuntimeError, match="no media node answers"):
        pool.choose()


def test_the_nodes_share_one_table_of_key_listeners():
    a, b = Node("a", 1), Node("b", 1)
    pool = MediaPool([a, b])
    assert a._dtmf_listeners is pool.listeners and b._dtmf_listeners is pool.listeners
    assert not pool.embedded
