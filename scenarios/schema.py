"""Scenario files: YAML in, a validated Scenario out, or an error naming file, line and key.

The short stationary form (name, seed, calls, arrivals.rate_per_hour, handle_time,
patience, agents.count, service_level.threshold_s) is accepted exactly as QA writes it;
everything else has defaults. The README's "Scenario format" section documents every key.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from siteconfig.durations import WorkingDays, parse_duration
from siteconfig.yamlsource import Document, load_file, load_text
from siteconfig.yamlsource import number as _number
from telephony.acd.config import CALL_TYPES, STRATEGIES, QueueConfig
from telephony.queue_settings import QUEUE_KEYS, queue_from_yaml

DISTRIBUTIONS = ("exponential", "lognormal", "fixed", "none")
METRICS = ("service_level", "service_level_answered", "abandon_rate", "asa_s", "p_wait", "occupancy",
           "aht_s", "talk_s", "max_queue", "longest_wait_s", "offered", "answered", "abandoned",
           "timed_out", "voicemail")
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
_EXPECT = re.compile(r"^\s*(?:(queues|priorities)\.([a-z_]+)\.)?([a-z_]+)\s*(>=|<=|==|>|<)\s*(-?[0-9.]+)\s*$")
PRIORITIES = ("emergency", "vip", "normal")


@dataclass(frozen=True)
class Dist:
    kind: str
    mean_s: float = 0.0
    sd_s: float | None = None


@dataclass(frozen=True)
class Burst:
    at_s: float
    for_s: float
    factor: float
    mix: dict[str, float] | None
    label: str


@dataclass(frozen=True)
class AgentGroup:
    name: str
    count: int
    skills: dict[str, int]
    shift: tuple[float, float] | None        # seconds from the start (login, logout)
    breaks: tuple[tuple[float, float, str], ...]  # (start, end, reason)
    rostered: int = 0    # on the rota; `count` of them turn up (0: all of them)


@dataclass(frozen=True)
class Expectation:
    text: str
    queue: str | None
    metric: str
    op: str
    value: float
    line: int | None

    group: str = "queues"    # what `queue` names: a queue, or a priority ("priorities.vip.asa_s")

    def check(self, report: dict) -> tuple[bool, float]:
        source = report.get(self.group, {}).get(self.queue, {}) if self.queue else report
        if not source:
            return False, float("nan")
        if self.metric == "service_level":
            actual = source["service_level"]["answered_within_over_offered"]
        elif self.metric == "service_level_answered":
            actual = source["service_level"]["answered_within_over_answered"]
        else:
            actual = source[self.metric]
        actual = float(actual)   # a count is an int interpreted and a float compiled: one type in the report
        return _OPS[self.op](actual, self.value), actual


@dataclass(frozen=True)
class Scenario:
    name: str
    source: str
    seed: int
    calls: int | None
    horizon_s: float | None
    start: float                      # epoch of virtual time 0
    timezone: str
    interval_s: float
    segments: tuple[tuple[float, float], ...]   # (from_s, calls per second), piecewise constant
    bursts: tuple[Burst, ...]
    mix: dict[str, float]
    vip_share: float
    known_share: float
    repeat_share: float
    patience: Dist
    handle_time: dict[str, Dist]      # per call type, "default" for the rest
    wrap_up: dict[str, Dist]
    groups: tuple[AgentGroup, ...]
    queues: tuple[QueueConfig, ...]
    ring_time_s: float
    no_answer_share: float
    callback_accept_share: float
    threshold_s: float
    sl_target: float
    expect: tuple[Expectation, ...] = field(default=())
    description: str = ""

    def dist_for(self, table: dict[str, Dist], call_type: str) -> Dist:
        return table.get(call_type) or table["default"]


_TOP = ("name", "description", "seed", "calls", "horizon", "start", "timezone", "interval", "arrivals", "mix",
        "patience", "handle_time", "wrap_up", "agents", "routing", "service_level", "expect")


def load_scenario(path: str | Path) -> Scenario:
    return scenario_from_document(load_file(path))


def scenario_from_text(text: str, source: str = "<scenario>") -> Scenario:
    return scenario_from_document(load_text(text, source))


def _seconds(doc: Document, path: tuple, *, allow_zero: bool = False) -> float:
    value = doc.get(path)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        try:
            parsed = parse_duration(value)
        except ValueError as exc:
            raise doc.error(path, str(exc)) from None
        if isinstance(parsed, WorkingDays):
            raise doc.error(path, "expected calendar time such as 90s, 20m or 8h, not working days")
        seconds = parsed
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise doc.error(path, f"must be {'zero or more' if allow_zero else 'longer than zero'}")
    return seconds


def _dist(doc: Document, path: tuple, *, allow_none: bool = False) -> Dist:
    spec = doc.mapping(path, allowed=("dist", "mean_s", "sd_s"), required=("dist",))
    kind = spec["dist"]
    kinds = DISTRIBUTIONS if allow_none else DISTRIBUTIONS[:-1]
    if kind not in kinds:
        raise doc.error((*path, "dist"), f"unknown distribution {kind!r} (expected one of: {', '.join(kinds)})")
    if kind == "none":
        return Dist("none")
    if "mean_s" not in spec:
        raise doc.error(path, "missing required key 'mean_s'")
    mean = _number(doc, (*path, "mean_s"), minimum=0)
    if mean == 0 and kind != "fixed":
        raise doc.error((*path, "mean_s"), f"a {kind} distribution needs a mean above zero")
    sd = None
    if "sd_s" in spec:
        if kind != "lognormal":
            raise doc.error((*path, "sd_s"), "only a lognormal distribution takes sd_s")
        sd = _number(doc, (*path, "sd_s"), minimum=0)
    return Dist(kind, float(mean), sd)


def _dist_table(doc: Document, key: str, default: Dist) -> dict[str, Dist]:
    if key not in doc.data:
        return {"default": default}
    value = doc.get((key,))
    if isinstance(value, dict) and "dist" in value:
        return {"default": _dist(doc, (key,))}
    table = doc.mapping((key,), allowed=("default", *CALL_TYPES))
    out = {name: _dist(doc, (key, name)) for name in table}
    out.setdefault("default", default)
    return out


def _shares(doc: Document, path: tuple) -> dict[str, float]:
    table = doc.mapping(path, allowed=CALL_TYPES)
    shares = {name: float(_number(doc, (*path, name), minimum=0)) for name in table}
    total = sum(shares.values())
    if not shares or total <= 0:
        raise doc.error(path, "needs at least one call type with a share above zero")
    if abs(total - 1.0) > 0.001:
        raise doc.error(path, f"the shares add up to {total:g}; they are parts of all calls and must add up to 1")
    return {name: share / total for name, share in shares.items() if share > 0}


def _clock(doc: Document, path: tuple, start_day: dt.datetime) -> float:
    """'09:30' (time of day on the start date) or a duration from the start ('90m')."""
    value = doc.get(path)
    if isinstance(value, str) and re.match(r"^\d{1,2}:\d{2}$", value.strip()):
        return _time_of_day(doc, path, value.strip(), start_day)
    return _seconds(doc, path, allow_zero=True)


def scenario_from_document(doc: Document) -> Scenario:
    top = doc.mapping((), allowed=_TOP, required=("name", "arrivals", "agents"))
    if not isinstance(top["name"], str) or not top["name"].strip():
        raise doc.error(("name",), "expected a name")
    seed = int(_number(doc, ("seed",), integer=True)) if "seed" in top else 1
    calls = int(_number(doc, ("calls",), minimum=1, integer=True)) if "calls" in top else None
    horizon = _seconds(doc, ("horizon",)) if "horizon" in top else None
    if calls is None and horizon is None:
        raise doc.error((), "give 'calls' (how many callers) or 'horizon' (how long), or both")

    zone_name = str(top.get("timezone", "UTC"))
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise doc.error(("timezone",), f"unknown time zone {zone_name!r}") from None
    start_raw = top.get("start", "2026-01-05T08:00")
    try:
        start_dt = start_raw if isinstance(start_raw, dt.datetime) else dt.datetime.fromisoformat(str(start_raw))
    except ValueError:
        raise doc.error(("start",), f"expected a date and time such as 2026-11-23T08:00, got {start_raw!r}") from None
    if start_dt.tzinfo is None:
        start_dt = start_dt.replace(tzinfo=zone)
    interval = _seconds(doc, ("interval",)) if "interval" in top else 1800.0

    # Arrivals: a constant rate, or a profile of rates per interval, plus bursts.
    arrivals = doc.mapping(("arrivals",), allowed=("rate_per_hour", "profile", "bursts"))
    if ("rate_per_hour" in arrivals) == ("profile" in arrivals):
        raise doc.error(("arrivals",), "give exactly one of 'rate_per_hour' or 'profile'")
    segments: tuple[tuple[float, float], ...]
    if "rate_per_hour" in arrivals:
        segments = ((0.0, _number(doc, ("arrivals", "rate_per_hour"), minimum=0) / 3600.0),)
    else:
        profile = doc.mapping(("arrivals", "profile"), allowed=("interval", "rates_per_hour"),
                              required=("rates_per_hour",))
        step = _seconds(doc, ("arrivals", "profile", "interval")) if "interval" in profile else 1800.0
        rates = profile["rates_per_hour"]
        if not isinstance(rates, list) or not rates:
            raise doc.error(("arrivals", "profile", "rates_per_hour"), "expected a list of rates, one per interval")
        segments = tuple((i * step, _number(doc, ("arrivals", "profile", "rates_per_hour", i), minimum=0) / 3600.0)
                         for i in range(len(rates)))
    if calls is not None and all(rate == 0 for _, rate in segments):
        raise doc.error(("arrivals",), f"every rate is 0, so no caller ever arrives, but 'calls: {calls}' asks for "
                                       "callers; give a rate above 0")
    bursts = []
    for i, _ in enumerate(arrivals.get("bursts") or []):
        path = ("arrivals", "bursts", i)
        burst = doc.mapping(path, allowed=("at", "for", "factor", "mix", "label"), required=("at", "for", "factor"))
        bursts.append(Burst(_clock(doc, (*path, "at"), start_dt), _seconds(doc, (*path, "for")),
                            float(_number(doc, (*path, "factor"), minimum=1)),
                            _shares(doc, (*path, "mix")) if "mix" in burst else None, str(burst.get("label", ""))))
    if "bursts" in arrivals and not isinstance(arrivals["bursts"], list):
        raise doc.error(("arrivals", "bursts"), "expected a list of bursts")

    mix_spec = doc.mapping(("mix",), allowed=("types", "vip_share", "known_share", "repeat_share")) if "mix" in top else {}
    mix = _shares(doc, ("mix", "types")) if "types" in mix_spec else {"general": 1.0}
    share = lambda key: float(_number(doc, ("mix", key), minimum=0, maximum=1)) if key in mix_spec else 0.0  # noqa: E731

    patience = _dist(doc, ("patience",), allow_none=True) if "patience" in top else Dist("none")
    handle = _dist_table(doc, "handle_time", Dist("exponential", 180.0))
    wrap = _dist_table(doc, "wrap_up", Dist("fixed", 0.0))

    # Service level and routing.
    sl = doc.mapping(("service_level",), allowed=("threshold_s", "target")) if "service_level" in top else {}
    threshold = float(_number(doc, ("service_level", "threshold_s"), minimum=0)) if "threshold_s" in sl else 15.0
    target = float(_number(doc, ("service_level", "target"), minimum=0, maximum=1)) if "target" in sl else 0.8
    routing = doc.mapping(("routing",), allowed=("strategy", "ring_time_s", "no_answer_share",
                                                "callback_accept_share", "queues")) if "routing" in top else {}
    strategy = routing.get("strategy", "longest_idle")
    if strategy not in STRATEGIES:
        raise doc.error(("routing", "strategy"), f"unknown strategy {strategy!r} (expected one of: {', '.join(STRATEGIES)})")
    queue_specs = doc.mapping(("routing", "queues"), allowed=CALL_TYPES) if "queues" in routing else {}
    names = list(dict.fromkeys([*mix, *(b for burst in bursts for b in (burst.mix or {})), *queue_specs]))
    queues = tuple(queue_from_yaml(doc, ("routing", "queues", name), name, allowed=_SCENARIO_QUEUE_KEYS,
                                   strategy=strategy, sl_threshold_s=threshold, sl_target=target)
                   if name in queue_specs
                   else QueueConfig(name, strategy=strategy, sl_threshold_s=threshold, sl_target=target)
                   for name in names)
    for queue in queues:
        if queue.strategy == "ring_all":
            raise doc.error(("routing",), "ring_all rings every free agent at once and works only in the live switch")
        for key in ("on_full", "on_max_wait"):
            action = getattr(queue, key)
            if action.startswith("overflow:") and action[9:] not in names:
                raise doc.error(("routing", "queues", queue.name, key), f"overflow to {action[9:]!r}, which no call reaches "
                                f"(queues here: {', '.join(names)})")

    groups = _agents(doc, start_dt, names)
    # a queue no agent can serve (nobody rostered with a skill its tiers name): every such
    # caller would wait until they give up, which is a mistake in the file, not a drill
    skills_rostered = {skill for g in groups if g.count or g.rostered for skill in g.skills}
    by_name = {q.name: q for q in queues}
    for name in names:
        served = by_name.get(name)
        serving = set().union(*(t.skills for t in served.tiers)) if served is not None else {name}
        if not serving & skills_rostered:
            where: tuple = ("mix", "types", name) if name in mix else ("arrivals", "bursts")
            raise doc.error(where if doc.get(where) is not None else ("agents",),
                            f"no agent has a skill that serves {name} ({', '.join(sorted(serving))}): every {name} "
                            f"caller would wait until they gave up; give an agent group that skill")
    expect = []
    expect_raw = top.get("expect") or []
    if not isinstance(expect_raw, list):
        raise doc.error(("expect",), "expected a list such as ['service_level >= 0.8', 'abandon_rate <= 0.05']")
    for i, text in enumerate(expect_raw):
        match = _EXPECT.match(str(text))
        if not match or match.group(3) not in METRICS:
            raise doc.error(("expect", i), f"expected 'METRIC OP NUMBER' with a metric from: {', '.join(METRICS)} "
                                           f"(optionally queues.NAME.METRIC or priorities.PRIORITY.METRIC), got {text!r}")
        group, name = match.group(1) or "queues", match.group(2)
        if name and group == "queues" and name not in names:
            raise doc.error(("expect", i), f"no queue {name!r} in this scenario")
        if name and group == "priorities" and name not in PRIORITIES:
            raise doc.error(("expect", i), f"no priority {name!r} (one of: {', '.join(PRIORITIES)})")
        expect.append(Expectation(str(text), name, match.group(3), match.group(4), float(match.group(5)),
                                  doc.line(("expect", i)), group))

    return Scenario(
        name=top["name"], source=doc.source, seed=seed, calls=calls, horizon_s=horizon,
        start=start_dt.timestamp(), timezone=zone_name, interval_s=interval, segments=segments,
        bursts=tuple(bursts), mix=mix, vip_share=share("vip_share"), known_share=share("known_share"),
        repeat_share=share("repeat_share"), patience=patience, handle_time=handle, wrap_up=wrap,
        groups=groups, queues=queues,
        ring_time_s=float(_number(doc, ("routing", "ring_time_s"), minimum=0)) if "ring_time_s" in routing else 0.0,
        no_answer_share=float(_number(doc, ("routing", "no_answer_share"), minimum=0, maximum=1))
        if "no_answer_share" in routing else 0.0,
        callback_accept_share=float(_number(doc, ("routing", "callback_accept_share"), minimum=0, maximum=1))
        if "callback_accept_share" in routing else 0.0,
        threshold_s=threshold, sl_target=target, expect=tuple(expect), description=str(top.get("description", "")))


# A scenario samples wrap-up per call (the top-level `wrap_up`), so queues do not set it.
_SCENARIO_QUEUE_KEYS = tuple(key for key in QUEUE_KEYS if key != "wrap_up_s")


def _agents(doc: Document, start: dt.datetime, queue_names: list[str]) -> tuple[AgentGroup, ...]:
    spec = doc.mapping(("agents",), allowed=("count", "skills", "groups"))
    if ("count" in spec) == ("groups" in spec):
        raise doc.error(("agents",), "give exactly one of 'count' (identical agents) or 'groups'")
    everything = {name: 3 for name in queue_names}
    if "count" in spec:
        count = int(_number(doc, ("agents", "count"), minimum=1, integer=True))
        skills = _skills(doc, ("agents", "skills")) if "skills" in spec else everything
        return (AgentGroup("agents", count, skills, None, ()),)
    if not isinstance(spec["groups"], list) or not spec["groups"]:
        raise doc.error(("agents", "groups"), "expected a list of agent groups")
    groups = []
    for i, _ in enumerate(spec["groups"]):
        path = ("agents", "groups", i)
        group = doc.mapping(path, allowed=("name", "count", "absent", "skills", "shift", "breaks"),
                            required=("count",))
        shift = None
        if "shift" in group:
            match = re.match(r"^\s*(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*$", str(group["shift"]))
            if not match:
                raise doc.error((*path, "shift"), f"expected a shift such as '08:00-17:00', got {group['shift']!r}")
            login, logout = (_time_of_day(doc, (*path, "shift"), text, start) for text in match.groups())
            if logout <= login:
                logout += 86400  # a night shift ends the next morning
            shift = (login, logout)
        breaks = []
        for j, _ in enumerate(group.get("breaks") or []):
            bpath = (*path, "breaks", j)
            item = doc.mapping(bpath, allowed=("at", "for", "reason"), required=("at", "for"))
            at = _clock(doc, (*bpath, "at"), start)
            breaks.append((at, at + _seconds(doc, (*bpath, "for")), str(item.get("reason", "break"))))
        rostered = int(_number(doc, (*path, "count"), minimum=1, integer=True))
        # agents on the rota who do not turn up: they never log in (a drill of no-shows)
        absent = int(_number(doc, (*path, "absent"), minimum=0, maximum=rostered, integer=True)) \
            if "absent" in group else 0
        groups.append(AgentGroup(str(group.get("name", f"group{i + 1}")), rostered - absent,
                                 _skills(doc, (*path, "skills")) if "skills" in group else everything,
                                 shift, tuple(breaks), rostered))
    return tuple(groups)


def _time_of_day(doc: Document, path: tuple, text: str, start: dt.datetime) -> float:
    """Seconds from the start to the nearest `text` o'clock within 12 hours either side.

    So a 02:00 break on a run starting at 22:00 is 4 hours in, and a shift that began
    at 07:00 on a run starting at 08:00 is already under way.
    """
    hours, minutes = map(int, text.split(":"))
    if hours > 23 or minutes > 59:
        raise doc.error(path, f"not a time of day: {text!r}")
    offset = (start.replace(hour=hours, minute=minutes, second=0, microsecond=0) - start).total_seconds()
    if offset < -12 * 3600:
        offset += 86400
    elif offset >= 12 * 3600:
        offset -= 86400
    return offset


def _skills(doc: Document, path: tuple) -> dict[str, int]:
    table = doc.mapping(path, allowed=CALL_TYPES)
    if not table:
        raise doc.error(path, "an agent needs at least one skill, e.g. {repair: 3} (proficiency 1-5)")
    return {name: int(_number(doc, (*path, name), minimum=1, maximum=5, integer=True)) for name in table}
