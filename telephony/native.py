"""The routing core and simulator compiled with mypyc, used only while they match the source.

The simulator runs the same routing code as the switch; interpreted it does ~30k
calls/s, compiled several times that (bench/simulator.py). `make` builds the
compiled modules into `build/native/` (never beside the source, where a stale
`.so` would silently shadow an edited `.py`) and records each source's SHA-256 in
a manifest. A package listed here puts `build/native/<package>` first on its
`__path__` only if every compiled source still hashes to the manifest: one edited
file and the whole set is loaded from source (the compiled modules call each other
natively, so a mix is not allowed). HOTLINE_NATIVE=0 forces the source.

    python -m telephony.native build      # what make runs after installing
    python -m telephony.native status     # compiled or interpreted, and why
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "native"
MANIFEST = BUILD / "manifest.json"
# Order does not matter to mypyc; all are compiled as one group.
MODULES = ("telephony/acd/config.py", "telephony/acd/events.py", "telephony/acd/core.py",
           "telephony/acd/stats.py", "scenarios/simulator.py")

_verdict: tuple[bool, str] | None = None


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _abi() -> str:
    return sysconfig.get_config_var("EXT_SUFFIX") or ""


def verdict() -> tuple[bool, str]:
    """(use compiled?, why), decided once per process."""
    global _verdict
    if _verdict is None:
        _verdict = _decide()
    return _verdict


def _decide() -> tuple[bool, str]:
    if os.environ.get("HOTLINE_NATIVE", "1") == "0":
        return False, "interpreted: HOTLINE_NATIVE=0"
    try:
        manifest = json.loads(MANIFEST.read_text())
    except FileNotFoundError:
        return False, "interpreted: not built (python -m telephony.native build)"
    except (OSError, ValueError) as exc:
        return False, f"interpreted: unreadable manifest {MANIFEST} ({exc})"
    if manifest.get("abi") != _abi():
        return False, f"interpreted: built for {manifest.get('abi')}, this Python is {_abi()}"
    sources = manifest.get("sources", {})
    if sorted(sources) != sorted(MODULES):
        return False, "interpreted: built from another module list; rebuild"
    for module in MODULES:
        if _digest(ROOT / module) != sources[module]:
            return False, f"interpreted: {module} changed since the build; rebuild"
    return True, f"compiled (mypyc {manifest.get('mypy', '?')})"


def prefer_compiled(package: str, path: list[str]) -> list[str]:
    """The `__path__` for `package`: the compiled directory first when it may be used."""
    use, _ = verdict()
    compiled = BUILD / package.replace(".", "/")
    if not use or not compiled.is_dir():
        return path
    if str(BUILD) not in sys.path:
        sys.path.append(str(BUILD))  # the group's shared library is a top-level module
    return [str(compiled), *path]


def build() -> int:
    """Compile MODULES into BUILD and write the manifest last (a failed build leaves none)."""
    try:
        from mypyc.build import mypycify
        from setuptools import Distribution
        import mypy.version
    except ImportError as exc:
        print(f"hotline: cannot compile the routing core ({exc}); it runs interpreted", file=sys.stderr)
        return 1
    shutil.rmtree(BUILD, ignore_errors=True)
    temp = ROOT / "build" / "native-temp"
    cwd = os.getcwd()
    os.chdir(ROOT)  # mypyc names modules after paths relative to the working directory
    try:
        # Imported modules that stay interpreted are read for their types only.
        extensions = mypycify([*MODULES, "--follow-imports=silent", "--ignore-missing-imports"],
                              opt_level="3", verbose=False)
        dist = Distribution({"name": "hotline-native", "ext_modules": extensions})
        command = dist.get_command_obj("build_ext")
        command.build_lib, command.build_temp, command.inplace = str(BUILD), str(temp), False
        dist.run_command("build_ext")
    except (Exception, SystemExit) as exc:  # a compiler error must not stop the install
        shutil.rmtree(BUILD, ignore_errors=True)
        print(f"hotline: compiling the routing core failed ({exc}); it runs interpreted", file=sys.stderr)
        return 1
    finally:
        os.chdir(cwd)
    MANIFEST.write_text(json.dumps({"abi": _abi(), "mypy": mypy.version.__version__,
                                    "sources": {m: _digest(ROOT / m) for m in MODULES}}, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["build"]:
        status = build()
        global _verdict
        _verdict = None
        print(verdict()[1])
        return status
    if args == ["status"]:
        print(verdict()[1])
        return 0
    print("usage: python -m telephony.native build|status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
