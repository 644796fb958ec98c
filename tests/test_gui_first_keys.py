"""What the window makes after its first paint (its menus' actions, the tray, the icon) is there
for a key pressed or a menu opened the moment the window shows (issue 13)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication

from tests.fakes import FakeClock
from tests.gui_support import CATALOGUE, Bot
from therapy_timer.clinic import Clinic
from therapy_timer.gui.controller import SessionController
from therapy_timer.gui.main_window import MADE_AFTER_THE_FIRST_PAINT, MainWindow
from therapy_timer.store import Store


@pytest.fixture
def shown(qtbot: Bot, tmp_path: Path) -> Iterator[MainWindow]:
    """A window just shown: no event processed since ``show()``, so not yet painted."""
    store = Store.open(tmp_path, clock=FakeClock(), actor="test")
    controller = SessionController(Clinic(store, CATALOGUE, FakeClock(), actor="test"))
    controller.load()
    window = MainWindow(controller)
    qtbot.add_widget(window)
    window.show()
    window.activateWindow()
    try:
        yield window
    finally:
        controller.stop_background()
        window.close()
        QApplication.processEvents()
        store.close()


def _made(window: MainWindow) -> frozenset[str]:
    return MADE_AFTER_THE_FIRST_PAINT & set(window.__dict__)


def test_the_menus_actions_are_made_just_after_the_first_paint(
    qtbot: Bot, shown: MainWindow
) -> None:
    assert _made(shown) == set()
    qtbot.waitUntil(lambda: _made(shown) == MADE_AFTER_THE_FIRST_PAINT)


@pytest.mark.qt_log_ignore("This plugin does not support raise")  # the mini view, offscreen
@pytest.mark.parametrize("delivered", ["at once", "queued"])
@pytest.mark.parametrize(
    ("key", "modifiers"),
    [
        (Qt.Key.Key_M, Qt.KeyboardModifier.ControlModifier),  # a menu action's key
        (Qt.Key.Key_M, Qt.KeyboardModifier.NoModifier),  # a plain key, typed in a field
    ],
    ids=["Ctrl+M", "m"],
)
def test_a_key_pressed_before_the_first_paint_acts(
    qtbot: Bot, shown: MainWindow, key: Qt.Key, modifiers: Qt.KeyboardModifier, delivered: str
) -> None:
    # A key pressed in the patient field as the window appears: delivered before anything
    # else, or queued behind what show() queued.
    field = shown.header.patient
    if delivered == "at once":
        qtbot.keyClick(field, key, modifiers)
    else:
        for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            text = "" if modifiers else "m"
            QApplication.postEvent(field, QKeyEvent(kind, key, modifiers, text))
        assert _made(shown) == set()
    if modifiers:
        qtbot.waitUntil(lambda: shown.mini.isVisible())
    else:
        qtbot.waitUntil(lambda: field.text() == "m")
        assert not shown.mini.isVisible()


@pytest.mark.qt_log_ignore("This plugin does not support (raise|grabbing the keyboard)")  # a menu
def test_a_menu_opened_before_the_first_paint_has_its_actions(shown: MainWindow) -> None:
    assert _made(shown) == set()
    shown.session_menu.popup(QPoint(0, 0))
    try:
        texts = [action.text() for action in shown.session_menu.actions()]
        assert texts[:2] == ["&New patient", "Switch &clinician…"]
        assert "&Quit" in texts
    finally:
        shown.session_menu.hide()


@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")  # the box's
def test_an_action_asked_for_before_the_first_paint_is_made_then(shown: MainWindow) -> None:
    assert _made(shown) == set()
    shown.keys_action.trigger()  # as a test, or code, may ask for one
    assert _made(shown) == MADE_AFTER_THE_FIRST_PAINT


def _started(window: weakref.ref[MainWindow]) -> bool:
    shown = window()
    return shown is not None and shown.started


def test_a_window_is_freed_with_its_last_reference(qtbot: Bot, tmp_path: Path) -> None:
    # Nothing made for its start may hold it in a reference cycle: the window would outlive
    # its last use until a garbage collection deleted it inside whatever Qt was doing then
    # (another window's paint, in the test suite: a segmentation fault).
    store = Store.open(tmp_path, clock=FakeClock(), actor="test")
    controller = SessionController(Clinic(store, CATALOGUE, FakeClock(), actor="test"))
    controller.load()
    window = MainWindow(controller)
    window.show()
    gone = weakref.ref(window)
    qtbot.waitUntil(lambda: _started(gone))
    collecting = gc.isenabled()
    gc.disable()
    try:
        window.close()
        del window
        assert gone() is None
    finally:
        if collecting:
            gc.enable()
        controller.stop_background()
        store.close()
