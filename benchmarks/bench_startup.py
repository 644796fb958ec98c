"""Process start-up: `units`, `--version` vs `import click`; a pedal press vs bare commits.

Run: .venv/bin/python benchmarks/bench_startup.py [--runs N]

Every measurement is a whole process (interpreter start to exit, wall time), run interleaved with
its baseline so both see the same machine load; min and median of ``--runs`` runs. Bytecode is
compiled first (this machine may set PYTHONDONTWRITEBYTECODE, which would otherwise make every
start compile the package).
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
# `units` and `--version` run as people run them: the installed `therapy-timer` command (a
# console script, as the bundle's executable is a frozen one); `python -m` would add runpy's
# ~4 ms of imports that neither has.
COMMAND = Path(PY).with_name("therapy-timer")
ENV = {k: v for k, v in os.environ.items() if k != "THERAPY_TIMER_DATA_DIR"}

BARE_COMMIT = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode = WAL")
conn.execute("PRAGMA synchronous = FULL")
conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, at TEXT)")
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO t (at) VALUES (datetime('now'))")
conn.execute("COMMIT")
conn.close()
"""


def wall_ms(args: Sequence[str]) -> float:
    started = time.perf_counter()
    subprocess.run(list(args), check=True, capture_output=True, env=ENV, cwd=ROOT)
    return (time.perf_counter() - started) * 1000


def cpu_ms(args: Sequence[str]) -> float:
    """The child's CPU time (user + system): robust where other jobs share the cores, since
    waiting for a core is not counted; wall time is what a person waits."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(list(args), check=True, capture_output=True, env=ENV, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    spent = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return spent * 1000


def compare(
    label: str, ours: Callable[[], float], base: Callable[[], float], runs: int, base_label: str
) -> None:
    mine: list[float] = []
    theirs: list[float] = []
    ours()  # warm the disk cache for both before counting
    base()
    for _ in range(runs):
        mine.append(ours())
        theirs.append(base())
    lo, hi = min(mine), statistics.median(mine)
    blo, bhi = min(theirs), statistics.median(theirs)
    print(
        f"{label}: min {lo:.0f} ms, median {hi:.0f} ms | {base_label}: min {blo:.0f} ms, "
        f"median {bhi:.0f} ms | ratio min {lo / blo:.2f}, median {hi / bhi:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    compileall.compile_dir(ROOT / "therapy_timer", quiet=1)
    tt = [PY, "-m", "therapy_timer"]
    command = [str(COMMAND)] if COMMAND.exists() else tt
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        data = str(folder / "data")

        version = [*command, "--version"]
        units = [*command, "--data-dir", data, "units", "97110=20", "97140=10"]
        bare_click = [PY, "-c", "import click"]
        for measure, unit in ((wall_ms, "wall"), (cpu_ms, "CPU")):
            compare(
                f"therapy-timer --version ({unit})",
                lambda m=measure: m(version),  # type: ignore[misc]
                lambda m=measure: m(bare_click),  # type: ignore[misc]
                args.runs,
                "python -c 'import click'",
            )
            compare(
                f"therapy-timer units 97110=20 97140=10 ({unit})",
                lambda m=measure: m(units),  # type: ignore[misc]
                lambda m=measure: m(bare_click),  # type: ignore[misc]
                args.runs,
                "python -c 'import click'",
            )
        # The database exists and today's backup is made: every later press of the day.
        wall_ms([*tt, "--data-dir", data, "timer", "start", "97110", "--patient", "P-0"])
        wall_ms([*tt, "--data-dir", data, "session", "end", "--patient", "P-0"])
        bare_db = str(folder / "bare.sqlite3")

        def bare_commits() -> float:
            return wall_ms([PY, "-c", BARE_COMMIT, bare_db]) * 2

        def press(patient: str) -> float:
            start = [*tt, "--data-dir", data, "timer", "start", "97110", "--patient", patient]
            stop = [*tt, "--data-dir", data, "timer", "stop", "--patient", patient]
            return wall_ms(start) + wall_ms(stop)

        # The pedal's everyday press: the patient's session is open, a code starts and stops.
        wall_ms([*tt, "--data-dir", data, "timer", "start", "97110", "--patient", "OPEN"])
        compare(
            "timer start + timer stop (open session)",
            lambda: press("OPEN"),
            bare_commits,
            args.runs,
            "two bare commits",
        )
        # A patient's first press also creates the session.
        patients = iter(range(1, 10**6))
        compare(
            "timer start + timer stop (new patient)",
            lambda: press(f"P-{next(patients)}"),
            bare_commits,
            args.runs,
            "two bare commits",
        )


if __name__ == "__main__":
    main()
