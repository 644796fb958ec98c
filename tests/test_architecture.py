"""The Qt-free core really is Qt-free: import it in a fresh interpreter and look."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CORE_MODULES = [
    "errors",
    "codes",
    "rules",
    "cli",
    "paths",
    "clock",
    "stopwatch",
    "store",
    "sessions",
    "export",
]


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_does_not_import_qt(module: str) -> None:
    package = Path(__file__).resolve().parent.parent / "therapy_timer"
    if not (package / f"{module}.py").exists():
        pytest.skip(f"therapy_timer/{module}.py does not exist yet")
    # A subprocess, because pytest-qt has already loaded PySide6 into this one.
    code = (
        f"import sys, therapy_timer.{module}; "
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] == 'PySide6'); "
        "print(','.join(leaked))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_rules_load_no_sqlite_or_qt() -> None:
    code = (
        "import sys, therapy_timer.rules; "
        "print(','.join(m for m in ('sqlite3', 'sqlite_utils', 'PySide6') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
