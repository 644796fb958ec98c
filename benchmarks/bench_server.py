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
   (``export --clinic``) against the same export from the local database (checked equal).

Baseline, in the same run: the day's bundle records read locally (``Store.session_records``)
plus one ``executemany`` INSERT of them as JSON into a bare table in one transaction — the
least any push of those records could cost.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from psycopg.types.json import Jsonb

from tests.server_support import binaries_missing, remove_cluster, start_cluster
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=400)
    parser.add_argument("--clinicians", type=int, default=20)
    args = parser.parse_args()
    missing = binaries_missing()
    if missing:
        sys.exit(missing)
    cluster = start_cluster()
    try:
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
