"""A window start in its own fresh interpreter, offscreen: what loads and how long it takes
can only be seen from a process that loaded nothing before it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_offscreen(script: str, data_dir: Path) -> list[str]:
    """The lines ``script`` printed, run in a fresh interpreter offscreen with ``data_dir`` as
    its argument."""
    done = subprocess.run(
        [sys.executable, "-c", script, str(data_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        check=True,
    )
    return done.stdout.strip().splitlines()
