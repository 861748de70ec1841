"""Run directories: everything one scenario run leaves, virtual or live, to replay and compare.

    runs/<name>-seed<seed>-<when>[-live]/
      scenario.yaml   the file as it was run (byte for byte)
      report.json     the simulator's report (a live run's: from the switch's own events)
      queue_log       Asterisk queue_log lines
      events.jsonl    the event log, one row per line with the columns of the switch's
                      events table (seq, at, node, event, call_id, agent_ext, body)
      run.json        what ran: kind, seed, versions, clocks, the agents and queues;
                      written last, so a directory without it is a run that did not finish

`open_run` refuses a directory that is incomplete or written by another format or event
version, saying which; `write_run` is `RunWriter`'s whole-or-nothing end.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

from telephony import wire

RUN_FORMAT = 1
_encode = json.JSONEncoder().encode
_quote = json.encoder.encode_basestring_ascii
FILES = ("scenario.yaml", "report.json", "queue_log", "events.jsonl")


class RunError(ValueError):
    """A run directory that cannot be read or written (the message says why)."""


def versions() -> dict[str, Any]:
    try:
        hotline = metadata.version("hotline")
    except metadata.PackageNotFoundError:
        hotline = "unknown"
    return {"hotline": hotline, "python": platform.python_version(), "run_format": RUN_FORMAT,
            "event_version": wire.EVENT_VERSION}


def new_run_dir(name: str, seed: int, *, live: bool = False, base: str | Path | None = None,
                now: dt.datetime | None = None) -> Path:
    """A fresh folder under `base` (default HOTLINE_RUNS, else runs/ here): never one that
    exists (two runs in one second get -2, -3)."""
    base = base if base is not None else os.environ.get("HOTLINE_RUNS") or "runs"
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    stem = f"{name}-seed{seed}-{stamp}" + ("-live" if live else "")
    path, n = Path(base) / stem, 1
    while path.exists():
        n += 1
        path = Path(base) / f"{stem}-{n}"
    return path


class EventLogWriter:
    """Routing and call events as rows of the switch's events table, in `events.jsonl`.

    `offset` turns the driver's clock into epoch seconds (the simulator counts from 0).
    """

    def __init__(self, path: Path, *, node: str, offset: float = 0.0):
        self.path, self.node, self.offset = path, node, offset
        self._file = open(path, "w", encoding="utf-8")
        self.seq = 0

    def __call__(self, event) -> None:
        message = wire.encode(event)
        if self.offset and "t" in message:
            message["t"] = message["t"] + self.offset
        self.write_row(message)

    def write_row(self, message: dict, at: float | None = None, node: str | None = None) -> None:
        # By hand with one prebuilt encoder: json.dumps per row (twice: the body is text)
        # was 13 us an event, most of a 200,000-call run's time; this is 6 us.
        self.seq += 1
        when = float(message.get("t", 0.0) if at is None else at)
        self._file.write('{"seq": %d, "at": %r, "node": %s, "event": %s, "call_id": %s, "agent_ext": %s, "body": %s}\n'
                         % (self.seq, when, _quote(node or self.node), _quote(message["event"]),
                            _quote(str(message.get("call_id") or "")), _quote(str(message.get("agent_id") or "")),
                            _quote(_encode(message))))

    def close(self) -> None:
        self._file.close()


@dataclass
class Run:
    """A finished run directory, read back."""
    path: Path
    meta: dict[str, Any]
    report: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.meta.get("name", self.path.name))

    @property
    def kind(self) -> str:
        return str(self.meta.get("kind", "virtual"))

    @property
    def start(self) -> float:
        """Epoch seconds of the scenario's time 0 (a live run's times are mapped onto it)."""
        return float(self.meta["start"])

    def rows(self) -> Iterator[dict[str, Any]]:
        """The event log's rows in order, each with its body parsed (`message`)."""
        with open(self.path / "events.jsonl", encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                try:
                    row = json.loads(line)
                    row["message"] = json.loads(row["body"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise RunError(f"{self.path / 'events.jsonl'} line {number} is not an event row ({exc})") from None
                yield row

    def events(self) -> Iterator[tuple[float, wire.Delivered]]:
        """(at, the event decoded as the switch's own class), in order; a row the
        console has no class for is an error naming its line."""
        for row in self.rows():
            try:
                yield float(row["at"]), wire.decode(row["message"])
            except wire.WireError as exc:
                raise RunError(f"{self.path / 'events.jsonl'} row {row.get('seq')}: {exc}") from None


def open_run(path: str | Path) -> Run:
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory")
    meta_path = path / "run.json"
    if not meta_path.exists():
        raise RunError(f"{path}: incomplete run (no run.json: it did not finish, or is not a run directory)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RunError(f"{meta_path}: not JSON ({exc})") from None
    have = meta.get("versions", {}) if isinstance(meta, dict) else {}
    if have.get("run_format") != RUN_FORMAT or have.get("event_version") != wire.EVENT_VERSION:
        raise RunError(f"{path}: a run from another version of hotline (run format {have.get('run_format')!r}, "
                       f"events v{have.get('event_version')!r}; this one reads format {RUN_FORMAT}, "
                       f"events v{wire.EVENT_VERSION}; it was hotline {have.get('hotline', 'unknown')})")
    missing = [name for name in FILES if not (path / name).exists()]
    if missing:
        raise RunError(f"{path}: incomplete run (missing {', '.join(missing)})")
    try:
        report = json.loads((path / "report.json").read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RunError(f"{path / 'report.json'}: not JSON ({exc})") from None
    for key in ("kind", "seed", "start", "timezone", "queues", "agents"):
        if key not in meta:
            raise RunError(f"{meta_path}: incomplete run (no {key!r})")
    return Run(path, meta, report)


class RunWriter:
    """Builds a run directory: make it, let the run write its files, `finish` with run.json.

    The folder is made at once (an existing non-empty one is refused: a run is never
    written over another); scenario.yaml is the file as QA wrote it.
    """

    def __init__(self, path: str | Path, scenario_file: str | Path):
        self.path = Path(path)
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise RunError(f"{self.path} exists and is not empty: a run directory holds one run (give a new --run)")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(scenario_file, self.path / "scenario.yaml")
        except OSError as exc:
            raise RunError(f"cannot write the run directory {self.path}: {exc.strerror or exc}") from None

    def file(self, name: str) -> Path:
        return self.path / name

    def finish(self, *, kind: str, scenario, seed: int, report: dict, agents: dict[str, dict],
               clocks: dict[str, float], extra: dict | None = None) -> None:
        partial = self.path / "report.json.partial"
        partial.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        os.replace(partial, self.path / "report.json")
        for name in ("queue_log", "events.jsonl"):
            self.file(name).touch()
        queues = {q.name: {"threshold_s": q.sl_threshold_s if q.sl_threshold_s is not None else scenario.threshold_s,
                           "target": scenario.sl_target} for q in scenario.queues}
        meta = {"kind": kind, "name": scenario.name, "description": scenario.description, "seed": seed,
                "start": scenario.start, "timezone": scenario.timezone, "versions": versions(),
                "written_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "clocks": clocks, "queues": queues, "agents": agents, **(extra or {})}
        partial = self.path / "run.json.partial"
        partial.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        os.replace(partial, self.path / "run.json")


def simulated_agents(scenario) -> dict[str, dict]:
    """The simulator's agents (ids 001, 002, ... in group order), as a run lists them."""
    agents, number = {}, 0
    for group in scenario.groups:
        for n in range(group.count):
            number += 1
            agents[f"{number:03d}"] = {"name": f"{group.name} {n + 1}", "skills": dict(group.skills)}
    return agents


def metric(report: dict, name: str, queue: str | None = None) -> float | None:
    """One figure of a report (the whole centre's, or a queue's); service_level is over offered."""
    source = report.get("queues", {}).get(queue, {}) if queue else report
    if name == "service_level":
        value = (source.get("service_level") or {}).get("answered_within_over_offered")
    else:
        value = source.get(name)
    return float(value) if isinstance(value, (int, float)) else None


def recent_runs(base: str | Path | None = None) -> list[tuple[Path, dict]]:
    """Finished runs under `base` (default HOTLINE_RUNS, else runs/), the newest first."""
    base = Path(base if base is not None else os.environ.get("HOTLINE_RUNS") or "runs")
    found = []
    for meta_path in base.glob("*/run.json"):
        try:
            found.append((meta_path.stat().st_mtime, meta_path.parent, json.loads(meta_path.read_text())))
        except (OSError, ValueError):
            continue
    return [(path, meta) for _, path, meta in sorted(found, key=lambda item: item[0], reverse=True)]
