"""Builds the real window on a temporary database and a FakeClock, for the GUI tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QWidget

from tests.fakes import FakeClock
from therapy_timer.clinic import Clinic
from therapy_timer.codes import Catalogue, builtin_catalogue
from therapy_timer.gui.controller import SessionController
from therapy_timer.gui.day_view import DayView
from therapy_timer.gui.main_window import MainWindow
from therapy_timer.gui.widgets.summary_dialog import SummaryDialog
from therapy_timer.gui.widgets.tiles import CodeTile
from therapy_timer.store import Store
from therapy_timer.store.queries import WindowLease

CATALOGUE = builtin_catalogue()


class Bot(Protocol):
    """The part of pytest-qt's ``qtbot`` these tests use (its methods carry no annotations)."""

    def add_widget(self, widget: QWidget) -> None: ...
    def waitExposed(self, widget: QWidget) -> Any: ...
    def waitUntil(self, callback: Callable[[], object], *, timeout: int = ...) -> None: ...
    def wait(self, ms: int) -> None: ...
    def mouseClick(self, widget: QWidget, button: Qt.MouseButton) -> None: ...
    def keyClick(
        self, widget: QWidget, key: Qt.Key, modifier: Qt.KeyboardModifier = ...
    ) -> None: ...
    def keyClicks(self, widget: QWidget, text: str) -> None: ...


@dataclass
class Rig:
    """The window and everything under it; ``other`` is a second program on the same file."""

    data_dir: Path
    clock: FakeClock
    store: Store
    service: Clinic
    controller: SessionController
    window: MainWindow
    catalogue: Catalogue = CATALOGUE

    def tile(self, code: str) -> CodeTile:
        for grid in (self.window.tiles, self.window.beside):
            for tile in grid.tiles:
                if tile.code == code:
                    return tile
        raise KeyError(code)

    def other(self) -> tuple[Store, Clinic]:
        store = Store.open(self.data_dir, clock=self.clock, actor="pedal")
        return store, Clinic(store, self.catalogue, self.clock, actor="pedal")


def build(
    qtbot: Bot, data_dir: Path, clock: FakeClock | None = None, *, day_view: bool = False
) -> Iterator[Rig]:
    """Yield a shown window; closes the store afterwards. ``qtbot`` registers the window.
    With ``day_view``, Ctrl+D opens the day view over the same front door, as app.py wires it."""
    clock = clock or FakeClock()
    store = Store.open(data_dir, clock=clock, actor="test")
    service = Clinic(store, CATALOGUE, clock, actor="test")
    controller = SessionController(service)
    controller.load()
    window = MainWindow(controller, None, (lambda: DayView(service)) if day_view else None)
    qtbot.add_widget(window)
    window.show()
    window.activateWindow()
    qtbot.waitExposed(window)
    # Its menus' actions are made just after its first paint, and before a key or a menu
    # that comes sooner (tests/test_gui_first_keys.py): every test starts from there.
    qtbot.waitUntil(lambda: window.started)
    try:
        yield Rig(data_dir, clock, store, service, controller, window)
    finally:
        controller.stop_background()
        window.mini.close()
        if window.day_view is not None:
            window.day_view.close()
        # Closing with a stopwatch running would ask first; the test is over, so just go.
        window._close_confirmed = True
        window.close()
        QApplication.processEvents()
        store.close()


def type_patient(
    qtbot: Bot,
    rig: Rig,
    ref: str = "JD-1",
    clinician: str = "Ann Lee",
    payer: str = "Medicare",
) -> None:
    """Fill the header the way a therapist would: pick the payer, click the fields and type."""
    header = rig.window.header
    header.payer.setCurrentText(payer)
    for field, text in ((header.patient, ref), (header.clinician, clinician)):
        qtbot.mouseClick(field, Qt.MouseButton.LeftButton)
        qtbot.keyClicks(field, text)


def end_with_ctrl_c(qtbot: Bot, rig: Rig) -> SummaryDialog:
    """Ctrl+E opens the summary, Ctrl+C there copies the note and closes the session."""
    qtbot.keyClick(rig.window, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    dialog = rig.window.summary_dialog
    assert isinstance(dialog, SummaryDialog)
    qtbot.waitUntil(lambda: QApplication.activeWindow() is dialog)
    qtbot.keyClick(dialog, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert dialog.closed
    return dialog


def dead_window(store: Store, last_beat: datetime) -> WindowLease:
    """Record that a window process held the stopwatches until ``last_beat`` and then died:
    its pid is that of a process that has really exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    lease = WindowLease(proc.pid, "", "", last_beat)
    store.hold_window_lease(lease)
    return lease


def event_loops_run() -> bool:
    """Whether a new event loop still runs, and put it right if not.

    ``QApplication.exit()`` called while no ``exec()`` runs (a stray one-shot timer firing in a
    later test) makes every later ``QEventLoop.exec()`` return at once without delivering an
    event, so each later ``qtbot.waitUntil`` times out, far from the cause. Only a new
    ``exec()`` of the application clears it.
    """
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(0, loop.quit)
    if loop.exec() == 0:
        return True
    app = QApplication.instance()
    assert app is not None
    QTimer.singleShot(0, lambda: app.exit(0))
    app.exec()
    return False
