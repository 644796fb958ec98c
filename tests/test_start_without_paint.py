"""A window that never paints (shown on a desktop nobody looks at, behind a locked screen at
log-in) must not keep the cyclic collector paused for the rest of the day, nor go without its
lease (what tells a later start that its stopwatches are running, not interrupted) and the
daily backup, which wait for the first paint (issue 13's start)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fakes import FakeClock
from therapy_timer.store import Store

ROOT = Path(__file__).resolve().parent.parent

NEVER_PAINTED = """
import gc, json, sys
from pathlib import Path
from therapy_timer.gui import launch
from therapy_timer.clock import SystemClock
from therapy_timer.store import Store, backups_dir
from therapy_timer.gui import app as gui_app
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication


class NeverExposed(gui_app._FirstPaint):
    # What a window that is never exposed sees: no paint event, so no first paint.
    def eventFilter(self, watched, event):
        return False


gui_app._FirstPaint = NeverExposed
qt = QApplication([sys.argv[0]])
seen = {}


def look(tries=40):
    seen["enabled"] = gc.isenabled()
    with Store.open(Path(sys.argv[1]), clock=SystemClock()) as store:
        seen["lease"] = store.window_lease() is not None
    seen["backups"] = len(list(backups_dir(Path(sys.argv[1])).glob("*.sqlite3")))
    if not seen["backups"] and tries:  # the backup's worker may still be copying
        QTimer.singleShot(500, lambda: look(tries - 1))
    else:
        qt.exit(0)


QTimer.singleShot(gui_app.FIRST_PAINT_WAIT_MS + 1500, look)
try:
    launch.main(["--data-dir", sys.argv[1]])
except SystemExit:
    pass
print(json.dumps(seen))
"""


def test_a_window_that_never_paints_still_collects_takes_its_lease_and_backs_up(
    tmp_path: Path,
) -> None:
    with Store.open(tmp_path, clock=FakeClock()):
        pass
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            NEVER_PAINTED,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        check=True,
        timeout=120,
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"enabled": True, "lease": True, "backups": 1}, done.stderr
