"""A small dialog that asks why a recorded session is being changed."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from therapy_timer.gui import theme


class ReasonDialog(QDialog):
    """OK stays disabled until a reason is typed; the answer goes to ``on_reason``."""

    def __init__(self, parent: QWidget | None, prompt: str) -> None:
        super().__init__(parent)
        self.setWindowTitle("Reason for the change")
        self.prompt = QLabel(prompt)
        self.prompt.setWordWrap(True)
        self.reason = QLineEdit()
        self.reason.setAccessibleName("Reason for the change")
        self.reason.setPlaceholderText("What changed and why")
        self.reason.setMinimumHeight(theme.TOUCH_MIN)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        for button in self.buttons.buttons():
            button.setMinimumHeight(theme.TOUCH_MIN)
            button.setAccessibleName(button.text().replace("&", ""))
        self.ok_button.setEnabled(False)
        self._answered = False
        column = QVBoxLayout(self)
        column.addWidget(self.prompt)
        column.addWidget(self.reason)
        column.addWidget(self.buttons)
        self.reason.textChanged.connect(self._on_reason_text_changed)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

    @property
    def ok_button(self) -> QPushButton:
        button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        assert button is not None
        return button

    @classmethod
    def ask(
        cls,
        parent: QWidget | None,
        prompt: str,
        on_reason: Callable[[str], None],
        on_cancel: Callable[[], None] | None = None,
    ) -> ReasonDialog:
        """Open the dialog without blocking; returns it so tests can fill it in."""
        dialog = cls(parent, prompt)
        dialog.accepted.connect(lambda: on_reason(dialog.reason.text().strip()))
        if on_cancel is not None:
            dialog.rejected.connect(on_cancel)
        dialog.finished.connect(dialog.deleteLater)
        theme.settle_layout(dialog)
        dialog.open()
        return dialog

    def done(self, result: int) -> None:
        # Once: a second click on OK queued while the first answer was saved (another
        # program's write holding the file) reached the hidden dialog, which answered again,
        # and the same correction was saved twice.
        if not self._answered:
            self._answered = True
            super().done(result)

    def _on_reason_text_changed(self, text: str) -> None:
        self.ok_button.setEnabled(bool(text.strip()))
