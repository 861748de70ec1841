"""YAML documents that remember where each key was written.

Config and scenario files are edited by people; an error has to name the file, the
line and the key, and say what was expected. PyYAML's composer keeps the marks, so we
build plain Python values from its node tree and keep a path -> line map beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})
Path_ = tuple  # a key path such as ("types", "repair", "on_site_within")


class ConfigError(ValueError):
    """A user-facing error in a YAML file: file, line, key and what was expected."""

    def __init__(self, source: str, line: int | None, key: str | None, message: str):
        self.source, self.line, self.key, self.message = source, line, key, message
        where = source + (f":{line}" if line else "")
        super().__init__(f"{where}: {key + ': ' if key else ''}{message}")


def dotted(path: Iterable) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (("." if out else "") + str(part))
    return out


@dataclass
class Document:
    source: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line(self, path: Path_) -> int | None:
        path = tuple(path)
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)

    def error(self, path: Path_, message: str) -> ConfigError:
        return ConfigError(self.source, self.line(path), dotted(path) or None, message)

    def mapping(self, path: Path_, *, allowed: Iterable[str], required: Iterable[str] = ()) -> dict:
        """The mapping at `path`, refusing unknown and missing keys."""
        value = self.get(path)
        if not isinstance(value, dict):
            raise self.error(path, f"expected a mapping of keys, got {type_name(value)}")
        allowed = list(allowed)
        for key in value:
            if key not in allowed:
                raise self.error(
                    (*path, key), f"unknown key (expected one of: {', '.join(allowed)})"
                )
        for key in required:
            if key not in value:
                raise self.error(path, f"missing required key '{key}'")
        return value

    def get(self, path: Path_) -> Any:
        value = self.data
        for part in path:
            value = value[part]
        return value


def type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false",
            int: "a whole number", float: "a number"}.get(type(value), type(value).__name__)


def number(doc: Document, path: Path_, *, minimum: float | None = None, maximum: float | None = None,
           integer: bool = False) -> float:
    """The number at `path`, or an error that names the key and the range."""
    value = doc.get(path)
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        raise doc.error(path, f"expected {'a whole number' if integer else 'a number'}, got {type_name(value)} {value!r}")
    if minimum is not None and value < minimum:
        raise doc.error(path, f"must be at least {minimum:g}, got {value}")
    if maximum is not None and value > maximum:
        raise doc.error(path, f"must be at most {maximum:g}, got {value}")
    return value


def load_text(text: str, source: str) -> Document:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(source, line, None, f"not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, None, None, f"not valid YAML: {exc}") from None
    doc = Document(source, None)
    if node is None:
        doc.data = {}
        return doc
    constructor = yaml.SafeLoader("")
    doc.data = _build(node, (), doc, constructor)
    return doc


def load_file(path: str | Path) -> Document:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), None, None, "no such file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), None, None, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(str(path), None, None, exc.strerror or str(exc)) from None
    return load_text(text, str(path))


def _build(node: yaml.Node, path: Path_, doc: Document, constructor: yaml.SafeLoader) -> Any:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(doc.source, key_node.start_mark.line + 1, dotted(path) or None,
                                  "keys must be plain names")
            key = constructor.construct_object(key_node)
            if key in out:
                raise ConfigError(doc.source, key_node.start_mark.line + 1,
                                  dotted((*path, key)), "duplicate key")
            doc.lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, (*path, key), doc, constructor)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), doc, constructor) for i, item in enumerate(node.value)]
    if node.tag in _NUMBER_TAGS and ":" in node.value:
        # YAML 1.1 reads 09:30 as the base-60 number 570; people mean a time of day.
        return node.value
    try:
        return constructor.construct_object(node)
    except (ValueError, yaml.YAMLError):
        # An impossible implicit value such as 2026-13-01: hand the text to the
        # validator, which knows what the key expects and says so.
        return node.value
