"""What a tap costs the database: statements and write transactions, counted by SQLite itself."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.fakes import FakeClock
from therapy_timer.clinic import Clinic
from therapy_timer.codes import Role, builtin_catalogue
from therapy_timer.store import Store

CATALOGUE = builtin_catalogue()


@contextmanager
def statements(clinic: Clinic) -> Iterator[list[str]]:
    """Every SQL statement the clinic's connection runs inside the block, as SQLite traces it."""
    seen: list[str] = []
    conn: sqlite3.Connection = clinic._store._conn
    conn.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        conn.set_trace_callback(None)


def _writes(seen: list[str]) -> int:
    return sum(1 for sql in seen if sql.strip().upper().startswith("BEGIN"))


def test_a_tile_tap_is_one_write_transaction_and_a_handful_of_statements(clinic: Clinic) -> None:
    session = clinic.open_session(
        patient_ref="MRN1", clinician="Kim", role=Role.PT, payer_profile="Medicare"
    )
    clinic.start(session.id, "97110")
    clinic.clock.advance(minutes=9)  # type: ignore[attr-defined]
    with statements(clinic) as seen:
        outcome = clinic.start(session.id, "97140")  # a switch: stop one code, start another
    assert outcome.change.stopped_codes == ("97110",)
    assert _writes(seen) == 1
    # Issue 12: one more read after the commit, for one-on-one time running for another patient
    # (the running-segments index); it is the only statement after the write.
    assert seen[-1].startswith("SELECT * FROM segments WHERE stop_utc IS NULL")
    assert len(seen) <= 12, "\n".join(seen)


def test_the_window_repaint_reads_nothing(clinic: Clinic) -> None:
    session = clinic.open_session(
        patient_ref="MRN1", clinician="Kim", role=Role.PT, payer_profile="Medicare"
    )
    clinic.start(session.id, "97110")
    workspace = clinic.workspace(session.id)
    with statements(clinic) as seen:
        for _ in range(3):
            clinic.clock.advance(seconds=1)  # type: ignore[attr-defined]
            clinic.evaluate(workspace)
    assert seen == []


def _day_of(clinic: Clinic, sessions: int) -> None:
    """``sessions`` closed sessions today, two clinicians, each with a timed code."""
    for i in range(sessions):
        session = clinic.open_session(
            patient_ref=f"MRN{i}", clinician=f"Kim {i % 2}", role=Role.PT, payer_profile="Medicare"
        )
        clinic.start(session.id, "97110")
        clinic.clock.advance(minutes=9)  # type: ignore[attr-defined]
        clinic.end_session(session.id)


def _session_list(clinic: Clinic) -> int:
    """What `session list` asks the clinic; the number of statements it ran."""
    with statements(clinic) as seen:
        sessions = clinic.list_sessions(day=clinic.today())
        clinic.summaries(sessions)
        clinic.session_states(sessions)
    return len(seen)


def test_a_days_session_list_runs_as_many_statements_for_3_sessions_as_for_30(
    tmp_path: Path,
) -> None:
    # Issue 13: listing a busy day re-listed the clinician's whole day for each session.
    counts = []
    for size in (3, 30):
        clock = FakeClock()
        with Store.open(tmp_path / str(size), clock=clock) as store:
            clinic = Clinic(store, CATALOGUE, clock)
            _day_of(clinic, size)
            counts.append(_session_list(clinic))
    assert counts[0] == counts[1], counts
