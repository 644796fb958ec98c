"""Benchmark the clinic server: a busy day's sync from one workstation to a real PostgreSQL.

Run: .venv/bin/python benchmarks/bench_server.py [--sessions 400] [--clinicians 20]

Starts a throw-away PostgreSQL cluster (tests/server_support.py), records a day of
``--sessions`` closed sessions (three codes each, ``--clinicians`` clinicians) at one
workstation, and times with the wall clock:

1. the first ``clinic sync`` of the day (every session added);
2. a sync with nothing new (what the window's background sync would cost every few seconds);
3. the whole day delivered again (the server's mark reset: every session compared, none written);
4. ten amended sessions;
5. the desk reading the day (``clinic_records``), and the day's CSV exported from the server
   (``export --clinic``) against the same export from the local database (checked equal);
6. a clinic-year (``--year-sessions``, 100,000 by default: 20 clinicians, 250 days, loaded
   by bench_store.load_year and pushed with the real sync): the desk's CSV export of the year
   read from PostgreSQL (``Clinic.clinic_export``) against the same export from the local
   SQLite database (``Clinic.export``), both written to a file and marking nothing,
   interleaved, min and median of ``--runs``, the two files checked byte-identical.

Baseline, in the same run: the day's bundle records read locally (``Store.session_records``)
plus one ``executemany`` INSERT of them as JSON into a bare table in one transaction — the
least any push of those records could cost.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from bench_store import load_year
from psycopg.types.json import Jsonb

from tests.server_support import Cluster, binaries_missing, remove_cluster, start_cluster
from therapy_timer.clinic import Clinic
from therapy_timer.codes import Role
from therapy_timer.store import Store

CODES = ("97110", "97112", "97140", "97530")
DAY = date(2025, 3, 10)


class Clock:
    def __init__(self) -> None:
        self.moment = datetime(2025, 3, 10, 13, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment


T = TypeVar("T")


def _timed(step: Callable[[], T]) -> tuple[float, T]:
    began = time.perf_counter()
    result = step()
    return time.perf_counter() - began, result


def record_day(folder: Path, sessions: int, clinicians: int) -> float:
    clock = Clock()
    began = time.perf_counter()
    with Clinic.open(folder, clock=clock) as here:
        for n in range(sessions):
            # Every clinician treats one patient per half hour, side by side, from 6 a.m. EST.
            clock.moment = datetime(2025, 3, 10, 11, 0, tzinfo=UTC) + timedelta(
                minutes=30 * (n // clinicians)
            )
            session = here.open_session(
                patient_ref=f"MRN{n:05d}",
                clinician=f"Clinician {n % clinicians}",
                role=Role.PT,
                payer_profile="Medicare",
            )
            for k in range(3):
                here.start(session.id, CODES[(n + k) % len(CODES)])
                clock.moment += timedelta(minutes=7 + (n + k) % 3)
            here.end_session(session.id)
    return time.perf_counter() - began


def bench_year(cluster: Cluster, sessions: int, runs: int) -> None:
    """The desk's export of a clinic-year from the server against the same from SQLite."""
    cluster.psql("CREATE DATABASE year")
    Clinic.init_server(cluster.dsn(dbname="year"), workstations=["ws_year"], desks=["desk_year"])
    first, last = date(2025, 1, 1), date(2025, 12, 31)
    with tempfile.TemporaryDirectory() as scratch:
        station, desk = Path(scratch) / "station", Path(scratch) / "desk"
        days, _load_s, _audit = load_year(station, sessions)
        with Clinic.open(station, clock=Clock()) as here:
            # load_year's sessions are billed already, the one it records for its audit
            # template not yet: bill that too, so the desk's marks below match every one.
            here.mark_exported(
                [s.id for s in here.list_sessions(start=first, end=last) if not s.exported]
            )
            here.connect_server(cluster.dsn("ws_year", "year"))
            push_s, pushed = _timed(here.sync_server)
        print(
            f"clinic-year: {sessions:,} sessions over {len(days)} days;"
            f" pushed in {push_s:.1f} s ({pushed.added:,} added)"
        )
        # The loaded year was billed at the workstation: the desk's marks say so too (the
        # status column reads them), set here by the administrator, not timed.
        cluster.psql("UPDATE therapy_timer.sessions SET exported = true", dbname="year")
        with Clinic.open(desk, clock=Clock()) as at_desk:
            at_desk.connect_server(cluster.dsn("desk_year", "year"))
        local_csv, server_csv = Path(scratch) / "local.csv", Path(scratch) / "server.csv"

        def local() -> None:
            with Clinic.open(station, clock=Clock()) as here:
                here.export("csv", first, last, out=local_csv, force=True, mark=False)

        def from_server() -> None:
            with Clinic.open(desk, clock=Clock()) as at_desk:
                at_desk.clinic_export("csv", first, last, out=server_csv, force=True, mark=False)

        times: dict[str, list[float]] = {"sqlite": [], "server": []}
        for _ in range(runs):
            times["sqlite"].append(_timed(local)[0])
            times["server"].append(_timed(from_server)[0])
        if local_csv.read_bytes() != server_csv.read_bytes():
            kept = Path(tempfile.mkdtemp(prefix="bench-server-"))
            for made in (local_csv, server_csv):
                made.replace(kept / made.name)
            sys.exit(f"the desk bills the year differently: both files are in {kept}")
        size = local_csv.stat().st_size
    lo, hi = times["sqlite"], times["server"]
    print(
        f"year's CSV ({size / 2**20:.1f} MiB, identical): local SQLite min {min(lo):.2f} s"
        f" (median {statistics.median(lo):.2f}); from PostgreSQL (--clinic) min {min(hi):.2f} s"
        f" (median {statistics.median(hi):.2f}); server / local = {min(hi) / min(lo):.2f}x"
        f" (medians {statistics.median(hi) / statistics.median(lo):.2f}x), {runs} runs"
        " interleaved"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=400)
    parser.add_argument("--clinicians", type=int, default=20)
    parser.add_argument("--year-sessions", type=int, default=100_000, help="0: skip the year")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    missing = binaries_missing()
    if missing:
        sys.exit(missing)
    cluster = start_cluster()
    try:
        if args.year_sessions:
            bench_year(cluster, args.year_sessions, args.runs)
        cluster.psql("CREATE DATABASE bench")
        Clinic.init_server(cluster.dsn(dbname="bench"), workstations=["ws_bench"])
        dsn = cluster.dsn("ws_bench", "bench")
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            recorded = record_day(folder, args.sessions, args.clinicians)
            print(f"recorded {args.sessions} sessions locally in {recorded:.2f} s")
            with Clinic.open(folder, clock=Clock()) as here:
                here.connect_server(dsn)
                first_s, first = _timed(here.sync_server)
                idle_s, _ = _timed(here.sync_server)
                with psycopg.connect(cluster.dsn(dbname="bench"), autocommit=True) as admin:
                    admin.execute("UPDATE therapy_timer.workstations SET pushed_audit_id = 0")
                again_s, again = _timed(here.sync_server)
                for session in here.list_sessions(day=DAY)[:10]:
                    segment = here.segments(session.id)[0]
                    here.amend_segment(segment.id, minutes=5, reason="benchmark correction")
                amend_s, amended = _timed(here.sync_server)
                desk_s, records = _timed(lambda: here.clinic_records(DAY, DAY))
                local_export_s, local_export = _timed(lambda: here.export("csv", DAY))
                server_export_s, server_export = _timed(lambda: here.clinic_export("csv", DAY))
                assert server_export.text == local_export.text, "the desk bills differently"
            with Store.open(folder, clock=Clock()) as store:
                ids = [s.id for s in store.list_sessions(day=DAY)]

                def baseline() -> None:
                    rows = store.session_records(ids)
                    with psycopg.connect(cluster.dsn(dbname="bench")) as conn:
                        conn.execute("CREATE TABLE IF NOT EXISTS bare (id uuid, record jsonb)")
                        with conn.cursor() as cur:
                            cur.executemany(
                                "INSERT INTO bare VALUES (%s, %s)",
                                [(r["id"], Jsonb(r)) for r in rows],
                            )

                base_s, _ = _timed(baseline)
        print(f"first sync:          {first_s * 1000:8.1f} ms  {first.added} added")
        print(f"sync, nothing new:   {idle_s * 1000:8.1f} ms")
        print(f"whole day again:     {again_s * 1000:8.1f} ms  {again.unchanged} unchanged")
        print(f"10 amended:          {amend_s * 1000:8.1f} ms  {amended.amended} amended")
        print(f"desk reads the day:  {desk_s * 1000:8.1f} ms  {len(records)} records")
        print(
            f"day's CSV: local {local_export_s * 1000:.1f} ms, from the server (--clinic)"
            f" {server_export_s * 1000:.1f} ms; identical text"
        )
        print(
            f"baseline (read + bare INSERT): {base_s * 1000:8.1f} ms;"
            f" first sync / baseline = {first_s / base_s:.1f}x"
        )
    finally:
        remove_cluster(cluster)


if __name__ == "__main__":
    main()
