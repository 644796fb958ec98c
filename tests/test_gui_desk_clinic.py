"""The day view's Whole clinic switch against a real PostgreSQL the tests start: the clinic's
claim days pooled across workstations, each station's last sync and running codes, and a plain
fallback to this workstation's sessions when the server is away."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from tests.fakes import FakeClock
from tests.gui_support import Bot
from tests.server_support import DAY, Server, Station, two_rooms_and_a_desk
from tests.test_server import _minutes
from therapy_timer.clinic import Clinic
from therapy_timer.codes import Role
from therapy_timer.gui.day_view import DayView

LEFT = Qt.MouseButton.LeftButton
# The clinic server's fixtures (cluster, clinic_server) come from tests/server_support.py,
# loaded as a plugin by conftest: one cluster for every module that needs one.


@pytest.fixture
def stations(clinic_server: Server, tmp_path: Path) -> Iterator[tuple[Station, Station, Clinic]]:
    """Room 1 and room 2 connected as their own roles, and the desk's Clinic as the desk."""
    room1, room2, desk = two_rooms_and_a_desk(clinic_server, tmp_path)
    with desk.clinic() as at_desk:
        yield room1, room2, at_desk


def _view(qtbot: Bot, clinic: Clinic, save_as: Path | None = None) -> DayView:
    view = DayView(clinic, ask_file=lambda _parent, _name, _filter: str(save_as or ""))
    qtbot.add_widget(view)
    view.show()
    return view


def test_the_whole_clinic_pools_a_patient_across_workstations(
    qtbot: Bot,
    clinic_server: Server,
    stations: tuple[Station, Station, Clinic],
    tmp_path: Path,
) -> None:
    room1, room2, desk = stations
    # The same patient: the PT in room 1 in the morning, the PTA in room 2 in the afternoon.
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 10, "97140": 4})
    room2.clock.advance(minutes=300)
    room2.treat("MRN1", "Sam Diaz", "pta", {"97110": 5})
    room1("timer", "start", "97530", "--patient", "MRN7", "--clinician", "Pat Lee", "--role", "pt")
    room1("clinic", "sync", status=0)
    room2("clinic", "sync")

    out = tmp_path / "clinic.csv"
    view = _view(qtbot, desk, out)
    assert view.table.rowCount() == 0  # nothing was recorded at the desk itself
    assert view.clinic_button.isEnabled() and not view.scope_note.isVisible()
    assert view.here_button.text() == "\N{CHECK MARK} This workstation"
    qtbot.mouseClick(view.clinic_button, LEFT)
    assert view.clinic_button.text() == "\N{CHECK MARK} Whole clinic"
    assert view.here_button.text() == "This workstation"
    qtbot.waitUntil(lambda: "on the clinic server" in view.message.text(), timeout=10_000)
    (day,) = view.shown
    assert day.patient_ref == "MRN1" and day.pooled
    assert [s.origin for s in day.sessions] == ["ws_room1", "ws_room2"]
    # Both stations' minutes on one claim: 10 + 4 + 5, where room 1 alone has 10 + 4.
    assert day.result.total_timed_minutes == 19
    with Clinic.open(room1.data_dir, clock=room1.clock) as here:
        assert sum(d.result.total_timed_minutes for d in here.claim_days(DAY)) == 14
    sessions = view.table.item(0, 1)
    assert sessions is not None
    assert "Pat Lee (PT), from ws_room1" in sessions.text()
    assert "Sam Diaz (PTA), from ws_room2" in sessions.text()
    stations_shown = view.scope_note.text()
    assert view.scope_note.isVisible()
    assert "ws_room1: last sync" in stations_shown
    assert "running Pat Lee: MRN7 97530" in stations_shown
    assert "ws_room2: last sync" in stations_shown and "nothing running" in stations_shown
    # What changes this workstation's records is off while the clinic is shown.
    assert not view.exported_button.isEnabled() and not view.bundle_button.isEnabled()
    # An export bills the clinic's days and marks them exported on the server.
    qtbot.mouseClick(view.csv_button, LEFT)
    rows = out.read_text(encoding="utf-8").splitlines()[1:]
    assert rows and all(",MRN1," in row for row in rows)
    # Said once the clinic is read again, not overwritten by that read.
    qtbot.waitUntil(lambda: "on the clinic server" in view.message.text(), timeout=10_000)
    assert view.message.text().startswith("Exported 2 session(s) of the whole clinic to ")
    assert (
        "2 marked exported. 1 claim day(s), 2 session(s) on the clinic server"
        in view.message.text()
    )
    assert clinic_server.one("SELECT bool_and(exported) FROM therapy_timer.sessions") is True

    # Closed and opened again from the window (Ctrl+D reloads the same view): read anew.
    view.close()
    view.reload()
    view.show()
    qtbot.waitUntil(lambda: "on the clinic server" in view.message.text(), timeout=10_000)
    assert [d.patient_ref for d in view.shown] == ["MRN1"]

    qtbot.mouseClick(view.here_button, LEFT)
    assert view.table.rowCount() == 0 and view.exported_button.isEnabled()


def test_an_unreachable_server_is_said_plainly_and_the_desk_goes_on_locally(
    qtbot: Bot, clinic_server: Server, stations: tuple[Station, Station, Clinic]
) -> None:
    _room1, _room2, desk = stations
    session = desk.open_session(
        patient_ref="MRN9", clinician="Ann", role=Role.PT, payer_profile="Medicare"
    )
    desk.start(session.id, "97110")
    clock = desk.clock
    assert isinstance(clock, FakeClock)
    clock.advance(minutes=12)
    desk.end_session(session.id)
    view = _view(qtbot, desk)
    assert view.table.rowCount() == 1
    clinic_server.cluster.stop()
    try:
        qtbot.mouseClick(view.clinic_button, LEFT)
        qtbot.waitUntil(lambda: view.here_button.isChecked(), timeout=15_000)
    finally:
        clinic_server.cluster.start()
    text = view.message.text()
    assert text.startswith("The whole clinic could not be read (the clinic server cannot be")
    assert text.endswith("showing this workstation's sessions instead.")
    assert "Traceback" not in text and "password" not in text
    assert [d.patient_ref for d in view.shown] == ["MRN9"]


def _server_conflict(room1: Station, room2: Station, tmp_path: Path) -> str:
    """Room 1's session, merged at room 2 from a bundle and corrected there to 20 minutes:
    room 2's sync leaves it kept aside on the server. The session's id."""
    room1.treat("MRN1", "Pat Lee", "pt", {"97110": 30})
    room1("clinic", "sync")
    bundle = tmp_path / "room1.json"
    room1("export", "--date", DAY.isoformat(), "--format", "bundle", "--out", str(bundle))
    room2("import", str(bundle))
    with room2.clinic() as here:
        (session,) = here.list_sessions(day=DAY)
        segment = here.segments(session.id)[0]
    room2("session", "edit", segment.id, "--minutes", "20", "--reason", "wrong patient time")
    room2("clinic", "sync", status=1)
    return session.id


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
@pytest.mark.parametrize("choice", ["use", "keep"])
def test_a_version_the_server_kept_aside_is_settled_side_by_side(
    qtbot: Bot,
    clinic_server: Server,
    stations: tuple[Station, Station, Clinic],
    tmp_path: Path,
    choice: str,
) -> None:
    room1, room2, desk = stations
    session_id = _server_conflict(room1, room2, tmp_path)
    view = _view(qtbot, desk)
    assert not view.conflict_panel.isVisible()  # nothing kept aside by imports here
    qtbot.mouseClick(view.clinic_button, LEFT)
    qtbot.waitUntil(lambda: "on the clinic server" in view.message.text(), timeout=10_000)
    assert view.conflict_panel.isVisible()
    assert "kept aside</b> on the clinic server" in view.conflict_title.text()
    item = view.conflict_list.item(0)
    assert item is not None and item.text().startswith("MRN1 2025-03-10, from ws_room2: ")

    qtbot.mouseClick(view.compare_button, LEFT)
    dialog = view.conflict_dialog
    assert dialog is not None
    assert "ws_room2 sent the clinic server another version" in dialog.why.text()
    assert "(30:00)" in dialog.here_text.text() and "(20:00)" in dialog.incoming_text.text()
    assert "2 \N{MULTIPLICATION SIGN} 97110-GP" in dialog.here_text.text()  # 30 minutes
    assert "1 \N{MULTIPLICATION SIGN} 97110-GP" in dialog.incoming_text.text()  # 20 minutes
    button = dialog.use_button if choice == "use" else dialog.keep_button
    qtbot.mouseClick(button, LEFT)
    reason = dialog.reason_dialog
    assert reason is not None
    qtbot.keyClicks(reason.reason, "checked with the PT")
    qtbot.mouseClick(reason.ok_button, LEFT)

    record = clinic_server.one(
        "SELECT record FROM therapy_timer.sessions WHERE id = %s", [session_id]
    )
    assert _minutes(record) == {"97110": 20 if choice == "use" else 30}
    action = "conflict.accepted" if choice == "use" else "conflict.dropped"
    assert (
        clinic_server.one(
            "SELECT details->>'reason' FROM therapy_timer.events WHERE action = %s"
            " AND actor = 'desk_front'",
            [action],
        )
        == "checked with the PT"
    )
    done = "accepted" if choice == "use" else "dropped"
    said = f"The version from ws_room2 was {done} on the clinic server (session {session_id[:8]})"
    qtbot.waitUntil(lambda: view.message.text().startswith(said), timeout=10_000)
    assert "on the clinic server." in view.message.text()  # read again after settling
    assert not view.conflict_panel.isVisible()
