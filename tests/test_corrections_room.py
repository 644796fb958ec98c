"""Corrections bill only time that happened: never past the close, now, or the next code."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result

from tests.fakes import FakeClock
from therapy_timer.cli import Context, main
from therapy_timer.codes import Role, builtin_catalogue
from therapy_timer.errors import InvalidOperation
from therapy_timer.store import Store

if TYPE_CHECKING:
    from therapy_timer.clinic import Clinic


class Desk:
    def __init__(self, tmp_path: Path) -> None:
        self.data = tmp_path / "data"
        self.clock = FakeClock()
        self.runner = CliRunner()

    def __call__(self, *args: str, status: int = 0) -> Result:
        result = self.runner.invoke(main, list(args), obj=Context(self.data, self.clock))
        assert result.exit_code == status, (result.output, result.exception)
        assert "Traceback" not in result.output
        return result

    def show(self, session_id: str) -> dict[str, Any]:
        import json

        shown: dict[str, Any] = json.loads(self("session", "show", session_id, "--json").stdout)
        return shown

    def session_id(self, patient: str) -> str:
        import json

        listed = json.loads(self("session", "list", "--json").stdout)
        return str(next(s["id"] for s in listed if s["patient_ref"] == patient))


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    return Desk(tmp_path)


AtDesk = tuple[Store, "Clinic", FakeClock]


@pytest.fixture
def at_desk(tmp_path: Path) -> Iterator[AtDesk]:
    """A clinic on a fresh data folder as the front desk works in it, and its clock."""
    from therapy_timer.clinic import Clinic

    clock = FakeClock()
    with Store.open(tmp_path, clock=clock, actor="desk") as store:
        yield store, Clinic(store, builtin_catalogue(), clock, actor="desk"), clock


def _minutes(segment: dict[str, Any]) -> float:
    from datetime import datetime

    start = datetime.fromisoformat(segment["start_utc"])
    stop = datetime.fromisoformat(segment["stop_utc"])
    return (stop - start) / timedelta(minutes=1)


def test_a_correction_cannot_end_after_the_session_closed(desk: Desk) -> None:
    desk("timer", "start", "97110", "--patient", "JD")
    desk.clock.advance(minutes=30)
    desk("session", "end", "--patient", "JD")
    session_id = desk.session_id("JD")
    (segment,) = desk.show(session_id)["segments"]
    error = desk(
        "session", "edit", segment["id"], "--minutes", "120", "--reason", "typo", status=1
    ).stderr
    assert "only 30 min" in error and "closed" in error
    after = desk.show(session_id)
    assert [_minutes(s) for s in after["segments"]] == [30.0]  # nothing written
    assert after["lines"] == [{"code": "97110", "units": 2, "modifiers": ["GP"]}]
    # Shortening is always possible, and so is using every minute up to the close.
    desk("session", "edit", segment["id"], "--minutes", "30", "--reason", "same")
    desk("session", "edit", segment["id"], "--minutes", "12", "--reason", "stopped late")
    assert [_minutes(s) for s in desk.show(session_id)["segments"]] == [12.0]


def test_a_correction_on_an_open_session_cannot_end_in_the_future(desk: Desk) -> None:
    desk("timer", "start", "97110", "--patient", "JD")
    desk.clock.advance(minutes=10)
    desk("timer", "stop", "--patient", "JD")
    session_id = desk.session_id("JD")
    (segment,) = desk.show(session_id)["segments"]
    error = desk(
        "session", "edit", segment["id"], "--minutes", "60", "--reason", "typo", status=1
    ).stderr
    assert "only 10 min" in error and "still open" in error
    assert [_minutes(s) for s in desk.show(session_id)["segments"]] == [10.0]


def test_a_larger_correction_says_which_code_is_in_the_way(desk: Desk) -> None:
    desk("timer", "start", "97110", "--patient", "JD")
    desk.clock.advance(minutes=10)
    desk("timer", "start", "97140", "--patient", "JD")
    desk.clock.advance(minutes=20)
    desk("session", "end", "--patient", "JD")
    session_id = desk.session_id("JD")
    first, _second = desk.show(session_id)["segments"]
    error = desk(
        "session", "edit", first["id"], "--minutes", "14", "--reason", "typo", status=1
    ).stderr
    assert "97140" in error and "starts at" in error and "shorten" in error
    assert [_minutes(s) for s in desk.show(session_id)["segments"]] == [10.0, 20.0]


def test_a_correction_cannot_overlap_the_same_persons_time_with_another_patient(
    desk: Desk,
) -> None:
    """One clinician, one patient at a time: A's 97110 cannot grow over B's 97110 minutes."""
    desk("timer", "start", "97110", "--patient", "AA")
    desk.clock.advance(minutes=10)
    desk("timer", "stop", "--patient", "AA")
    desk("timer", "start", "97110", "--patient", "BB")
    desk.clock.advance(minutes=10)
    desk("session", "end", "--patient", "BB")
    desk.clock.advance(minutes=5)
    desk("session", "end", "--patient", "AA")
    a_session = desk.session_id("AA")
    (segment,) = desk.show(a_session)["segments"]
    error = desk(
        "session", "edit", segment["id"], "--minutes", "15", "--reason", "typo", status=1
    ).stderr
    assert "patient BB" in error and "only 10 min" in error
    assert [_minutes(s) for s in desk.show(a_session)["segments"]] == [10.0]
    b_show = desk.show(desk.session_id("BB"))
    assert not any("R8.3" in str(w) for w in b_show.get("warnings", []))


def test_the_store_itself_refuses_a_stop_after_the_close(desk: Desk) -> None:
    """Every path (the window's corrections dialog too) goes through the store's check."""
    desk("timer", "start", "97110", "--patient", "JD")
    desk.clock.advance(minutes=30)
    desk("session", "end", "--patient", "JD")
    with Store.open(desk.data, clock=desk.clock) as store:
        (session,) = store.list_sessions()
        (segment,) = store.segments(session.id)
        assert session.closed_utc is not None
        with pytest.raises(InvalidOperation, match="after its session closed"):
            store.amend_segment(
                segment.id, reason="x", stop_utc=session.closed_utc + timedelta(minutes=90)
            )
        assert store.segments(session.id) == [segment]


def test_several_corrections_are_made_all_or_none(at_desk: AtDesk) -> None:
    """The day view and the summary correct several segments with one reason: one refused
    left the ones before it written while the screen said "Not corrected"."""
    store, clinic, clock = at_desk
    session = clinic.open_session(
        patient_ref="JD", clinician="Ann", role=Role.PT, payer_profile="Medicare"
    )
    clinic.start(session.id, "97110")
    clock.advance(minutes=20)
    clinic.start(session.id, "97140")
    clock.advance(minutes=10)
    clinic.end_session(session.id)
    first, second = clinic.segments(session.id)
    audited = len(store.audit_entries())
    with pytest.raises(InvalidOperation, match="97140 cannot run 30 min"):
        clinic.correct_minutes({first.id: 15, second.id: 30}, "per the note")
    assert clinic.segments(session.id) == [first, second]  # neither written
    assert len(store.audit_entries()) == audited
    clinic.correct_minutes({first.id: 15, second.id: 8}, "per the note")
    assert [(s.start_utc, s.stop_utc) for s in clinic.segments(session.id)] == [
        (first.start_utc, first.start_utc + timedelta(minutes=15)),
        (second.start_utc, second.start_utc + timedelta(minutes=8)),
    ]


@pytest.mark.parametrize("where", ["session edit --shift-later", "the window's make room"])
def test_making_room_cannot_move_a_code_into_the_same_persons_time_with_another_patient(
    at_desk: AtDesk, where: str
) -> None:
    """AA's 97140 moved 10 min later to make room for a longer 97110 ran over the same
    clinician's 97530 with BB (R8.3), where the 97110 corrected alone is refused: both
    patients' sessions were flagged 'not one-on-one'. Refused before anything moves."""
    store, clinic, clock = at_desk

    def open_for(patient: str) -> str:
        return clinic.open_session(
            patient_ref=patient, clinician="Ann", role=Role.PT, payer_profile="Medicare"
        ).id

    aa = open_for("AA")
    clinic.start(aa, "97110")
    clock.advance(minutes=10)
    clinic.start(aa, "97140")
    clock.advance(minutes=10)
    clinic.stop(aa)
    clock.advance(minutes=5)
    bb = open_for("BB")
    clinic.start(bb, "97530")  # 14:25-14:35
    clock.advance(minutes=10)
    clinic.end_session(bb)
    clock.advance(minutes=5)
    clinic.end_session(aa)  # 14:40: room enough before AA's close
    exercise, manual = clinic.segments(aa)
    audited = len(store.audit_entries())

    def make_room(minutes: int) -> None:
        if where == "session edit --shift-later":
            clinic.lengthen_segment(exercise.id, minutes, reason="ran on", shift_later=True)
        else:
            clinic.correct_minutes({exercise.id: minutes}, "ran on", make_room=True)

    with pytest.raises(InvalidOperation) as refused:
        make_room(20)  # 97140 to 14:20-14:30, over BB's 97530 from 14:25
    assert str(refused.value) == (
        f"moving the later segments 10 min later would run 97140 (segment {manual.id[:8]})"
        f" until {clock_hm(manual.stop_utc, 10)}, into 97530 for patient BB from"
        f" {clock_hm(manual.stop_utc, 5)} (one-on-one time of the same person); correct"
        " that session first"
    )
    assert clinic.segments(aa) == [exercise, manual]  # nothing moved
    assert len(store.audit_entries()) == audited
    assert not [w for w in clinic.summary(aa).warnings if w.rule == "R8.3"]

    make_room(15)  # 97140 to 14:15-14:25: ends as BB's 97530 starts
    assert [(s.start_utc, s.stop_utc) for s in clinic.segments(aa)][1] == (
        manual.start_utc + timedelta(minutes=5),
        manual.start_utc + timedelta(minutes=15),
    )
    assert not [w for w in clinic.summary(aa).warnings if w.rule == "R8.3"]
    assert not [w for w in clinic.summary(bb).warnings if w.rule == "R8.3"]


@pytest.mark.parametrize("where", ["session edit --shift-later", "the window's make room"])
def test_making_room_leaves_a_supervised_modality_where_it_ran(at_desk: AtDesk, where: str) -> None:
    """A hot pack (97010) beside 97140 until the close was moved with the timed codes, so
    a longer 97110 found no room after it: 'only 0 min after the last segment'. A modality
    runs on its own timer; only the timed codes after the longer one start later."""
    _store, clinic, clock = at_desk
    aa = clinic.open_session(
        patient_ref="AA", clinician="Ann", role=Role.PT, payer_profile="Medicare"
    ).id
    clinic.start(aa, "97110")
    clock.advance(minutes=10)
    clinic.start(aa, "97140")
    clinic.start(aa, "97010")  # beside it, until the close
    clock.advance(minutes=15)
    clinic.stop(aa, "97140")
    clock.advance(minutes=5)
    clinic.end_session(aa)
    pack, exercise, manual = sorted(clinic.segments(aa), key=lambda s: s.code)
    if where == "session edit --shift-later":
        clinic.lengthen_segment(exercise.id, 15, reason="ran on", shift_later=True)
    else:
        clinic.correct_minutes({exercise.id: 15}, "ran on", make_room=True)
    moved = {s.code: (s.start_utc, s.stop_utc) for s in clinic.segments(aa)}
    five = timedelta(minutes=5)
    assert manual.stop_utc is not None
    assert moved == {
        "97110": (exercise.start_utc, exercise.start_utc + timedelta(minutes=15)),
        "97140": (manual.start_utc + five, manual.stop_utc + five),  # ends at the close
        "97010": (pack.start_utc, pack.stop_utc),
    }


def clock_hm(moment: datetime | None, minutes: int) -> str:
    """``moment`` plus ``minutes``, as the messages show it (local time)."""
    assert moment is not None
    return f"{(moment + timedelta(minutes=minutes)).astimezone():%H:%M}"


@pytest.mark.parametrize("where", ["session edit --shift-later", "the window's make room"])
def test_making_room_is_all_or_nothing_when_a_write_fails(at_desk: AtDesk, where: str) -> None:
    """Each move was its own write: the disk filling (or another program holding the file past
    the wait) at 97110's own change left 97140 and 97112 moved 5 min later and 97110 as it
    was, while the window said 'Not corrected'. The moves and the change are one write."""
    from therapy_timer.errors import StorageUnavailable

    store, clinic, clock = at_desk
    session = clinic.open_session(
        patient_ref="JD", clinician="Ann", role=Role.PT, payer_profile="Medicare"
    ).id
    for code in ("97110", "97140", "97112"):
        clinic.start(session, code)
        clock.advance(minutes=10)
    clinic.stop(session)
    clock.advance(minutes=10)
    clinic.end_session(session)
    before = clinic.segments(session)
    audited = len(store.audit_entries())
    amend = store.amend_segment

    def full_at_the_last(segment_id: str, **changes: Any) -> Any:
        if segment_id == before[0].id:
            raise StorageUnavailable("the disk is full, so the last change was not saved")
        return amend(segment_id, **changes)

    store.amend_segment = full_at_the_last  # type: ignore[method-assign]
    with pytest.raises(StorageUnavailable):
        if where == "session edit --shift-later":
            clinic.lengthen_segment(before[0].id, 15, reason="ran on", shift_later=True)
        else:
            clinic.correct_minutes({before[0].id: 15}, "ran on", make_room=True)
    store.amend_segment = amend  # type: ignore[method-assign]
    assert clinic.segments(session) == before  # nothing moved
    assert len(store.audit_entries()) == audited
    assert not store.get_session(session).amended


def test_several_corrections_are_all_or_nothing_when_a_write_fails(at_desk: AtDesk) -> None:
    """Checked all before any was written, they were still written one by one: a write
    failing at the second left the first corrected while the screen said 'Not corrected'."""
    from therapy_timer.errors import StorageUnavailable

    store, clinic, clock = at_desk
    session = clinic.open_session(
        patient_ref="JD", clinician="Ann", role=Role.PT, payer_profile="Medicare"
    ).id
    clinic.start(session, "97110")
    clock.advance(minutes=20)
    clinic.start(session, "97140")
    clock.advance(minutes=10)
    clinic.end_session(session)
    first, second = before = clinic.segments(session)
    amend = store.amend_segment

    def full_at_the_second(segment_id: str, **changes: Any) -> Any:
        if segment_id == second.id:
            raise StorageUnavailable("the disk is full, so the last change was not saved")
        return amend(segment_id, **changes)

    store.amend_segment = full_at_the_second  # type: ignore[method-assign]
    with pytest.raises(StorageUnavailable):
        clinic.correct_minutes({first.id: 15, second.id: 8}, "per the note")
    store.amend_segment = amend  # type: ignore[method-assign]
    assert clinic.segments(session) == before
    assert not store.get_session(session).amended


def test_the_room_and_the_move_are_said_in_minutes_and_seconds(at_desk: AtDesk) -> None:
    """A stopwatch's times have seconds: 'there are only 10.6667 min', 'only 7.51667 min
    after the last segment', and 'moved 4.33333 min later to make room' in the audit log."""
    store, clinic, clock = at_desk
    session = clinic.open_session(
        patient_ref="JD", clinician="Ann", role=Role.PT, payer_profile="Medicare"
    ).id
    clinic.start(session, "97110")
    clock.advance(minutes=10, seconds=40.25)
    clinic.start(session, "97140")
    clock.advance(minutes=10, seconds=5)
    clinic.stop(session)
    clock.advance(minutes=7, seconds=31)
    clinic.end_session(session)
    exercise, _manual = clinic.segments(session)
    with pytest.raises(InvalidOperation, match="there are only 10 min 40 s from its start"):
        clinic.correct_minutes({exercise.id: 15}, "ran on")
    with pytest.raises(InvalidOperation) as refused:
        clinic.correct_minutes({exercise.id: 20}, "ran on", make_room=True)
    assert "moving the later segments 9 min 19 s later" in str(refused.value)
    assert str(refused.value).endswith("there are only 7 min 31 s after the last segment")
    clinic.correct_minutes({exercise.id: 15}, "ran on", make_room=True)
    assert [e.reason for e in store.audit_entries() if e.entity == "segment"] == [
        "ran on (moved 4 min 19 s later to make room)",
        "ran on",
    ]
