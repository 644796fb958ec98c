"""The catalogue search box that puts another code on the screen."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import Signal
from PySide6.QtGui import QFocusEvent
from PySide6.QtWidgets import QLineEdit, QWidget

from therapy_timer.codes import Code
from therapy_timer.gui import theme


class CodeSearch(QLineEdit):
    """Type a number or words; pick a suggestion or press Enter to add the code."""

    code_chosen = Signal(str)

    def __init__(self, codes: Iterable[Code], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setPlaceholderText("Add a code: type a number or words (e.g. 97530, gait)")
        self.setAccessibleName("Add a code from the catalogue")
        self.setClearButtonEnabled(True)
        self.setMinimumHeight(theme.TOUCH_MIN)
        self._entries = [f"{c.code} \N{EM DASH} {c.description} ({c.kind.value})" for c in codes]
        self._completing = False
        self.returnPressed.connect(self._on_self_return_pressed)

    def focusInEvent(self, event: QFocusEvent) -> None:
        # The suggestions are made as the box is first used, not at start (issue 13): typing
        # reaches a line edit only once it has the focus.
        if not self._completing:
            self._completing = True
            self._complete()
        super().focusInEvent(event)

    def _complete(self) -> None:
        from PySide6.QtCore import QStringListModel, Qt
        from PySide6.QtWidgets import QCompleter

        completer = QCompleter(QStringListModel(self._entries, self), self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setMaxVisibleItems(12)
        self.setCompleter(completer)
        completer.activated.connect(self._on_completer_activated)

    def _on_completer_activated(self, text: str) -> None:
        self._choose(text)

    def _on_self_return_pressed(self) -> None:
        completer = self.completer() if self._completing else None
        popup = completer.popup() if completer is not None else None
        if popup is not None and popup.isVisible() and popup.currentIndex().isValid():
            return  # the completer's own activation follows
        self._choose(self.text())

    def _choose(self, text: str) -> None:
        code = text.split("\N{EM DASH}", 1)[0].strip()
        if code:
            self.code_chosen.emit(code)
        # Cleared after the completer has finished writing its choice into the box.
        self.clear()
