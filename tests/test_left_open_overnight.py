"""A session left open overnight: the next morning's start opens today's session, not yesterday's.

The first start after the local date changed, on an open session of an earlier date with nothing
running and nothing recorded since that date, closes it as it stands and opens today's session
for the same patient, clinician, role, discipline and payer, which takes the start. A timer
running across midnight, or a moment recorded after midnight, is one visit and carries on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PySide6.QtCore import Qt

from tests.fakes import NEW_YORK, FakeClock
from tests.gui_support import Bot, Rig, build, type_patient
from therapy_timer import export
from therapy_timer.cli import Context, main
from therapy_timer.clinic import Clinic
from therapy_timer.codes import Catalogue, Discipline, FurnishedBy, Role
from therapy_timer.errors import InvalidOperation
from therapy_timer.model import Session
from therapy_timer.store import Store

LOCAL = NEW_YORK
MONDAY = date(2025, 3, 10)
TUESDAY = MONDAY + timedelta(days=1)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """A local wall-clock moment in the clinic's zone."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LOCAL)


# Local days that are not UTC's (conftest.new_york), so a date taken in UTC would show.
pytestmark = pytest.mark.usefixtures("new_york")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(at(MONDAY, 16))


def _open(clinic: Clinic, ref: str = "JD-1") -> Session:
    return clinic.open_session(
        patient_ref=ref, clinician="Ann Lee", role=Role.PTA, payer_profile="Medicare"
    )


def _typed_in_on_tuesday_for_monday(clinic: Clinic, clock: FakeClock) -> Session:
    """Monday's treatment typed in on Tuesday morning (the header's date picked)."""
    clock.set(at(TUESDAY, 9))
    return clinic.open_session(
        patient_ref="JD-1",
        clinician="Ann Lee",
        role=Role.PT,
        payer_profile="Medicare",
        date_of_service=MONDAY,
    )


def _actions(store: Store, session_id: str) -> list[str]:
    return [e.action for e in store.audit_entries(entity="session", entity_id=session_id)]


# -- the clinic API ----------------------------------------------------------------------------


def test_the_next_mornings_start_closes_yesterdays_session_and_opens_todays(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    monday = _open(clinic)
    clinic.start(monday.id, "97110")
    clock.advance(minutes=20)
    clinic.stop(monday.id)
    clock.set(at(TUESDAY, 8))  # the session was left open overnight

    outcome = clinic.start(monday.id, "97140")

    today = outcome.session
    assert today.id != monday.id and today.is_open
    assert today.date_of_service == TUESDAY == clinic.today()
    assert (today.patient_ref, today.clinician, today.role, today.discipline) == (
        "JD-1",
        "Ann Lee",
        Role.PTA,
        Discipline.PT,
    )
    assert today.payer_profile == monday.payer_profile
    assert outcome.change.started_codes == ("97140",)
    assert [s.code for s in clinic.segments(today.id)] == ["97140"]

    left = outcome.left
    assert left is not None and left.id == monday.id and not left.is_open
    assert left.date_of_service == MONDAY
    assert left.closed_utc == at(TUESDAY, 8)  # closed as any close is, when it is
    assert [(s.code, s.stop_utc) for s in clinic.segments(monday.id)] == [
        ("97110", at(MONDAY, 16, 20))
    ]
    assert clinic.summary(monday.id).codes[0].minutes == 20  # its minutes did not change
    (day,) = clinic.claim_days(MONDAY)
    assert export.visit_times(day.visits[0]) == ("16:00", "16:20", False)
    assert export.overnight_remark(day) == ""  # nothing ran overnight
    assert "JD-1" in outcome.left_text and "2025-03-10" in outcome.left_text
    assert "closed as it was" in outcome.left_text and "today's session" in outcome.left_text

    assert _actions(store, monday.id)[-1] == "session.close"
    assert _actions(store, today.id)[0] == "session.create"
    created = store.audit_entries(entity="session", entity_id=today.id)[0]
    closed = store.audit_entries(entity="session", entity_id=monday.id)[-1]
    assert closed.id < created.id  # closed first: one patient, one open session


def test_a_session_left_open_with_nothing_recorded_closes_like_any_other(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    """The app has no discarding of a session: an empty one closes as any does."""
    monday = _open(clinic)
    clock.set(at(TUESDAY, 8))
    outcome = clinic.start(monday.id, "97110")
    assert outcome.left is not None and outcome.left.id == monday.id
    assert not clinic.get_session(monday.id).is_open
    assert clinic.segments(monday.id) == []
    assert outcome.session.date_of_service == TUESDAY
    assert _actions(store, monday.id) == ["session.create", "session.close"]


def test_a_timer_running_across_midnight_carries_on_in_its_session(
    clinic: Clinic, clock: FakeClock
) -> None:
    monday = _open(clinic)
    clock.set(at(MONDAY, 23, 50))
    clinic.start(monday.id, "97110")
    clock.set(at(TUESDAY, 0, 10))
    outcome = clinic.start(monday.id, "97140")
    assert outcome.left is None and outcome.left_text == ""
    assert outcome.session.id == monday.id and outcome.session.date_of_service == MONDAY
    assert outcome.change.stopped_codes == ("97110",)
    assert [s.id for s in clinic.open_sessions()] == [monday.id]


@pytest.mark.parametrize("carry_on", ["start", "resume"])
def test_a_pause_after_midnight_and_a_start_or_resume_after_it_are_one_visit(
    clinic: Clinic, clock: FakeClock, carry_on: str
) -> None:
    monday = _open(clinic)
    clock.set(at(MONDAY, 23, 40))
    clinic.start(monday.id, "97110")
    clock.set(at(TUESDAY, 0, 2))
    clinic.pause(monday.id)
    clock.set(at(TUESDAY, 0, 3))
    outcome = clinic.start(monday.id, "97110") if carry_on == "start" else clinic.resume(monday.id)
    assert outcome.left is None
    assert outcome.session.id == monday.id and outcome.session.date_of_service == MONDAY
    assert outcome.change.started_codes == ("97110",)
    assert [s.id for s in clinic.open_sessions()] == [monday.id]


def test_a_session_dated_earlier_by_hand_today_carries_on(clinic: Clinic, clock: FakeClock) -> None:
    """Yesterday's treatment typed in today (the header's date picked): created today, so its
    latest moment is today's and it is not one left open overnight."""
    typed_in = _typed_in_on_tuesday_for_monday(clinic, clock)
    clock.advance(minutes=5)
    outcome = clinic.start(typed_in.id, "97110")
    assert outcome.left is None and outcome.session.id == typed_in.id


def test_a_session_dated_earlier_by_hand_today_with_a_segment_typed_in_carries_on(
    clinic: Clinic, clock: FakeClock
) -> None:
    """Its segment typed in for its date stops on that date, yet the session was opened today:
    a start on it was taken for one left open overnight, and it was closed under the hand that
    was still filling it in."""
    typed_in = _typed_in_on_tuesday_for_monday(clinic, clock)
    clinic.add_forgotten_segment(
        typed_in.id, "97110", start=time(14, 0), minutes=30, reason="from the paper sheet"
    )
    clock.advance(minutes=5)
    outcome = clinic.start(typed_in.id, "97140")
    assert outcome.left is None and outcome.session.id == typed_in.id
    assert [s.id for s in clinic.open_sessions()] == [typed_in.id]


def test_a_start_refused_for_who_furnishes_it_closes_nothing(
    clinic: Clinic, clock: FakeClock
) -> None:
    monday = _open(clinic)  # a PTA's session: an evaluation is the therapist's alone (R7.9)
    clock.set(at(TUESDAY, 8))
    with pytest.raises(InvalidOperation, match=r"R7\.9"):
        clinic.start(monday.id, "97161")
    assert [s.id for s in clinic.open_sessions()] == [monday.id]


# -- the command line (the foot pedal) ---------------------------------------------------------


class Cli:
    def __init__(self, data_dir: Path, clock: FakeClock) -> None:
        self.clock = clock
        self.data_dir = data_dir
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Result:
        result = self.runner.invoke(main, list(args), obj=Context(self.data_dir, self.clock))
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return result

    def sessions(self, day: str) -> list[tuple[str, str]]:
        listed = json.loads(self("session", "list", "--date", day, "--json").stdout)
        return [(row["date_of_service"], row["status"]) for row in listed]


def test_the_pedal_the_next_morning_says_it_began_todays_session(
    tmp_path: Path, clock: FakeClock
) -> None:
    cli = Cli(tmp_path / "data", clock)
    assert cli("timer", "start", "97110", "--patient", "JD").stdout == "started 97110\n"
    clock.advance(minutes=20)
    cli("timer", "stop", "--patient", "JD")
    clock.set(at(TUESDAY, 8))

    result = cli("timer", "start", "97110", "--patient", "JD")

    assert result.stdout == "started 97110\n"  # the output contract is unchanged
    assert result.stderr.count("\n") == 1
    assert "JD" in result.stderr and "2025-03-10" in result.stderr
    assert "closed as it was" in result.stderr and "today's session" in result.stderr
    assert cli.sessions("2025-03-10") == [("2025-03-10", "closed")]
    assert cli.sessions("2025-03-11") == [("2025-03-11", "open")]
    status = json.loads(cli("timer", "status", "--patient", "JD", "--json").stdout)
    assert status["session"]["date_of_service"] == "2025-03-11"
    assert status["codes"]["97110"]["minutes"] == 0
    # A second start the same morning is on today's session and says nothing more.
    clock.advance(minutes=5)
    again = cli("timer", "start", "97140", "--patient", "JD")
    assert (again.stdout, again.stderr) == ("stopped 97110\nstarted 97140\n", "")


def test_a_script_naming_yesterdays_session_is_told_todays_id(
    tmp_path: Path, clock: FakeClock
) -> None:
    """`--session OLD` rolls over as the pedal does; the old session is then closed and
    refuses its timers, so the line on stderr names today's, which the script uses next."""
    cli = Cli(tmp_path / "data", clock)
    cli("timer", "start", "97110", "--patient", "JD")
    cli("timer", "stop", "--patient", "JD")
    [old] = json.loads(cli("session", "list", "--date", "2025-03-10", "--json").stdout)
    clock.set(at(TUESDAY, 8))

    started = cli("timer", "start", "97140", "--session", old["id"])

    [today] = json.loads(cli("session", "list", "--date", "2025-03-11", "--json").stdout)
    named = started.stderr.rstrip("\n").rsplit("--session ", 1)[1].rstrip(".")
    assert today["id"].startswith(named) and not old["id"].startswith(named)
    clock.advance(minutes=10)
    assert cli("timer", "stop", "--session", named).stdout == "stopped 97140\n"


def test_the_pedal_across_midnight_says_nothing(tmp_path: Path, clock: FakeClock) -> None:
    cli = Cli(tmp_path / "data", clock)
    clock.set(at(MONDAY, 23, 50))
    cli("timer", "start", "97110", "--patient", "JD")
    clock.set(at(TUESDAY, 0, 10))
    result = cli("timer", "start", "97140", "--patient", "JD")
    assert (result.stdout, result.stderr) == ("stopped 97110\nstarted 97140\n", "")
    assert cli.sessions("2025-03-10") == [("2025-03-10", "open")]
    assert cli.sessions("2025-03-11") == []


# -- the window --------------------------------------------------------------------------------


@pytest.fixture
def morning(qtbot: Bot, tmp_path: Path, clock: FakeClock) -> Iterator[Rig]:
    yield from build(qtbot, tmp_path / "data", clock)


def _left_overnight(qtbot: Bot, rig: Rig, *, paused: bool = False) -> Session:
    """JD-1's 97110 run 20 minutes on Monday, stopped (or paused), the session left open in
    the window overnight; the clock then reads Tuesday 08:00. Monday's session."""
    type_patient(qtbot, rig)
    qtbot.mouseClick(rig.tile("97110"), Qt.MouseButton.LeftButton)
    rig.clock.advance(minutes=20)
    if paused:
        qtbot.keyClick(rig.window, Qt.Key.Key_Space)
    else:
        rig.controller.stop_code()
    monday = rig.controller.session
    assert monday is not None and (monday.pause is not None) is paused
    rig.clock.set(at(TUESDAY, 8))  # the window stays open overnight, the session with it
    rig.controller.tick()
    return monday


def _shows_todays_session(rig: Rig, running: str, said: str) -> Session:
    """The window shows today's session of JD-1 running ``running``, and its banner says that
    Monday's session was closed (``said``). Today's session."""
    today = rig.controller.session
    assert today is not None and today.date_of_service == TUESDAY
    assert rig.window.header.date.date().toPython() == TUESDAY
    assert [(e.session_id, e.running) for e in rig.controller.view.caseload] == [
        (today.id, running)
    ]
    banner = rig.window.message_banner
    assert banner.isVisible()
    assert "JD-1" in banner.text.text() and "2025-03-10" in banner.text.text()
    assert said in banner.text.text()
    return today


def test_a_tile_tapped_the_next_morning_starts_todays_session(qtbot: Bot, morning: Rig) -> None:
    rig = morning
    monday = _left_overnight(qtbot, rig)
    closed: list[str] = []
    rig.controller.session_closed.connect(closed.append)  # the clinic sync pushes on it

    qtbot.mouseClick(rig.tile("97140"), Qt.MouseButton.LeftButton)

    assert closed == [monday.id]
    today = _shows_todays_session(rig, "97140", "closed as it was")
    assert today.id != monday.id
    store, clinic = rig.other()
    with store:
        assert not clinic.get_session(monday.id).is_open
        assert [s.code for s in clinic.segments(monday.id)] == ["97110"]
        assert [s.code for s in clinic.segments(today.id)] == ["97140"]
    rig.controller.poll()  # another look at the database changes nothing
    assert rig.controller.session is not None and rig.controller.session.id == today.id


def test_the_pedal_and_the_window_rolling_over_at_once_share_todays_session(
    clinic: Clinic,
    clock: FakeClock,
    data: Path,
    catalogue: Catalogue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The window found yesterday's session left open; before it closed it, the pedal closed
    it and opened today's: the window's start goes to that one, no second session, no error."""
    monday = _open(clinic)
    clinic.start(monday.id, "97110")
    clock.advance(minutes=20)
    clinic.stop(monday.id)
    clock.set(at(TUESDAY, 8))
    found = Clinic._left_open
    with Store.open(data, clock=clock, actor="pedal") as pedals:
        pedal = Clinic(pedals, catalogue, clock, actor="pedal")

        def pedal_meanwhile(self: Clinic, session: Session) -> Session | None:
            left = found(self, session)
            if self is clinic:
                pedal.start(session.id, "97110")
                clock.advance(seconds=30)
            return left

        monkeypatch.setattr(Clinic, "_left_open", pedal_meanwhile)
        outcome = clinic.start(monday.id, "97140")
    today = outcome.session
    assert outcome.left is not None and outcome.left.id == monday.id
    assert today.date_of_service == TUESDAY
    assert [s.id for s in clinic.open_sessions()] == [today.id]
    assert [(s.code, s.start_utc, s.stop_utc) for s in clinic.segments(today.id)] == [
        ("97110", at(TUESDAY, 8), at(TUESDAY, 8) + timedelta(seconds=30)),
        ("97140", at(TUESDAY, 8) + timedelta(seconds=30), None),
    ]


# -- a session left paused overnight -----------------------------------------------------------


def _paused_monday(clinic: Clinic, clock: FakeClock) -> Session:
    """JD-1's PTA session: 97110 (one-on-one) and 97010 (a supervised modality) run 20 minutes
    on Monday afternoon, then it is paused and left paused overnight."""
    monday = _open(clinic)
    clinic.start(monday.id, "97110", FurnishedBy.ASSISTANT)
    clinic.start(monday.id, "97010", FurnishedBy.ASSISTANT)
    clock.advance(minutes=20)
    clinic.pause(monday.id)
    return monday


def test_the_next_mornings_resume_restarts_the_paused_codes_in_todays_session(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    monday = _paused_monday(clinic, clock)
    clock.set(at(TUESDAY, 8))

    outcome = clinic.resume(monday.id)

    today = outcome.session
    assert today.id != monday.id and today.date_of_service == TUESDAY and today.is_open
    assert (today.patient_ref, today.role, today.payer_profile) == ("JD-1", Role.PTA, "Medicare")
    assert sorted(outcome.change.started_codes) == ["97010", "97110"]
    assert sorted(
        (s.code, s.furnished_by.value, s.start_utc) for s in clinic.segments(today.id)
    ) == [
        ("97010", "assistant", at(TUESDAY, 8)),
        ("97110", "assistant", at(TUESDAY, 8)),
    ]
    assert outcome.left is not None and outcome.left.id == monday.id and not outcome.left.is_open
    assert sorted((s.code, s.stop_utc) for s in clinic.segments(monday.id)) == [
        ("97010", at(MONDAY, 16, 20)),
        ("97110", at(MONDAY, 16, 20)),
    ]
    assert "JD-1" in outcome.left_text and "2025-03-10" in outcome.left_text
    assert _actions(store, monday.id)[-1] == "session.close"
    # Today's stopwatch goes on as any: a pause and a resume stay in today's session.
    clock.advance(minutes=10)
    clinic.pause(today.id)
    again = clinic.resume(today.id)
    assert again.left is None and again.session.id == today.id


def test_a_resume_refused_for_who_furnishes_it_closes_nothing(
    clinic: Clinic, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The paused codes are checked (R7.9) before yesterday's session is closed, as a start's
    code is: a refusal leaves it open and paused. (No paused code of a real session is refused:
    it was checked when it started; the check's refusal is made here.)"""
    monday = _paused_monday(clinic, clock)
    clock.set(at(TUESDAY, 8))

    def refuse(*_args: object) -> None:
        raise InvalidOperation("R7.9: refused for the test")

    monkeypatch.setattr(Clinic, "_check_furnisher", refuse)
    with pytest.raises(InvalidOperation, match=r"R7\.9"):
        clinic.resume(monday.id)
    assert [s.id for s in clinic.open_sessions()] == [monday.id]
    assert clinic.get_session(monday.id).pause is not None


def test_the_pedals_resume_the_next_morning_says_it_began_todays_session(
    tmp_path: Path, clock: FakeClock
) -> None:
    cli = Cli(tmp_path / "data", clock)
    cli("timer", "start", "97110", "--patient", "JD")
    clock.advance(minutes=20)
    cli("timer", "pause", "--patient", "JD")
    clock.set(at(TUESDAY, 8))

    result = cli("timer", "resume", "--patient", "JD")

    assert result.stdout == "resumed 97110\n"  # the output contract is unchanged
    assert result.stderr.count("\n") == 1
    assert "JD" in result.stderr and "2025-03-10" in result.stderr
    assert "closed as it was" in result.stderr
    assert cli.sessions("2025-03-10") == [("2025-03-10", "closed")]
    assert cli.sessions("2025-03-11") == [("2025-03-11", "open")]


def test_space_the_next_morning_resumes_in_todays_session(qtbot: Bot, morning: Rig) -> None:
    rig = morning
    monday = _left_overnight(qtbot, rig, paused=True)
    closed: list[str] = []
    rig.controller.session_closed.connect(closed.append)

    qtbot.keyClick(rig.window, Qt.Key.Key_Space)  # resume

    assert closed == [monday.id]
    today = _shows_todays_session(rig, "97110", "closed as it was")
    assert today.id != monday.id
    store, clinic = rig.other()
    with store:
        assert not clinic.get_session(monday.id).is_open
        assert [(s.code, s.stop_utc) for s in clinic.segments(today.id)] == [("97110", None)]


def test_the_window_follows_the_session_the_pedal_began_the_next_morning(
    qtbot: Bot, morning: Rig
) -> None:
    """The window shows yesterday's session, left open; the foot pedal's start closes it and
    opens today's. The window dropped the patient ('closed by another program'): a tile tapped
    then asked for the patient's reference, and the reference typed again was refused as
    already having an open session, while today's ran in the caseload."""
    rig = morning
    monday = _left_overnight(qtbot, rig)
    store, pedal = rig.other()
    with store:
        today = pedal.start(monday.id, "97140").session
    assert today.date_of_service == TUESDAY

    rig.controller.poll()

    assert _shows_todays_session(rig, "97140", "closed it as it was").id == today.id
    rig.clock.advance(minutes=5)
    qtbot.mouseClick(rig.tile("97110"), Qt.MouseButton.LeftButton)
    store, clinic = rig.other()
    with store:
        assert [s.id for s in clinic.open_sessions()] == [today.id]
        segments = sorted(clinic.segments(today.id), key=lambda s: s.start_utc)
        assert [(s.code, s.stop_utc is None) for s in segments] == [
            ("97140", False),
            ("97110", True),
        ]


def test_a_session_another_program_ends_is_not_followed_to_another_patients(
    qtbot: Bot, morning: Rig
) -> None:
    """Only the same patient's and clinician's session of today is followed."""
    rig = morning
    type_patient(qtbot, rig)
    qtbot.mouseClick(rig.tile("97110"), Qt.MouseButton.LeftButton)
    rig.clock.advance(minutes=20)
    rig.controller.stop_code()
    monday = rig.controller.session
    assert monday is not None
    rig.clock.set(at(TUESDAY, 8))
    store, other = rig.other()
    with store:
        other.end_session(monday.id)
        other.open_session(
            patient_ref="KL-2", clinician="Ann Lee", role=Role.PT, payer_profile="Medicare"
        )
    rig.controller.poll()
    assert rig.controller.session is None
    assert "closed by another program" in rig.window.message_banner.text.text()


def test_the_next_mornings_start_is_furnished_by_whoever_furnished_the_session_left_open(
    clinic: Clinic, clock: FakeClock
) -> None:
    """A therapist's session whose assistant furnished 97110 (CQ): the pedal's start without
    --furnished-by went on as the assistant's in that session, and R7.9 was checked so the
    next morning, yet today's session recorded the therapist's, billed without CQ."""
    monday = clinic.open_session(
        patient_ref="JD-1", clinician="Ann Lee", role=Role.PT, payer_profile="Medicare"
    )
    clinic.start(monday.id, "97110", FurnishedBy.ASSISTANT)
    clock.advance(minutes=20)
    clinic.stop(monday.id)
    clock.set(at(TUESDAY, 8))
    with pytest.raises(InvalidOperation, match=r"R7\.9"):
        clinic.start(monday.id, "97161")  # refused for the assistant: nothing closed
    assert [s.id for s in clinic.open_sessions()] == [monday.id]

    outcome = clinic.start(monday.id, "97140")

    assert outcome.left is not None
    assert [(s.code, s.furnished_by) for s in clinic.segments(outcome.session.id)] == [
        ("97140", FurnishedBy.ASSISTANT)
    ]
    clock.advance(minutes=5)
    given = clinic.start(outcome.session.id, "97161", FurnishedBy.THERAPIST)
    assert given.change.started_codes == ("97161",)


CLINIC_CODE = (
    '[[code]]\ncode = "97799"\nkind = "timed"\ndescription = "Clinic protocol"\n'
    'disciplines = ["PT"]\n'
)


def test_the_next_mornings_start_after_the_code_file_dropped_yesterdays_code(
    tmp_path: Path, clock: FakeClock
) -> None:
    """The clinic's codes.toml was edited overnight and dropped the code yesterday's session
    recorded: the pedal's start the next morning was refused ('unknown billing code 97799')
    for a code it did not name, as yesterday's stopwatch was rebuilt for its furnisher only,
    so the patient could not be treated at all. Today's session takes the start; yesterday's
    closes as it stands (its problem shown and corrected like any other), furnished as left."""
    cli = Cli(tmp_path / "data", clock)
    cli.data_dir.mkdir()
    (cli.data_dir / "codes.toml").write_text(CLINIC_CODE)
    cli("timer", "start", "97799", "--patient", "JD", "--by", "assistant", "--role", "PT")
    clock.advance(minutes=20)
    cli("timer", "stop", "--patient", "JD")
    (cli.data_dir / "codes.toml").write_text("")
    clock.set(at(TUESDAY, 8))

    result = cli("timer", "start", "97110", "--patient", "JD")

    assert result.stdout == "started 97110\n"
    assert "2025-03-10" in result.stderr
    assert cli.sessions("2025-03-10") == [("2025-03-10", "closed")]
    status = json.loads(cli("timer", "status", "--patient", "JD", "--json").stdout)
    assert status["session"]["date_of_service"] == "2025-03-11"
    assert status["furnished_by"] == "assistant"
