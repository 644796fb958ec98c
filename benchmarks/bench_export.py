"""Export a year of a 20-clinician clinic to CSV; compare with the sqlite3 shell writing the rows.

Run: .venv/bin/python benchmarks/bench_export.py [--quick] [--sessions N] [--runs N]
                                                 [--keep-csv FILE] [--compare FILE] [--also DIR]

Both sides are whole processes on the same database, interleaved, min and median of ``--runs``:
the path people use, ``therapy-timer export --date 2025-01-01 --to 2025-12-31 --out FILE``
(reading, pooling claim days, the rules, writing the file, marking the sessions exported),
against ``sqlite3 -csv`` (Debian package sqlite3) writing the same joined rows (sessions x
segments). Peak memory is the export process's own maximum resident set (``os.wait4``).
Today's backup is made first, by another command: the first command of a day makes it, and a
year's backup would be timed instead of the export.

``--keep-csv`` keeps the first run's CSV; ``--compare`` checks it byte for byte against a
file made the same way by another version of the code (the year's data is generated from a
fixed seed, so only the session ids differ between two loads: compare within one load, e.g.
``--dir`` on the same folder). ``--also DIR`` times another checkout's export (e.g. a
``git worktree`` of main before a change) in the same rounds, so before and after see the
same load, and checks that both write the same CSV. Wall and CPU (user + system) are given.

A third process in each round is Python itself writing the shell's joined rows with
``csv.writer`` and nothing else (``PYTHON_FLOOR``): what reading and writing those rows costs
in the language the app is written in, before any billing. The export's ratio to the shell is
that floor's ratio times the export's own to the floor.
"""

from __future__ import annotations

import argparse
import compileall
import filecmp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_store import load_year

from therapy_timer.store import database_path

ROOT = Path(__file__).resolve().parent.parent
ENV = {k: v for k, v in os.environ.items() if k != "THERAPY_TIMER_DATA_DIR"}

JOINED_ROWS = """
SELECT s.date_of_service, s.patient_ref, s.clinician, s.role, s.discipline, s.payer_profile,
       g.code, g.furnished_by, g.start_utc, g.stop_utc, s.id, s.amended
FROM sessions s JOIN segments g ON g.session_id = s.id
WHERE s.date_of_service BETWEEN '2025-01-01' AND '2025-12-31'
ORDER BY s.date_of_service, s.created_utc, g.start_utc;
"""

PYTHON_FLOOR = """
import csv, sqlite3, sys
with open(sys.argv[3], "w", newline="") as out:
    cursor = sqlite3.connect(sys.argv[1]).execute(sys.argv[2])
    writer = csv.writer(out)
    writer.writerow([column[0] for column in cursor.description])
    writer.writerows(cursor)
"""


def run(args: list[str], out: Path | None = None, cwd: Path = ROOT) -> tuple[float, float, float]:
    """Wall seconds, peak resident MiB and CPU seconds (user + system) of one process
    (stdout to ``out`` or discarded), run from ``cwd`` (its ``therapy_timer`` is the one run)."""
    sink = out.open("wb") if out is not None else subprocess.DEVNULL
    try:
        started = time.perf_counter()
        child = subprocess.Popen(args, stdout=sink, stderr=subprocess.PIPE, env=ENV, cwd=cwd)
        _pid, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
    finally:
        if out is not None:
            sink.close()  # type: ignore[union-attr]
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(
            f"{args[:4]} failed: {child.stderr.read().decode() if child.stderr else ''}"
        )
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def summary(times: list[float]) -> str:
    return f"min {min(times):6.2f} s, median {statistics.median(times):6.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 sessions instead of 100,000")
    parser.add_argument("--sessions", type=int)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="a data folder to reuse (loaded if empty)")
    parser.add_argument("--keep-csv", type=Path, help="keep the first run's CSV here")
    parser.add_argument(
        "--compare", type=Path, help="a CSV the first run must equal, byte for byte"
    )
    parser.add_argument(
        "--also",
        type=Path,
        help="another checkout (e.g. main before a change) whose export is timed in the same"
        " rounds and whose CSV must equal this one's",
    )
    args = parser.parse_args()
    sessions = args.sessions or (10_000 if args.quick else 100_000)
    shell = shutil.which("sqlite3")
    if shell is None:
        sys.exit("the baseline needs the sqlite3 shell: apt-get install sqlite3")
    for checkout in (ROOT, args.also):
        if checkout is not None:
            compileall.compile_dir(checkout / "therapy_timer", quiet=1)

    with tempfile.TemporaryDirectory() as folder:
        data = args.dir or Path(folder) / "year"
        if not database_path(data).exists():
            days, load_seconds, _ = load_year(data, sessions)
            print(f"{sessions:,} sessions over {len(days)} days loaded in {load_seconds:.1f} s")
        tt = [sys.executable, "-m", "therapy_timer", "--data-dir", str(data)]
        run([*tt, "session", "list", "--date", "2025-01-06"])  # today's backup, made once
        csv = Path(folder) / "year.csv"
        export = ["export", "--date", "2025-01-01", "--to", "2025-12-31", "--out"]
        base: list[float] = []
        base_cpu: list[float] = []
        ours: list[float] = []
        ours_cpu: list[float] = []
        peaks: list[float] = []
        other: list[float] = []
        other_cpu: list[float] = []
        floor: list[float] = []
        floor_cpu: list[float] = []
        # Marked once, untimed: the first export marks every session exported, which turns
        # each day's status from "closed" to "exported", so a fresh database's first CSV
        # would differ from every later one (and from --also's, run just before it).
        run([*tt, *export, str(csv)])
        for i in range(args.runs):  # interleaved, so all see the same machine load
            wall, _peak, cpu = run(
                [shell, "-csv", "-header", str(database_path(data)), JOINED_ROWS]
            )
            base.append(wall)
            base_cpu.append(cpu)
            floor_csv = Path(folder) / "floor.csv"
            floor_csv.unlink(missing_ok=True)
            wall, _peak, cpu = run(
                [
                    sys.executable,
                    "-c",
                    PYTHON_FLOOR,
                    str(database_path(data)),
                    JOINED_ROWS,
                    str(floor_csv),
                ]
            )
            floor.append(wall)
            floor_cpu.append(cpu)
            if args.also is not None:
                theirs = Path(folder) / "other.csv"
                theirs.unlink(missing_ok=True)
                wall, _peak, cpu = run([*tt, *export, str(theirs)], cwd=args.also)
                other.append(wall)
                other_cpu.append(cpu)
            csv.unlink(missing_ok=True)
            wall, peak, cpu = run([*tt, *export, str(csv)])
            ours.append(wall)
            ours_cpu.append(cpu)
            peaks.append(peak)
            if i == 0 and args.also is not None:
                same = filecmp.cmp(csv, theirs, shallow=False)
                print(f"CSV byte-identical to {args.also}'s: {'yes' if same else 'NO'}")
            if i == 0 and args.keep_csv is not None:
                shutil.copyfile(csv, args.keep_csv)
            if i == 0 and args.compare is not None:
                # Compared a block at a time: a parent holding two year-long files in memory
                # would lend their pages to the next child's peak (RSS between fork and exec).
                same = filecmp.cmp(csv, args.compare, shallow=False)
                print(f"CSV byte-identical to {args.compare}: {'yes' if same else 'NO'}")
        rows = csv.read_bytes().count(b"\r\n") - 1

    print(f"sqlite3 -csv joined rows:        {summary(base)}; CPU {summary(base_cpu)}")
    print(f"Python csv.writer, same rows:    {summary(floor)}; CPU {summary(floor_cpu)}")
    print(
        f"therapy-timer export --out csv:  {summary(ours)}; CPU {summary(ours_cpu)}"
        f"  ({rows:,} claim lines), peak {max(peaks):.0f} MiB"
        f" (runs: {', '.join(f'{p:.0f}' for p in peaks)})"
    )
    print(
        f"Python's floor: wall min {min(floor) / min(base):.1f} x, median"
        f" {statistics.median(floor) / statistics.median(base):.1f} x the shell;"
        f" CPU min {min(floor_cpu) / min(base_cpu):.1f} x, median"
        f" {statistics.median(floor_cpu) / statistics.median(base_cpu):.1f} x"
    )
    for label, walls, cpus in (("this", ours, ours_cpu), (str(args.also), other, other_cpu)):
        if not walls:
            continue
        print(
            f"{label}: wall min {min(walls) / min(base):.1f} x, median"
            f" {statistics.median(walls) / statistics.median(base):.1f} x the shell"
            f" ({min(walls) / min(floor):.1f} x min,"
            f" {statistics.median(walls) / statistics.median(floor):.1f} x median Python's floor);"
            f" CPU min {min(cpus) / min(base_cpu):.1f} x, median"
            f" {statistics.median(cpus) / statistics.median(base_cpu):.1f} x;"
            f" {min(walls) / sessions * 1e6:.0f} us per session"
        )


if __name__ == "__main__":
    main()
