"""Erlang B, C and A: the formulas the simulator is checked against.

Notation: arrival rate lam (calls/s), mean handle time aht (s), N agents, offered load
A = lam * aht Erlangs, service-level threshold T (s), mean patience (s) for Erlang A.

Erlang A (M/M/N+M, Palm's model with exponential patience) is computed exactly on the
birth-death chain rather than with the closed forms in incomplete gamma functions:
the stationary distribution is a product of rates, and the waiting time of a caller
who finds k others queued is a sum of exponential stages (served-or-abandoned ahead of
them) raced against their own patience. The service-level integral uses uniformization
of that pure-death chain, which stays stable where the textbook hypoexponential sum
cancels catastrophically (long queues, small patience).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def erlang_b(servers: int, load: float) -> float:
    """Blocking probability of M/M/N/N (the stable recursion)."""
    if servers < 0 or load < 0:
        raise ValueError("servers and load must be non-negative")
    b = 1.0
    for n in range(1, servers + 1):
        b = load * b / (n + load * b)
    return b


@dataclass(frozen=True)
class QueueMetrics:
    p_wait: float
    p_abandon: float
    asa_s: float                  # mean wait of answered calls
    asa_all_s: float              # mean wait over all offered calls (answered or not)
    sl_over_offered: float        # answered within T / offered
    sl_over_answered: float       # answered within T / answered
    occupancy: float              # busy agents / agents


def erlang_c(servers: int, rate: float, aht: float, threshold_s: float) -> QueueMetrics:
    """M/M/N: callers wait forever. Needs load < servers."""
    load = rate * aht
    if load >= servers:
        raise ValueError(f"Erlang C needs load < agents (load {load:.3f} Erlangs, {servers} agents)")
    b = erlang_b(servers, load)
    p_wait = servers * b / (servers - load * (1 - b))
    drain = servers / aht - rate  # rate at which the queue empties
    asa = p_wait / drain
    sl = 1 - p_wait * math.exp(-drain * threshold_s)
    return QueueMetrics(p_wait, 0.0, asa, asa, sl, sl, load / servers)


def erlang_a(servers: int, rate: float, aht: float, patience_s: float, threshold_s: float,
             tail: float = 1e-15) -> QueueMetrics:
    """M/M/N+M: exponential patience with mean `patience_s`; any load."""
    if servers < 1 or rate <= 0 or aht <= 0 or patience_s <= 0:
        raise ValueError("Erlang A needs at least one agent and positive rate, handle time and patience")
    mu, theta = 1.0 / aht, 1.0 / patience_s
    # Unnormalised stationary probabilities, grown until the tail is negligible.
    probs = [1.0]
    for n in range(1, servers + 1):
        probs.append(probs[-1] * rate / (n * mu))
    queue = []  # probs of n = servers + 1, servers + 2, ...
    last = probs[-1]
    j = 0
    while True:
        j += 1
        last = last * rate / (servers * mu + j * theta)
        queue.append(last)
        if last < tail * sum(probs) and j > 10:
            break
    total = sum(probs) + sum(queue)
    # A caller arriving in state n >= N finds k = n - N + 1 ahead-or-equal stages to clear.
    arriving_wait = [probs[servers] / total] + [q / total for q in queue]  # index k-1
    p_wait = sum(arriving_wait)

    stage_rates = [servers * mu + m * theta for m in range(len(arriving_wait))]
    answered_given, mean_wait_answered = [], []
    laplace, sum_inv = 1.0, 0.0
    for k in range(len(arriving_wait)):
        r = stage_rates[k]
        laplace *= r / (r + theta)          # P(V < own patience) with k+1 stages
        sum_inv += 1.0 / (r + theta)        # d/ds log of the Laplace transform
        answered_given.append(laplace)
        mean_wait_answered.append(laplace * sum_inv)   # E[V; V < patience]
    p_answered_after_wait = sum(p * a for p, a in zip(arriving_wait, answered_given))
    p_abandon = p_wait - p_answered_after_wait
    p_answered = 1 - p_abandon
    asa = sum(p * w for p, w in zip(arriving_wait, mean_wait_answered)) / p_answered
    # Mean wait of all offered callers: min(V, patience) has mean (1 - LT)/theta.
    asa_all = sum(p * (1 - a) / theta for p, a in zip(arriving_wait, answered_given))
    within = (1 - p_wait) + _answered_within(arriving_wait, stage_rates, theta, threshold_s)
    busy = sum(min(n, servers) * p for n, p in enumerate(probs)) / total + servers * sum(queue) / total
    return QueueMetrics(p_wait, p_abandon, asa, asa_all, within, within / p_answered, busy / servers)


def _answered_within(start: list[float], stage_rates: list[float], theta: float, horizon: float) -> float:
    """P(a waiting caller is answered within `horizon`), by uniformization.

    State k = stages still to clear (k+1 means k callers ahead plus the head move).
    From state k the caller moves to k-1 at stage_rates[k] and abandons at theta;
    state -1 is "answered".
    """
    size = len(start)
    uniform = max(stage_rates) + theta
    steps_mean = uniform * horizon
    vector = list(start)
    answered = 0.0
    weight = math.exp(-steps_mean)   # Poisson(0; steps_mean)
    result = 0.0
    n = 0
    # Sum over Poisson-many jumps of the uniformized chain until the weight is spent.
    cumulative = weight
    result += weight * answered
    while cumulative < 1 - 1e-14 or n < steps_mean:
        n += 1
        moved = [0.0] * size
        for k in range(size):
            mass = vector[k]
            if mass == 0.0:
                continue
            go = stage_rates[k] / uniform
            stay = 1 - go - theta / uniform
            moved[k] += mass * stay
            if k == 0:
                answered += mass * go
            else:
                moved[k - 1] += mass * go
        vector = moved
        weight *= steps_mean / n
        cumulative += weight
        result += weight * answered
        if n > 100000:
            raise ArithmeticError("uniformization did not converge")
    return result


def agents_for_service_level(rate: float, aht: float, threshold_s: float, target: float,
                             patience_s: float | None = None) -> int:
    """The fewest agents that reach `target` answered-within-T over offered."""
    servers = max(1, math.floor(rate * aht) + (0 if patience_s else 1))
    while True:
        if patience_s:
            metrics = erlang_a(servers, rate, aht, patience_s, threshold_s)
        else:
            metrics = erlang_c(servers, rate, aht, threshold_s)
        if metrics.sl_over_offered >= target:
            return servers
        servers += 1


def healthy_rate(servers: int, aht: float, patience_s: float, threshold_s: float, *, sl_target: float = 0.8,
                 abandon_max: float = 0.05) -> float:
    """The most calls a second `servers` agents take while keeping the service level at or
    above `sl_target` (answered within T over offered) and abandons under `abandon_max`
    (Erlang A, found by bisection: both only worsen as the rate grows)."""
    def healthy(rate: float) -> bool:
        metrics = erlang_a(servers, rate, aht, patience_s, threshold_s)
        return metrics.sl_over_offered >= sl_target and metrics.p_abandon < abandon_max

    low, high = 0.0, servers / aht   # at full load neither target holds
    for _ in range(40):
        middle = (low + high) / 2
        if healthy(middle):
            low = middle
        else:
            high = middle
    return low
