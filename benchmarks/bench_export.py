"""Export a year of a 20-clinician clinic to CSV; compare with the sqlite3 shell writing the rows.

Run: .venv/bin/python benchmarks/bench_export.py [--quick] [--sessions N]
The baseline is `sqlite3 -csv` (Debian package sqlite3) writing the same joined rows (sessions x
segments) as CSV, measured in the same run. Ours does more per row: minutes from timestamps, the
payer's billing method, modifiers, warnings and formula neutralisation.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_store import load_year

from therapy_timer import export as ex
from therapy_timer.clinic import Clinic
from therapy_timer.clock import SystemClock
from therapy_timer.codes import builtin_catalogue
from therapy_timer.store import Store, database_path

JOINED_ROWS = """
SELECT s.date_of_service, s.patient_ref, s.clinician, s.role, s.discipline, s.payer_profile,
       g.code, g.furnished_by, g.start_utc, g.stop_utc, s.id, s.amended
FROM sessions s JOIN segments g ON g.session_id = s.id
WHERE s.date_of_service BETWEEN '2025-01-01' AND '2025-12-31'
ORDER BY s.date_of_service, s.created_utc, g.start_utc;
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 sessions instead of 100,000")
    parser.add_argument("--sessions", type=int)
    args = parser.parse_args()
    sessions = args.sessions or (10_000 if args.quick else 100_000)
    shell = shutil.which("sqlite3")
    if shell is None:
        sys.exit("the baseline needs the sqlite3 shell: apt-get install sqlite3")

    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "year"
        days, load_seconds, _ = load_year(data, sessions)
        print(f"{sessions:,} sessions over {len(days)} days loaded in {load_seconds:.1f} s")

        started = time.perf_counter()
        done = subprocess.run(
            [shell, "-csv", "-header", str(database_path(data)), JOINED_ROWS],
            capture_output=True,
            check=True,
        )
        base = time.perf_counter() - started
        base_rows = done.stdout.count(b"\n") - 1

        clock = SystemClock()
        with Store.open(data, clock=clock) as store:
            service = Clinic(store, builtin_catalogue(), clock)
            started = time.perf_counter()
            # Claim days stream in batches of whole dates: reading, pooling and writing interleave.
            claims = service.iter_claim_days(date(2025, 1, 1), date(2025, 12, 31))
            buffer = io.StringIO()
            rows = ex.write_csv(claims, buffer)
            ours = time.perf_counter() - started

    print(f"sqlite3 -csv joined rows:  {base:7.2f} s  ({base_rows:,} rows)")
    print(
        f"therapy-timer export csv:  {ours:7.2f} s  ({rows:,} claim lines, reading, pooling "
        f"and applying the rules)  = {ours / base:.1f} x the shell"
    )
    print(f"  per session: {ours / sessions * 1e6:.0f} us")


if __name__ == "__main__":
    main()
