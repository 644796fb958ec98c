"""Benchmark the clinic's recorded time: what a tap costs, a year of data, a busy day's list.

Run: .venv/bin/python benchmarks/bench_store.py [--quick] [--dir DIR]

1. A tap as the window and the CLI make it (``Clinic.start``, ``Clinic.stop``,
   ``Clinic.close_session``: the stopwatch rebuilt from the store, checks, segment and audit
   rows, COMMIT with synchronous=FULL) on a session already holding 1, 10 or 50 segments,
   against a bare ``sqlite3`` INSERT + COMMIT with the same pragmas, interleaved in blocks so
   both see the same disk. Wall time AND CPU time (``time.process_time``) per operation: the
   disk's fsync swings from 0.3 to several ms and hides what the code itself costs.
2. A year of a 20-clinician clinic (about 100,000 sessions, three segments each, and a copy
   of the audit entries the store really writes for such a visit) bulk-loaded with plain SQL,
   then: file size, and the time to list one day (``list_sessions(day=...)``) and to load
   that day's segments too.
3. ``session list`` of a busy day (10, 100, 1,000 sessions on one date): what the command
   asks the clinic (``list_sessions``, ``summaries``, ``session_states``), CPU per session,
   which must stay flat as the day grows.
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
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path

from therapy_timer.clinic import Clinic
from therapy_timer.clock import SystemClock
from therapy_timer.codes import Discipline, FurnishedBy, Role
from therapy_timer.model import Change, Segment
from therapy_timer.store import Store, database_path


def opening(session_id: str, code: str, at: datetime, *, exclusive: bool = True) -> Segment:
    """A therapist's segment as the stopwatch opens it."""
    return Segment(uuid.uuid4().hex, session_id, code, FurnishedBy.THERAPIST, exclusive, at, None)


CLINICIANS = 20
WORKDAYS = 250
TREATMENT_CODES = ("97110", "97112", "97140", "97530", "97116", "97535")
SEGMENTS_BEFORE = (1, 10, 50)
BUSY_DAYS = (10, 100, 1000)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def wall_and_cpu(action: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


class Timings:
    """Wall and CPU seconds of each run of one operation."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def run(self, action: Callable[[], object]) -> None:
        wall, cpu = wall_and_cpu(action)
        self.wall.append(wall)
        self.cpu.append(cpu)

    def line(self, label: str, base: Timings | None) -> str:
        wall, cpu = statistics.median(self.wall), statistics.median(self.cpu)
        text = (
            f"  {label:<28} wall median {wall * 1e3:6.3f} ms"
            f"  p99 {percentile(self.wall, 99) * 1e3:6.3f} ms"
            f" | CPU median {cpu * 1e6:6.0f} us  min {min(self.cpu) * 1e6:6.0f} us"
        )
        if base is not None:
            text += (
                f" | x bare: wall {wall / statistics.median(base.wall):4.2f},"
                f" CPU {cpu / statistics.median(base.cpu):4.2f}"
            )
        return text


def _bare(folder: Path) -> tuple[sqlite3.Connection, Callable[[], None]]:
    bare = sqlite3.connect(folder / "bare.sqlite3", isolation_level=None)
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

    return bare, bare_op


def bench_latency(folder: Path, ops: int) -> None:
    """Clinic.start / stop / close_session against a bare commit, wall and CPU per operation."""
    clinic = Clinic.open(folder / "latency", clock=SystemClock(), actor="bench")
    bare, bare_op = _bare(folder)
    patients = iter(range(10**9))

    def new_session() -> str:
        return clinic.open_session(
            patient_ref=f"BENCH-{next(patients)}",
            clinician="Bench",
            role=Role.PT,
            payer_profile="Medicare",
        ).id

    print(
        f"a tap through the clinic (Clinic.start/stop/close_session) vs a bare commit, {ops} each"
    )
    for before in SEGMENTS_BEFORE:
        session_id = new_session()
        for _ in range(before):  # the session's history, which every step rebuilds
            clinic.start(session_id, "97110")
            clinic.stop(session_id)
        base, starts, stops, closes = Timings(), Timings(), Timings(), Timings()
        block = 10
        for _ in range(max(1, ops // block)):  # interleaved: disk noise hits every row alike
            for _ in range(block):
                base.run(bare_op)
            for _ in range(block // 2):
                starts.run(partial(clinic.start, session_id, "97110"))
                stops.run(partial(clinic.stop, session_id))
            finished = new_session()
            clinic.start(finished, "97110")
            closes.run(partial(clinic.close_session, finished))
        print(f" a session already holding {before} segment(s):")
        print(base.line("bare sqlite3 insert+commit", None))
        print(starts.line("Clinic.start", base))
        print(stops.line("Clinic.stop", base))
        print(closes.line("Clinic.close_session", base))
    clinic.close()
    bare.close()


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
    a = opening(session.id, "97110", t)
    m = opening(session.id, "97012", t, exclusive=False)
    store.apply_stopwatch_change(Change(session.id, opened=(a,)), action="start")
    store.apply_stopwatch_change(Change(session.id, opened=(m,)), action="start")
    t += timedelta(minutes=15)
    b = opening(session.id, "97140", t)
    store.apply_stopwatch_change(
        Change(session.id, closed=(replace(a, stop_utc=t), replace(m, stop_utc=t)), opened=(b,)),
        action="switch",
    )
    store.close_session(session.id, stops=[replace(b, stop_utc=t + timedelta(minutes=12))])
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


def load_busy_day(data: Path, sessions: int, day: date) -> None:
    """``sessions`` closed sessions on one date, 20 clinicians, each a visit every 30 minutes."""
    with Store.open(data, clock=SystemClock()):  # the real schema, migrated
        pass
    conn = sqlite3.connect(database_path(data), isolation_level=None)
    conn.execute("BEGIN")
    rng = random.Random(3)
    first = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=13)
    for i in range(sessions):
        at = first + timedelta(minutes=30 * (i // CLINICIANS))
        rows = _one_session(rng, day, i % CLINICIANS, at)
        conn.execute(_insert_sql("sessions", rows[0]), list(rows[0].values()))
        conn.executemany(_insert_sql("segments", rows[1]), [list(r.values()) for r in rows[1:]])
    conn.execute("COMMIT")
    conn.close()


def bench_busy_day(folder: Path, repeats: int) -> None:
    """What `session list` asks the clinic, CPU per session at 10, 100 and 1,000 a day."""
    day = date(2025, 3, 3)
    print("session list of a busy day (list_sessions + summaries + session_states), CPU:")
    for size in BUSY_DAYS:
        data = folder / f"busy-{size}"
        load_busy_day(data, size, day)
        with Clinic.open(data, clock=SystemClock()) as clinic:

            def session_list() -> None:
                sessions = clinic.list_sessions(day=day)
                clinic.summaries(sessions)
                clinic.session_states(sessions)

            runs = Timings()
            for _ in range(repeats):
                runs.run(session_list)
        print(
            f"  {size:>5} sessions: min {min(runs.cpu) / size * 1e6:5.0f} us/session,"
            f" median {statistics.median(runs.cpu) / size * 1e6:5.0f} us/session"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run: fewer ops, 10k sessions")
    parser.add_argument("--dir", type=Path, help="where to put the databases (default: temp)")
    args = parser.parse_args()
    ops, sessions = (100, 10_000) if args.quick else (1000, 100_000)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        bench_latency(folder, ops)
        bench_busy_day(folder, 3 if args.quick else 7)
        bench_year(folder, sessions)


if __name__ == "__main__":
    main()
