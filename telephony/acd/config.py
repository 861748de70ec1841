"""Queue and routing settings: plain frozen values, validated where they are built."""

from __future__ import annotations

from dataclasses import dataclass, field

CALL_TYPES = ("repair", "complaint", "billing", "enquiry", "emergency", "general")
PRIORITIES = ("normal", "vip", "emergency")
STRATEGIES = ("longest_idle", "round_robin", "fewest_calls", "least_talk_time", "random", "ring_all")
# What happens to a caller when the queue is full or they waited max_wait_s:
# "voicemail", "callback" (offer one; the caller stays if they decline), "overflow:QUEUE".
EXIT_ACTIONS = ("voicemail", "callback", "overflow")


@dataclass(frozen=True)
class Tier:
    """From `after_s` of waiting, agents with one of `skills` at `min_proficiency` or more qualify.

    The FreeSWITCH tier / Asterisk penalty-rule idea: a queue starts with its best
    agents and widens to more (or other) agents as the caller waits.
    """
    after_s: float
    skills: frozenset[str]
    min_proficiency: int = 1


@dataclass(frozen=True)
class QueueConfig:
    name: str
    tiers: tuple[Tier, ...] = ()
    strategy: str = "longest_idle"
    sl_threshold_s: float = 15.0   # the trade's standard: answered within three rings
    sl_target: float = 0.8
    max_length: int | None = None
    max_wait_s: float | None = None
    on_full: str = "voicemail"
    on_max_wait: str = "voicemail"
    ring_timeout_s: float = 15.0
    max_no_answer: int = 3
    wrap_up_s: float = 0.0
    owner_wait_s: float = 30.0
    # Priority as a head start in seconds: ordering is by (entered - credit), so an
    # emergency goes first, a VIP soon, and a normal caller who has waited longer than
    # the difference still goes ahead: nobody starves, and the order never needs
    # re-sorting as time passes.
    priority_credit_s: dict[str, float] = field(
        default_factory=lambda: {"normal": 0.0, "vip": 120.0, "emergency": 3600.0})

    def __post_init__(self):
        if not self.tiers:
            object.__setattr__(self, "tiers", (Tier(0.0, frozenset({self.name})),))
        problems = self.problems()
        if problems:
            raise ValueError(f"queue {self.name}: " + "; ".join(problems))

    def problems(self) -> list[str]:
        out = []
        if self.strategy not in STRATEGIES:
            out.append(f"unknown strategy '{self.strategy}' (expected one of: {', '.join(STRATEGIES)})")
        for key in ("on_full", "on_max_wait"):
            action = getattr(self, key)
            if action.split(":", 1)[0] not in EXIT_ACTIONS or (action.startswith("overflow") and ":" not in action):
                out.append(f"{key}: expected voicemail, callback or overflow:QUEUE, got '{action}'")
        if sorted(t.after_s for t in self.tiers) != [t.after_s for t in self.tiers] or self.tiers[0].after_s != 0:
            out.append("tiers must start at after_s 0 and grow")
        for priority in PRIORITIES:
            if priority not in self.priority_credit_s:
                out.append(f"priority_credit_s needs '{priority}'")
        return out
