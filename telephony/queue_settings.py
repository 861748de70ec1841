"""Queue settings written in YAML (scenario files and the switch's config), validated.

Kept apart from config.py: the routing core itself never reads files, and this module
names the file, line and key of every mistake (siteconfig/yamlsource.py).
"""

from __future__ import annotations

from siteconfig.yamlsource import Document
from siteconfig.yamlsource import number as _number
from telephony.acd.config import CALL_TYPES, PRIORITIES, QueueConfig, Tier

QUEUE_KEYS = ("strategy", "sl_threshold_s", "sl_target", "max_length", "max_wait_s", "on_full", "on_max_wait",
              "ring_timeout_s", "max_no_answer", "owner_wait_s", "wrap_up_s", "tiers", "priority_credit_s")


def queue_from_yaml(doc: Document, path: tuple, name: str, *, allowed: tuple[str, ...] = QUEUE_KEYS,
                    **defaults) -> QueueConfig:
    """The queue `name` from the mapping at `path`; keys it does not give come from `defaults`."""
    spec = doc.mapping(path, allowed=allowed)
    values: dict = dict(defaults)
    if "strategy" in spec:
        values["strategy"] = str(spec["strategy"])
    for key in ("sl_threshold_s", "ring_timeout_s", "owner_wait_s", "max_wait_s", "wrap_up_s"):
        if key in spec:
            values[key] = float(_number(doc, (*path, key), minimum=0))
    if "sl_target" in spec:
        values["sl_target"] = float(_number(doc, (*path, "sl_target"), minimum=0, maximum=1))
    for key in ("max_length", "max_no_answer"):
        if key in spec:
            values[key] = int(_number(doc, (*path, key), minimum=0 if key == "max_length" else 1, integer=True))
    for key in ("on_full", "on_max_wait"):
        if key in spec:
            values[key] = str(spec[key])
    if "tiers" in spec:
        tiers = []
        if not isinstance(spec["tiers"], list) or not spec["tiers"]:
            raise doc.error((*path, "tiers"), "expected a list of tiers")
        for i, _ in enumerate(spec["tiers"]):
            tier = doc.mapping((*path, "tiers", i), allowed=("after_s", "skills", "min_proficiency"),
                               required=("after_s",))
            skills = tier.get("skills", [name])
            if not isinstance(skills, list) or any(s not in CALL_TYPES for s in skills):
                raise doc.error((*path, "tiers", i, "skills"), f"expected a list of skills from: {', '.join(CALL_TYPES)}")
            tiers.append(Tier(float(_number(doc, (*path, "tiers", i, "after_s"), minimum=0)), frozenset(skills),
                              int(_number(doc, (*path, "tiers", i, "min_proficiency"), minimum=1, maximum=5, integer=True))
                              if "min_proficiency" in tier else 1))
        values["tiers"] = tuple(tiers)
    if "priority_credit_s" in spec:
        credit = doc.mapping((*path, "priority_credit_s"), allowed=PRIORITIES)
        values["priority_credit_s"] = {"normal": 0.0, "vip": 120.0, "emergency": 3600.0,
                                       **{k: float(_number(doc, (*path, "priority_credit_s", k))) for k in credit}}
    try:
        return QueueConfig(name, **values)
    except ValueError as exc:
        raise doc.error(path, str(exc).split(": ", 1)[-1]) from None
