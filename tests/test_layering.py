"""The domain core imports no Textual (and records/scenarios import no UI at all)."""
import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["records.db", "records.seed", "records.workorders", "records.directory",
                                    "records.sla", "records.agents", "scenarios", "telephony",
                                    "telephony.softphone", "console.seatlogic"])
def test_core_imports_no_textual(module):
    code = f"import sys, {module}; bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'pjsua2')]; sys.exit(bool(bad) and print(bad) is None)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
