"""An untimed code is recorded once per session: a second `untimed add` is refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fakes import FakeClock
from tests.test_cli_sessions import Cli
from tests.test_export import CATALOGUE, bundle_file
from therapy_timer.clinic import Clinic
from therapy_timer.codes import FurnishedBy, Role
from therapy_timer.errors import InvalidInput
from therapy_timer.gui import presenter
from therapy_timer.gui.view_state import HeaderView, UntimedView
from therapy_timer.model import Session
from therapy_timer.store import Store


@pytest.fixture
def session(clinic: Clinic) -> Session:
    return clinic.open_session(
        patient_ref="MRN-1", clinician="Ann Lee", role=Role.PT, payer_profile="Medicare"
    )


def test_a_second_add_of_an_untimed_code_is_refused_naming_it(
    clinic: Clinic, store: Store, session: Session
) -> None:
    clinic.add_untimed(session.id, "97161", minutes=30)
    with pytest.raises(InvalidInput, match=r"97161 is already recorded on this session \(30 min\)"):
        clinic.add_untimed(session.id, "97161", minutes=30)
    clinic.add_untimed(session.id, "G0283")
    with pytest.raises(InvalidInput, match=r"G0283 is already recorded on this session;"):
        clinic.add_untimed(session.id, "g0283")  # the same code, typed in lower case
    assert [(u.code, u.minutes) for u in store.untimed_services(session.id)] == [
        ("97161", 30),
        ("G0283", None),
    ]
    assert clinic.summary(session.id).total_treatment_minutes == 30


def test_a_correction_cannot_add_an_untimed_code_a_closed_session_records(
    clinic: Clinic, store: Store, session: Session
) -> None:
    clinic.add_untimed(session.id, "97150", minutes=40)
    clinic.end_session(session.id)
    with pytest.raises(InvalidInput, match="97150 is already recorded"):
        clinic.add_untimed(session.id, "97150", minutes=40, reason="group ran twice?")
    assert not store.get_session(session.id).amended
    # Its minutes are corrected by removing it and adding it again, as the message says.
    clinic.remove_untimed(session.id, "97150", reason="45 minutes, not 40")
    clinic.add_untimed(session.id, "97150", minutes=45, reason="45 minutes, not 40")
    assert [u.minutes for u in store.untimed_services(session.id)] == [45]


def test_untimed_add_twice_on_the_command_line_exits_2_naming_the_code(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli("timer", "start", "97110", "--patient", "MRN-1")
    cli("untimed", "add", "97161", "--patient", "MRN-1", "--minutes", "30")
    again = cli("untimed", "add", "97161", "--patient", "MRN-1", "--minutes", "30", status=2)
    assert "97161 is already recorded on this session (30 min)" in again.stderr
    assert "Traceback" not in again.stderr
    (listed,) = json.loads(cli("session", "list", "--json").stdout)
    shown = json.loads(cli("session", "show", listed["id"], "--json").stdout)
    assert [u["code"] for u in shown["untimed"]] == ["97161"]


def test_the_windows_tick_and_minutes_keep_one_row_of_a_code(
    clinic: Clinic, store: Store, session: Session
) -> None:
    clinic.set_untimed(session.id, "97161", checked=True, minutes=30)
    clinic.set_untimed(session.id, "97161", checked=True)
    clinic.set_untimed_minutes(session.id, "97161", 45)
    assert [(u.code, u.minutes) for u in store.untimed_services(session.id)] == [("97161", 45)]


def test_an_imported_session_an_older_version_recorded_twice_is_merged_as_recorded(
    clinic: Clinic, store: Store, session: Session, clock: FakeClock, tmp_path: Path
) -> None:
    """A bundle copies what a station recorded: refusing it would strand that station's
    sessions at the desk. The rules bill its two rows as the one service they are."""
    clinic.add_untimed(session.id, "97161", minutes=30)
    store._conn.execute(  # the row a second `untimed add` of an older version wrote
        "INSERT INTO untimed_services (session_id, code, minutes, furnished_by, created_utc)"
        " SELECT session_id, code, minutes, furnished_by, created_utc FROM untimed_services"
    )
    clinic.end_session(session.id)
    bundle = bundle_file(store, clock, tmp_path / "room2.json")
    with Store.open(tmp_path / "desk", clock=clock, actor="desk") as desk:
        at_desk = Clinic(desk, CATALOGUE, clock)
        assert at_desk.import_bundles([bundle]).added == (session.id,)
        (line,) = at_desk.summary(session.id).lines
        assert (line.code, line.units) == ("97161", 1)


def _stored_twice(store: Store, session: Session) -> None:
    """The rows an older version's second `untimed add` of 97161 left: 30 minutes, then 20."""
    store._conn.execute(
        "INSERT INTO untimed_services (session_id, code, minutes, furnished_by, created_utc)"
        " SELECT session_id, code, 20, furnished_by, created_utc FROM untimed_services"
        " WHERE session_id = ?",
        [session.id],
    )


def _window_minutes(clinic: Clinic, session: Session) -> dict[str, int | None]:
    return {u.code: u.minutes for u in _window_untimed(clinic, session)}


def _window_untimed(
    clinic: Clinic, session: Session, *, refused: bool = False
) -> tuple[UntimedView, ...]:
    """The window's untimed rows; ``refused``: as the rules refusing the session leave them."""
    workspace = clinic.workspace(session.id)
    view = presenter.window_view(
        workspace=workspace,
        header=HeaderView(),
        favourites=[],
        furnished_by=FurnishedBy.THERAPIST,
        message="",
        catalogue=clinic.catalogue,
        evaluate=lambda method: None if refused else clinic.evaluate(workspace, method=method),
    )
    return view.untimed


def test_a_code_an_older_version_stored_twice_shows_the_minutes_it_bills(
    clinic: Clinic, store: Store, session: Session, clock: FakeClock
) -> None:
    """The billing, the CSV and the day view count both rows' minutes (50); the window showed
    the last row's (20), so nobody saw what was billed, and its minutes box changed the first
    row only: 45 typed there billed 65 and the box went on showing 20."""
    clinic.add_untimed(session.id, "97161", minutes=30)
    _stored_twice(store, session)
    assert _window_minutes(clinic, session) == {"97161": 50}
    clinic.set_untimed_minutes(session.id, "97161", 45)
    assert [(u.code, u.minutes) for u in store.untimed_services(session.id)] == [("97161", 45)]
    assert _window_minutes(clinic, session) == {"97161": 45}
    _stored_twice(store, session)
    clinic.end_session(session.id)
    (day,) = clinic.claim_days(session.date_of_service, session.date_of_service)
    assert day.result.total_treatment_minutes == 65


def test_an_untimed_code_timed_on_the_stopwatch_shows_as_billed_and_timed(
    clinic: Clinic, session: Session, clock: FakeClock
) -> None:
    """Its row shows the one unit billed: ticked, with the stopwatch's 30 minutes, and marked
    timed, so the window records nothing by hand for it (a tick with the 30 in its box would
    have recorded them again: 60 billed, 54d467a)."""
    clinic.start(session.id, "97161")
    clock.advance(minutes=30)
    clinic.stop(session.id)
    assert _window_untimed(clinic, session) == (
        UntimedView("97161", "PT evaluation, low complexity", True, 30, timed=True),
    )
    # A session the rules refuse (a timer left running over a weekend) bills nothing until
    # corrected: the row still takes no tick, which would be recorded and billed after.
    assert _window_untimed(clinic, session, refused=True) == (
        UntimedView("97161", "PT evaluation, low complexity", True, 30, timed=True),
    )
