"""The front desk's day view, driven with real clicks on a generated day."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget

from tests.fakes import FakeClock
from tests.gui_support import Bot
from tests.test_export import CATALOGUE, bundle_file, generate_day
from therapy_timer import export as ex
from therapy_timer.clinic import Clinic
from therapy_timer.codes import Role
from therapy_timer.gui.controller import SessionController
from therapy_timer.gui.day_view import DayView
from therapy_timer.gui.main_window import MainWindow
from therapy_timer.store import Store

LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def desk(qtbot: Bot, tmp_path: Path) -> Iterator[tuple[DayView, Store, Clinic, list[Path]]]:
    clock = FakeClock()
    with Store.open(tmp_path / "data", clock=clock) as store:
        service = Clinic(store, CATALOGUE, clock)
        generate_day(service, store, clock, 6)
        asked: list[Path] = []

        def ask_file(_parent: QWidget, suggested: str, _filter: str) -> str:
            path = tmp_path / suggested
            asked.append(path)
            return str(path)

        view = DayView(service, ask_file=ask_file)
        qtbot.add_widget(view)
        view.show()
        yield view, store, service, asked


def test_lists_the_day_and_filters(
    qtbot: Bot, desk: tuple[DayView, Store, Clinic, list[Path]]
) -> None:
    view, _store, service, _ = desk
    assert view.table.rowCount() == 6
    view.clinician.setCurrentText("Clin 1")
    assert view.table.rowCount() == 2
    assert {r.session.clinician for r in view.shown} == {"Clin 1"}
    view.clinician.setCurrentText("All")
    view.status.setCurrentText("open")
    assert view.table.rowCount() == 0
    view.status.setCurrentText("closed")
    assert view.table.rowCount() == 6
    first = view.shown[0]
    cell = view.table.item(0, 3)
    assert cell is not None
    lines = cell.text()
    for line in service.summary(first.session.id).lines:
        assert f"{'-'.join((line.code, *line.modifiers))}" in lines


def test_note_mark_exported_and_export_csv(
    qtbot: Bot, desk: tuple[DayView, Store, Clinic, list[Path]]
) -> None:
    view, store, service, asked = desk
    view.table.selectRow(2)
    qtbot.mouseClick(view.note_button, LEFT)
    assert view.note_dialog is not None
    assert view.note_dialog.text.toPlainText() == service.summary(view.shown[2].session.id).note

    qtbot.mouseClick(view.csv_button, LEFT)
    (path,) = asked
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8").lstrip("\ufeff"))))
    assert {row["session_id"] for row in rows} <= {r.session.id for r in view.shown}
    assert path.stat().st_mode & 0o077 == 0
    assert all(store.get_session(r.session.id).exported for r in view.shown)
    view.status.setCurrentText("exported")
    assert view.table.rowCount() == 6


def test_an_open_session_blocks_export(
    qtbot: Bot, desk: tuple[DayView, Store, Clinic, list[Path]]
) -> None:
    view, _store, service, asked = desk
    service.open_session(
        patient_ref="OPEN9", clinician="Ann", role=Role.PT, payer_profile="Medicare"
    )
    view.reload()
    assert view.table.rowCount() == 7
    assert "still open" in view.message.text()
    qtbot.mouseClick(view.pdf_button, LEFT)
    assert asked == []
    assert "OPEN9" in view.message.text()


def test_controls_are_named_and_big_enough(
    desk: tuple[DayView, Store, Clinic, list[Path]],
) -> None:
    view = desk[0]
    for widget in (
        view.from_date,
        view.to_date,
        view.clinician,
        view.status,
        view.refresh_button,
        view.note_button,
        view.exported_button,
        view.csv_button,
        view.pdf_button,
        view.json_button,
    ):
        assert widget.accessibleName()
        assert widget.height() >= 44


@pytest.mark.qt_log_ignore("This plugin does not support raise")  # offscreen has no window manager
def test_ctrl_d_opens_the_day_view_from_the_window(qtbot: Bot, tmp_path: Path) -> None:
    clock = FakeClock()
    with Store.open(tmp_path / "data", clock=clock) as store:
        service = Clinic(store, CATALOGUE, clock)
        controller = SessionController(service)
        controller.load()
        window = MainWindow(controller, None, lambda: DayView(service))
        qtbot.add_widget(window)
        window.show()
        window.activateWindow()
        qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
        qtbot.keyClick(window, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
        assert window.day_view is not None and window.day_view.isVisible()
        qtbot.add_widget(window.day_view)
        controller.stop_background()


def click_row(
    view: DayView, row: int, modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier
) -> None:
    item = view.table.item(row, 0)
    assert item is not None
    QTest.mouseClick(
        view.table.viewport(), LEFT, modifier, view.table.visualItemRect(item).center()
    )


def test_mark_selected_exported_marks_those_rows_only(
    qtbot: Bot, desk: tuple[DayView, Store, Clinic, list[Path]]
) -> None:
    view, store, _service, _asked = desk
    view.table.clearSelection()
    qtbot.mouseClick(view.exported_button, LEFT)
    assert "Choose the sessions" in view.message.text()
    assert not any(store.get_session(r.session.id).exported for r in view.shown)

    chosen = {view.shown[1].session.id, view.shown[3].session.id}
    click_row(view, 1)
    click_row(view, 3, Qt.KeyboardModifier.ControlModifier)
    qtbot.mouseClick(view.exported_button, LEFT)
    exported = {r.session.id for r in view.shown if store.get_session(r.session.id).exported}
    assert exported == chosen
    assert view.message.text() == "Marked 2 session(s) exported."
    view.status.setCurrentText("exported")
    assert {r.session.id for r in view.shown} == chosen


def test_refresh_shows_other_stations_work_and_the_status_filters_find_it(
    qtbot: Bot,
    desk: tuple[DayView, Store, Clinic, list[Path]],
    tmp_path: Path,
) -> None:
    view, store, service, _asked = desk
    # Another station's day, merged from its bundle while the view is open.
    station_clock = FakeClock()
    with Store.open(tmp_path / "room2", clock=station_clock) as room2:
        room2_service = Clinic(room2, CATALOGUE, station_clock)
        (imported,) = generate_day(room2_service, room2, station_clock, 1, seed=4)
        bundle = bundle_file(room2, station_clock, tmp_path / "room2.json")
    service.import_bundles([bundle])
    # An exported session corrected afterwards: the billing system holds old charges.
    stale = view.shown[0].session.id
    store.mark_exported([stale])
    service.amend_segment(store.segments(stale)[0].id, reason="stopped late", minutes=3)
    assert view.table.rowCount() == 6
    qtbot.mouseClick(view.refresh_button, LEFT)
    assert view.table.rowCount() == 7
    view.status.setCurrentText("imported")
    assert [r.session.id for r in view.shown] == [imported]
    status = view.table.item(0, 6)
    assert status is not None and status.text() == "closed, from room-2"
    view.status.setCurrentText(ex.AMENDED_AFTER_EXPORT)
    assert [r.session.id for r in view.shown] == [stale]
