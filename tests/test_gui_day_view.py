"""The front desk's day view, driven with real clicks on a generated day."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QEvent, QModelIndex, QPersistentModelIndex, QSize, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QApplication,
    QDateTimeEdit,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from tests.fakes import FakeClock
from tests.gui_support import Bot
from tests.test_export import CATALOGUE, bundle_file, generate_day
from therapy_timer import export as ex
from therapy_timer import rules
from therapy_timer.clinic import Clinic
from therapy_timer.codes import Role
from therapy_timer.gui.controller import SessionController
from therapy_timer.gui.day_view import COLUMNS, DayView, _pydate
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
    assert {s.clinician for d in view.shown for s in d.sessions} == {"Clin 1"}
    view.clinician.setCurrentText("All")
    view.status.setCurrentText("open")
    assert view.table.rowCount() == 0
    view.status.setCurrentText("closed")
    assert view.table.rowCount() == 6
    first = view.shown[0]
    cell = view.table.item(0, 2)
    assert cell is not None
    lines = cell.text()
    for line in service.summary(first.session_ids[0]).lines:
        assert f"{'-'.join((line.code, *line.modifiers))}" in lines


def test_note_mark_exported_and_export_csv(
    qtbot: Bot, desk: tuple[DayView, Store, Clinic, list[Path]]
) -> None:
    view, store, service, asked = desk
    view.table.selectRow(2)
    qtbot.mouseClick(view.note_button, LEFT)
    assert view.note_dialog is not None
    assert view.note_dialog.text.toPlainText() == service.summary(view.shown[2].session_ids[0]).note

    qtbot.mouseClick(view.csv_button, LEFT)
    (path,) = asked
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8").lstrip("\ufeff"))))
    assert {row["session_ids"] for row in rows} == {" ".join(d.session_ids) for d in view.shown}
    assert path.stat().st_mode & 0o077 == 0
    assert all(store.get_session(s.id).exported for d in view.shown for s in d.sessions)
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
        view.separate_button,
        view.csv_button,
        view.pdf_button,
        view.json_button,
        view.bundle_button,
        view.import_button,
        view.here_button,
        view.clinic_button,
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
    assert "Choose the claim days" in view.message.text()
    assert not any(store.get_session(d.session_ids[0]).exported for d in view.shown)

    chosen = {view.shown[1].session_ids[0], view.shown[3].session_ids[0]}
    click_row(view, 1)
    click_row(view, 3, Qt.KeyboardModifier.ControlModifier)
    qtbot.mouseClick(view.exported_button, LEFT)
    exported = {
        d.session_ids[0] for d in view.shown if store.get_session(d.session_ids[0]).exported
    }
    assert exported == chosen
    assert view.message.text() == "Marked 2 claim day(s) exported."
    view.status.setCurrentText("exported")
    assert {d.session_ids[0] for d in view.shown} == chosen
    # Marked again: said so, not counted as newly marked.
    view.status.setCurrentText("All")
    click_row(view, 1)
    click_row(view, 2, Qt.KeyboardModifier.ControlModifier)
    qtbot.mouseClick(view.exported_button, LEFT)
    assert view.message.text() == ("Marked 1 claim day(s) exported. 1 already exported, unchanged.")


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
    stale = view.shown[0].session_ids[0]
    store.mark_exported([stale])
    service.amend_segment(store.segments(stale)[0].id, reason="stopped late", minutes=3)
    assert view.table.rowCount() == 6
    qtbot.mouseClick(view.refresh_button, LEFT)
    assert view.table.rowCount() == 7
    view.status.setCurrentText("imported")
    assert [d.session_ids for d in view.shown] == [(imported,)]
    sessions = view.table.item(0, 1)
    assert sessions is not None and sessions.text().endswith(", from room-2")
    view.status.setCurrentText(ex.AMENDED_AFTER_EXPORT)
    assert [d.session_ids for d in view.shown] == [(stale,)]


def test_a_pooled_day_is_one_claim_and_two_people_can_be_separated(
    qtbot: Bot, desk: tuple[DayView, Store, Clinic, list[Path]]
) -> None:
    view, store, service, _asked = desk
    clock = service.clock
    assert isinstance(clock, FakeClock)
    seen = []
    for clinician, role in (("Ann", Role.PT), ("Bo", Role.PTA)):
        session = service.open_session(
            patient_ref="JD", clinician=clinician, role=role, payer_profile="Medicare"
        )
        service.start(session.id, "97110")
        clock.advance(minutes=5)
        service.end_session(session.id)
        seen.append(session.id)
    qtbot.mouseClick(view.refresh_button, LEFT)
    assert view.table.rowCount() == 7  # six one-visit days and JD's pooled day
    row = next(i for i, d in enumerate(view.shown) if d.patient_ref == "JD")
    day = view.shown[row]
    assert day.session_ids == tuple(seen)
    texts = [view.table.item(row, col).text() for col in range(3)]  # type: ignore[union-attr]
    assert "initials: one person?" in texts[0]
    assert "Ann (PT)" in texts[1] and "Bo (PTA)" in texts[1]
    # 5 + 5 minutes: one unit; Bo's 5 are the PTA's own (R7.1), over 10% of it: CQ (R7.4)
    assert texts[2] == "1 \N{MULTIPLICATION SIGN} 97110-GP-CQ"
    assert "1 pooled under initials" in view.message.text()

    click_row(view, row)
    qtbot.mouseClick(view.separate_button, LEFT)
    dialog = view.ref_dialog
    assert dialog is not None and not dialog.ok_button.isEnabled()
    assert dialog.session.currentData() == seen[1]  # the later visit is offered first
    qtbot.keyClicks(dialog.reference, "MRN200")
    qtbot.mouseClick(dialog.ok_button, LEFT)
    reason = view.reason_dialog
    assert reason is not None and store.get_session(seen[1]).patient_ref == "JD"
    qtbot.keyClicks(reason.reason, "two patients with initials JD")
    qtbot.mouseClick(reason.ok_button, LEFT)
    assert store.get_session(seen[1]).patient_ref == "MRN200"
    assert view.table.rowCount() == 8
    assert "now billed as MRN200" in view.message.text()
    (entry,) = [
        e
        for e in store.audit_entries(entity="session", entity_id=seen[1])
        if e.reason == "two patients with initials JD"
    ]
    assert entry.after is not None and entry.after["patient_ref"] == "MRN200"
    split = {d.patient_ref: d for d in view.shown if d.patient_ref in ("JD", "MRN200")}
    assert all(not d.result.lines for d in split.values())  # 5 minutes each: nothing billed


def test_separating_needs_a_pooled_day(
    qtbot: Bot, desk: tuple[DayView, Store, Clinic, list[Path]]
) -> None:
    view = desk[0]
    click_row(view, 0)
    qtbot.mouseClick(view.separate_button, LEFT)
    assert view.ref_dialog is None
    assert "one session" in view.message.text()


def test_each_rule_number_shown_comes_with_its_short_meaning(
    desk: tuple[DayView, Store, Clinic, list[Path]],
) -> None:
    view = desk[0]
    warned = 0
    for row, day in enumerate(view.shown):
        cell = view.table.item(row, len(COLUMNS) - 1)
        assert cell is not None
        for warning in day.result.warnings:
            assert warning.gist  # every rule has its few plain words
            assert f"{warning.rule} ({warning.gist}): {warning.message}" in cell.toolTip()
            if warning.severity is rules.Severity.ACT:
                assert f"{warning.rule}: {warning.gist}" in cell.text().splitlines()
                warned += 1
    assert warned  # the generated day has warnings to act on


def test_a_day_over_a_codes_mue_shows_it_to_act_on(qtbot: Bot, tmp_path: Path) -> None:
    """R9.4: the clinic's codes.toml caps 97110 at 3 units a day; 53 minutes bill 4."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "codes.toml").write_text('[[code]]\ncode = "97110"\nmue = 3\n', "utf-8")
    clock = FakeClock()
    with Clinic.open(data, clock=clock) as clinic:
        session = clinic.open_session(
            patient_ref="MRN1", clinician="Ann", role=Role.PT, payer_profile="Medicare"
        )
        clinic.start(session.id, "97110")
        clock.advance(minutes=53)
        clinic.end_session(session.id)
        view = DayView(clinic)
        qtbot.add_widget(view)
        view.show()
        assert view.table.rowCount() == 1
        lines = view.table.item(0, 2)
        cell = view.table.item(0, len(COLUMNS) - 1)
        assert lines is not None and cell is not None
        assert "4 \N{MULTIPLICATION SIGN} 97110-GP" in lines.text()
        assert cell.text().splitlines() == ["R9.4: Over the MUE"]
        assert "R9.4 (Over the MUE): 97110: 4 units on this date of service" in cell.toolTip()


def test_a_patients_claim_days_over_a_codes_mue_summed_show_it_to_act_on(
    qtbot: Bot, tmp_path: Path
) -> None:
    """R9.4 across claims: 45 minutes of 97110 under a PT plan and 45 under an OT plan bill
    3 units each, 6 against the clinic's MUE of 4; both rows say so."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "codes.toml").write_text('[[code]]\ncode = "97110"\nmue = 4\n', "utf-8")
    clock = FakeClock()
    with Clinic.open(data, clock=clock) as clinic:
        for role in (Role.PT, Role.OT):
            session = clinic.open_session(
                patient_ref="MRN1", clinician="Ann", role=role, payer_profile="Medicare"
            )
            clinic.start(session.id, "97110")
            clock.advance(minutes=45)
            clinic.end_session(session.id)
        view = DayView(clinic)
        qtbot.add_widget(view)
        view.show()
        assert view.table.rowCount() == 2
        for row in range(2):
            cell = view.table.item(row, len(COLUMNS) - 1)
            assert cell is not None
            assert cell.text().splitlines() == ["R9.4: Over the MUE"]
            assert (
                "R9.4 (Over the MUE): 97110: 6 units on this date of service, summed over the "
                "patient's claim days of that date billed to Medicare (OT under Medicare: 3 "
                "units; PT under Medicare: 3 units)"
            ) in cell.toolTip()


class _CountingDelegate(QStyledItemDelegate):
    """Counts the cells the table measures (``sizeHint``): the cost of fitting its columns."""

    def __init__(self) -> None:
        super().__init__()
        self.measured = 0

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        self.measured += 1
        return super().sizeHint(option, index)


@pytest.mark.parametrize("sessions", [20, 60])
def test_refresh_measures_each_cell_a_bounded_number_of_times(
    qtbot: Bot, tmp_path: Path, sessions: int
) -> None:
    """A clinic's busy day (400 sessions) took over a minute to refresh: each cell put in the
    table made its columns fit their contents again, measuring every cell (cells squared)."""
    clock = FakeClock()
    with Store.open(tmp_path / "data", clock=clock) as store:
        service = Clinic(store, CATALOGUE, clock)
        generate_day(service, store, clock, sessions)
        view = DayView(service)
        qtbot.add_widget(view)
        view.show()
        qtbot.waitExposed(view)
        counter = _CountingDelegate()
        view.table.setItemDelegate(counter)
        qtbot.mouseClick(view.refresh_button, LEFT)  # the table as the desk keeps it open
        QApplication.processEvents()  # its layout done, as between two of the desk's clicks
        counter.measured = 0
        qtbot.mouseClick(view.refresh_button, LEFT)
        rows = view.table.rowCount()
        assert rows >= 20  # the day's (the fake clock runs past midnight after ~40 of them)
        cells = rows * view.table.columnCount()
        # Fitting the columns and then the rows once each reads every cell a few times
        # (Qt measures a column's cells, then each row's); never once per cell put in.
        assert counter.measured <= 4 * cells


def test_date_steps_queued_while_a_range_is_read_read_the_last_range_once(
    qtbot: Bot, desk: tuple[DayView, Store, Clinic, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The From date stepped back with the arrow keys: each step read its range in turn, and
    on a 20-clinician clinic's month one took 0.2-0.9 s, so 14 presses made while it read kept
    the desk waiting 12 s for ranges it never saw."""
    view, _store, service, asked = desk
    reads: list[tuple[object, ...]] = []
    claim_days = service.claim_days

    def counted(*args: object, **kwargs: object) -> object:
        reads.append(args)
        return claim_days(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(service, "claim_days", counted)
    today = view.from_date.date()
    view.from_date.setFocus()
    view.from_date.setCurrentSection(QDateTimeEdit.Section.DaySection)
    for _ in range(7):
        for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            event = QKeyEvent(kind, Qt.Key.Key_Down, Qt.KeyboardModifier.NoModifier)
            QApplication.postEvent(view.from_date, event)
    QApplication.processEvents()
    assert view.from_date.date() == today.addDays(-7)
    assert len(reads) == 1  # 7 before
    assert reads[0][:2] == (_pydate(today.addDays(-7)), _pydate(today))
    assert view.table.rowCount() == 6
    # A range chosen and exported at once is read first: the file is of the dates shown.
    view.from_date.setDate(today.addDays(-3))
    view.to_date.setDate(today.addDays(-1))
    qtbot.mouseClick(view.csv_button, LEFT)
    assert asked[-1].name == f"therapy-timer-{_pydate(today.addDays(-3)).isoformat()}.csv"
    assert view.table.rowCount() == 0
    assert "Exported 0 session(s)" in view.message.text()


def test_a_range_over_a_month_is_read_on_refresh_not_as_its_dates_change(
    qtbot: Bot,
    desk: tuple[DayView, Store, Clinic, list[Path]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The From year stepped back by one read a year of the clinic as the date changed: 27-46
    s with the view frozen on a 20-clinician clinic's year, for a step on the way to a date."""
    view, _store, service, asked = desk
    day = view.to_date.date()
    read: list[tuple[object, ...]] = []
    claim_days = service.claim_days

    def counted(*args: Any, **kwargs: Any) -> Any:
        read.append(args)
        return claim_days(*args, **kwargs)

    monkeypatch.setattr(service, "claim_days", counted)
    view.from_date.setDate(day.addDays(-30))  # 31 days: read as it changes, as before
    qtbot.waitUntil(lambda: len(read) == 1)
    assert view.table.rowCount() == 6
    view.from_date.setDate(day.addYears(-1))
    qtbot.waitUntil(lambda: "press Refresh (F5)" in view.message.text())
    assert len(read) == 1
    assert view.table.rowCount() == 0  # the last range's days are not shown under these dates
    start = day.addYears(-1).toString(Qt.DateFormat.ISODate)
    assert view.message.text().startswith(f"{start} to ")
    qtbot.mouseClick(view.refresh_button, LEFT)
    assert len(read) == 2
    assert view.table.rowCount() == 6
    # An export of a long range chosen and not yet read reads it first, as Refresh does.
    view.from_date.setDate(day.addYears(-2))
    qtbot.waitUntil(lambda: view.table.rowCount() == 0)
    assert len(read) == 2
    qtbot.mouseClick(view.csv_button, LEFT)
    # Read first, then again to show the days marked exported.
    assert read[2:] == [(day.addYears(-2).toPython(), day.toPython())] * 2
    (path,) = asked
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8").lstrip("\ufeff"))))
    assert len(view.shown) == 6
    assert {row["session_ids"] for row in rows} == {" ".join(d.session_ids) for d in view.shown}
