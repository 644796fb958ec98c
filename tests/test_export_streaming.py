"""A clinic-year's export streams (issue 13): dates read a few at a time, the CSV written as it
is billed, the marks read a chunk at a time; never timed here, only what is read and written."""

from __future__ import annotations

import gc
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.fakes import FakeClock
from therapy_timer.clinic import Clinic
from therapy_timer.codes import Role, builtin_catalogue
from therapy_timer.model import Session

CATALOGUE = builtin_catalogue()


def _visits(clinic: Clinic, clock: FakeClock, per_day: list[int]) -> list[Session]:
    """``per_day[i]`` closed sessions on the i-th day, each 10 minutes of 97110, then a day on."""
    made = []
    for count in per_day:
        for i in range(count):
            session = clinic.open_session(
                patient_ref=f"MRN{i}", clinician="Ann", role=Role.PT, payer_profile="Medicare"
            )
            clinic.start(session.id, "97110")
            clock.advance(minutes=10)
            made.append(clinic.end_session(session.id))
        clock.advance(minutes=24 * 60)
    return made


def test_a_range_is_read_a_few_whole_dates_at_a_time_and_the_file_is_the_preview(
    clinic: Clinic, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("therapy_timer.clinic.CLAIM_DAY_BATCH", 2)
    sessions = _visits(clinic, clock, [3, 1, 1, 2, 1])
    first, last = sessions[0].date_of_service, sessions[-1].date_of_service
    listed: list[int] = []
    real = clinic._store.list_sessions

    def counted(**kwargs: object) -> list[Session]:
        found = real(**kwargs)  # type: ignore[arg-type]
        if kwargs.get("status") is None:  # the open-session check lists only open ones
            listed.append(len(found))
        return found

    monkeypatch.setattr(clinic._store, "list_sessions", counted)
    preview = clinic.export("csv", first, last, mark=False).text
    # A date is never split (the first has 3), otherwise no more than a batch at a time.
    assert listed == [3, 2, 2, 1]
    listed.clear()
    done = clinic.export("csv", first, last, out=tmp_path / "year.csv")
    assert listed == [3, 2, 2, 1]
    assert done.path is not None and done.text is None
    assert done.path.read_bytes().decode("utf-8") == preview  # CRLF kept as written
    assert preview is not None and preview.count("\r\n") == 1 + len(sessions)
    assert (done.sessions, done.marked) == (len(sessions), len(sessions))
    assert all(s.exported for s in clinic.list_sessions(start=first, end=last))


def test_an_export_that_fails_half_way_leaves_no_file_and_marks_nothing(
    clinic: Clinic, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("therapy_timer.clinic.CLAIM_DAY_BATCH", 1)
    sessions = _visits(clinic, clock, [1, 1, 1])
    real = clinic._store.segment_times_of  # the read each batch of dates makes
    calls: list[int] = []
    collecting: list[bool] = []

    def fails_on_the_third_batch(ids: list[str]) -> object:
        calls.append(len(ids))
        collecting.append(gc.isenabled())
        if len(calls) == 3:
            raise sqlite3.OperationalError("disk I/O error")
        return real(ids)

    monkeypatch.setattr(clinic._store, "segment_times_of", fails_on_the_third_batch)
    out = tmp_path / "year.csv"
    with pytest.raises(sqlite3.OperationalError):
        clinic.export("csv", sessions[0].date_of_service, sessions[-1].date_of_service, out=out)
    assert len(calls) == 3  # two dates were already written to the temporary file
    # The cyclic collector was paused while the days were billed, and is back on after.
    assert collecting == [False, False, False] and gc.isenabled()
    assert list(tmp_path.iterdir()) == [tmp_path / "data"]
    assert not any(s.exported for s in clinic.list_sessions(start=date.min, end=date.max))


def _statements(clinic: Clinic, ids: list[str]) -> int:
    seen: list[str] = []
    conn: sqlite3.Connection = clinic._store._conn
    conn.set_trace_callback(seen.append)
    try:
        clinic.mark_exported(ids)
    finally:
        conn.set_trace_callback(None)
    return len(seen)


def test_marking_a_year_exported_reads_the_sessions_a_chunk_at_a_time(
    clinic: Clinic, clock: FakeClock
) -> None:
    ids = [s.id for s in _visits(clinic, clock, [30])]
    clinic.mark_exported(ids)
    # Marking them again changes nothing; what it reads must not grow with the count.
    assert _statements(clinic, ids[:3]) == _statements(clinic, ids)
    assert all(s.exported for s in clinic.list_sessions(day=clock.now().date() - timedelta(1)))
