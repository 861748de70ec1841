"""The switch's configuration file: dialled numbers, the voice menu and queue settings.

`hotline switch --config FILE`; without one, telephony/switch_default.yaml. Every
mistake names the file, line and key (siteconfig/yamlsource.py), and the switch refuses
to start on one rather than route calls somewhere nobody meant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from records.supervision import AlertSettings
from siteconfig.yamlsource import Document, load_file
from siteconfig.yamlsource import number as _number
from telephony.acd import QueueConfig
from telephony.acd.config import CALL_TYPES
from telephony.collector import CollectorSettings
from telephony.queue_settings import queue_from_yaml

DEFAULT_PATH = Path(__file__).with_name("switch_default.yaml")
MENU = "menu"
QUEUE_DEFAULTS: dict[str, Any] = {"wrap_up_s": 30.0}


@dataclass(frozen=True)
class Menu:
    options: dict[str, str] = field(default_factory=dict)   # DTMF digit -> queue
    timeout_s: float = 8.0
    default: str = "general"


@dataclass(frozen=True)
class SipSettings:
    """The registrar's and the call legs' timers, in seconds: settings, so that a test can
    shorten them and cross each one many times in minutes (most faults of a day live past
    the first five)."""
    registration_max_s: float = 3600.0     # a phone asking for longer is granted this
    registration_default_s: float = 300.0  # a REGISTER that names no expiry
    # A binding outlives its expiry by this much: many phones refresh at the last second,
    # and a call offered in that second should still ring.
    registration_grace_s: float = 10.0
    # How long a digest nonce may be used (RFC 7616): after it, a phone with the right
    # credentials is challenged again with stale=true, never refused.
    nonce_s: float = 300.0
    # A seat in a call is asked OPTIONS this often; this many unanswered in a row and its
    # phone is taken for gone (its caller is queued again). All seats together are asked
    # at most qualify_rate times a second: with more calls, each seat's beat stretches
    # (telephony/qualify.py), since each question costs the switch a SIP transaction.
    qualify_s: float = 2.0
    qualify_misses: int = 2
    qualify_rate: float = 100.0
    # Wrong credentials: this many per extension (or per source address) within the window
    # lock that extension (or address) out for auth_lock_s, logged. A PIN is short.
    auth_failures_per_ext: int = 5
    auth_failures_per_address: int = 20
    auth_window_s: float = 300.0
    auth_lock_s: float = 300.0
    # The media engine (RTPproxy) is asked every second whether it is there; no answer
    # for this long and the switch stops (exit status 2) to be started again, since no
    # call can be connected without it.
    media_stall_s: float = 10.0
    # The media ports of the switch's RTP engine (a firewall opens this range); None: any.
    rtp_ports: tuple[int, int] | None = None

    def granted_expiry(self, asked: float | None) -> int:
        """The expiry the registrar grants a REGISTER asking for `asked` (None: not said)."""
        if asked is None:
            asked = self.registration_default_s
        return int(max(0.0, min(asked, self.registration_max_s)))


@dataclass(frozen=True)
class MediaNode:
    """A media node (`hotline media-node`): RTPproxy in a process of its own, driven over
    its control socket. `recordings` and `sounds` are paths on the node's host: None,
    the switch's own (a node on the switch's host)."""
    control: str                 # udp:HOST:PORT
    weight: float = 1.0          # new calls are shared among the nodes that answer, by weight
    recordings: str | None = None
    sounds: str | None = None


@dataclass(frozen=True)
class MediaSettings:
    """Where calls' audio is anchored: no nodes, RTPproxy inside the switch (the default);
    nodes, those, with key presses sent back to `notify` (the switch listens there)."""
    nodes: tuple[MediaNode, ...] = ()
    notify: str = "tcp:127.0.0.1:7724"


# Reasons an agent can give for a break, each with its limit in minutes: an agent on a
# break longer than its limit is flagged (their seat and the supervisors are told).
DEFAULT_BREAKS = {"lunch": 60.0, "training": 120.0, "meeting": 60.0, "personal": 15.0}


@dataclass(frozen=True)
class SwitchConfig:
    queues: tuple[QueueConfig, ...]
    numbers: dict[str, str] = field(default_factory=dict)   # dialled number -> queue or "menu"
    unlisted: str = "general"
    menu: Menu = Menu()
    source: str = "built-in defaults"
    trunk: tuple[str, int] | None = None   # where seats' outbound calls go (a carrier gateway or PBX)
    sip: SipSettings = SipSettings()
    breaks: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_BREAKS))   # reason -> limit, minutes
    events_retention_days: float = 90.0   # the event log keeps this long; older events are pruned
    alerts: AlertSettings = AlertSettings()   # when the supervisors' console raises repeat and mass-complaint alerts
    media: MediaSettings = MediaSettings()   # the embedded media engine, or media nodes
    memory: CollectorSettings = CollectorSettings()   # when full garbage collections run (telephony/collector.py)

    def break_limit_s(self, reason: str) -> float | None:
        minutes = self.breaks.get(reason)
        return None if minutes is None else minutes * 60.0

    def route(self, dialled: str) -> str:
        """Where a dialled number leads: a queue's name or "menu"."""
        if dialled in self.numbers:
            return self.numbers[dialled]
        if any(q.name == dialled for q in self.queues):
            return dialled
        return self.unlisted

    def is_internal(self, dialled: str) -> bool:
        """A number of this switch (published, or a queue's name): a seat dialling it
        calls the hotline like anyone; any other number a seat dials goes out the trunk."""
        return dialled in self.numbers or any(q.name == dialled for q in self.queues)


def default_queues() -> tuple[QueueConfig, ...]:
    return tuple(QueueConfig(name, **QUEUE_DEFAULTS) for name in CALL_TYPES)


def load_switch_config(path: str | Path | None = None) -> SwitchConfig:
    return config_from_document(load_file(path or DEFAULT_PATH))


def config_from_document(doc: Document) -> SwitchConfig:
    if doc.data is None or doc.data == {}:
        return SwitchConfig(default_queues(), source=doc.source)
    top = doc.mapping((), allowed=("numbers", "unlisted", "menu", "queues", "trunk", "sip", "breaks", "memory",
                                   "events_retention_days", "alerts", "media"))
    queue_specs = doc.mapping(("queues",), allowed=CALL_TYPES) if "queues" in top else {}
    queues = tuple(queue_from_yaml(doc, ("queues", name), name, **QUEUE_DEFAULTS) if name in queue_specs
                   else QueueConfig(name, **QUEUE_DEFAULTS) for name in CALL_TYPES)
    for queue in queues:
        for key in ("on_full", "on_max_wait"):
            action = getattr(queue, key)
            if action.startswith("overflow:") and action[9:] not in CALL_TYPES:
                raise doc.error(("queues", queue.name, key), f"overflow to unknown queue '{action[9:]}'")
    destinations = (*CALL_TYPES, MENU)

    def destination(path: tuple) -> str:
        value = doc.get(path)
        if not isinstance(value, str) or value not in destinations:
            raise doc.error(path, f"expected a queue ({', '.join(CALL_TYPES)}) or '{MENU}', got {value!r}")
        return value

    numbers = {}
    if "numbers" in top:
        for dialled in doc.mapping(("numbers",), allowed=top["numbers"] if isinstance(top["numbers"], dict) else ()):
            numbers[str(dialled)] = destination(("numbers", dialled))
    menu = Menu()
    if "menu" in top:
        spec = doc.mapping(("menu",), allowed=("options", "timeout_s", "default"))
        options = {}
        if "options" in spec:
            raw = doc.mapping(("menu", "options"), allowed=[k for k in (spec["options"] or {})]
                              if isinstance(spec["options"], dict) else ())
            for key in raw:
                if str(key) not in "0123456789*#" or len(str(key)) != 1:
                    raise doc.error(("menu", "options", key), "menu options are single keys: 0-9, * or #")
                target = destination(("menu", "options", key))
                if target == MENU:
                    raise doc.error(("menu", "options", key), "a menu option leads to a queue")
                options[str(key)] = target
        default = destination(("menu", "default")) if "default" in spec else "general"
        if default == MENU:
            raise doc.error(("menu", "default"), "the menu's default is a queue")
        timeout = float(_number(doc, ("menu", "timeout_s"), minimum=1)) if "timeout_s" in spec else 8.0
        menu = Menu(options, timeout, default)
    unlisted = destination(("unlisted",)) if "unlisted" in top else "general"
    trunk = _trunk(doc) if top.get("trunk") is not None else None
    sip = _sip_settings(doc) if "sip" in top else SipSettings()
    breaks = _breaks(doc) if "breaks" in top else dict(DEFAULT_BREAKS)
    retention = float(_number(doc, ("events_retention_days",), minimum=1)) if "events_retention_days" in top else 90.0
    alerts = _alerts(doc) if "alerts" in top else AlertSettings()
    media = _media_settings(doc) if "media" in top else MediaSettings()
    memory = _collector_settings(doc) if "memory" in top else CollectorSettings()
    return SwitchConfig(queues, numbers, unlisted, menu, doc.source, trunk, sip, breaks, retention, alerts, media,
                        memory)


def _collector_settings(doc: Document) -> CollectorSettings:
    names = tuple(CollectorSettings.__dataclass_fields__)
    spec = doc.mapping(("memory",), allowed=names)
    values: dict = {}
    for key in spec:
        if key == "quiet_calls":
            values[key] = int(_number(doc, ("memory", key), minimum=0, integer=True))
        else:
            values[key] = float(_number(doc, ("memory", key), minimum=0 if key in ("slow_s", "trim_every_s") else 1))
    return CollectorSettings(**values)


def _alerts(doc: Document) -> AlertSettings:
    spec = doc.mapping(("alerts",), allowed=("repeat_within_h", "mass_contacts", "mass_within_min", "mass_queues"))
    values: dict = {}
    if "mass_queues" in spec:
        queues = spec["mass_queues"]
        if not isinstance(queues, list) or not queues or any(q not in CALL_TYPES for q in queues):
            raise doc.error(("alerts", "mass_queues"), f"a list of queues ({', '.join(CALL_TYPES)})")
        values["mass_queues"] = tuple(queues)
    if "repeat_within_h" in spec:
        values["repeat_within_s"] = float(_number(doc, ("alerts", "repeat_within_h"), minimum=1)) * 3600
    if "mass_contacts" in spec:
        values["mass_contacts"] = int(_number(doc, ("alerts", "mass_contacts"), minimum=2))
    if "mass_within_min" in spec:
        values["mass_within_s"] = float(_number(doc, ("alerts", "mass_within_min"), minimum=1)) * 60
    return AlertSettings(**values)


_SIP_INTEGERS = ("qualify_misses", "auth_failures_per_ext", "auth_failures_per_address")


def _sip_settings(doc: Document) -> SipSettings:
    names = [f for f in SipSettings.__dataclass_fields__ if f != "rtp_ports"]
    spec = doc.mapping(("sip",), allowed=(*names, "rtp_ports"))
    values: dict = {}
    for key in spec:
        if key == "rtp_ports":
            try:
                values[key] = parse_port_range(str(spec[key]))
            except ValueError as exc:
                raise doc.error(("sip", key), str(exc)) from None
        elif key in _SIP_INTEGERS:
            values[key] = int(_number(doc, ("sip", key), minimum=1, integer=True))
        else:
            values[key] = float(_number(doc, ("sip", key), minimum=0 if key == "registration_grace_s" else 1))
    return SipSettings(**values)


def _address(doc: Document, path: tuple, scheme: str) -> str:
    """'udp:HOST:PORT' (or 'tcp:...'), as RTPproxy and sippy write a socket."""
    value = doc.get(path)
    text = str(value).strip() if isinstance(value, (str, int)) else ""
    host, _, port = text.removeprefix(f"{scheme}:").rpartition(":")
    if not text.startswith(f"{scheme}:") or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise doc.error(path, f"expected {scheme}:HOST:PORT, got {value!r}")
    return text


def _media_settings(doc: Document) -> MediaSettings:
    spec = doc.mapping(("media",), allowed=("nodes", "notify"))
    notify = _address(doc, ("media", "notify"), "tcp") if "notify" in spec else MediaSettings.notify
    raw = spec.get("nodes") or []
    if not isinstance(raw, list):
        raise doc.error(("media", "nodes"), "expected a list of nodes, e.g. [{control: 'udp:10.0.0.5:7722', weight: 2}]")
    nodes = []
    for index, node in enumerate(raw):
        path = ("media", "nodes", index)
        fields = doc.mapping(path, allowed=("control", "weight", "recordings", "sounds"))
        if "control" not in fields:
            raise doc.error(path, "a media node needs its control socket: control: udp:HOST:PORT")
        nodes.append(MediaNode(
            control=_address(doc, (*path, "control"), "udp"),
            weight=float(_number(doc, (*path, "weight"), minimum=0.01)) if "weight" in fields else 1.0,
            recordings=str(fields["recordings"]) if fields.get("recordings") else None,
            sounds=str(fields["sounds"]) if fields.get("sounds") else None))
    if len({node.control for node in nodes}) != len(nodes):
        raise doc.error(("media", "nodes"), "a media node is listed twice")
    return MediaSettings(tuple(nodes), notify)


def _breaks(doc: Document) -> dict[str, float]:
    value = doc.get(("breaks",))
    if not isinstance(value, dict) or not value:
        raise doc.error(("breaks",), "expected reasons with their limit in minutes, e.g. {lunch: 60, training: 120}")
    out = {}
    for reason in value:
        if not isinstance(reason, str) or not reason.replace("_", "").isalnum():
            raise doc.error(("breaks", reason), "a break reason is one word (letters, digits, _)")
        out[reason] = float(_number(doc, ("breaks", reason), minimum=0.1))
    return out


def parse_port_range(text: str) -> tuple[int, int]:
    """'10000-20000' -> (10000, 20000): an even, ordered range of UDP ports (RTP uses an
    even port and the odd one above it for RTCP)."""
    low, sep, high = text.strip().partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit():
        raise ValueError(f"expected LOW-HIGH such as 10000-20000, got {text!r}")
    low_port, high_port = int(low), int(high)
    if not 1024 <= low_port < high_port <= 65535:
        raise ValueError(f"expected ports between 1024 and 65535 with LOW below HIGH, got {text!r}")
    if high_port - low_port < 3:
        raise ValueError(f"{text!r} holds no room for one call's audio (RTP needs an even port and the next)")
    return low_port, high_port


def _trunk(doc: Document) -> tuple[str, int]:
    """`trunk: sip:HOST[:PORT]` (or HOST[:PORT]): the gateway outbound calls go to."""
    value = doc.get(("trunk",))
    text = str(value).strip() if isinstance(value, str) else ""
    host, _, port = (text[4:] if text.startswith("sip:") else text).split(";")[0].rpartition(":")
    if not host:
        host, port = (text[4:] if text.startswith("sip:") else text).split(";")[0], "5060"
    if not host or "@" in host or not port.isdigit() or not 0 < int(port) < 65536:
        raise doc.error(("trunk",), f"expected sip:HOST:PORT (the gateway for outbound calls), got {value!r}")
    return host, int(port)
