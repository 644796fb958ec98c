"""What got in the way of a therapist's day and the front desk's, found by playing them at
1366x768 and 1024x600 (125% font) offscreen and driven here with real keys and clicks."""

from __future__ import annotations

from functools import partial

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLabel, QWidget

from tests.gui_support import Bot, Rig

ALT = Qt.KeyboardModifier.AltModifier


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
