"""Benchmark the store: durable start/stop latency against bare SQLite, and a year of data.

Run: .venv/bin/python benchmarks/bench_store.py [--quick] [--dir DIR]

1. Latency of a durable stopwatch start and stop (``Store.apply_stopwatch_change``: BEGIN
   IMMEDIATE, checks, segment rows, audit row, COMMIT with synchronous=FULL) as a ratio to a
   bare ``sqlite3`` INSERT + COMMIT on a connection with the same pragmas, in the same run,
   alternating blocks so disk noise hits both alike.
2. A year of a 20-clinician clinic (about 100,000 sessions, three segments each, and a copy
   of the audit entries the store really writes for such a visit) bulk-loaded with plain SQL,
   then: file size, and the time to list one day (``list_sessions(day=...)``) and to load
   that day's segments too.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from therapy_timer.clock import SystemClock
from therapy_timer.codes import Discipline, FurnishedBy, Role
from therapy_timer.store import (
    SegmentStart,
    SegmentStop,
    StopwatchChange,
    Store,
    database_path,
)

CLINICIANS = 20
WORKDAYS = 250
TREATMENT_CODES = ("97110", "97112", "97140", "97530", "97116", "97535")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def bench_latency(folder: Path, ops: int) -> None:
    store = Store.open(folder / "latency", clock=SystemClock(), actor="bench")
    session = store.create_session(
        date_of_service=date.today(),
        patient_ref="BENCH",
        clinician="Bench",
        role=Role.PT,
        discipline=Discipline.PT,
        payer_profile="Medicare",
    )
    bare_path = folder / "bare.sqlite3"
    bare = sqlite3.connect(bare_path, isolation_level=None)
    bare.execute("PRAGMA journal_mode = WAL")
    bare.execute("PRAGMA synchronous = FULL")
    bare.execute("PRAGMA foreign_keys = ON")
    bare.execute("PRAGMA busy_timeout = 5000")
    bare.execute("CREATE TABLE t (id TEXT PRIMARY KEY, code TEXT, at TEXT)")

    def bare_op() -> None:
        bare.execute("BEGIN")
        bare.execute(
            "INSERT INTO t VALUES (?, ?, ?)",
            [uuid.uuid4().hex, "97110", datetime.now(UTC).isoformat()],
        )
        bare.execute("COMMIT")

    running: list[str] = []

    def store_start() -> None:
        now = datetime.now(UTC)
        change = StopwatchChange(
            session.id, starts=(SegmentStart("97110", FurnishedBy.THERAPIST, True, now),)
        )
        running.append(store.apply_stopwatch_change(change).started[0].id)

    def store_stop() -> None:
        change = StopwatchChange(
            session.id, stops=(SegmentStop(running.pop(), datetime.now(UTC)),), action="stop"
        )
        store.apply_stopwatch_change(change)

    base: list[float] = []
    starts: list[float] = []
    stops: list[float] = []
    for _ in range(3):  # warm-up: file growth and page cache
        bare_op()
        store_start()
        store_stop()
    block = 10
    for _ in range(max(1, ops // block)):
        base.extend(timed(bare_op) for _ in range(block))
        for _ in range(block // 2):
            starts.append(timed(store_start))
            stops.append(timed(store_stop))
    store.close()
    bare.close()
    both = starts + stops
    base_median, base_p99 = statistics.median(base), percentile(base, 99)
    print(f"durable start/stop latency ({len(both)} store ops, {len(base)} bare commits)")
    print(
        f"  bare sqlite3 insert+commit  median {base_median * 1e3:7.3f} ms"
        f"   p99 {base_p99 * 1e3:7.3f} ms"
    )
    for name, values in (("start", starts), ("stop", stops), ("start+stop", both)):
        med, p99 = statistics.median(values), percentile(values, 99)
        print(
            f"  store {name:<10}  median {med * 1e3:7.3f} ms ({med / base_median:4.2f}x)"
            f"   p99 {p99 * 1e3:7.3f} ms ({p99 / base_p99:4.2f}x)"
        )


def _year_rows(sessions: int, seed: int) -> Iterator[tuple[dict[str, object], ...]]:
    """(session, segment, segment, segment) rows shaped like the store's own writes."""
    rng = random.Random(seed)
    per_day = max(1, sessions // (CLINICIANS * WORKDAYS))
    day = date(2025, 1, 6)
    made = 0
    while made < sessions:
        if day.weekday() < 5:
            for clinician in range(CLINICIANS):
                at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=13)
                for _ in range(per_day):
                    if made >= sessions:
                        return
                    made += 1
                    yield _one_session(rng, day, clinician, at)
                    at += timedelta(minutes=30)
        day += timedelta(days=1)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def _one_session(
    rng: random.Random, day: date, clinician: int, at: datetime
) -> tuple[dict[str, object], ...]:
    session_id = str(uuid.uuid4())
    session: dict[str, object] = {
        "id": session_id,
        "date_of_service": day.isoformat(),
        "patient_ref": f"MRN{rng.randrange(10**6):06d}",
        "clinician": f"Clinician {clinician:02d}",
        "role": "PT",
        "discipline": "PT",
        "payer_profile": "Medicare" if rng.random() < 0.6 else "Commercial (per-code)",
        "status": "closed",
        "amended": 0,
        "exported": 1,
        "created_utc": iso(at),
        "closed_utc": iso(at + timedelta(minutes=45)),
        "paused_utc": None,
        "resume_json": "[]",
    }
    rows: list[dict[str, object]] = [session]
    t = at
    for code in rng.sample(TREATMENT_CODES, 2):
        length = timedelta(minutes=rng.randint(8, 25))
        rows.append(
            {
                "id": uuid.uuid4().hex,
                "session_id": session_id,
                "code": code,
                "furnished_by": "therapist",
                "exclusive": 1,
                "start_utc": iso(t),
                "stop_utc": iso(t + length),
            }
        )
        t += length
    rows.append(
        {
            "id": uuid.uuid4().hex,
            "session_id": session_id,
            "code": "97012",
            "furnished_by": "therapist",
            "exclusive": 0,
            "start_utc": iso(at),
            "stop_utc": iso(at + timedelta(minutes=15)),
        }
    )
    return tuple(rows)


def _real_audit_template(store: Store) -> list[tuple[object, ...]]:
    """The audit rows the store itself writes for one typical visit, to copy per session."""
    session = store.create_session(
        date_of_service=date(2025, 1, 6),
        patient_ref="TEMPLATE",
        clinician="Clinician 00",
        role=Role.PT,
        discipline=Discipline.PT,
        payer_profile="Medicare",
    )
    t = datetime(2025, 1, 6, 13, 0, tzinfo=UTC)
    therapist = FurnishedBy.THERAPIST

    def step(**kwargs: object) -> list[str]:
        change = StopwatchChange(session.id, **kwargs)  # type: ignore[arg-type]
        return [s.id for s in store.apply_stopwatch_change(change).started]

    (a,) = step(starts=(SegmentStart("97110", therapist, True, t),), action="start")
    (m,) = step(starts=(SegmentStart("97012", therapist, False, t),), action="start")
    t += timedelta(minutes=15)
    (b,) = step(
        stops=(SegmentStop(a, t), SegmentStop(m, t)),
        starts=(SegmentStart("97140", therapist, True, t),),
        action="switch",
    )
    store.close_session(session.id, stops=[SegmentStop(b, t + timedelta(minutes=12))])
    rows = store._conn.execute(
        "SELECT at_utc, actor, action, entity, before_json, after_json, reason FROM audit_log"
        " WHERE entity_id = ? ORDER BY id",
        [session.id],
    ).fetchall()
    return [tuple(r) for r in rows]


def load_year(data: Path, sessions: int) -> tuple[set[str], float, int]:
    """Bulk-load a year of closed sessions into a real, migrated database.

    Returns the dates of service, the seconds it took and the audit entries per session.
    """
    with Store.open(data, clock=SystemClock()) as store:  # the real schema, migrated
        template = _real_audit_template(store)
    path = database_path(data)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # bulk load only; the measured reads don't care
    started = time.perf_counter()
    conn.execute("BEGIN")
    a_sql = (
        "INSERT INTO audit_log (at_utc, actor, action, entity, entity_id, before_json,"
        " after_json, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    days: set[str] = set()
    for rows in _year_rows(sessions, seed=1):
        session_id = rows[0]["id"]
        conn.execute(_insert_sql("sessions", rows[0]), list(rows[0].values()))
        conn.executemany(_insert_sql("segments", rows[1]), [list(r.values()) for r in rows[1:]])
        conn.executemany(a_sql, [(*t[:4], session_id, *t[4:]) for t in template])
        days.add(str(rows[0]["date_of_service"]))
    conn.execute("COMMIT")
    load_seconds = time.perf_counter() - started
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return days, load_seconds, len(template)


def _insert_sql(table: str, row: dict[str, object]) -> str:
    # Named columns: later migrations add columns (with defaults) that these rows leave out.
    return f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"


def bench_year(folder: Path, sessions: int) -> None:
    data = folder / "year"
    days, load_seconds, audit_per_session = load_year(data, sessions)
    path = database_path(data)
    size = path.stat().st_size
    print(f"a year of a {CLINICIANS}-clinician clinic: {sessions:,} sessions over {len(days)} days")
    print(
        f"  bulk load {load_seconds:6.1f} s; database {size / 2**20:6.1f} MiB"
        f" ({size / sessions:,.0f} bytes per session: 3 segments and"
        f" {audit_per_session} audit entries as the store writes them)"
    )
    store = Store.open(data, clock=SystemClock())
    sample = random.Random(2).sample(sorted(days), min(20, len(days)))
    list_times: list[float] = []
    detail_times: list[float] = []
    found = 0
    for day_text in sample:
        day = date.fromisoformat(day_text)
        list_times.append(timed(lambda d=day: store.list_sessions(day=d)))  # type: ignore[misc]

        def with_segments(d: date = day) -> None:
            nonlocal found
            listed = store.list_sessions(day=d)
            found = len(listed)
            for s in listed:
                store.segments(s.id)

        detail_times.append(timed(with_segments))
    cold = timed(lambda: store.list_sessions(start=date(2025, 1, 1), end=date(2025, 12, 31)))
    store.close()
    median = statistics.median(list_times)
    print(
        f"  list one day ({found} sessions): median {median * 1e3:6.2f} ms,"
        f" max {max(list_times) * 1e3:6.2f} ms over {len(sample)} days"
    )
    print(
        f"  list one day + each session's segments: median"
        f" {statistics.median(detail_times) * 1e3:6.2f} ms"
    )
    print(f"  (for scale: listing the whole year as records takes {cold:5.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run: fewer ops, 10k sessions")
    parser.add_argument("--dir", type=Path, help="where to put the databases (default: temp)")
    args = parser.parse_args()
    ops, sessions = (100, 10_000) if args.quick else (1000, 100_000)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        bench_latency(folder, ops)
        bench_year(folder, sessions)


if __name__ == "__main__":
    main()
