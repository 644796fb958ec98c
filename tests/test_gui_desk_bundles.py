"""The day view's bundles and kept-aside versions, driven with real clicks: export a bundle
(private, never over the app's own files, asking before replacing one), import bundles, see a
conflict beside the day, compare the two versions and keep one with a reason (audited)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from tests.fakes import FakeClock
from tests.gui_support import Bot
from tests.test_export import CATALOGUE, bundle_file, generate_day
from therapy_timer import export as ex
from therapy_timer.clinic import Clinic
from therapy_timer.codes import Role
from therapy_timer.gui.day_view import DayView
from therapy_timer.model import ConflictStatus
from therapy_timer.store import Store

LEFT = Qt.MouseButton.LeftButton
# A message box asks the window manager for its size; offscreen has none.
pytestmark = pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")


@dataclass
class Desk:
    view: DayView
    store: Store
    clinic: Clinic
    clock: FakeClock
    tmp: Path
    save_as: list[Path]  # what the next "save as" answers, in turn
    bundles: list[list[Path]]  # what the next "open bundles" answers, in turn

    def station(self, name: str, count: int, seed: int) -> tuple[Store, Clinic, list[str]]:
        """Another workstation with a day of its own sessions."""
        store = Store.open(self.tmp / name, clock=self.clock, actor=name)
        clinic = Clinic(store, CATALOGUE, self.clock, actor=name)
        return store, clinic, generate_day(clinic, store, self.clock, count, seed=seed)


@pytest.fixture
def desk(qtbot: Bot, tmp_path: Path) -> Iterator[Desk]:
    clock = FakeClock()
    with Store.open(tmp_path / "data", clock=clock, actor="desk") as store:
        clinic = Clinic(store, CATALOGUE, clock, actor="desk")
        generate_day(clinic, store, clock, 3)
        save_as: list[Path] = []
        bundles: list[list[Path]] = []

        def ask_file(_parent: QWidget, _suggested: str, _filter: str) -> str:
            return str(save_as.pop(0)) if save_as else ""

        def ask_bundles(_parent: QWidget) -> list[str]:
            return [str(p) for p in bundles.pop(0)] if bundles else []

        view = DayView(clinic, ask_file=ask_file, ask_bundles=ask_bundles)
        qtbot.add_widget(view)
        view.show()
        yield Desk(view, store, clinic, clock, tmp_path, save_as, bundles)


def test_export_a_bundle_of_the_days_shown(qtbot: Bot, desk: Desk) -> None:
    view = desk.view
    view.clinician.setCurrentText("Clin 1")
    shown = {s.id for d in view.shown for s in d.sessions}
    assert shown
    out = desk.tmp / "to-room-2.json"
    desk.save_as.append(out)
    qtbot.mouseClick(view.bundle_button, LEFT)
    bundle = ex.read_bundle(out)
    assert {r["id"] for r in bundle["sessions"]} == shown
    assert out.stat().st_mode & 0o077 == 0  # health information: the user's alone
    assert f"bundle of {len(shown)} session(s)" in view.message.text()
    # Copying sessions to another station bills nothing: none is marked exported.
    assert not any(desk.store.get_session(sid).exported for sid in shown)


def test_replacing_a_file_is_asked_first(qtbot: Bot, desk: Desk) -> None:
    view = desk.view
    out = desk.tmp / "day.json"
    out.write_text("keep me")
    desk.save_as.append(out)
    qtbot.mouseClick(view.bundle_button, LEFT)
    box = view.replace_box
    assert box is not None and box.isVisible() and str(out) in box.text()
    no = box.button(QMessageBox.StandardButton.No)
    assert no is not None
    qtbot.mouseClick(no, LEFT)
    assert out.read_text() == "keep me"
    assert "left as it was" in view.message.text()

    desk.save_as.append(out)
    qtbot.mouseClick(view.csv_button, LEFT)
    box = view.replace_box
    assert box is not None
    yes = box.button(QMessageBox.StandardButton.Yes)
    assert yes is not None
    qtbot.mouseClick(yes, LEFT)
    assert out.read_text(encoding="utf-8").lstrip("\ufeff").startswith("date_of_service,")
    assert out.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("owned", ["database", "conflicts"])
def test_a_file_of_the_app_is_never_replaced(qtbot: Bot, desk: Desk, owned: str) -> None:
    view = desk.view
    database = desk.store.path
    target = (database.parent / owned) if owned == "conflicts" else database
    (database.parent / "conflicts").mkdir(exist_ok=True)
    before = database.read_bytes() if target == database else None
    desk.save_as.append(target if owned != "conflicts" else target / "x.json")
    qtbot.mouseClick(view.bundle_button, LEFT)
    box = view.replace_box
    if box is not None:  # the database exists: asked first, then refused all the same
        yes = box.button(QMessageBox.StandardButton.Yes)
        assert yes is not None
        qtbot.mouseClick(yes, LEFT)
    assert "one of Therapy Timer's own files" in view.message.text()
    if before is not None:
        assert database.read_bytes() == before
    assert desk.clinic.claim_days(desk.clinic.today())  # the records are all still there


def test_import_bundles_adds_another_stations_sessions(qtbot: Bot, desk: Desk) -> None:
    view = desk.view
    room2, _clinic2, ids = desk.station("room2", 2, seed=11)
    with room2:
        bundle = bundle_file(room2, desk.clock, desk.tmp / "room2.json")
    assert sum(len(d.visits) for d in view.shown) == 3
    desk.bundles.append([bundle])
    qtbot.mouseClick(view.import_button, LEFT)
    assert sum(len(d.visits) for d in view.shown) == 5  # same references pool into a day
    assert "2 session(s) added, 0 already here" in view.message.text()
    assert {desk.store.get_session(i).origin for i in ids} == {"room-2"}
    assert not view.conflict_panel.isVisible()

    desk.bundles.append([desk.tmp / "missing.json"])
    qtbot.mouseClick(view.import_button, LEFT)
    assert view.message.text().startswith("Nothing imported:")
    assert "missing.json" in view.message.text()


def _conflict(qtbot: Bot, desk: Desk) -> tuple[str, int]:
    """Room 2's session merged here, then changed at room 2 and imported again: kept aside.
    The session id, and the minutes of its first segment in room 2's new version."""
    room2, clinic2, (session_id,) = desk.station("room2", 1, seed=5)
    with room2:
        desk.bundles.append([bundle_file(room2, desk.clock, desk.tmp / "first.json")])
        qtbot.mouseClick(desk.view.import_button, LEFT)
        segment = room2.segments(session_id)[0]
        clinic2.amend_segment(segment.id, reason="stopped late", minutes=2)
        desk.bundles.append([bundle_file(room2, desk.clock, desk.tmp / "later.json")])
    qtbot.mouseClick(desk.view.import_button, LEFT)
    return session_id, 2


def test_a_conflict_is_shown_beside_the_day_and_compared_side_by_side(
    qtbot: Bot, desk: Desk
) -> None:
    view = desk.view
    session_id, _minutes = _conflict(qtbot, desk)
    assert "1 differ from the session here: kept aside" in view.message.text()
    assert view.conflict_panel.isVisible()
    assert view.conflict_list.count() == 1
    item = view.conflict_list.item(0)
    assert item is not None
    patient = desk.store.get_session(session_id).patient_ref
    assert item.text().startswith(f"{patient} ") and "from room-2" in item.text()

    qtbot.mouseClick(view.compare_button, LEFT)
    dialog = view.conflict_dialog
    assert dialog is not None and dialog.isVisible(), view.message.text()
    here, incoming = dialog.here_text.text(), dialog.incoming_text.text()
    # Each side lists its own segments; the one that changed is marked on both.
    here_segment = desk.store.segments(session_id)[0]
    assert f"{here_segment.code} " in here and "(2:00)" in incoming and "(2:00)" not in here
    for side in (here, incoming):
        assert "Timed <i>(\N{BLACK DIAMOND} differs)</i>" in side
        assert f"<td>{patient}</td>" in side  # the patient is the same: not marked
    qtbot.mouseClick(dialog.close_button, LEFT)
    assert view.conflict_list.count() == 1  # deciding later changes nothing


def test_using_the_incoming_version_replaces_the_session_with_a_reason(
    qtbot: Bot, desk: Desk
) -> None:
    view = desk.view
    session_id, minutes = _conflict(qtbot, desk)
    qtbot.mouseClick(view.compare_button, LEFT)
    dialog = view.conflict_dialog
    assert dialog is not None
    qtbot.mouseClick(dialog.use_button, LEFT)
    reason = dialog.reason_dialog
    assert reason is not None and not reason.ok_button.isEnabled()
    qtbot.keyClicks(reason.reason, "room 2 timed it right")
    qtbot.mouseClick(reason.ok_button, LEFT)
    first = desk.store.segments(session_id)[0]
    assert first.stop_utc is not None
    assert (first.stop_utc - first.start_utc).total_seconds() == minutes * 60
    (conflict,) = desk.clinic.conflicts(every=True)
    assert conflict.status is ConflictStatus.ACCEPTED
    (entry,) = [
        e
        for e in desk.store.audit_entries(entity="session", entity_id=session_id)
        if e.action == "conflict.accept"
    ]
    assert entry.reason == "room 2 timed it right" and entry.actor.startswith("desk")
    assert not view.conflict_panel.isVisible()
    assert "now holds session" in view.message.text()


def test_keeping_the_version_here_drops_the_other_with_a_reason(qtbot: Bot, desk: Desk) -> None:
    view = desk.view
    session_id, _minutes = _conflict(qtbot, desk)
    before = desk.store.session_records([session_id])
    qtbot.mouseClick(view.compare_button, LEFT)
    dialog = view.conflict_dialog
    assert dialog is not None
    qtbot.mouseClick(dialog.keep_button, LEFT)
    reason = dialog.reason_dialog
    assert reason is not None
    qtbot.keyClicks(reason.reason, "the desk's copy was checked with the therapist")
    qtbot.mouseClick(reason.ok_button, LEFT)
    assert desk.store.session_records([session_id]) == before  # untouched
    (conflict,) = desk.clinic.conflicts(every=True)
    assert conflict.status is ConflictStatus.DROPPED
    (entry,) = [
        e
        for e in desk.store.audit_entries(entity="conflict", entity_id=str(conflict.id))
        if e.action == "conflict.drop"
    ]
    assert entry.reason == "the desk's copy was checked with the therapist"
    assert not view.conflict_panel.isVisible()
    assert "recorded as dropped" in view.message.text()


def test_a_refused_choice_is_said_in_the_dialog(qtbot: Bot, desk: Desk) -> None:
    view = desk.view
    _conflict(qtbot, desk)
    qtbot.mouseClick(view.compare_button, LEFT)
    dialog = view.conflict_dialog
    assert dialog is not None
    (conflict,) = desk.clinic.conflicts()
    desk.clinic.drop_conflict(conflict.id, "settled on the command line meanwhile")
    qtbot.mouseClick(dialog.use_button, LEFT)
    reason = dialog.reason_dialog
    assert reason is not None
    qtbot.keyClicks(reason.reason, "room 2 is right")
    qtbot.mouseClick(reason.ok_button, LEFT)
    assert dialog.isVisible()
    assert dialog.status.text() == f"Not settled: version {conflict.id} was already dropped"


def test_the_bundle_file_holds_what_the_import_reads(desk: Desk) -> None:
    # The day view's bundle is the CLI's: a station reads it back unchanged.
    view = desk.view
    out = desk.tmp / "b.json"
    desk.save_as.append(out)
    view.bundle_button.click()
    data = json.loads(out.read_text())
    assert data["format"] == ex.BUNDLE_FORMAT and data["workstation"]


def test_without_a_clinic_server_the_whole_clinic_switch_says_why(desk: Desk) -> None:
    view = desk.view
    assert view.here_button.isChecked()
    assert not view.clinic_button.isEnabled()
    assert view.scope_note.isVisible()
    assert "no clinic server is set up for this workstation" in view.scope_note.text()
    assert "therapy-timer clinic connect DSN" in view.scope_note.text()
    assert "therapy-timer clinic connect DSN" in view.clinic_button.toolTip()


def test_a_version_of_a_session_still_open_here_can_only_be_dropped(qtbot: Bot, desk: Desk) -> None:
    # A data folder copied while a session ran: the copy closed it and sends it back here,
    # where it still runs. It cannot be replaced while open; the desk may drop that version.
    view = desk.view
    session = desk.clinic.open_session(
        patient_ref="MRN-77", clinician="Ann", role=Role.PT, payer_profile="Medicare"
    )
    desk.clinic.start(session.id, "97110")
    desk.clock.advance(minutes=20)
    copied = desk.tmp / "copied"
    copied.mkdir()
    desk.clinic.backup(copied / desk.store.path.name)
    with Clinic.open(copied, clock=desk.clock, catalogue=CATALOGUE, actor="room-9") as room:
        room.end_session(session.id)
        sent = room.export(
            "bundle", desk.clinic.today(), out=desk.tmp / "back.json", workstation="room-9"
        )
    assert sent.path is not None
    desk.bundles.append([sent.path])
    qtbot.mouseClick(view.import_button, LEFT)
    assert view.conflict_list.count() == 1
    qtbot.mouseClick(view.compare_button, LEFT)
    dialog = view.conflict_dialog
    assert dialog is not None
    assert not dialog.use_button.isEnabled() and dialog.keep_button.isEnabled()
    assert "not billed while open" in dialog.here_text.text()
    assert "1 \N{MULTIPLICATION SIGN} 97110" in dialog.incoming_text.text()
    qtbot.mouseClick(dialog.keep_button, LEFT)
    reason = dialog.reason_dialog
    assert reason is not None
    qtbot.keyClicks(reason.reason, "still treating the patient here")
    qtbot.mouseClick(reason.ok_button, LEFT)
    assert desk.store.get_session(session.id).is_open
    assert not view.conflict_panel.isVisible()
