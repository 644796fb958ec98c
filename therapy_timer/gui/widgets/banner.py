"""A coloured banner across the window: the forgot-to-stop alert and store errors."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from therapy_timer.gui import theme


class Banner(QFrame):
    """Text plus up to two buttons; hidden until there is something to say."""

    primary_clicked = Signal()
    secondary_clicked = Signal()

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName(name)
        self.setAutoFillBackground(True)
        palette = self.palette()
        palette.setColor(QPalette.ColorRole.Window, theme.ALERT_BG)
        palette.setColor(QPalette.ColorRole.WindowText, theme.ON_STATE_FG)
        self.setPalette(palette)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setFont(theme.scaled_font(self, 1.15, bold=True))
        self.primary = QPushButton()
        self.secondary = QPushButton()
        row = QHBoxLayout(self)
        row.addWidget(self.text, 1)
        for button in (self.primary, self.secondary):
            button.setMinimumHeight(theme.TOUCH_MIN)
            button.setMinimumWidth(theme.TOUCH_MIN * 3)
            row.addWidget(button)
        self.primary.clicked.connect(self.primary_clicked)
        self.secondary.clicked.connect(self.secondary_clicked)
        self.hide()

    def show_message(self, text: str, primary: str = "", secondary: str = "") -> None:
        self.text.setText(text)
        self.text.setAccessibleName(text)
        for button, label in ((self.primary, primary), (self.secondary, secondary)):
            button.setText(label)
            button.setAccessibleName(label.replace("&", ""))
            button.setVisible(bool(label))
        self.show()
