"""Every window and dialog is usable on a 1024x600 screen at the system's 125% scale (issue 12).

A desktop at 125% makes Qt scale the whole window (Qt 6 high-DPI: device pixel ratio 1.25), so
the window gets 1024x600 / 1.25 = 819x480 device-independent pixels, less a title bar; the
font-only variant (fonts 25% larger, 1024x600 pixels) is tests/test_gui_caseload_bugs.py's.
Seen under Xvfb with a window manager (docs/xvfb_screens.sh): the main window opened at
1100x860 past the screen's edges, its body scrolled sideways to reach End session, and the day
view's minimum was wider than the screen. These tests hold each of those.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QApplication, QWidget

from tests.gui_support import Bot, Rig, build, type_patient
from therapy_timer import billing
from therapy_timer.gui import theme
from therapy_timer.gui.day_view import DayView, NoteDialog, PatientRefDialog
from therapy_timer.gui.widgets.corrections import CorrectionsDialog
from therapy_timer.gui.widgets.reason import ReasonDialog
from therapy_timer.gui.widgets.recovery_dialog import RecoveryDialog
from therapy_timer.gui.widgets.summary_dialog import SummaryDialog
from therapy_timer.model import Interrupted

SCALED_SCREEN = QSize(round(1024 / 1.25), round(600 / 1.25))
TITLE_BAR = 24  # device-independent pixels a window manager's title bar takes
LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def rig(qtbot: Bot, tmp_path: Path) -> Iterator[Rig]:
    for rig in build(qtbot, tmp_path):
        type_patient(qtbot, rig)
        for code in ("97010", "97110", "97140"):
            qtbot.mouseClick(rig.tile(code), LEFT)
        rig.clock.advance(minutes=23)
        rig.controller.prepare_end()
        yield rig


def _claim_day(rig: Rig) -> billing.ClaimDay:
    return rig.service.claim_days(rig.service.today())[0]


DIALOGS: dict[str, Callable[[Rig], QWidget]] = {
    "main window": lambda rig: rig.window,
    "summary": lambda rig: SummaryDialog(rig.window, rig.controller, _session_id(rig)),
    "corrections": lambda rig: CorrectionsDialog(
        rig.window,
        rig.service.segments(_session_id(rig)),
        lambda _c, _r, _room: None,
        rig.service.policy,
    ),
    "reason": lambda rig: ReasonDialog(rig.window, "Why are you changing the minutes?"),
    "mini view": lambda rig: rig.window.mini,
    "recovery": lambda rig: RecoveryDialog(
        rig.window,
        Interrupted(
            rig.service.get_session(_session_id(rig)),
            tuple(rig.store.open_segments(_session_id(rig))),
            rig.clock.now(),
        ),
        lambda _choice: None,
    ),
    "day view": lambda rig: DayView(rig.service),
    "day view note": lambda rig: NoteDialog(rig.window, "Note", _claim_day(rig).result.note),
    "separate a session": lambda rig: PatientRefDialog(rig.window, _claim_day(rig)),
}


def _session_id(rig: Rig) -> str:
    session = rig.controller.session
    assert session is not None
    return session.id


@pytest.mark.parametrize("name", sorted(DIALOGS))
def test_every_window_and_dialog_fits_the_scaled_small_screen(rig: Rig, name: str) -> None:
    widget = DIALOGS[name](rig)
    widget.ensurePolished()
    layout = widget.layout()
    if layout is not None:
        layout.activate()
    needed = widget.minimumSizeHint().expandedTo(widget.minimumSize())
    assert needed.width() <= SCALED_SCREEN.width(), (name, needed)
    assert needed.height() <= SCALED_SCREEN.height() - TITLE_BAR, (name, needed)


def test_the_main_window_reaches_every_control_without_scrolling_sideways(
    qtbot: Bot, rig: Rig
) -> None:
    window = rig.window
    window.resize(SCALED_SCREEN.width(), SCALED_SCREEN.height() - TITLE_BAR)
    QApplication.processEvents()
    scroll = window.body_scroll
    assert not scroll.horizontalScrollBar().isVisible()
    body = scroll.widget()
    assert body is not None and body.width() <= scroll.viewport().width()
    # The session's buttons move to a row of their own, inside the window; so do the untimed
    # services, one per row.
    for button in (window.pause_button, window.mini_button, window.end_button):
        right = button.mapTo(scroll.viewport(), button.rect().topRight()).x()
        assert right <= scroll.viewport().width(), button.text()
    row = window.untimed.row(window.untimed.codes[0])
    right = row.minutes.mapTo(scroll.viewport(), row.minutes.rect().topRight()).x()
    assert right <= scroll.viewport().width()
    # Wide again, everything is back on one row.
    window.resize(1366, 700)
    QApplication.processEvents()
    assert window.end_button.y() == window.furnished.y()


def test_a_window_larger_than_its_screen_opens_maximized(qtbot: Bot) -> None:
    widget = QWidget()
    qtbot.add_widget(widget)
    screen = widget.screen().availableGeometry().size()
    theme.fit_to_screen(widget, screen.width() + 100, screen.height())
    assert widget.windowState() & Qt.WindowState.WindowMaximized
    assert widget.width() <= screen.width()
    roomy = QWidget()
    qtbot.add_widget(roomy)
    theme.fit_to_screen(roomy, screen.width() - 100, screen.height() - 100)
    assert not roomy.windowState() & Qt.WindowState.WindowMaximized
    assert roomy.size() == QSize(screen.width() - 100, screen.height() - 100)


def test_the_corrections_of_a_session_of_many_segments_fit_the_screen(
    qtbot: Bot, tmp_path: Path
) -> None:
    """A timer switched between codes all day: 64 segments. As a grid alone, the dialog was
    3,356 pixels tall, its Save button past the bottom of any screen."""
    for rig in build(qtbot, tmp_path):
        type_patient(qtbot, rig)
        for index in range(64):
            rig.controller.start_code(("97110", "97112", "97140")[index % 3])
            rig.clock.advance(minutes=1)
        rig.controller.prepare_end()
        segments = rig.service.segments(_session_id(rig))
        assert len(segments) == 64
        policy = rig.service.policy
        dialog = CorrectionsDialog(rig.window, segments, lambda _c, _r, _room: None, policy)
        qtbot.add_widget(dialog)
        dialog.ensurePolished()
        layout = dialog.layout()
        assert layout is not None
        layout.activate()
        needed = dialog.minimumSizeHint().expandedTo(dialog.minimumSize())
        assert needed.height() <= SCALED_SCREEN.height() - TITLE_BAR, needed
        assert needed.width() <= SCALED_SCREEN.width(), needed
        dialog.resize(SCALED_SCREEN.width(), SCALED_SCREEN.height() - TITLE_BAR)
        dialog.show()
        QApplication.processEvents()
        save = dialog.save_button.geometry()
        assert dialog.rect().contains(save), (save, dialog.size())
        # The last segment's minutes are a scroll away, and no wider than the dialog.
        last = dialog.spins[segments[-1].id]
        dialog.rows.ensureWidgetVisible(last)
        QApplication.processEvents()
        corner = last.mapTo(dialog, last.rect().bottomRight())
        assert dialog.rect().contains(corner), (corner, dialog.size())
