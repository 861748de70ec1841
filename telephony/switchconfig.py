"""The switch's configuration file: dialled numbers, the voice menu and queue settings.

`hotline switch --config FILE`; without one, telephony/switch_default.yaml. Every
mistake names the file, line and key (records/yamlsource.py), and the switch refuses
to start on one rather than route calls somewhere nobody meant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from records.yamlsource import Document, load_file
from records.yamlsource import number as _number
from telephony.acd import QueueConfig
from telephony.acd.config import CALL_TYPES
from telephony.acd.settings import queue_from_yaml

DEFAULT_PATH = Path(__file__).with_name("switch_default.yaml")
MENU = "menu"
QUEUE_DEFAULTS = {"wrap_up_s": 30.0}


@dataclass(frozen=True)
class Menu:
    options: dict[str, str] = field(default_factory=dict)   # DTMF digit -> queue
    timeout_s: float = 8.0
    default: str = "general"


@dataclass(frozen=True)
class SwitchConfig:
    queues: tuple[QueueConfig, ...]
    numbers: dict[str, str] = field(default_factory=dict)   # dialled number -> queue or "menu"
    unlisted: str = "general"
    menu: Menu = Menu()
    source: str = "built-in defaults"
    trunk: tuple[str, int] | None = None   # where seats' outbound calls go (a carrier gateway or PBX)

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
    top = doc.mapping((), allowed=("numbers", "unlisted", "menu", "queues", "trunk"))
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
    return SwitchConfig(queues, numbers, unlisted, menu, doc.source, trunk)


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
