"""The layering contracts (pyproject.toml, [tool.importlinter]): console above scenarios
above telephony above records above siteconfig; nothing below the console draws; the
routing core imports nothing but the standard library (and its own modules)."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("path", sorted((ROOT / "telephony" / "acd").glob("*.py")), ids=lambda p: p.name)
def test_the_routing_core_imports_only_the_standard_library(path):
    """Every import in telephony/acd, at any depth of the file (a function's too), is of
    the standard library, the core itself or the loader of its compiled form."""
    allowed_own = ("telephony.acd", "telephony.native")
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            own = name == "telephony" or name.startswith(allowed_own)
            assert own or name.split(".")[0] in sys.stdlib_module_names, f"{path.name}:{node.lineno} imports {name}"


@pytest.mark.parametrize("module", ["records.db", "records.seed", "records.workorders", "records.directory",
                                    "records.sla", "records.agents", "scenarios", "telephony",
                                    "telephony.softphone", "console.seatlogic", "siteconfig.yamlsource"])
def test_core_imports_no_textual(module):
    """At run time too (an import hidden behind a dynamic name would escape the contracts)."""
    code = (f"import sys, {module}; bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', "
            "'pjsua2')]; sys.exit(bool(bad) and print(bad) is None)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
