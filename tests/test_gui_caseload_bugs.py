"""Issue 12's bugs in the window: false recovery, small screens, honest button names, no display."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QApplication, QWidget

from tests.fakes import FakeClock
from tests.gui_support import Bot, Rig, build, type_patient
from therapy_timer.clinic import Clinic
from therapy_timer.codes import Role, builtin_catalogue
from therapy_timer.gui.app import display_available
from therapy_timer.gui.view_state import TileState
from therapy_timer.gui.widgets.recovery_dialog import RecoveryDialog
from therapy_timer.gui.widgets.summary_dialog import SummaryDialog
from therapy_timer.model import Interrupted
from therapy_timer.store import Store

LEFT = Qt.MouseButton.LeftButton
SMALL_SCREEN = QSize(1024, 600)
TITLE_AND_PANEL = 60
"""What a window manager's title bar and a taskbar take from 600 pixels (Openbox/LXQt: ~55)."""


# -- bug 2: no false "Therapy Timer stopped" question ----------------------------------------


def test_a_timer_started_from_the_command_line_is_running_not_interrupted(
    qtbot: Bot, tmp_path: Path
) -> None:
    clock = FakeClock()
    with Store.open(tmp_path, clock=clock, actor="pedal") as store:
        pedal = Clinic(store, builtin_catalogue(), clock, actor="pedal")
        session = pedal.open_session(
            patient_ref="JD-1", clinician="Ann Lee", role=Role.PT, payer_profile="Medicare"
        )
        pedal.start(session.id, "97112")
        pedal.heartbeat()  # a command may beat too: it is not a window
    clock.advance(minutes=25)  # the window opens later
    for rig in build(qtbot, tmp_path, clock):
        rig.window.offer_recovery()
        assert rig.window.recovery_dialog is None
        assert rig.tile("97112").view.state is TileState.RUNNING
        assert rig.tile("97112").view.minutes == 25  # every real minute kept


def test_a_window_closed_normally_leaves_running_timers_to_the_next_window(
    qtbot: Bot, tmp_path: Path
) -> None:
    clock = FakeClock()
    for rig in build(qtbot, tmp_path, clock):
        rig.controller.start_background()  # holds the lease, as the real window does
        type_patient(qtbot, rig)
        qtbot.mouseClick(rig.tile("97110"), LEFT)
    clock.advance(minutes=40)  # closed with "Close, keep timing"; opened again later
    for rig in build(qtbot, tmp_path, clock):
        rig.window.offer_recovery()
        assert rig.window.recovery_dialog is None
        assert rig.tile("97110").view.minutes == 40


# -- bug 3: every window and dialog fits 1024x600 at 125% font scale -------------------------


@pytest.fixture
def large_font() -> Iterator[None]:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    before = app.font()
    bigger = QFont(before)
    bigger.setPointSizeF(before.pointSizeF() * 1.25)
    app.setFont(bigger)
    try:
        yield
    finally:
        app.setFont(before)


def _fits(widget: QWidget) -> None:
    widget.ensurePolished()
    layout = widget.layout()
    if layout is not None:
        layout.activate()
    needed = widget.minimumSizeHint().expandedTo(widget.minimumSize())
    assert needed.width() <= SMALL_SCREEN.width(), (widget.windowTitle(), needed)
    assert needed.height() <= SMALL_SCREEN.height() - TITLE_AND_PANEL, (
        widget.windowTitle(),
        needed,
    )


def _main_window(rig: Rig) -> QWidget:
    return rig.window


def _summary(rig: Rig) -> QWidget:
    session = rig.controller.session
    assert session is not None
    return SummaryDialog(rig.window, rig.controller, session.id)


def _mini(rig: Rig) -> QWidget:
    rig.window.mini.set_view(rig.controller.view)
    return rig.window.mini


def _recovery(rig: Rig) -> QWidget:
    session = rig.controller.session
    assert session is not None
    found = Interrupted(session, tuple(rig.store.open_segments(session.id)), rig.clock.now())
    return RecoveryDialog(rig.window, found, lambda _choice: None)


# An application-wide font change re-lays-out every window still alive (also those of earlier
# tests awaiting deletion); the offscreen platform cannot pass their new hints on, and says so.
@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
@pytest.mark.parametrize("make", [_main_window, _summary, _mini, _recovery])
def test_every_window_fits_a_small_screen_at_125_percent(
    qtbot: Bot, tmp_path: Path, large_font: None, make: object
) -> None:
    for rig in build(qtbot, tmp_path):
        type_patient(qtbot, rig)
        for code in ("97010", "97110", "97140"):
            qtbot.mouseClick(rig.tile(code), LEFT)
        rig.clock.advance(minutes=23)
        rig.controller.tick()
        assert callable(make)
        widget = make(rig)
        assert isinstance(widget, QWidget)
        _fits(widget)


# An application-wide font change re-lays-out every window still alive (also those of earlier
# tests awaiting deletion); the offscreen platform cannot pass their new hints on, and says so.
@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
def test_untimed_services_and_the_code_search_can_be_reached_on_a_small_screen(
    qtbot: Bot, large_font: None, rig: Rig
) -> None:
    # At 1024x600 the treatment part scrolls; the caseload and totals stay put, and the
    # untimed services and the search come into view inside the window.
    rig.window.resize(SMALL_SCREEN.width(), SMALL_SCREEN.height() - TITLE_AND_PANEL)
    QApplication.processEvents()
    window = rig.window
    assert window.height() <= SMALL_SCREEN.height()
    for widget in (window.untimed, window.search):
        window.body_scroll.ensureWidgetVisible(widget)
        QApplication.processEvents()
        top_left = widget.mapTo(window, widget.rect().topLeft())
        assert 0 <= top_left.y() < window.height(), top_left
    for fixed in (window.caseload, window.live):
        assert fixed.isVisible()
        bottom = fixed.mapTo(window, fixed.rect().bottomLeft()).y()
        assert bottom <= window.height()


# -- bug 4: buttons named for what they do ---------------------------------------------------


def test_the_summary_buttons_say_what_happens_to_the_session(qtbot: Bot, rig: Rig) -> None:
    type_patient(qtbot, rig)
    qtbot.mouseClick(rig.tile("97110"), LEFT)
    rig.clock.advance(minutes=10)
    qtbot.mouseClick(rig.window.end_button, LEFT)
    dialog = rig.window.summary_dialog
    assert dialog is not None
    visible = {
        b.text().replace("&", "")
        for b in (dialog.back_button, dialog.copy_button, dialog.done_button)
        if b.isVisible()
    }
    assert visible == {"Back to treatment (session stays open)", "Close session and copy note"}
    qtbot.mouseClick(dialog.copy_button, LEFT)
    visible = {
        b.text().replace("&", "")
        for b in (dialog.back_button, dialog.copy_button, dialog.done_button)
        if b.isVisible()
    }
    assert visible == {"Copy note", "Close summary"}


# -- bug 5: no display ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "platform", "expected"),
    [
        ({}, "linux", False),
        ({"DISPLAY": ":0"}, "linux", True),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", True),
        ({"QT_QPA_PLATFORM": "offscreen"}, "linux", True),
        ({"DISPLAY": ""}, "linux", False),
        ({}, "win32", True),
        ({}, "darwin", True),
    ],
)
def test_display_available(environ: dict[str, str], platform: str, expected: bool) -> None:
    assert display_available(environ, platform) is expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the check is Linux's")
def test_no_display_is_one_plain_message_and_exit_2(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from therapy_timer.gui.launch import main; main(sys.argv[1:])",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 2, done.stderr
    assert "no display was found" in done.stderr
    assert "QT_QPA_PLATFORM=offscreen" in done.stderr and "therapy-timer" in done.stderr
    assert "xcb" not in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing was opened or created


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the check is Linux's")
def test_the_readmes_command_without_a_display_is_not_told_it_ran_another(tmp_path: Path) -> None:
    # The README opens the window with `therapy-timer`: its message began "therapy-timer-gui:",
    # the desktop launcher's name, a command the user never typed.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    env["THERAPY_TIMER_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "therapy_timer"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("Therapy Timer: no display was found"), done.stderr
    assert "therapy-timer-gui" not in done.stderr
