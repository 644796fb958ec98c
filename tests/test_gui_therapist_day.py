"""What got in the way of a therapist's day and the front desk's, found by playing them at
1366x768 and 1024x600 (125% font) offscreen and driven here with real keys and clicks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontMetrics, QPainter
from PySide6.QtWidgets import QApplication, QLabel, QWidget

from tests.gui_support import Bot, Rig, build, end_with_ctrl_c, type_patient
from therapy_timer.codes import FurnishedBy, Role
from therapy_timer.gui.day_view import DayView
from therapy_timer.gui.main_window import MainWindow
from therapy_timer.gui.view_state import TileState, TileView
from therapy_timer.gui.widgets import tiles
from therapy_timer.gui.widgets.summary_dialog import SummaryDialog
from therapy_timer.gui.widgets.tiles import CodeTile

ALT = Qt.KeyboardModifier.AltModifier
LEFT = Qt.MouseButton.LeftButton
CTRL = Qt.KeyboardModifier.ControlModifier


def test_every_header_label_shows_its_key_and_alt_reaches_its_field(qtbot: Bot, rig: Rig) -> None:
    header = rig.window.header
    # The payer's row holds the box and its "?" button: its label read "Pa&yer", ampersand
    # and all, and Alt+Y went nowhere.
    # A label shows its "&" as an underlined key only with a field to go to (its buddy).
    keyless = [
        label.text()
        for label in header.findChildren(QLabel)
        if "&" in label.text() and label.buddy() is None
    ]
    assert keyless == []
    fields: list[tuple[Qt.Key, QWidget]] = [
        (Qt.Key.Key_Y, header.payer),
        (Qt.Key.Key_P, header.patient),
        (Qt.Key.Key_D, header.date),
    ]
    for key, field in fields:
        qtbot.keyClick(rig.window, key, ALT)
        qtbot.waitUntil(partial(_has_focus, field), timeout=1000)


def _has_focus(field: QWidget) -> bool:
    """Whether the keyboard focus is on ``field`` or inside it (a date box's line edit)."""
    focused = QApplication.focusWidget()
    return focused is not None and (focused is field or field.isAncestorOf(focused))


def test_an_open_session_at_the_desk_is_explained_in_the_desks_words(
    qtbot: Bot, rig: Rig, tmp_path: Path
) -> None:
    service, clock = rig.service, rig.clock
    done = service.open_session(
        patient_ref="JD", clinician="Ann Lee", role=Role.PT, payer_profile="Medicare"
    )
    service.start(done.id, "97110")
    clock.advance(minutes=10)
    service.end_session(done.id)
    still = service.open_session(
        patient_ref="KB", clinician="Ann Lee", role=Role.PT, payer_profile="Medicare"
    )
    service.start(still.id, "97112")
    asked: list[str] = []

    def ask_file(_parent: QWidget, suggested: str, _filter: str) -> str:
        asked.append(suggested)
        return str(tmp_path / suggested)

    view = DayView(service, ask_file=ask_file)
    qtbot.add_widget(view)
    view.show()
    # Both exports are refused before a file is asked for, with what the desk can do here:
    # the message told it to "export with --include-open", an option of a command.
    for button in (view.csv_button, view.bundle_button):
        qtbot.mouseClick(button, LEFT)
        said = view.message.text()
        assert "1 session(s) still open: KB (Ann Lee)" in said
        assert "--" not in said
        assert "Status filter" in said
        assert asked == []
    # Which works: the closed days alone are listed, and exported.
    view.status.setFocus()
    qtbot.keyClicks(view.status, "closed")
    assert view.status.currentText() == "closed"
    qtbot.mouseClick(view.csv_button, LEFT)
    assert len(asked) == 1
    assert view.message.text().startswith("Exported 1 session(s)")


MODALITY = TileView(
    code="97010",
    name="Hot or cold packs",
    elapsed=timedelta(minutes=5),
    minutes=5,
    units=None,
    state=TileState.RUNNING,
    furnished_by=FurnishedBy.ASSISTANT,
    number=7,
)
EXERCISE = MODALITY._replace(code="97110", name="Therapeutic exercise", units=1, number=1)


@pytest.fixture(params=[1.0, 1.25], ids=["font 100%", "font 125%"])
def font_scale(request: pytest.FixtureRequest) -> Iterator[float]:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    before = app.font()
    scaled = QFont(before)
    scaled.setPointSizeF(before.pointSizeF() * request.param)
    app.setFont(scaled)
    yield request.param
    app.setFont(before)


@pytest.mark.parametrize("compact", [True, False], ids=["beside", "timed"])
def test_a_tile_as_short_as_a_small_screen_makes_it_draws_every_line_inside_its_frame(
    qtbot: Bot, monkeypatch: pytest.MonkeyPatch, font_scale: float, compact: bool
) -> None:
    # At 1024x600 (125% font) the body scrolls and each tile is as short as it allows: a
    # supervised modality's "beside · 5 min" ran out under its frame, cut in half.
    bottoms: list[tuple[str, int]] = []

    class Recording(QPainter):
        def drawText(self, *args: Any) -> None:  # type: ignore[override]  # records every form
            rect, _flags, text = args
            bottoms.append((text, rect.top() + QFontMetrics(self.font()).height()))
            super().drawText(*args)

    monkeypatch.setattr(tiles, "QPainter", Recording)
    tile = CodeTile(MODALITY if compact else EXERCISE, compact=compact)
    qtbot.add_widget(tile)
    tile.resize(tile.minimumSizeHint())
    tile.grab()
    frame = 3  # the running tile's outline
    assert bottoms
    assert [(text, bottom) for text, bottom in bottoms if bottom > tile.height() - frame] == []


def test_the_summary_opens_with_the_whole_note_in_view(qtbot: Bot, rig: Rig) -> None:
    type_patient(qtbot, rig, "JD")
    for code in ("97110", "97140", "97010"):
        qtbot.mouseClick(rig.tile(code), LEFT)
        rig.clock.advance(minutes=9)
    qtbot.mouseClick(rig.window.untimed.row("97161").toggle, LEFT)
    qtbot.keyClick(rig.window, Qt.Key.Key_E, CTRL)
    dialog = rig.window.summary_dialog
    assert isinstance(dialog, SummaryDialog)
    qtbot.waitExposed(dialog)
    # It opened at its least size, the parts scrolling: one line of the note showed on a
    # 1366x768 screen, and the warnings were cut.
    room = dialog.screen().availableGeometry().size()
    assert dialog.width() <= room.width() and dialog.height() <= room.height()
    note = dialog.note
    assert note.verticalScrollBar().maximum() == 0  # every line of the note in its box
    viewport = dialog.body.viewport()
    top = note.mapTo(viewport, note.rect().topLeft()).y()
    assert top >= 0 and top + note.height() <= viewport.height()  # and the box in view
    for label in (dialog.warnings, dialog.totals):
        assert label.mapTo(viewport, label.rect().bottomLeft()).y() <= viewport.height()


@pytest.mark.qt_log_ignore("This plugin does not support raise")  # offscreen has no window manager
def test_the_day_view_opens_with_every_column_in_view_or_the_whole_screen(
    qtbot: Bot, tmp_path: Path
) -> None:
    for rig in build(qtbot, tmp_path, day_view=True):
        # The day of tests above: long billed lines and warnings, as a day's are.
        session = rig.service.open_session(
            patient_ref="JD", clinician="Ann Lee", role=Role.PT, payer_profile="Medicare"
        )
        for code in ("97110", "97140", "97010"):
            rig.service.start(session.id, code)
            rig.clock.advance(minutes=9)
        rig.service.set_untimed(session.id, "97161", checked=True)
        rig.service.end_session(session.id)
        still = rig.service.open_session(
            patient_ref="KB", clinician="Ann Lee", role=Role.PT, payer_profile="Medicare"
        )
        rig.service.start(still.id, "97112")
        rig.clock.advance(minutes=3)
        qtbot.keyClick(rig.window, Qt.Key.Key_D, CTRL)
        view = rig.window.day_view
        assert view is not None
        qtbot.waitExposed(view)
        # It opened at its layout's hint, which counts the table at a table's default size:
        # 704x434 on a 1366x768 screen, Timed min, Total min, Status and Warnings out of view.
        columns = view.table.horizontalHeader().length()
        assert view.isMaximized() or columns <= view.table.viewport().width()
        room = view.screen().availableGeometry().size()
        assert view.width() <= room.width() and view.height() <= room.height()


def test_what_is_typed_as_the_window_opens_is_the_patient(qtbot: Bot, rig: Rig) -> None:
    # The keys went to the caseload's empty strip, the first widget that takes them: the
    # initials went nowhere and the 1 that followed said to type the patient first.
    focused = QApplication.focusWidget()
    assert focused is not None
    qtbot.keyClicks(focused, "JD")
    assert rig.window.header.patient.text() == "JD"
    assert rig.controller.view.message == ""


def _tab_stops(qtbot: Bot, start: QWidget, count: int) -> list[QWidget]:
    """The widgets Tab reaches from ``start``, pressed ``count`` times."""
    start.setFocus()
    qtbot.waitUntil(partial(_has_focus, start), timeout=1000)
    stops = []
    for _ in range(count):
        focused = QApplication.focusWidget()
        assert focused is not None
        qtbot.keyClick(focused, Qt.Key.Key_Tab)
        now = QApplication.focusWidget()
        assert now is not None
        stops.append(now)
    return stops


@pytest.mark.qt_log_ignore(  # the search's suggestions pop up, offscreen
    "This plugin does not support (raise|grabbing the keyboard|propagateSizeHints)"
)
def test_tab_goes_down_the_window_as_it_reads(qtbot: Bot, rig: Rig) -> None:
    type_patient(qtbot, rig, "JD")
    qtbot.mouseClick(rig.tile("97110"), LEFT)
    window = rig.window
    # A code added from the search makes the tiles again: they take their place above it.
    qtbot.mouseClick(window.search, LEFT)
    qtbot.keyClicks(window.search, "97113")
    qtbot.keyClick(window.search, Qt.Key.Key_Return)
    assert "97113" in [t.code for t in window.tiles.tiles + window.beside.tiles]
    qtbot.waitUntil(lambda: all(t.isVisible() for t in window.tiles.tiles))
    rows = [window.untimed.row(code) for code in window.untimed.codes]
    below = [
        *window.tiles.tiles,
        *window.beside.tiles,
        *[w for row in rows for w in (row.toggle, row.minutes)],
        window.search,
    ]
    # The search box, at the bottom, came before the first tile; Tab also stopped twice on
    # nothing to be seen (the scroll areas of the caseload strip and of the body).
    stops = _tab_stops(qtbot, window.end_button, len(below) + 4)
    assert stops[: len(below)] == below
    after = stops[len(below) :]
    assert after[0] is window.caseload.buttons[rig.controller.view.caseload[0].session_id]
    assert after[1] is window.caseload.new_button
    assert after[2] is window.furnished.buttons[FurnishedBy.THERAPIST]


@pytest.mark.qt_log_ignore("This plugin does not support raise")  # the mini view, offscreen
def test_the_mini_view_gives_no_time_to_a_patient_with_nothing_running(
    qtbot: Bot, rig: Rig
) -> None:
    type_patient(qtbot, rig, "JD")
    qtbot.mouseClick(rig.tile("97110"), LEFT)
    rig.clock.advance(minutes=12)
    rig.controller.tick()
    qtbot.mouseClick(rig.window.mini_button, LEFT)
    mini = rig.window.mini
    qtbot.waitUntil(mini.isVisible)
    assert mini.patients.text() == "\N{BLACK RIGHT-POINTING POINTER} JD: 97110 12:00"
    # Paused after 12 minutes it read "JD: Paused: 97110 00:00", as if nothing had been
    # recorded; the caseload strip and the tray give a time to a running code alone.
    qtbot.mouseClick(mini.pause, LEFT)
    assert mini.patients.text() == "\N{BLACK RIGHT-POINTING POINTER} JD: Paused: 97110"
    assert mini.current.view.elapsed.total_seconds() == 12 * 60


def test_asked_for_the_patient_the_cursor_is_where_it_goes(qtbot: Bot, rig: Rig) -> None:
    qtbot.mouseClick(rig.tile("97110"), LEFT)
    assert rig.controller.view.message.startswith("Type the patient's reference")
    # The cursor stayed on the tile: the initials typed next went nowhere, and their digits
    # started tiles for nobody, each saying the same again.
    focused = QApplication.focusWidget()
    assert focused is not None
    qtbot.keyClicks(focused, "MRN-12")
    assert rig.window.header.patient.text() == "MRN-12"
    # Answered as the first key is typed: the red banner stood over the typing until a tap.
    assert rig.controller.view.message == ""
    assert not rig.window.message_banner.isVisible()
    # Then who treats: with the field left empty every session was "Clinician", one person
    # to the one-on-one checks (R8.3, R8.1) and on every note and claim.
    qtbot.mouseClick(rig.tile("97110"), LEFT)
    assert not rig.controller.view.header.session_open
    assert rig.controller.view.message.startswith("Type the clinician's name")
    assert QApplication.focusWidget() is rig.window.header.clinician
    qtbot.keyClicks(rig.window.header.clinician, "Ann Lee")
    assert rig.controller.view.message == ""
    qtbot.mouseClick(rig.tile("97110"), LEFT)
    assert rig.controller.view.header.session_open
    (session,) = rig.store.list_sessions()
    assert (session.patient_ref, session.clinician) == ("MRN-12", "Ann Lee")


def test_tab_in_the_summary_goes_down_it_as_it_reads(qtbot: Bot, rig: Rig) -> None:
    type_patient(qtbot, rig, "JD")
    for code in ("97110", "97140"):  # 8 + 8 minutes: one unit, either code may take it
        qtbot.mouseClick(rig.tile(code), LEFT)
        rig.clock.advance(minutes=8)
    qtbot.keyClick(rig.window, Qt.Key.Key_E, CTRL)
    dialog = rig.window.summary_dialog
    assert isinstance(dialog, SummaryDialog)
    qtbot.waitExposed(dialog)
    dialog.activateWindow()  # as a window manager does when the dialog opens
    qtbot.waitUntil(dialog.isActiveWindow)
    chosen = next(b for b in dialog.tie_buttons if b.isChecked())
    # It opened with the keys on its scroll area, where nothing showed them, and the choice
    # of unit, above the note, came after the buttons below it.
    assert QApplication.focusWidget() is dialog.table
    stops = _tab_stops(qtbot, dialog.table, 4)
    assert stops == [chosen, dialog.note, dialog.back_button, dialog.copy_button]


def _in_view(window: MainWindow, field: QWidget) -> bool:
    viewport = window.body_scroll.viewport()
    top = field.mapTo(viewport, field.rect().topLeft()).y()
    return top >= 0 and top + field.height() <= viewport.height()


def test_the_field_given_the_cursor_is_scrolled_into_view(qtbot: Bot, rig: Rig) -> None:
    window = rig.window
    window.resize(819, 456)  # a 1024x600 screen at 125%, less a title bar: the body scrolls
    type_patient(qtbot, rig, "JD")
    qtbot.mouseClick(rig.tile("97110"), LEFT)
    bar = window.body_scroll.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0)
    for key, modifiers, field in (
        (Qt.Key.Key_N, CTRL, window.header.patient),
        (Qt.Key.Key_C, CTRL | Qt.KeyboardModifier.ShiftModifier, window.header.clinician),
    ):
        bar.setValue(bar.maximum())  # down at the untimed services
        assert not _in_view(window, field)
        # The cursor went to the field, out of sight: the next patient's initials were typed
        # where nobody could see them.
        qtbot.keyClick(window, key, modifiers)
        qtbot.waitUntil(partial(_has_focus, field), timeout=1000)
        assert _in_view(window, field)


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")  # the help box
def test_what_the_keyboard_help_says_of_ctrl_c_is_what_it_does(qtbot: Bot, rig: Rig) -> None:
    from PySide6.QtWidgets import QMessageBox

    rig.window.keys_action.trigger()
    [box] = [b for b in rig.window.findChildren(QMessageBox) if b.isVisible()]
    [line] = [line for line in box.text().splitlines() if line.startswith("Ctrl+C")]
    box.close()
    type_patient(qtbot, rig, "JD")
    qtbot.mouseClick(rig.tile("97110"), LEFT)
    rig.clock.advance(minutes=10)
    # Ctrl+C closes the session, as the button it stands for says ("Close session and copy
    # note"); the help said "copy the note" alone, and Back to treatment was then too late.
    end_with_ctrl_c(qtbot, rig)
    assert "close the session" in line


def test_switching_patients_shows_the_next_one_from_the_top(qtbot: Bot, rig: Rig) -> None:
    window = rig.window
    window.resize(819, 456)  # a 1024x600 screen at 125%, less a title bar: the body scrolls
    type_patient(qtbot, rig, "JD")
    qtbot.mouseClick(rig.tile("97110"), LEFT)
    # The caseload lists sessions in order of creation, then by their random ids: KB's made in
    # JD's instant of the fake clock came first half the time, and Ctrl+1 showed KB.
    rig.clock.advance(minutes=1)
    qtbot.keyClick(window, Qt.Key.Key_N, CTRL)
    type_patient(qtbot, rig, "KB")
    bar = window.body_scroll.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0)
    bar.setValue(bar.maximum())
    qtbot.mouseClick(rig.tile("97530"), LEFT)  # a tap down the body keeps it where it is
    assert bar.value() == bar.maximum()
    # Ctrl+1 showed JD scrolled as KB was: JD's heading out of sight.
    qtbot.keyClick(window, Qt.Key.Key_1, CTRL)
    assert rig.controller.view.header.patient_ref == "JD"
    assert bar.value() == 0
    assert _in_view(window, window.header)
