"""The furnished-by switch: therapist, assistant or together, always visible."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QButtonGroup, QHBoxLayout, QLabel, QPushButton, QWidget

from therapy_timer.codes import FurnishedBy
from therapy_timer.gui import theme

LABELS = {
    FurnishedBy.THERAPIST: "&Therapist",
    FurnishedBy.ASSISTANT: "&Assistant",
    FurnishedBy.TOGETHER: "T&ogether",
}
HELP = {
    FurnishedBy.THERAPIST: "The therapist furnishes the minutes from now on",
    FurnishedBy.ASSISTANT: "A PTA or OTA furnishes the minutes from now on (CQ/CO follow)",
    FurnishedBy.TOGETHER: "Therapist and assistant together: the minutes count for the therapist",
}


class FurnishedBySwitch(QWidget):
    """Three exclusive buttons; a tap asks the controller to switch (it starts a new segment)."""

    furnished_by_chosen = Signal(object)  # FurnishedBy

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._group = QButtonGroup(self)
        self._group.setExclusive(True)
        self.buttons: dict[FurnishedBy, QPushButton] = {}
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        caption = QLabel("Furnished by")
        caption.setFont(theme.scaled_font(self, 1.0, bold=True))
        row.addWidget(caption)
        for by, label in LABELS.items():
            button = QPushButton(label)
            button.setCheckable(True)
            button.setStyleSheet(theme.CHECKED_STYLE)
            button.setMinimumHeight(theme.TOUCH_MIN)
            # Wide enough for the chosen look (bold, with a check mark) so nothing is clipped.
            bold = QFontMetrics(theme.scaled_font(button, 1.0, bold=True))
            text = theme.CHECK_MARK + label.replace("&", "")
            button.setMinimumWidth(max(theme.TOUCH_MIN * 2, bold.horizontalAdvance(text) + 40))
            button.setAccessibleName(f"Furnished by {by.value}")
            button.setToolTip(HELP[by])
            button.setObjectName(f"furnished-{by.value}")
            self._group.addButton(button)
            self.buttons[by] = button
            row.addWidget(button)
            button.clicked.connect(lambda _=False, by=by: self.furnished_by_chosen.emit(by))

    def set_value(self, furnished_by: FurnishedBy) -> None:
        button = self.buttons[furnished_by]
        if not button.isChecked():
            button.setChecked(True)
        for by, other in self.buttons.items():
            mark = theme.CHECK_MARK if by is furnished_by else ""
            other.setText(mark + LABELS[by])
