"""The compiled routing core must give the same answers as the source, and never a stale one."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from telephony import native
from telephony.acd import events as ev

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = sorted((ROOT / "scenarios" / "library").glob("*.yaml"))
# Strategies, no-answer retries, ring time, owners, a full queue, callbacks and overflow:
# the paths the library scenarios do not all reach.
RICH = """\
name: every-path
seed: 5
horizon: 4h
arrivals: {rate_per_hour: 240}
mix:
  types: {repair: 0.5, complaint: 0.3, emergency: 0.2}
  vip_share: 0.2
  repeat_share: 0.3
patience: {dist: lognormal, mean_s: 150, sd_s: 120}
handle_time: {dist: exponential, mean_s: 200}
wrap_up: {dist: fixed, mean_s: 15}
agents:
  groups:
    - {name: fitters, count: 6, skills: {repair: 3, emergency: 2}}
    - {name: care, count: 5, skills: {complaint: 3, repair: 1}}
    - {name: standby, count: 3, skills: {emergency: 3}}
routing:
  ring_time_s: 3
  no_answer_share: 0.1
  callback_accept_share: 0.5
  queues:
    repair: {strategy: round_robin, max_length: 6, on_full: callback, max_wait_s: 60, on_max_wait: 'overflow:complaint'}
    complaint: {strategy: fewest_calls, max_length: 8, on_full: voicemail, max_wait_s: 90, on_max_wait: callback}
    emergency: {strategy: random}
"""


def run_simulate(path: Path, engine: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{path.stem}-{engine}.json"
    env = {**os.environ, "HOTLINE_NATIVE": "1" if engine == "compiled" else "0"}
    subprocess.run([sys.executable, "-m", "console.cli", "simulate", str(path), "--calls", "20000",
                    "--report", str(out)], cwd=ROOT, env=env, check=True, capture_output=True)
    report = json.loads(out.read_text())
    assert report.pop("engine").startswith(engine)
    for key in ("calls_per_second", "wall_s"):
        report.pop(key)
    return report


@pytest.fixture(scope="module")
def compiled_available():
    use, why = native.verdict()
    if not use:
        if os.environ.get("HOTLINE_REQUIRE_NATIVE") == "1":
            pytest.fail(f"HOTLINE_REQUIRE_NATIVE=1 but the routing core is {why}")
        pytest.skip(why)


@pytest.mark.parametrize("name", [p.stem for p in LIBRARY] + ["every-path"])
def test_compiled_and_interpreted_agree_to_the_last_digit(name, tmp_path, compiled_available):
    if name == "every-path":
        path = tmp_path / "every-path.yaml"
        path.write_text(RICH)
    else:
        path = ROOT / "scenarios" / "library" / f"{name}.yaml"
    compiled = run_simulate(path, "compiled", tmp_path)
    interpreted = run_simulate(path, "interpreted", tmp_path)
    assert json.dumps(compiled, sort_keys=True) == json.dumps(interpreted, sort_keys=True)
    assert compiled["offered"] > 0


def test_compiled_modules_are_the_ones_imported(compiled_available):
    import scenarios.simulator
    import telephony.acd.core
    for module in (scenarios.simulator, telephony.acd.core, ev):
        assert Path(module.__file__).suffix == ".so" and native.BUILD in Path(module.__file__).parents


def fake_build(tmp_path: Path, monkeypatch, **manifest_changes) -> None:
    """A source tree and manifest in tmp_path, as `build()` would leave them."""
    for module in native.MODULES:
        (tmp_path / module).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / module).write_text(f"# {module}\n")
    build = tmp_path / "build" / "native"
    build.mkdir(parents=True)
    manifest = {"abi": native._abi(), "mypy": "x",
                "sources": {m: native._digest(tmp_path / m) for m in native.MODULES}}
    manifest.update(manifest_changes)
    (build / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(native, "ROOT", tmp_path)
    monkeypatch.setattr(native, "BUILD", build)
    monkeypatch.setattr(native, "MANIFEST", build / "manifest.json")
    monkeypatch.delenv("HOTLINE_NATIVE", raising=False)


def test_a_matching_build_is_used(tmp_path, monkeypatch):
    fake_build(tmp_path, monkeypatch)
    assert native._decide()[0] is True


def test_an_edited_source_falls_back_to_the_source(tmp_path, monkeypatch):
    fake_build(tmp_path, monkeypatch)
    (tmp_path / "telephony/acd/core.py").write_text("# edited after the build\n")
    use, why = native._decide()
    assert not use and "telephony/acd/core.py changed" in why


def test_other_python_missing_build_or_opt_out_fall_back(tmp_path, monkeypatch):
    fake_build(tmp_path, monkeypatch, abi=".cpython-39-x86_64-linux-gnu.so")
    assert "built for .cpython-39" in native._decide()[1]
    (tmp_path / "build/native/manifest.json").write_text("{not json")
    assert "unreadable manifest" in native._decide()[1]
    (tmp_path / "build/native/manifest.json").unlink()
    assert "not built" in native._decide()[1]
    monkeypatch.setenv("HOTLINE_NATIVE", "0")
    assert native._decide() == (False, "interpreted: HOTLINE_NATIVE=0")


def test_a_stale_build_is_not_put_on_the_package_path(tmp_path, monkeypatch):
    fake_build(tmp_path, monkeypatch)
    (tmp_path / "build/native/telephony/acd").mkdir(parents=True)
    monkeypatch.setattr(native, "_verdict", None)
    assert native.prefer_compiled("telephony.acd", ["src"]) == [str(tmp_path / "build/native/telephony/acd"), "src"]
    (tmp_path / "scenarios/simulator.py").write_text("# edited\n")
    monkeypatch.setattr(native, "_verdict", None)
    assert native.prefer_compiled("telephony.acd", ["src"]) == ["src"]


def event_classes_in_source() -> dict[str, tuple[list[str], list[str]]]:
    """class name -> (its `fields`, its __init__ parameters), read from events.py itself
    (a compiled class shows no Python signature)."""
    tree = ast.parse((ROOT / "telephony/acd/events.py").read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name != "Event":
            fields = next(ast.literal_eval(s.value) for s in node.body
                          if isinstance(s, ast.Assign) and s.targets[0].id == "fields")
            init = next(f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__")
            out[node.name] = (list(fields), [(a.arg, ast.unparse(a.annotation)) for a in init.args.args[1:]])
    return out


@pytest.mark.parametrize("name,declared", sorted(event_classes_in_source().items()))
def test_event_fields_match_the_constructor(name, declared):
    fields, params = declared
    assert fields == [p for p, _ in params]
    cls = getattr(ev, name)
    sample = {"float": 1.5, "int": 2, "str": "x", "bool": True, "float | None": 2.5}   # given: taken as it is
    values = [sample[annotation] for _, annotation in params]
    event = cls(*values)
    assert event.as_dict() == dict(zip(fields, values))
    other = [not v if isinstance(v, bool) else v * 2 for v in values]
    assert event == cls(*values) and event != cls(*other)
    assert repr(event) == f"{name}(" + ", ".join(f"{p}={v!r}" for p, v in zip(fields, values)) + ")"
